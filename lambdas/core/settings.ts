/**
 * Every setting of Tandem, defined once: its type and range, its default, its CDK context key (deploy
 * time) and its environment variable (the functions), and what it means. Everything else is derived
 * from this table: the CDK app's context parsing and the `Tandem` construct's validation (lib/settings.ts,
 * lib/tandem-stack.ts), the environment the stack gives each function, the functions' readers
 * (lambdas/handlers/config.ts, batch-env.ts, adapters/cache-policy-override.ts), and the table of
 * docs/configuration.md (checked by test/infra/settings.test.ts).
 *
 * Pure data and parsing, no runtime dependency: imported by the CDK app and by every function bundle.
 */
import { TandemError } from './errors.ts';
import { PACKAGE_NAME } from './names.ts';

/** The functions of a deployment, by the short names the stack and its docs use. */
export type FunctionName =
  'predict' | 'trigger' | 'plan' | 'score' | 'finalize' | 'stream' | 'rollout' | 'refresh' | 'monitor';

interface SettingBase {
  /** One line: what the setting does, in the deployer's terms. */
  readonly help: string;
  /** The CDK context key (`cdk.json` "context", `-c key=value`), when it is set at deploy time. */
  readonly context?: string;
  /** The environment variable a function reads it from. */
  readonly env?: string;
  /** The functions that read `env`. */
  readonly functions?: readonly FunctionName[];
  /** The stack sets `env` itself (a resource name or ARN): not a choice of the deployer. */
  readonly wiring?: boolean;
  /** The default as prose, when there is no fixed value (e.g. "each manifest's"). */
  readonly defaultText?: string;
}

export interface IntegerSetting extends SettingBase {
  readonly type: 'integer';
  readonly min: number;
  readonly max: number;
  /** Only these values (within min..max). */
  readonly allowed?: readonly number[];
  readonly default?: number;
}

export interface NumberSetting extends SettingBase {
  readonly type: 'number';
  readonly min: number;
  readonly max: number;
  readonly default?: number;
}

export interface BooleanSetting extends SettingBase {
  readonly type: 'boolean';
  readonly default?: boolean;
}

export interface StringSetting extends SettingBase {
  readonly type: 'string';
  readonly pattern?: RegExp;
  /** What a valid value looks like, for messages and the docs (with `pattern`). */
  readonly expected?: string;
  readonly default?: string;
}

export interface EnumSetting extends SettingBase {
  readonly type: 'enum';
  readonly values: readonly string[];
  readonly default?: string;
}

/** Comma-separated in context strings and the environment; a JSON array in cdk.json. */
export interface ListSetting extends SettingBase {
  readonly type: 'list';
  readonly pattern?: RegExp;
  readonly expected?: string;
  readonly default?: readonly string[];
}

/** A JSON object (checked further by whoever owns its fields). */
export interface JsonSetting extends SettingBase {
  readonly type: 'json';
  readonly default?: Readonly<Record<string, unknown>>;
}

/** A JSON list (of objects, checked further by whoever owns its entries). */
export interface JsonListSetting extends SettingBase {
  readonly type: 'jsonList';
  readonly default?: readonly unknown[];
}

export type Setting =
  | IntegerSetting
  | NumberSetting
  | BooleanSetting
  | StringSetting
  | EnumSetting
  | ListSetting
  | JsonSetting
  | JsonListSetting;

export type SettingValue<S extends Setting> = S extends IntegerSetting | NumberSetting
  ? number
  : S extends BooleanSetting
    ? boolean
    : S extends ListSetting
      ? string[]
      : S extends JsonSetting
        ? Record<string, unknown>
        : S extends JsonListSetting
          ? unknown[]
          : string;

/**
 * The staleness alarm's period (refreshStaleShare, refreshStaleMinutes), and the reads a period needs before
 * its share counts: a handful of requests is no evidence. The CDK alarm and npm start's evaluator read both.
 */
export const STALENESS_PERIOD_SECONDS = 300;
export const STALENESS_MIN_READS = 20;

