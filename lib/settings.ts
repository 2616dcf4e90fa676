/**
 * Tandem's deploy-time settings from CDK context (`cdk.json` "context", or `-c key=value`), validated with
 * messages that name the setting. Values from `-c` arrive as strings; values from cdk.json keep their JSON
 * types; both are accepted.
 */
import * as logs from 'aws-cdk-lib/aws-logs';
import { MAX_CACHE_SECONDS } from '../lambdas/adapters/cache-policy-override.ts';
import { DEFAULT_BATCH_OPTIONS, type BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { resolveOptions } from '../lambdas/core/batch/planner.ts';
import { streamPropsFromContext } from './stream-lane.ts';
import type { TandemProps } from './tandem-stack.ts';
import { isPackageName } from '../lambdas/core/names.ts';

export interface TandemSettings {
  readonly stackName: string;
  readonly props: TandemProps;
}

/** Every context key Tandem reads, with its default and meaning (docs/deploy.md shows the same table). */
export const SETTINGS = {
  stackName: { default: 'Tandem', help: 'CloudFormation stack name' },
  modelName: { default: 'fraud-detector', help: 'model served when a request names none (DEFAULT_MODEL)' },
  architecture: { default: 'x86_64', help: 'x86_64 or arm64, for every function' },
  predictMemorySize: { default: 1769, help: 'predict function memory, MB (1769 = 1 vCPU)' },
  scoreMemorySize: {
    default: 3538,
    help: 'batch score function memory, MB (3538 = 2 vCPU: a parsing thread and a scoring thread)',
  },
  provisionedConcurrency: { default: 0, help: "provisioned concurrency on predict's live alias (0 = none)" },
  auth: { default: 'iam', help: 'iam (SigV4) or jwt (then jwtIssuer and jwtAudience are required)' },
  jwtIssuer: { default: undefined, help: 'OIDC issuer URL (https://...), with auth=jwt' },
  jwtAudience: { default: undefined, help: 'comma-separated audiences (client ids), with auth=jwt' },
  apiRateLimit: { default: 500, help: 'API stage steady-state requests per second' },
  apiBurstLimit: { default: 1000, help: 'API stage burst requests' },
  batchMaxConcurrency: { default: 40, help: 'chunks of one run scored at once' },
  toleratedFailurePercentage: {
    default: 0,
    help: 'percentage of chunks that may fail without failing the run',
  },
  cacheBudgetMs: { default: 150, help: "time budget of the API's table read, ms" },
  cacheMaxAgeSeconds: {
    default: undefined,
    help: "age past which a cached prediction is not served, s (default: each manifest's cache.maxAgeSeconds)",
  },
  cacheTtlSeconds: {
    default: undefined,
    help: "lifetime of a table item, s (default: each manifest's cache.ttlSeconds)",
  },
  writeThrough: { default: false, help: "store the API's model answers in the table" },
  batchOptions: {
    default: undefined,
    help: 'options of every batch run, a JSON object (e.g. {"chunkBytes": 16777216, "tableWrites": "none"})',
  },
  alarmEmail: { default: undefined, help: 'email subscribed to the alarm topic' },
  logRetentionDays: { default: 30, help: 'retention of every log group, days (a CloudWatch Logs value)' },
} as const;

export type SettingName = keyof typeof SETTINGS;

export class SettingsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(
      `Invalid Tandem settings (cdk.json "context" or -c key=value):\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
    this.name = 'SettingsError';
  }
}

const RETENTION_DAYS = new Set<number>(
  Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number'),
);

/** Reads Tandem's settings with `lookup` (e.g. `(key) => app.node.tryGetContext(key)`). */
export function readSettings(lookup: (key: SettingName) => unknown): TandemSettings {
  const problems: string[] = [];
  const present = (key: SettingName): unknown => {
    const value = lookup(key);
    return value === undefined || value === null || value === '' ? undefined : value;
  };
  const integer = (key: SettingName, min: number, max: number): number | undefined => {
    const raw = present(key);
    if (raw === undefined) return undefined;
    const value =
      typeof raw === 'number'
        ? raw
        : typeof raw === 'string' && /^-?\d+$/.test(raw.trim())
          ? Number(raw)
          : NaN;
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${key}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return undefined;
    }
    return value;
  };
  const number = (key: SettingName, min: number, max: number): number | undefined => {
    const raw = present(key);
    if (raw === undefined) return undefined;
    const value =
      typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
    if (!Number.isFinite(value) || value < min || value > max) {
      problems.push(`${key}: expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return undefined;
    }
    return value;
  };
  const boolean = (key: SettingName): boolean | undefined => {
    const raw = present(key);
    if (raw === undefined) return undefined;
    if (raw === true || raw === 'true') return true;
    if (raw === false || raw === 'false') return false;
    problems.push(`${key}: expected true or false, got ${JSON.stringify(raw)}`);
    return undefined;
  };
  const string = (key: SettingName): string | undefined => {
    const raw = present(key);
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string') {
      problems.push(`${key}: expected a string, got ${JSON.stringify(raw)}`);
      return undefined;
    }
    return raw.trim();
  };
  const oneOf = <T extends string>(key: SettingName, allowed: readonly T[]): T | undefined => {
    const raw = string(key);
    if (raw === undefined) return undefined;
    if (!(allowed as readonly string[]).includes(raw)) {
      problems.push(`${key}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
      return undefined;
    }
    return raw as T;
  };

  const stackName = string('stackName') ?? SETTINGS.stackName.default;
  if (!/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(stackName)) {
    problems.push(
      `stackName: expected letters, digits and '-' starting with a letter, got ${JSON.stringify(stackName)}`,
    );
  }
  const modelName = string('modelName');
  if (modelName !== undefined && !isPackageName(modelName)) {
    problems.push(
      `modelName: expected 1-128 letters, digits, '.', '_' or '-', got ${JSON.stringify(modelName)}`,
    );
  }
  const architecture = oneOf('architecture', ['x86_64', 'arm64'] as const);
  const predictMemorySize = integer('predictMemorySize', 128, 10_240);
  const scoreMemorySize = integer('scoreMemorySize', 128, 10_240);
  const provisionedConcurrency = integer('provisionedConcurrency', 0, 10_000);
  const batchMaxConcurrency = integer('batchMaxConcurrency', 1, 10_000);
  const toleratedFailurePercentage = number('toleratedFailurePercentage', 0, 100);
  const cacheBudgetMs = integer('cacheBudgetMs', 1, 30_000);
  const cacheMaxAgeSeconds = integer('cacheMaxAgeSeconds', 1, MAX_CACHE_SECONDS);
  const cacheTtlSeconds = integer('cacheTtlSeconds', 1, MAX_CACHE_SECONDS);
  if (
    cacheMaxAgeSeconds !== undefined &&
    cacheTtlSeconds !== undefined &&
    cacheTtlSeconds < cacheMaxAgeSeconds
  ) {
    problems.push(
      `cacheTtlSeconds: must be at least cacheMaxAgeSeconds (${cacheMaxAgeSeconds}), got ${cacheTtlSeconds}`,
    );
  }
  const writeThrough = boolean('writeThrough');
  const rateLimit = integer('apiRateLimit', 1, 1_000_000);
  const burstLimit = integer('apiBurstLimit', 1, 1_000_000);

  const alarmEmail = string('alarmEmail');
  if (alarmEmail !== undefined && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(alarmEmail)) {
    problems.push(`alarmEmail: expected an email address, got ${JSON.stringify(alarmEmail)}`);
  }
  const retentionDays = integer('logRetentionDays', 1, 9999);
  if (retentionDays !== undefined && !RETENTION_DAYS.has(retentionDays)) {
    problems.push(
      `logRetentionDays: expected one of CloudWatch Logs' values (${[...RETENTION_DAYS].sort((a, b) => a - b).join(', ')}), got ${retentionDays}`,
    );
  }

  const rawBatchOptions = present('batchOptions');
  let batchOptions: Record<string, unknown> | undefined;
  if (rawBatchOptions !== undefined) {
    let parsed: unknown = rawBatchOptions;
    if (typeof rawBatchOptions === 'string') {
      try {
        parsed = JSON.parse(rawBatchOptions);
      } catch {
        parsed = undefined;
      }
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      problems.push(`batchOptions: expected a JSON object, got ${JSON.stringify(rawBatchOptions)}`);
    } else {
      batchOptions = parsed as Record<string, unknown>;
      const unknown = Object.keys(batchOptions).filter((key) => !(key in DEFAULT_BATCH_OPTIONS));
      if (unknown.length > 0) {
        problems.push(
          `batchOptions: unknown option(s) ${unknown.join(', ')}; known: ${Object.keys(DEFAULT_BATCH_OPTIONS).join(', ')}`,
        );
      } else {
        try {
          resolveOptions(batchOptions);
        } catch (error) {
          problems.push(`batchOptions: ${(error as Error).message.replace(/^\[INVALID_OPTIONS\] /, '')}`);
        }
      }
    }
  }

  const authMode = oneOf('auth', ['iam', 'jwt'] as const);
  const jwtIssuer = string('jwtIssuer');
  const rawAudience = present('jwtAudience');
  const jwtAudience = Array.isArray(rawAudience)
    ? rawAudience.map(String)
    : typeof rawAudience === 'string'
      ? rawAudience
          .split(',')
          .map((a) => a.trim())
          .filter((a) => a !== '')
      : undefined;
  let auth: TandemProps['auth'];
  if (authMode === 'jwt') {
    if (!jwtIssuer || !/^https:\/\/\S+$/.test(jwtIssuer)) {
      problems.push(
        `jwtIssuer: auth=jwt needs the OIDC issuer URL (https://...), got ${JSON.stringify(jwtIssuer ?? null)}`,
      );
    }
    if (!jwtAudience || jwtAudience.length === 0) {
      problems.push('jwtAudience: auth=jwt needs at least one audience (comma-separated client ids)');
    }
    if (jwtIssuer && jwtAudience && jwtAudience.length > 0)
      auth = { jwt: { issuer: jwtIssuer, audience: jwtAudience } };
  } else if (jwtIssuer !== undefined || jwtAudience !== undefined) {
    problems.push('jwtIssuer / jwtAudience: only used with auth=jwt (set -c auth=jwt or remove them)');
  }
  // The stream lane's keys are defined with its settings (lambdas/handlers/stream-settings.ts).
  const stream = streamPropsFromContext((key) => lookup(key as SettingName));
  problems.push(...stream.problems);
  if (problems.length > 0) throw new SettingsError(problems);
  const props: TandemProps = {
    ...stream.props,
    ...(modelName !== undefined ? { modelName } : {}),
    ...(architecture !== undefined ? { architecture } : {}),
    ...(predictMemorySize !== undefined ? { predictMemorySize } : {}),
    ...(scoreMemorySize !== undefined ? { scoreMemorySize } : {}),
    ...(provisionedConcurrency !== undefined ? { provisionedConcurrency } : {}),
    ...(auth !== undefined ? { auth } : {}),
    ...(rateLimit !== undefined || burstLimit !== undefined
      ? {
          apiThrottle: {
            rateLimit: rateLimit ?? SETTINGS.apiRateLimit.default,
            burstLimit: burstLimit ?? SETTINGS.apiBurstLimit.default,
          },
        }
      : {}),
    ...(batchMaxConcurrency !== undefined ? { batchMaxConcurrency } : {}),
    ...(toleratedFailurePercentage !== undefined ? { toleratedFailurePercentage } : {}),
    ...(cacheBudgetMs !== undefined ? { cacheBudgetMs } : {}),
    ...(cacheMaxAgeSeconds !== undefined ? { cacheMaxAgeSeconds } : {}),
    ...(cacheTtlSeconds !== undefined ? { cacheTtlSeconds } : {}),
    ...(writeThrough !== undefined ? { writeThrough } : {}),
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
    ...(batchOptions !== undefined ? { batchOptions: batchOptions as Partial<BatchOptions> } : {}),
    ...(retentionDays !== undefined ? { logRetention: retentionDays as logs.RetentionDays } : {}),
  };
  return { stackName, props };
}
