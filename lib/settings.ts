/**
 * Tandem's deploy-time settings: CDK context (`cdk.json` "context", or `-c key=value`) into `TandemProps`,
 * and the one validation of `TandemProps` the `Tandem` construct runs. Both come from the definitions of
 * lambdas/core/settings.ts (type, range, default, context key, variable), with messages that name the
 * setting. Values from `-c` arrive as strings; values from cdk.json keep their JSON types; both are accepted.
 */
import type * as logs from 'aws-cdk-lib/aws-logs';
import { DEFAULT_BATCH_OPTIONS, type BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { resolveOptions } from '../lambdas/core/batch/options.ts';
import { parseSchedules, type Schedule } from '../lambdas/core/batch/schedules.ts';
import {
  CONTEXT_SETTINGS,
  defaultText,
  describeSetting,
  parseSetting,
  SETTINGS,
  type Setting,
  type SettingName,
  type SettingValue,
  STREAM_SETTING_NAMES,
  type StreamSettings,
} from '../lambdas/core/settings.ts';
import type { TandemProps } from './tandem-stack.ts';

export { SETTINGS, CONTEXT_SETTINGS };
export type { SettingName };

export interface TandemSettings {
  readonly stackName: string;
  readonly props: TandemProps;
}

export class SettingsError extends Error {
  constructor(
    readonly problems: readonly string[],
    source = 'cdk.json "context" or -c key=value',
  ) {
    super(`Invalid Tandem settings (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

/** `Tandem` props that break the rules of their setting; the message lists each one by name. */
export class TandemPropsError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid Tandem props:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'TandemPropsError';
  }
}

/**
 * The `schedules` setting (cdk.json, `-c schedules='[...]'`, `npm start --schedules`): the one reader the
 * CDK app and the local stack share. Throws a SettingsError naming each bad schedule and field.
 */
export function readScheduleSetting(raw: unknown, source?: string): Schedule[] {
  const problems: string[] = [];
  const schedules = schedulesOf(raw, problems);
  if (problems.length > 0) throw new SettingsError(problems, source);
  return schedules;
}

function schedulesOf(raw: unknown, problems: string[]): Schedule[] {
  if (raw === undefined || raw === null || raw === '') return [];
  const list = parseSetting(SETTINGS.schedules, raw);
  if (!list.ok) {
    problems.push(`schedules: ${list.problem}`);
    return [];
  }
  const parsed = parseSchedules(list.value);
  if (!parsed.ok) {
    problems.push(...parsed.problems);
    return [];
  }
  return [...parsed.schedules];
}

/** The stream lane's settings given in the context (the others keep their defaults). */
function streamSettingsFromContext(
  value: <N extends SettingName>(name: N) => SettingValue<(typeof SETTINGS)[N]> | undefined,
): { streamSettings?: Partial<StreamSettings> } {
  const given: Record<string, unknown> = {};
  for (const [field, name] of Object.entries(STREAM_SETTING_NAMES)) {
    if (field === 'streamLane') continue;
    const v = value(name);
    if (v !== undefined) given[field] = v;
  }
  return Object.keys(given).length > 0 ? { streamSettings: given as Partial<StreamSettings> } : {};
}

/** The rollout thresholds given in the context (the others keep their defaults). */
function rolloutThresholdsFromContext(
  value: <N extends SettingName>(name: N) => SettingValue<(typeof SETTINGS)[N]> | undefined,
): { rolloutThresholds?: TandemProps['rolloutThresholds'] } {
  const given: Record<string, number> = {};
  for (const [field, name] of Object.entries(ROLLOUT_THRESHOLD_SETTINGS)) {
    const v = value(name);
    if (v !== undefined) given[field] = v;
  }
  return Object.keys(given).length > 0 ? { rolloutThresholds: given } : {};
}

/** Each rollout threshold's definition in SETTINGS. */
export const ROLLOUT_THRESHOLD_SETTINGS = {
  maxErrorRate: 'rolloutMaxErrorRate',
  maxLatencyMs: 'rolloutMaxLatencyMs',
  maxShift: 'rolloutMaxShift',
  minInstances: 'rolloutMinInstances',
} as const satisfies Record<string, SettingName>;

/** Reads Tandem's settings with `lookup` (e.g. `(key) => app.node.tryGetContext(key)`). */
export function readSettings(lookup: (key: SettingName) => unknown): TandemSettings {
  const problems: string[] = [];
  const value = <N extends SettingName>(name: N): SettingValue<(typeof SETTINGS)[N]> | undefined => {
    const raw = lookup(name);
    if (raw === undefined || raw === null || raw === '') return undefined;
    const parsed = parseSetting(SETTINGS[name] as Setting, raw);
    if (!parsed.ok) {
      problems.push(`${name}: ${parsed.problem}`);
      return undefined;
    }
    return parsed.value as SettingValue<(typeof SETTINGS)[N]>;
  };

  const stackName = value('stackName') ?? SETTINGS.stackName.default;
  const authMode = value('auth');
  const jwtIssuer = value('jwtIssuer');
  const jwtAudience = value('jwtAudience');
  let auth: TandemProps['auth'];
  if (authMode === 'jwt') {
    if (jwtIssuer === undefined && !problems.some((p) => p.startsWith('jwtIssuer:')))
      problems.push('jwtIssuer: auth=jwt needs the OIDC issuer URL (https://...)');
    if (jwtAudience === undefined && !problems.some((p) => p.startsWith('jwtAudience:')))
      problems.push('jwtAudience: auth=jwt needs at least one audience (comma-separated client ids)');
    if (jwtIssuer !== undefined && jwtAudience !== undefined)
      auth = { jwt: { issuer: jwtIssuer, audience: jwtAudience } };
  } else {
    if (authMode === 'iam') auth = 'iam';
    const given = (key: SettingName): boolean => ![undefined, null, ''].includes(lookup(key) as never);
    if (given('jwtIssuer') || given('jwtAudience'))
      problems.push('jwtIssuer / jwtAudience: only used with auth=jwt (set -c auth=jwt or remove them)');
  }
  const rateLimit = value('apiRateLimit');
  const burstLimit = value('apiBurstLimit');
  const retentionDays = value('logRetentionDays');
  const batchOptions = value('batchOptions');
  const schedules = schedulesOf(lookup('schedules'), problems);

  const props: TandemProps = {
    ...defined('modelName', value('modelName')),
    ...defined('architecture', value('architecture') as TandemProps['architecture']),
    ...defined('predictMemorySize', value('predictMemorySize')),
    ...defined('scoreMemorySize', value('scoreMemorySize')),
    ...defined('provisionedConcurrency', value('provisionedConcurrency')),
    ...defined('auth', auth),
    ...(rateLimit !== undefined || burstLimit !== undefined
      ? {
          apiThrottle: {
            rateLimit: rateLimit ?? SETTINGS.apiRateLimit.default,
            burstLimit: burstLimit ?? SETTINGS.apiBurstLimit.default,
          },
        }
      : {}),
    ...defined('batchMaxConcurrency', value('batchMaxConcurrency')),
    ...defined('toleratedFailurePercentage', value('toleratedFailurePercentage')),
    ...defined('cacheBudgetMs', value('cacheBudgetMs')),
    ...defined('cacheMaxAgeSeconds', value('cacheMaxAgeSeconds')),
    ...defined('cacheTtlSeconds', value('cacheTtlSeconds')),
    ...defined('writeThrough', value('writeThrough')),
    ...defined('captureRealtimeRate', value('captureRealtimeRate')),
    ...defined('captureStreamRate', value('captureStreamRate')),
    ...defined('captureBatchRate', value('captureBatchRate')),
    ...defined('alarmEmail', value('alarmEmail')),
    ...defined('batchOptions', batchOptions as Partial<BatchOptions> | undefined),
    ...defined('logRetention', retentionDays as logs.RetentionDays | undefined),
    ...defined('streamLane', value('streamLane')),
    ...defined('refreshOn', value('refreshOn') as TandemProps['refreshOn']),
    ...defined('refreshStaleShare', value('refreshStaleShare')),
    ...defined('refreshStaleMinutes', value('refreshStaleMinutes')),
    ...defined('refreshModels', value('refreshModels')),
    ...defined('monitorIntervalMinutes', value('monitorIntervalMinutes')),
    ...defined('driftThreshold', value('driftThreshold')),
    ...defined('driftMinRecords', value('driftMinRecords')),
    ...streamSettingsFromContext(value),
    ...rolloutThresholdsFromContext(value),
    ...(schedules.length > 0
      ? {
          schedules: schedules.map(({ model, prefix, expression, options }) => ({
            model,
            prefix,
            expression,
            ...(options ? { options } : {}),
          })),
        }
      : {}),
  };
  problems.push(...crossFieldProblems(props));
  if (batchOptions !== undefined) problems.push(...batchOptionsProblems(batchOptions));
  if (problems.length > 0) throw new SettingsError(problems);
  return { stackName, props };
}

function defined<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/**
 * Every problem of a `TandemProps`, each naming its prop: the same definitions and messages as the
 * context settings. Sub-constructs trust what passes here.
 */
export function tandemPropsProblems(props: TandemProps): string[] {
  const problems: string[] = [];
  const check = (label: string, setting: Setting, value: unknown): void => {
    if (value === undefined) return;
    const parsed = parseSetting(setting, value);
    // Strings are trimmed when parsed: a prop with surrounding blanks would be deployed as given.
    if (!parsed.ok) problems.push(`${label}: ${parsed.problem}`);
    else if (typeof value === 'string' && parsed.value !== value)
      problems.push(`${label}: expected no surrounding blanks, got ${JSON.stringify(value)}`);
  };
  check('modelName', SETTINGS.modelName, props.modelName);
  check('architecture', SETTINGS.architecture, props.architecture);
  check('predictMemorySize', SETTINGS.predictMemorySize, props.predictMemorySize);
  check('scoreMemorySize', SETTINGS.scoreMemorySize, props.scoreMemorySize);
  check('provisionedConcurrency', SETTINGS.provisionedConcurrency, props.provisionedConcurrency);
  check('batchMaxConcurrency', SETTINGS.batchMaxConcurrency, props.batchMaxConcurrency);
  check('toleratedFailurePercentage', SETTINGS.toleratedFailurePercentage, props.toleratedFailurePercentage);
  check('cacheBudgetMs', SETTINGS.cacheBudgetMs, props.cacheBudgetMs);
  check('cacheMaxAgeSeconds', SETTINGS.cacheMaxAgeSeconds, props.cacheMaxAgeSeconds);
  check('cacheTtlSeconds', SETTINGS.cacheTtlSeconds, props.cacheTtlSeconds);
  check('writeThrough', SETTINGS.writeThrough, props.writeThrough);
  check('captureRealtimeRate', SETTINGS.captureRealtimeRate, props.captureRealtimeRate);
  check('captureStreamRate', SETTINGS.captureStreamRate, props.captureStreamRate);
  check('captureBatchRate', SETTINGS.captureBatchRate, props.captureBatchRate);
  check('alarmEmail', SETTINGS.alarmEmail, props.alarmEmail);
  check('logRetention', SETTINGS.logRetentionDays, props.logRetention);
  check('refreshOn', SETTINGS.refreshOn, props.refreshOn);
  check('refreshStaleShare', SETTINGS.refreshStaleShare, props.refreshStaleShare);
  check('refreshStaleMinutes', SETTINGS.refreshStaleMinutes, props.refreshStaleMinutes);
  // An empty list watches no model (no staleness alarm).
  if (props.refreshModels?.length) check('refreshModels', SETTINGS.refreshModels, [...props.refreshModels]);
  check('monitorIntervalMinutes', SETTINGS.monitorIntervalMinutes, props.monitorIntervalMinutes);
  check('driftThreshold', SETTINGS.driftThreshold, props.driftThreshold);
  check('driftMinRecords', SETTINGS.driftMinRecords, props.driftMinRecords);
  if (props.apiThrottle !== undefined) {
    check('apiThrottle.rateLimit', SETTINGS.apiRateLimit, props.apiThrottle.rateLimit);
    check('apiThrottle.burstLimit', SETTINGS.apiBurstLimit, props.apiThrottle.burstLimit);
  }
  const auth = props.auth as unknown;
  if (auth !== undefined && auth !== 'iam') {
    const jwt = (auth as { jwt?: { issuer?: unknown; audience?: unknown } }).jwt;
    if (typeof jwt !== 'object' || jwt === null) {
      problems.push(`auth: expected 'iam' or { jwt: { issuer, audience } }, got ${JSON.stringify(auth)}`);
    } else {
      check('auth.jwt.issuer', SETTINGS.jwtIssuer, jwt.issuer ?? null);
      check('auth.jwt.audience', SETTINGS.jwtAudience, jwt.audience ?? null);
    }
  }
  for (const [field, name] of Object.entries(ROLLOUT_THRESHOLD_SETTINGS)) {
    const thresholds = props.rolloutThresholds as Record<string, unknown> | undefined;
    check(`rolloutThresholds.${field}`, SETTINGS[name], thresholds?.[field]);
  }
  problems.push(...crossFieldProblems(props));
  if (props.schedules !== undefined) {
    const parsed = parseSchedules(props.schedules);
    if (!parsed.ok) problems.push(...parsed.problems);
  }
  if (props.batchOptions !== undefined) {
    problems.push(...batchOptionsProblems(props.batchOptions as unknown as Record<string, unknown>));
  }
  return problems;
}

/** Throws a TandemPropsError listing every problem of `props`. */
export function validateTandemProps(props: TandemProps): void {
  const problems = tandemPropsProblems(props);
  if (problems.length > 0) throw new TandemPropsError(problems);
}

function crossFieldProblems(props: TandemProps): string[] {
  const { cacheMaxAgeSeconds: maxAge, cacheTtlSeconds: ttl } = props;
  if (maxAge !== undefined && ttl !== undefined && Number.isFinite(ttl) && ttl < maxAge) {
    return [
      `cacheTtlSeconds: must be at least cacheMaxAgeSeconds (${maxAge}), got ${ttl}: an item must live as long as it may be served`,
    ];
  }
  return [];
}

function batchOptionsProblems(options: Record<string, unknown>): string[] {
  const unknown = Object.keys(options).filter((key) => !Object.hasOwn(DEFAULT_BATCH_OPTIONS, key));
  if (unknown.length > 0) {
    return [
      `batchOptions: unknown option(s) ${unknown.join(', ')}; known: ${Object.keys(DEFAULT_BATCH_OPTIONS).join(', ')}`,
    ];
  }
  try {
    resolveOptions(options as Partial<BatchOptions>);
    return [];
  } catch (error) {
    return [`batchOptions: ${(error as Error).message.replace(/^\[INVALID_OPTIONS\] /, '')}`];
  }
}

/** The columns of docs/configuration.md's table of settings. */
export const SETTINGS_TABLE_HEADER = [
  'Setting',
  'Context key',
  'Variable (functions)',
  'Values',
  'Default',
  'Meaning',
] as const;

/** The rows of docs/configuration.md's table of settings, one per setting, derived from the definitions. */
export function settingsTableRows(): string[][] {
  const code = (text: string | undefined): string => (text === undefined ? '' : `\`${text}\``);
  return (Object.keys(SETTINGS) as SettingName[]).map((name) => {
    const setting: Setting = SETTINGS[name];
    const fixed = setting.default !== undefined && setting.defaultText === undefined;
    return [
      name,
      code(setting.context),
      setting.env
        ? `${code(setting.env)} (${setting.functions?.length ? setting.functions.join(', ') : 'no function reads it yet'})`
        : '',
      describeSetting(setting),
      setting.wiring
        ? `set by the stack${fixed ? ` (unset: ${code(defaultText(setting))})` : ''}`
        : fixed
          ? code(defaultText(setting))
          : (defaultText(setting) ?? ''),
      setting.help,
    ];
  });
}

/** docs/configuration.md's table of settings as Markdown (`npx tsx tools/settings-table.ts` prints it). */
export function settingsTableMarkdown(): string {
  const row = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [
    row(SETTINGS_TABLE_HEADER),
    row(SETTINGS_TABLE_HEADER.map(() => '---')),
    ...settingsTableRows().map(row),
  ].join('\n');
}