/** Ten years: far above any useful cache lifetime, far below DynamoDB's TTL horizon. */
export const MAX_CACHE_SECONDS = 10 * 365 * 86_400;

/** CloudWatch Logs' retention values, in days (9999: CDK's INFINITE, never expire). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
  9999,
] as const;

/** Lambda's memory range (MB). */
const LAMBDA_MEMORY = { min: 128, max: 10_240 } as const;

export const SETTINGS = {
  stackName: {
    type: 'string',
    context: 'stackName',
    pattern: /^[A-Za-z][A-Za-z0-9-]{0,127}$/,
    expected: "letters, digits and '-', starting with a letter (at most 128)",
    default: 'Tandem',
    help: 'CloudFormation stack name (deploy several copies with different names)',
  },
  modelName: {
    type: 'string',
    context: 'modelName',
    env: 'DEFAULT_MODEL',
    functions: ['predict', 'stream'],
    pattern: PACKAGE_NAME,
    expected: "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
    default: 'fraud-detector',
    help: "the model served when a request names none (its package is under the data bucket's models/ folder)",
  },
  architecture: {
    type: 'enum',
    context: 'architecture',
    values: ['x86_64', 'arm64'],
    default: 'x86_64',
    help: 'CPU architecture of every function (onnxruntime-node ships both)',
  },
  predictMemorySize: {
    type: 'integer',
    context: 'predictMemorySize',
    ...LAMBDA_MEMORY,
    default: 1769,
    help: 'predict function memory, MB (1,769 MB = one full vCPU)',
  },
  scoreMemorySize: {
    type: 'integer',
    context: 'scoreMemorySize',
    ...LAMBDA_MEMORY,
    default: 3008,
    help: "batch score function memory, MB (3,008 MB = about 1.7 vCPU, the most a new account's quota allows; docs/deploy.md)",
  },
  provisionedConcurrency: {
    type: 'integer',
    context: 'provisionedConcurrency',
    min: 0,
    max: 10_000,
    default: 0,
    help: "provisioned concurrency on predict's live alias; 0 = none (billed around the clock)",
  },
  auth: {
    type: 'enum',
    context: 'auth',
    values: ['iam', 'jwt'],
    default: 'iam',
    help: 'how API callers authenticate: iam (SigV4) or jwt (then jwtIssuer and jwtAudience are required)',
  },
  jwtIssuer: {
    type: 'string',
    context: 'jwtIssuer',
    pattern: /^https:\/\/[^\s/]+(\/\S*)?$/,
    expected: 'an https:// URL (the OIDC issuer)',
    help: 'with auth=jwt: the OIDC issuer URL',
  },
  jwtAudience: {
    type: 'list',
    context: 'jwtAudience',
    pattern: /^\S+$/,
    expected: 'at least one audience (client id), comma-separated',
    help: 'with auth=jwt: the accepted audiences (client ids), comma-separated',
  },
  apiRateLimit: {
    type: 'integer',
    context: 'apiRateLimit',
    min: 1,
    max: 1_000_000,
    default: 500,
    help: 'API stage steady-state requests per second',
  },
  apiBurstLimit: {
    type: 'integer',
    context: 'apiBurstLimit',
    min: 1,
    max: 1_000_000,
    default: 1000,
    help: 'API stage burst, requests',
  },
  batchMaxConcurrency: {
    type: 'integer',
    context: 'batchMaxConcurrency',
    min: 1,
    max: 10_000,
    default: 40,
    help: 'chunks of one batch run scored at once (Distributed Map MaxConcurrency)',
  },
  toleratedFailurePercentage: {
    type: 'number',
    context: 'toleratedFailurePercentage',
    min: 0,
    max: 100,
    default: 0,
    help: "percentage of a run's chunks that may fail without failing the run",
  },
  cacheBudgetMs: {
    type: 'integer',
    context: 'cacheBudgetMs',
    env: 'CACHE_BUDGET_MS',
    functions: ['predict'],
    min: 1,
    max: 30_000,
    default: 150,
    help: "time budget of the API's table read, ms; past it the model answers",
  },
  cacheMaxAgeSeconds: {
    type: 'integer',
    context: 'cacheMaxAgeSeconds',
    env: 'CACHE_MAX_AGE_SECONDS',
    functions: ['predict', 'score', 'stream'],
    min: 1,
    max: MAX_CACHE_SECONDS,
    defaultText: "each manifest's",
    help: "age past which a cached prediction is not served, s (overrides every manifest's cache.maxAgeSeconds)",
  },
  cacheTtlSeconds: {
    type: 'integer',
    context: 'cacheTtlSeconds',
    env: 'CACHE_TTL_SECONDS',
    functions: ['predict', 'score', 'stream'],
    min: 1,
    max: MAX_CACHE_SECONDS,
    defaultText: "each manifest's",
    help: "lifetime of a table item before DynamoDB deletes it, s (overrides every manifest's cache.ttlSeconds; at least the max age)",
  },
  writeThrough: {
    type: 'boolean',
    context: 'writeThrough',
    env: 'WRITE_THROUGH',
    functions: ['predict'],
    default: false,
    help: "store the API's model answers in the table",
  },
  batchOptions: {
    type: 'json',
    context: 'batchOptions',
    env: 'BATCH_OPTIONS',
    functions: ['trigger', 'refresh'],
    defaultText: 'see docs/batch.md',
    help: 'options of every batch run, a JSON object, e.g. {"chunkBytes": 16777216}',
  },
  schedules: {
    type: 'jsonList',
    context: 'schedules',
    env: 'SCHEDULES',
    functions: ['refresh'],
    default: [],
    defaultText: 'none',
    help: 'folders of the data bucket re-scored on a schedule: a JSON list of {"model", "prefix", "expression", "options"?}, expression an EventBridge Scheduler cron(...) or rate(...) in UTC (docs/batch.md, "Schedules"); npm start runs them too',
  },
  alarmEmail: {
    type: 'string',
    context: 'alarmEmail',
    pattern: /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
    expected: 'an email address',
    help: 'an address subscribed to the alarm topic (confirm the mail AWS sends)',
  },
  logRetentionDays: {
    type: 'integer',
    context: 'logRetentionDays',
    min: 1,
    max: 9999,
    allowed: LOG_RETENTION_DAYS,
    default: 30,
    help: 'retention of every log group, days (a CloudWatch Logs value)',
  },
  modelRefreshSeconds: {
    type: 'integer',
    env: 'MODEL_REFRESH_SECONDS',
    functions: ['predict', 'stream'],
    min: 0,
    max: 86_400,
    default: 60,
    help: 'how often the predict function re-reads current.json, s (0 = never)',
  },
  maxBodyBytes: {
    type: 'integer',
    env: 'MAX_BODY_BYTES',
    functions: ['predict'],
    min: 1024,
    max: 6 * 1_048_576,
    default: 1_048_576,
    help: 'largest request body the API accepts, bytes (413 beyond it)',
  },
  maxInstances: {
    type: 'integer',
    env: 'MAX_INSTANCES',
    functions: ['predict'],
    min: 1,
    max: 10_000,
    default: 500,
    help: 'most instances in one POST /predict',
  },
  logPayloads: {
    type: 'boolean',
    env: 'LOG_PAYLOADS',
    functions: ['predict'],
    default: false,
    help: "log request and response bodies (they hold the callers' features: off unless debugging)",
  },
  metricsFlushMs: {
    type: 'integer',
    env: 'METRICS_FLUSH_MS',
    functions: ['predict'],
    min: 0,
    max: 60_000,
    default: 1000,
    help: 'how often a busy environment publishes its aggregated metrics, ms (0 = after every request)',
  },
  loggerSampleRate: {
    type: 'number',
    env: 'POWERTOOLS_LOGGER_SAMPLE_RATE',
    functions: ['predict'],
    min: 0,
    max: 1,
    default: 0,
    help: "Powertools' share of invocations logged at DEBUG; set, the API re-draws it for each request",
  },
  captureRealtimeRate: {
    type: 'number',
    context: 'captureRealtimeRate',
    env: 'CAPTURE_REALTIME_RATE',
    functions: ['predict'],
    min: 0,
    max: 1,
    default: 0.05,
    help: 'share of real-time predictions captured with their features under capture/<model>/realtime/ for drift monitoring (features may be personal data: SECURITY.md); 0 = off',
  },
  captureStreamRate: {
    type: 'number',
    context: 'captureStreamRate',
    env: 'CAPTURE_STREAM_RATE',
    functions: ['stream'],
    min: 0,
    max: 1,
    default: 0.05,
    help: 'share of stream events captured with their features and prediction under capture/<model>/stream/ (features may be personal data: SECURITY.md); 0 = off',
  },
  captureBatchRate: {
    type: 'number',
    context: 'captureBatchRate',
    env: 'CAPTURE_BATCH_RATE',
    functions: ['score'],
    min: 0,
    max: 1,
    default: 0.01,
    help: "share of a batch run's scored rows captured with their features and prediction under capture/<model>/batch/, written once per chunk (features may be personal data: SECURITY.md); 0 = off",
  },
  captureFlushSeconds: {
    type: 'integer',
    env: 'CAPTURE_FLUSH_SECONDS',
    functions: ['predict', 'stream'],
    min: 1,
    max: 3600,
    default: 60,
    help: 'captured predictions are written once the oldest buffered one is this old (checked at the start of each invocation), s',
  },
  captureMaxRecords: {
    type: 'integer',
    env: 'CAPTURE_MAX_RECORDS',
    functions: ['predict', 'stream'],
    min: 1,
    max: 100_000,
    default: 1000,
    help: 'captured predictions buffered per execution environment before they are written (twice this: new ones are dropped and counted)',
  },
  captureShadowRate: {
    type: 'number',
    env: 'CAPTURE_SHADOW_RATE',
    functions: ['predict'],
    min: 0,
    max: 1,
    default: 1,
    help: 'share of shadow comparisons captured (features, both answers and versions) under capture/<model>/shadow/ for shadow-report and the promote gate; 0 = off',
  },
  shadowBudgetMs: {
    type: 'integer',
    env: 'SHADOW_BUDGET_MS',
    functions: ['predict'],
    min: 1,
    max: 10_000,
    default: 100,
    help: "running time a shadow version's scoring of a request may take after the response; past it the comparison is abandoned and counted (ShadowTimeouts), ms",
  },
  captureBucket: {
    type: 'string',
    env: 'CAPTURE_BUCKET',
    functions: ['predict', 'stream', 'score'],
    wiring: true,
    help: 'the bucket captured predictions are written to (without it capture is off)',
  },
  monitorIntervalMinutes: {
    type: 'integer',
    context: 'monitorIntervalMinutes',
    min: 5,
    max: 1440,
    default: 15,
    help: 'how often the drift monitor runs for every served model, minutes (npm start runs it on the same interval)',
  },
  driftThreshold: {
    type: 'number',
    context: 'driftThreshold',
    env: 'DRIFT_THRESHOLD',
    functions: ['monitor', 'finalize'],
    min: 0.01,
    max: 10,
    default: 0.2,
    help: "population stability index above which a feature counts as drifted: the monitor's report and alarm, a batch run's manifest",
  },
  driftMinRecords: {
    type: 'integer',
    context: 'driftMinRecords',
    env: 'DRIFT_MIN_RECORDS',
    functions: ['monitor', 'finalize'],
    min: 1,
    max: 10_000_000,
    default: 100,
    help: 'fewer captured records (or batch rows) than this are reported as too few, with no drift figures',
  },
  monitorFirstLookbackMinutes: {
    type: 'integer',
    env: 'MONITOR_FIRST_LOOKBACK_MINUTES',
    functions: ['monitor'],
    min: 5,
    max: 10_080,
    default: 60,
    help: 'the first monitor run of a model (no state under monitoring/<model>/) reads the captures of this many minutes',
  },
  modelsUri: {
    type: 'string',
    env: 'MODELS_URI',
    functions: ['predict', 'plan', 'score', 'stream', 'rollout', 'monitor'],
    wiring: true,
    help: 'where model packages are: the models/ folder of the data bucket as an s3:// URL (or a local folder)',
  },
  tableName: {
    type: 'string',
    env: 'TABLE_NAME',
    functions: ['predict', 'score', 'stream', 'monitor'],
    wiring: true,
    help: 'the precomputed predictions table (without it the cache is off)',
  },
  dataBucket: {
    type: 'string',
    env: 'DATA_BUCKET',
    functions: ['predict', 'stream', 'refresh', 'monitor'],
    wiring: true,
    help: 'the data bucket (the stream consumer writes rejected records under rejected/stream/; the API stores POST /feedback under feedback/; the refresh reads models/ and writes refresh/ markers; the drift monitor reads capture/ and writes monitoring/)',
  },
  stateMachineArn: {
    type: 'string',
    env: 'STATE_MACHINE_ARN',
    functions: ['trigger', 'refresh'],
    wiring: true,
    help: 'the batch state machine the trigger starts',
  },
  eventBusName: {
    type: 'string',
    env: 'EVENT_BUS_NAME',
    functions: ['finalize'],
    wiring: true,
    default: 'default',
    help: 'the bus the completion event is published on',
  },
  streamLane: {
    type: 'boolean',
    context: 'streamLane',
    env: 'TANDEM_STREAM_LANE',
    functions: ['predict'],
    default: false,
    help: 'deploy the near-real-time lane (input and output Kinesis streams, consumer, POST /events); off by default: two on-demand streams bill about 58 USD a month even when idle; always on in npm start',
  },
  streamInputName: {
    type: 'string',
    context: 'streamInputName',
    env: 'STREAM_INPUT_NAME',
    functions: ['predict', 'stream'],
    default: 'tandem-events',
    help: 'the stream events are put on (partition key: the entity id)',
  },
  streamOutputName: {
    type: 'string',
    context: 'streamOutputName',
    env: 'STREAM_OUTPUT_NAME',
    functions: ['stream'],
    default: 'tandem-predictions',
    help: 'the stream one record per prediction is published on',
  },
  streamBatchSize: {
    type: 'integer',
    context: 'streamBatchSize',
    env: 'STREAM_BATCH_SIZE',
    functions: ['stream'],
    min: 1,
    max: 10_000,
    default: 100,
    help: 'most records per consumer invocation (one ONNX run per model per invocation)',
  },
  streamBatchingWindowSeconds: {
    type: 'integer',
    context: 'streamBatchingWindowSeconds',
    env: 'STREAM_BATCHING_WINDOW_SECONDS',
    functions: ['stream'],
    min: 0,
    max: 300,
    default: 1,
    help: 'how long records are gathered before an invocation: trades latency for fewer, fuller invocations (docs/stream.md)',
  },
  streamParallelizationFactor: {
    type: 'integer',
    context: 'streamParallelizationFactor',
    env: 'STREAM_PARALLELIZATION_FACTOR',
    functions: ['stream'],
    min: 1,
    max: 10,
    default: 1,
    help: 'concurrent batches per shard (order is kept per partition key)',
  },
  streamRetryAttempts: {
    type: 'integer',
    context: 'streamRetryAttempts',
    env: 'STREAM_RETRY_ATTEMPTS',
    functions: ['stream'],
    min: 0,
    max: 10_000,
    default: 3,
    help: 'retries of a failing batch before its records go to the on-failure destination',
  },
  streamMaxRecordAgeSeconds: {
    type: 'integer',
    context: 'streamMaxRecordAgeSeconds',
    env: 'STREAM_MAX_RECORD_AGE_SECONDS',
    functions: ['stream'],
    min: 60,
    max: 604_800,
    default: 3_600,
    help: 'records older than this are not retried but sent to the on-failure destination',
  },
  streamBisectOnError: {
    type: 'boolean',
    context: 'streamBisectOnError',
    env: 'STREAM_BISECT_ON_ERROR',
    functions: ['stream'],
    default: true,
    help: 'split a batch whose invocation fails as a whole, to isolate the record that fails it',
  },
  streamMaxEventBytes: {
    type: 'integer',
    context: 'streamMaxEventBytes',
    env: 'STREAM_MAX_EVENT_BYTES',
    functions: ['predict', 'stream'],
    min: 256,
    max: 1_048_576,
    default: 65_536,
    help: 'largest event record accepted; larger ones are rejected (Kinesis itself allows 1 MiB)',
  },
  rolloutMaxErrorRate: {
    type: 'number',
    context: 'rolloutMaxErrorRate',
    env: 'ROLLOUT_MAX_ERROR_RATE',
    functions: ['rollout'],
    min: 0,
    max: 1,
    default: 0.01,
    help: "automatic rollout: the candidate's largest share of failed requests in a step, Errors / (Errors + Instances), before it is rolled back",
  },
  rolloutMaxLatencyMs: {
    type: 'integer',
    context: 'rolloutMaxLatencyMs',
    env: 'ROLLOUT_MAX_LATENCY_MS',
    functions: ['rollout'],
    min: 1,
    max: 60_000,
    default: 250,
    help: "automatic rollout: the candidate's largest p99 ModelLatency in a step, ms, before it is rolled back",
  },
  rolloutMaxShift: {
    type: 'number',
    context: 'rolloutMaxShift',
    env: 'ROLLOUT_MAX_SHIFT',
    functions: ['rollout'],
    min: 0,
    max: 1,
    default: 0.1,
    help: "automatic rollout: the largest prediction shift from the live version before the candidate is rolled back (classifiers: a label's share or a class's mean probability, absolute; regressors: the mean value, relative), plus a margin for sampling",
  },
  rolloutMinInstances: {
    type: 'integer',
    context: 'rolloutMinInstances',
    env: 'ROLLOUT_MIN_INSTANCES',
    functions: ['rollout'],
    min: 0,
    max: 1_000_000,
    default: 20,
    help: 'automatic rollout: the fewest instances the candidate must answer in a step for its checks to count (fewer: rolled back as unproven)',
  },
  refreshOn: {
    type: 'enum',
    context: 'refreshOn',
    env: 'REFRESH_ON',
    functions: ['refresh'],
    values: ['push', 'promote', 'off'],
    default: 'promote',
    help: "when a model version's refresh sources are re-scored, for models whose manifest has no refresh.on: push (its package is uploaded), promote (the pointer names it live, canary or shadow), off (docs/lifecycle.md#refresh)",
  },
  refreshStaleShare: {
    type: 'number',
    context: 'refreshStaleShare',
    min: 0.01,
    max: 1,
    default: 0.2,
    help: "a model's sources are re-scored with its live version when more than this share of its cache reads were stale or another version's for refreshStaleMinutes (a CloudWatch alarm; npm start evaluates the same)",
  },
  refreshModels: {
    type: 'list',
    context: 'refreshModels',
    pattern: PACKAGE_NAME,
    expected: "model names (1-128 letters, digits, '.', '_' or '-'), comma-separated",
    defaultText: 'the default model (modelName)',
    help: 'the models whose staleness is watched: a CloudWatch alarm each, which starts a refresh of its live version',
  },
  refreshStaleMinutes: {
    type: 'integer',
    context: 'refreshStaleMinutes',
    min: 5,
    max: 1440,
    default: 30,
    help: 'how long the stale share must stay above refreshStaleShare before a refresh starts, minutes (evaluated in 5-minute periods, rounded up)',
  },
} as const satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

