/** The API function's settings, read from the environment once at init; a bad value fails the init. */
import { DEFAULT_LIMITS, type RequestLimits } from '../core/predict-request.ts';

export interface ApiConfig {
  /** `s3://bucket/prefix/` or a local folder holding `<name>/current.json` and `<name>/<version>/`. */
  readonly modelsUri: string;
  readonly defaultModel: string;
  /** The precomputed predictions table; without it the cache is off. */
  readonly tableName: string | undefined;
  readonly cacheBudgetMs: number;
  readonly writeThrough: boolean;
  readonly modelRefreshSeconds: number;
  readonly limits: RequestLimits;
  readonly logPayloads: boolean;
  /** How often a busy environment publishes its aggregated metrics; 0 publishes after every request. */
  readonly metricsFlushMs: number;
  /** POWERTOOLS_LOGGER_SAMPLE_RATE is set: debug logging is re-drawn for each request. */
  readonly sampleDebugLogs: boolean;
}

export class ConfigError extends Error {}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

export function readApiConfig(env: NodeJS.ProcessEnv): ApiConfig {
  const modelsUri = env['MODELS_URI'];
  const defaultModel = env['DEFAULT_MODEL'];
  if (!modelsUri) throw new ConfigError('MODELS_URI is required (s3://bucket/models/ or a folder)');
  if (!defaultModel)
    throw new ConfigError('DEFAULT_MODEL is required (the model served when a request names none)');
  return {
    modelsUri,
    defaultModel,
    tableName: env['TABLE_NAME'] || undefined,
    cacheBudgetMs: integer(env, 'CACHE_BUDGET_MS', 150, 1, 30_000),
    writeThrough: flag(env, 'WRITE_THROUGH'),
    modelRefreshSeconds: integer(env, 'MODEL_REFRESH_SECONDS', 60, 0, 86_400),
    limits: {
      maxBodyBytes: integer(env, 'MAX_BODY_BYTES', DEFAULT_LIMITS.maxBodyBytes, 1024, 6 * 1_048_576),
      maxInstances: integer(env, 'MAX_INSTANCES', DEFAULT_LIMITS.maxInstances, 1, 10_000),
    },
    logPayloads: flag(env, 'LOG_PAYLOADS'),
    metricsFlushMs: integer(env, 'METRICS_FLUSH_MS', 1000, 0, 60_000),
    sampleDebugLogs: Number(env['POWERTOOLS_LOGGER_SAMPLE_RATE'] ?? 0) > 0,
  };
}
