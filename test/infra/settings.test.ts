/**
 * Each setting is defined once (lambdas/core/settings.ts) and everything else agrees with it: the context
 * parsing, cdk.json, the environment the stack gives each function, the functions' readers, TandemProps'
 * documented defaults, and docs/configuration.md.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { cachePolicyFromEnv } from '../../lambdas/adapters/cache-policy-override.ts';
import { DEFAULT_LIMITS } from '../../lambdas/core/predict-request.ts';
import {
  LOG_RETENTION_DAYS,
  readEnv,
  SETTINGS,
  SettingError,
  type FunctionName,
  type Setting,
  type SettingName,
} from '../../lambdas/core/settings.ts';
import {
  readFinalizeConfig,
  readPlanConfig,
  readScoreConfig,
  readTriggerConfig,
} from '../../lambdas/handlers/batch-env.ts';
import { readApiConfig } from '../../lambdas/handlers/config.ts';
import { readSettings, SETTINGS_TABLE_HEADER, SettingsError, settingsTableRows } from '../../lib/settings.ts';
import { cdkJsonContext, onlyResource, REPO_ROOT, templateOf } from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const NAMES = Object.keys(SETTINGS) as SettingName[];
const setting = (name: SettingName): Setting => SETTINGS[name];

describe('settings from context', () => {
  const from = (context: Record<string, unknown>) => readSettings((key: SettingName) => context[key]);

  it('reads cdk.json: the defaults, as JSON types', () => {
    const { stackName, props } = from(cdkJsonContext());
    expect(stackName).toBe('Tandem');
    expect(props).toEqual({
      modelName: 'fraud-detector',
      architecture: 'x86_64',
      predictMemorySize: 1769,
      scoreMemorySize: 3008,
      provisionedConcurrency: 0,
      auth: 'iam',
      batchMaxConcurrency: 40,
      toleratedFailurePercentage: 0,
      cacheBudgetMs: 150,
      writeThrough: false,
      logRetention: logs.RetentionDays.ONE_MONTH,
    });
  });

  it('cdk.json writes only Tandem settings (besides CDK flags), each with its default', () => {
    const context = cdkJsonContext();
    for (const [key, value] of Object.entries(context)) {
      if (key.startsWith('@aws-cdk') || key === 'cli-telemetry') continue;
      const name = NAMES.find((n) => setting(n).context === key);
      expectWithMessage(name, `cdk.json context key ${key} is a setting`).toBeDefined();
      expectWithMessage(value, key).toEqual(setting(name!).default);
    }
  });

  it('reads -c key=value strings', () => {
    const { stackName, props } = from({
      stackName: 'TandemStaging',
      architecture: 'arm64',
      provisionedConcurrency: '2',
      toleratedFailurePercentage: '2.5',
      writeThrough: 'true',
      auth: 'jwt',
      jwtIssuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
      jwtAudience: 'client-a, client-b',
      apiRateLimit: '50',
      logRetentionDays: '14',
      cacheMaxAgeSeconds: '900',
      cacheTtlSeconds: '86400',
      batchOptions: '{"chunkBytes": 8388608, "tableWrites": "none"}',
    });
    expect(stackName).toBe('TandemStaging');
    expect(props).toEqual({
      architecture: 'arm64',
      provisionedConcurrency: 2,
      toleratedFailurePercentage: 2.5,
      writeThrough: true,
      auth: {
        jwt: {
          issuer: 'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc',
          audience: ['client-a', 'client-b'],
        },
      },
      apiThrottle: { rateLimit: 50, burstLimit: 1000 },
      logRetention: logs.RetentionDays.TWO_WEEKS,
      cacheMaxAgeSeconds: 900,
      cacheTtlSeconds: 86_400,
      batchOptions: { chunkBytes: 8_388_608, tableWrites: 'none' },
    });
  });

  it('reports every bad setting at once, by name', () => {
    let error: unknown;
    try {
      from({
        predictMemorySize: 'lots',
        architecture: 'sparc',
        writeThrough: 'yes',
        logRetentionDays: '10',
        auth: 'jwt',
        cacheMaxAgeSeconds: '7200',
        cacheTtlSeconds: '3600',
        batchOptions: '{"delimiter": ";;"}',
        scoreMemorySize: '1.5',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SettingsError);
    const problems = (error as SettingsError).problems.join('\n');
    expect(problems).toMatch(/^predictMemorySize: expected an integer from 128 to 10240, got "lots"$/m);
    expect(problems).toMatch(/^scoreMemorySize: expected an integer from 128 to 10240, got "1.5"$/m);
    expect(problems).toMatch(/^architecture: expected one of x86_64, arm64, got "sparc"$/m);
    expect(problems).toMatch(/^writeThrough: expected true or false, got "yes"$/m);
    expect(problems).toMatch(/^logRetentionDays: expected one of 1, 3, 5, 7, 14, 30, .*, got "10"$/m);
    expect(problems).toMatch(/^jwtIssuer: auth=jwt needs the OIDC issuer URL/m);
    expect(problems).toMatch(/^jwtAudience: auth=jwt needs at least one audience/m);
    expect(problems).toMatch(/^cacheTtlSeconds: must be at least cacheMaxAgeSeconds \(7200\), got 3600/m);
    expect(problems).toMatch(
      /^batchOptions: delimiter must be one character other than a quote or a line end$/m,
    );
  });

  it('refuses JWT settings without auth=jwt, and takes an empty one as unset', () => {
    expect(() => from({ jwtIssuer: 'https://issuer.example.com' })).toThrow(
      /jwtIssuer \/ jwtAudience: only used with auth=jwt/,
    );
    expect(from({ jwtIssuer: '', jwtAudience: '' }).props).toEqual({});
  });

  it('accepts only the log retentions CloudWatch Logs offers (the CDK enum)', () => {
    const cdkValues = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number');
    expect([...LOG_RETENTION_DAYS].sort((a, b) => a - b)).toEqual(cdkValues.sort((a, b) => a - b));
  });
});

describe("the functions' environment comes from the definitions", () => {
  let template: Template;
  beforeAll(() => {
    // With the stream lane, so that its consumer and the API's stream variables are checked too.
    template = templateOf({ streamLane: true });
  }, 60_000);
  const LOGICAL_ID: Record<FunctionName, string> = {
    predict: 'ApiPredict',
    trigger: 'BatchTrigger',
    plan: 'BatchPlan',
    score: 'BatchScore',
    finalize: 'BatchFinalize',
    stream: 'StreamConsumer',
    rollout: 'RolloutStep',
    refresh: 'RefreshFunction',
    monitor: 'DriftMonitorFunction',
  };

  it.each(Object.keys(LOGICAL_ID) as FunctionName[])(
    'gives %s only variables whose setting names it, and every wiring variable it reads',
    (fn) => {
      const [, resource] = onlyResource(template, 'AWS::Lambda::Function', LOGICAL_ID[fn]);
      const variables = Object.keys(
        (resource.Properties!['Environment'] as { Variables: Record<string, unknown> }).Variables,
      ).filter((name) => name !== 'NODE_OPTIONS');
      const readBy = NAMES.map(setting).filter((s) => s.env !== undefined && s.functions?.includes(fn));
      expect(variables.filter((v) => !readBy.some((s) => s.env === v))).toEqual([]);
      const wiring = readBy.filter((s) => s.wiring).map((s) => s.env);
      expect(variables.filter((v) => wiring.includes(v)).sort()).toEqual([...wiring].sort());
    },
  );
});

describe("the functions' readers apply each definition", () => {
  const base = { MODELS_URI: 's3://bucket/models/', DEFAULT_MODEL: 'fraud-detector' };

  it('give the defaults when a variable is unset or empty', () => {
    const config = readApiConfig({ ...base, CACHE_BUDGET_MS: '', MAX_INSTANCES: '  ' });
    expect(config).toMatchObject({
      cacheBudgetMs: SETTINGS.cacheBudgetMs.default,
      writeThrough: SETTINGS.writeThrough.default,
      modelRefreshSeconds: SETTINGS.modelRefreshSeconds.default,
      limits: { maxBodyBytes: SETTINGS.maxBodyBytes.default, maxInstances: SETTINGS.maxInstances.default },
      logPayloads: false,
      metricsFlushMs: SETTINGS.metricsFlushMs.default,
      tableName: undefined,
    });
    expect(readFinalizeConfig({})).toEqual({ eventBusName: 'default' });
    expect(readTriggerConfig({ STATE_MACHINE_ARN: 'arn:sm' })).toEqual({
      stateMachineArn: 'arn:sm',
      batchOptions: {},
    });
    expect(cachePolicyFromEnv({ CACHE_TTL_SECONDS: '' })).toEqual({});
  });

  it("keep the core's request limits as the settings' defaults", () => {
    expect(DEFAULT_LIMITS.maxBodyBytes).toBe(SETTINGS.maxBodyBytes.default);
    expect(DEFAULT_LIMITS.maxInstances).toBe(SETTINGS.maxInstances.default);
  });

  // Every integer setting a function reads: its bounds are accepted, one past them is refused by name.
  const integers = NAMES.filter((n) => {
    const s = setting(n);
    return s.type === 'integer' && s.env !== undefined && s.allowed === undefined;
  });
  it.each(integers)('%s: accepts its range and refuses one past it, naming the variable', (name) => {
    const s = setting(name) as Extract<Setting, { type: 'integer' }> & { env: string };
    expect(readEnv(s, { [s.env]: String(s.min) })).toBe(s.min);
    expect(readEnv(s, { [s.env]: String(s.max) })).toBe(s.max);
    for (const bad of [String(s.min - 1), String(s.max + 1), '1.5', 'abc', '1e3']) {
      expectWithMessage(() => readEnv(s, { [s.env]: bad }), bad).toThrow(SettingError);
      expectWithMessage(() => readEnv(s, { [s.env]: bad }), bad).toThrow(
        new RegExp(`^${s.env}: expected an integer`),
      );
    }
  });

  it('fail the init of a function whose wiring variable is missing, naming it', () => {
    expect(() => readApiConfig({ DEFAULT_MODEL: 'm' })).toThrow(/^MODELS_URI is required/);
    expect(() => readPlanConfig({})).toThrow(/^MODELS_URI is required/);
    expect(() => readScoreConfig({})).toThrow(/^MODELS_URI is required/);
    expect(() => readTriggerConfig({})).toThrow(/^STATE_MACHINE_ARN is required/);
    expect(() => readTriggerConfig({ STATE_MACHINE_ARN: 'a', BATCH_OPTIONS: '[1]' })).toThrow(
      /^BATCH_OPTIONS: expected a JSON object, got "\[1\]"$/,
    );
    expect(() => readApiConfig({ ...base, WRITE_THROUGH: 'maybe' })).toThrow(
      /^WRITE_THROUGH: expected true or false, got "maybe"$/,
    );
  });
});

describe('one place per fact', () => {
  it('documents every setting in docs/configuration.md, as the definitions say', () => {
    const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'configuration.md'), 'utf8');
    const section = doc.slice(doc.indexOf('<!-- settings:begin'), doc.indexOf('<!-- settings:end'));
    const rows = section
      .split('\n')
      .filter((line) => line.startsWith('|'))
      .map((line) =>
        line
          .slice(1, -1)
          .split('|')
          .map((cell) => cell.trim()),
      );
    expect(rows[0]).toEqual([...SETTINGS_TABLE_HEADER]);
    // Row by row: a missing setting, or a default, range or variable that differs, fails here.
    expect(rows.slice(2)).toEqual(settingsTableRows());
  });

  it("states TandemProps' defaults (JSDoc) as the definitions do", () => {
    const source = fs.readFileSync(path.join(REPO_ROOT, 'lib', 'tandem-stack.ts'), 'utf8');
    const documented = [...source.matchAll(/@default ([^\n]+)\n\s*\*\/\n\s*readonly (\w+)\?/g)].map(
      (m) => [m[2]!, m[1]!.trim()] as const,
    );
    expect(documented.length).toBeGreaterThan(10);
    for (const [prop, text] of documented) {
      const s = NAMES.includes(prop as SettingName) ? setting(prop as SettingName) : undefined;
      if (s?.default === undefined || typeof s.default === 'object') continue;
      const literal = typeof s.default === 'string' ? `'${s.default}'` : String(s.default);
      expectWithMessage(text.startsWith(literal), `${prop}: @default ${text}`).toBe(true);
    }
  });

  it('keeps lib/ free of function code: from lambdas/ it imports only the pure contract modules', () => {
    const allowed = new Set([
      '../lambdas/core/settings.ts',
      '../lambdas/core/names.ts',
      '../lambdas/core/batch/contracts.ts',
      '../lambdas/core/batch/options.ts',
      '../lambdas/core/batch/schedules.ts',
      '../lambdas/core/batch/schedule-expression.ts',
    ]);
    const found: string[] = [];
    for (const file of fs.readdirSync(path.join(REPO_ROOT, 'lib'))) {
      const source = fs.readFileSync(path.join(REPO_ROOT, 'lib', file), 'utf8');
      for (const m of source.matchAll(/^import (type )?[^;]*? from '(\.\.\/lambdas\/[^']+)';/gms)) {
        if (m[1] === undefined && !allowed.has(m[2]!)) found.push(`${file}: ${m[2]}`);
      }
    }
    expect(found).toEqual([]);
    // And those modules import nothing but each other and the core's error classes.
    for (const module of allowed) {
      const source = fs.readFileSync(path.join(REPO_ROOT, 'lib', module), 'utf8');
      const imports = [...source.matchAll(/^import (?!type )[^;]*? from '([^']+)';/gms)].map((m) => m[1]!);
      expectWithMessage(
        imports.filter(
          (i) =>
            i !== 'zod' &&
            !/^\.\.?\/(names|contracts|errors|\.\.\/errors|settings|options|schedule-expression)\.ts$/.test(
              i,
            ),
        ),
        module,
      ).toEqual([]);
    }
  });
});