/** The settings that have a CDK context key. */
export const CONTEXT_SETTINGS = (Object.keys(SETTINGS) as SettingName[]).filter(
  (name) => (SETTINGS[name] as Setting).context !== undefined,
);

/** What a valid value looks like, in words (messages and docs). */
export function describeSetting(setting: Setting): string {
  switch (setting.type) {
    case 'integer':
      return setting.allowed
        ? `one of ${setting.allowed.join(', ')}`
        : `an integer from ${setting.min} to ${setting.max}`;
    case 'number':
      return `a number from ${setting.min} to ${setting.max}`;
    case 'boolean':
      return 'true or false';
    case 'enum':
      return `one of ${setting.values.join(', ')}`;
    case 'json':
      return 'a JSON object';
    case 'jsonList':
      return 'a JSON list';
    case 'string':
    case 'list':
      return setting.expected ?? (setting.type === 'list' ? 'a comma-separated list' : 'a string');
  }
}

/** The default as text (`undefined` when there is none). */
export function defaultText(setting: Setting): string | undefined {
  if (setting.defaultText !== undefined) return setting.defaultText;
  if (setting.default === undefined) return undefined;
  return toEnvString(setting, setting.default as never);
}

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

const INTEGER_TEXT = /^-?\d+$/;
const NUMBER_TEXT = /^-?(\d+\.?\d*|\.\d+)$/;

