/**
 * The stream lane's settings, defined once: each with its type, range, default, environment variable,
 * CDK context key and help. The consumer function, the local poller and the CDK event source mapping
 * all read these definitions (the integrator folds this list into lib/settings.ts).
 */

export interface StreamSettingDefinition {
  readonly name: keyof StreamSettings;
  readonly type: 'integer' | 'boolean' | 'string';
  readonly min?: number;
  readonly max?: number;
  readonly default: number | boolean | string;
  readonly env: string;
  readonly context: string;
  readonly help: string;
}

export interface StreamSettings {
  /** Deploy the stream lane (two on-demand streams cost money even when idle). */
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

export const STREAM_SETTINGS: readonly StreamSettingDefinition[] = [
  {
    name: 'streamLane',
    type: 'boolean',
    default: false,
    env: 'TANDEM_STREAM_LANE',
    context: 'streamLane',
    help: 'Deploy the near-real-time lane (input and output Kinesis streams, consumer). Off by default: two on-demand streams bill about 2 x 0.04 USD per stream-hour (about 58 USD a month) even when idle. Always on in npm start.',
  },
  {
    name: 'inputStreamName',
    type: 'string',
    default: 'tandem-events',
    env: 'STREAM_INPUT_NAME',
    context: 'streamInputName',
    help: 'The stream events are put on (partition key: the entity id).',
  },
  {
    name: 'outputStreamName',
    type: 'string',
    default: 'tandem-predictions',
    env: 'STREAM_OUTPUT_NAME',
    context: 'streamOutputName',
    help: 'The stream one record per prediction is published on.',
  },
  {
    name: 'batchSize',
    type: 'integer',
    min: 1,
    max: 10_000,
    default: 100,
    env: 'STREAM_BATCH_SIZE',
    context: 'streamBatchSize',
    help: 'Most records per consumer invocation (one ONNX run per model per invocation).',
  },
  {
    name: 'batchingWindowSeconds',
    type: 'integer',
    min: 0,
    max: 300,
    default: 1,
    env: 'STREAM_BATCHING_WINDOW_SECONDS',
    context: 'streamBatchingWindowSeconds',
    help: 'How long records are gathered before an invocation: trades latency for fewer, fuller invocations.',
  },
  {
    name: 'parallelizationFactor',
    type: 'integer',
    min: 1,
    max: 10,
    default: 1,
    env: 'STREAM_PARALLELIZATION_FACTOR',
    context: 'streamParallelizationFactor',
    help: 'Concurrent batches per shard (order is kept per partition key).',
  },
  {
    name: 'retryAttempts',
    type: 'integer',
    min: 0,
    max: 10_000,
    default: 3,
    env: 'STREAM_RETRY_ATTEMPTS',
    context: 'streamRetryAttempts',
    help: 'Retries of a failing batch before its records go to the on-failure destination.',
  },
  {
    name: 'maxRecordAgeSeconds',
    type: 'integer',
    min: 60,
    max: 604_800,
    default: 3_600,
    env: 'STREAM_MAX_RECORD_AGE_SECONDS',
    context: 'streamMaxRecordAgeSeconds',
    help: 'Records older than this are not retried but sent to the on-failure destination.',
  },
  {
    name: 'bisectOnError',
    type: 'boolean',
    default: true,
    env: 'STREAM_BISECT_ON_ERROR',
    context: 'streamBisectOnError',
    help: 'Split a batch whose invocation fails as a whole, to isolate the record that fails it.',
  },
  {
    name: 'maxEventBytes',
    type: 'integer',
    min: 256,
    max: 1_048_576,
    default: 65_536,
    env: 'STREAM_MAX_EVENT_BYTES',
    context: 'streamMaxEventBytes',
    help: 'Largest event record accepted; larger ones are rejected (Kinesis itself allows 1 MiB).',
  },
];

export class StreamSettingsError extends Error {}

function readOne(def: StreamSettingDefinition, raw: string | undefined): number | boolean | string {
  if (raw === undefined || raw === '') return def.default;
  if (def.type === 'string') return raw;
  if (def.type === 'boolean') {
    const value = raw.toLowerCase();
    if (value === 'true' || value === '1') return true;
    if (value === 'false' || value === '0') return false;
    throw new StreamSettingsError(`${def.env} must be true or false, got "${raw}"`);
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < def.min! || value > def.max!) {
    throw new StreamSettingsError(
      `${def.env} must be an integer from ${def.min} to ${def.max}, got "${raw}"`,
    );
  }
  return value;
}

/** The settings from environment variables (defaults for those unset); a bad value throws. */
export function readStreamSettings(env: NodeJS.ProcessEnv): StreamSettings {
  const settings: Record<string, number | boolean | string> = {};
  for (const def of STREAM_SETTINGS) settings[def.name] = readOne(def, env[def.env]);
  return settings as unknown as StreamSettings;
}

export const DEFAULT_STREAM_SETTINGS: StreamSettings = readStreamSettings({});
