/**
 * Settings of the batch functions, read once at init with the definitions of lambdas/core/settings.ts; a
 * missing or malformed one fails the init, naming the variable.
 */
import type { BatchOptions } from '../core/batch/contracts.ts';
import type { RefreshPolicy } from '../core/refresh/refresh.ts';
import { readEnv, requireEnv, SETTINGS } from '../core/settings.ts';

type Env = NodeJS.ProcessEnv;

export function readTriggerConfig(env: Env): {
  stateMachineArn: string;
  batchOptions: Partial<BatchOptions>;
} {
  return {
    stateMachineArn: requireEnv(SETTINGS.stateMachineArn, env),
    batchOptions: readBatchOptions(env),
  };
}

/** BATCH_OPTIONS: checked option by option when each run is planned (resolveOptions), and at synth. */
export function readBatchOptions(env: Env): Partial<BatchOptions> {
  return (readEnv(SETTINGS.batchOptions, env) ?? {}) as Partial<BatchOptions>;
}

export function readPlanConfig(env: Env): { modelsUri: string } {
  return { modelsUri: requireEnv(SETTINGS.modelsUri, env) };
}

export function readScoreConfig(env: Env): { modelsUri: string; tableName: string | undefined } {
  return { modelsUri: requireEnv(SETTINGS.modelsUri, env), tableName: readEnv(SETTINGS.tableName, env) };
}

export function readFinalizeConfig(env: Env): { eventBusName: string } {
  return { eventBusName: readEnv(SETTINGS.eventBusName, env) };
}

export function readRefreshConfig(env: Env): {
  stateMachineArn: string;
  dataBucket: string;
  defaultPolicy: RefreshPolicy;
  batchOptions: Partial<BatchOptions>;
} {
  return {
    stateMachineArn: requireEnv(SETTINGS.stateMachineArn, env),
    dataBucket: requireEnv(SETTINGS.dataBucket, env),
    defaultPolicy: readEnv(SETTINGS.refreshOn, env) as RefreshPolicy,
    batchOptions: readBatchOptions(env),
  };
}