/**
 * Parses one value of a setting: a JSON-typed value (cdk.json, construct props) or a string (`-c`, the
 * environment). `undefined` means unset (callers apply the default). The problem says what was expected.
 */
export function parseSetting<S extends Setting>(setting: S, raw: unknown): Parsed<SettingValue<S>> {
  const fail = (): Parsed<never> => ({
    ok: false,
    problem: `expected ${describeSetting(setting)}, got ${JSON.stringify(raw)}`,
  });
  const ok = (value: unknown): Parsed<SettingValue<S>> => ({ ok: true, value: value as SettingValue<S> });
  const text = typeof raw === 'string' ? raw.trim() : undefined;
  switch (setting.type) {
    case 'integer':
    case 'number': {
      const value =
        typeof raw === 'number'
          ? raw
          : text !== undefined && (setting.type === 'integer' ? INTEGER_TEXT : NUMBER_TEXT).test(text)
            ? Number(text)
            : NaN;
      if (!Number.isFinite(value) || value < setting.min || value > setting.max) return fail();
      if (setting.type === 'integer') {
        if (!Number.isSafeInteger(value)) return fail();
        if (setting.allowed && !setting.allowed.includes(value)) return fail();
      }
      return ok(value);
    }
    case 'boolean':
      if (raw === true || text === 'true') return ok(true);
      if (raw === false || text === 'false') return ok(false);
      return fail();
    case 'enum':
      return text !== undefined && setting.values.includes(text) ? ok(text) : fail();
    case 'string':
      if (text === undefined || text === '') return fail();
      return setting.pattern && !setting.pattern.test(text) ? fail() : ok(text);
    case 'list': {
      const items = Array.isArray(raw)
        ? raw.map((item) => (typeof item === 'string' ? item.trim() : item))
        : text !== undefined
          ? text.split(',').map((item) => item.trim())
          : undefined;
      if (!items || items.length === 0) return fail();
      if (
        items.some(
          (item) => typeof item !== 'string' || item === '' || !(setting.pattern?.test(item) ?? true),
        )
      )
        return fail();
      return ok(items);
    }
    case 'json':
    case 'jsonList': {
      let value: unknown = raw;
      if (text !== undefined) {
        try {
          value = JSON.parse(text);
        } catch {
          return fail();
        }
      }
      const object = typeof value === 'object' && value !== null && !Array.isArray(value);
      return (setting.type === 'json' ? object : Array.isArray(value)) ? ok(value) : fail();
    }
  }
}

