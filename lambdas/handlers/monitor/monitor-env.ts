/** Settings of the drift monitor (and of drift in batch manifests), read once with their definitions. */
import type { MonitorSettings } from '../../core/monitoring/monitor-run.ts';
import { readEnv, requireEnv, SETTINGS } from '../../core/settings.ts';

type Env = Readonly<Record<string, string | undefined>>;

/** The threshold and minimum a drift verdict uses (the monitor's and the batch finalizer's). */
export function readDriftSettings(env: Env): { threshold: number; minRecords: number } {
  return {
    threshold: readEnv(SETTINGS.driftThreshold, env),
    minRecords: readEnv(SETTINGS.driftMinRecords, env),
  };
}

/** The monitor's settings (the function's; npm start and the tandem command read the same variables). */
export function readMonitorSettings(env: Env): MonitorSettings {
  return {
    ...readDriftSettings(env),
    firstLookbackMinutes: readEnv(SETTINGS.monitorFirstLookbackMinutes, env),
  };
}

export function readMonitorConfig(
  env: Env,
): MonitorSettings & { dataBucket: string; modelsUri: string; tableName: string | undefined } {
  return {
    ...readMonitorSettings(env),
    dataBucket: requireEnv(SETTINGS.dataBucket, env),
    modelsUri: requireEnv(SETTINGS.modelsUri, env),
    // The precomputed predictions outcomes are matched to (live quality); unset: captures only.
    tableName: readEnv(SETTINGS.tableName, env),
  };
}
