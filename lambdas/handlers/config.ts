/**
 * The API function's settings, read from the environment once at init with the definitions of
 * lambdas/core/settings.ts (the variables, ranges and defaults the stack and docs/configuration.md use);
 * a bad value fails the init, naming the variable.
 */
import type { RequestLimits } from '../core/predict-request.ts';
import { readEnv, requireEnv, SETTINGS, SettingError } from '../core/settings.ts';

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
  /** Data capture: off without a bucket or with a rate of 0. */
  readonly capture: {
    readonly bucket: string | undefined;
    readonly realtimeRate: number;
    readonly flushMs: number;
    readonly maxRecords: number;
    /** Share of shadow comparisons captured. */
    readonly shadowRate: number;
  };
  /** The data bucket: POST /feedback stores outcomes under its feedback/ (unset: the route is off). */
  readonly dataBucket: string | undefined;
  /** Shadow scoring's budget per request (running time after the response), ms. */
  readonly shadowBudgetMs: number;
  /** Running on Lambda: the environment is frozen between invocations. */
  readonly onLambda: boolean;
  /** POWERTOOLS_LOGGER_SAMPLE_RATE is set: debug logging is re-drawn for each request. */
  readonly sampleDebugLogs: boolean;
}

/** A missing or malformed variable (the settings' own error). */
export { SettingError as ConfigError };

export function readApiConfig(env: NodeJS.ProcessEnv): ApiConfig {
  return {
    modelsUri: requireEnv(SETTINGS.modelsUri, env),
    defaultModel: requireEnv(SETTINGS.modelName, env),
    tableName: readEnv(SETTINGS.tableName, env),
    cacheBudgetMs: readEnv(SETTINGS.cacheBudgetMs, env),
    writeThrough: readEnv(SETTINGS.writeThrough, env),
    modelRefreshSeconds: readEnv(SETTINGS.modelRefreshSeconds, env),
    limits: {
      maxBodyBytes: readEnv(SETTINGS.maxBodyBytes, env),
      maxInstances: readEnv(SETTINGS.maxInstances, env),
    },
    logPayloads: readEnv(SETTINGS.logPayloads, env),
    metricsFlushMs: readEnv(SETTINGS.metricsFlushMs, env),
    sampleDebugLogs: readEnv(SETTINGS.loggerSampleRate, env) > 0,
    dataBucket: readEnv(SETTINGS.dataBucket, env),
    capture: {
      bucket: readEnv(SETTINGS.captureBucket, env),
      realtimeRate: readEnv(SETTINGS.captureRealtimeRate, env),
      flushMs: readEnv(SETTINGS.captureFlushSeconds, env) * 1000,
      maxRecords: readEnv(SETTINGS.captureMaxRecords, env),
      shadowRate: readEnv(SETTINGS.captureShadowRate, env),
    },
    shadowBudgetMs: readEnv(SETTINGS.shadowBudgetMs, env),
    // Set by the Lambda runtime itself (not a setting).
    onLambda: env['AWS_LAMBDA_FUNCTION_NAME'] !== undefined,
  };
}