/** How the stack writes a value into a function's environment (what the readers parse back). */
export function toEnvString<S extends Setting>(setting: S, value: SettingValue<S>): string {
  switch (setting.type) {
    case 'list':
      return (value as string[]).join(',');
    case 'json':
    case 'jsonList':
      return JSON.stringify(value);
    default:
      return String(value);
  }
}

/** A function's setting is missing or malformed: the function fails its init, naming the variable. */
export class SettingError extends TandemError<'INVALID_SETTING' | 'MISSING_SETTING'> {}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads a setting from a function's environment: unset or empty gives its default (or `undefined` when it
 * has none); a malformed value throws a SettingError that names the variable.
 */
export function readEnv<S extends Setting & { readonly env: string; readonly default: unknown }>(
  setting: S,
  env: Env,
): SettingValue<S>;
export function readEnv<S extends Setting & { readonly env: string }>(
  setting: S,
  env: Env,
): SettingValue<S> | undefined;
export function readEnv(setting: Setting & { readonly env: string }, env: Env): unknown {
  const raw = env[setting.env];
  if (raw === undefined || raw.trim() === '') return setting.default;
  const parsed = parseSetting(setting, raw);
  if (!parsed.ok) throw new SettingError('INVALID_SETTING', `${setting.env}: ${parsed.problem}`);
  return parsed.value;
}

/** Like readEnv, for a variable the function cannot run without. */
export function requireEnv<S extends Setting & { readonly env: string }>(
  setting: S,
  env: Env,
): SettingValue<S> {
  const value: SettingValue<S> | undefined = readEnv(setting, env);
  if (value === undefined)
    throw new SettingError('MISSING_SETTING', `${setting.env} is required: ${setting.help}`);
  return value;
}

/** The stream lane's settings, as the consumer, the API's POST /events, the local poller and the CDK read them. */
export interface StreamSettings {
  readonly streamLane: boolean;
  readonly inputStreamName: string;
  readonly outputStreamName: string;
  readonly batchSize: number;
  readonly batchingWindowSeconds: number;
  readonly parallelizationFactor: number;
  readonly retryAttempts: number;
  readonly maxRecordAgeSeconds: number;
  readonly bisectOnError: boolean;
  readonly maxEventBytes: number;
}

/** Each StreamSettings field's definition in SETTINGS. */
export const STREAM_SETTING_NAMES = {
  streamLane: 'streamLane',
  inputStreamName: 'streamInputName',
  outputStreamName: 'streamOutputName',
  batchSize: 'streamBatchSize',
  batchingWindowSeconds: 'streamBatchingWindowSeconds',
  parallelizationFactor: 'streamParallelizationFactor',
  retryAttempts: 'streamRetryAttempts',
  maxRecordAgeSeconds: 'streamMaxRecordAgeSeconds',
  bisectOnError: 'streamBisectOnError',
  maxEventBytes: 'streamMaxEventBytes',
} as const satisfies Record<keyof StreamSettings, SettingName>;

/** The stream settings from environment variables (defaults for those unset); a bad value throws. */
export function readStreamSettings(env: Env): StreamSettings {
  const read = (name: keyof StreamSettings) => readEnv(SETTINGS[STREAM_SETTING_NAMES[name]], env);
  return {
    streamLane: read('streamLane') as boolean,
    inputStreamName: read('inputStreamName') as string,
    outputStreamName: read('outputStreamName') as string,
    batchSize: read('batchSize') as number,
    batchingWindowSeconds: read('batchingWindowSeconds') as number,
    parallelizationFactor: read('parallelizationFactor') as number,
    retryAttempts: read('retryAttempts') as number,
    maxRecordAgeSeconds: read('maxRecordAgeSeconds') as number,
    bisectOnError: read('bisectOnError') as boolean,
    maxEventBytes: read('maxEventBytes') as number,
  };
}

export const DEFAULT_STREAM_SETTINGS: StreamSettings = readStreamSettings({});

/** A function's environment for `settings` (what readStreamSettings reads back). */
export function streamSettingsEnvironment(settings: StreamSettings): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [field, name] of Object.entries(STREAM_SETTING_NAMES) as [keyof StreamSettings, SettingName][]) {
    env[(SETTINGS[name] as Setting & { env: string }).env] = String(settings[field]);
  }
  return env;
}
