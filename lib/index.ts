/**
 * Tandem's constructs for use inside other CDK apps: `new Tandem(scope, id, props)` gives the whole system
 * (data bucket, prediction table, real-time API, batch pipeline, monitoring); the parts are exported for
 * apps that compose their own.
 */
export { Tandem, TandemStack } from './tandem-stack.ts';
export type { TandemArchitecture, TandemProps, TandemStackProps } from './tandem-stack.ts';
export {
  BatchPipeline,
  BATCH_COMPLETED_EVENT,
  DATASET_SUFFIXES,
  EXPRESS_CHILD_MAX_DURATION,
  uploadKeyPatterns,
} from './batch-pipeline.ts';
export type { BatchPipelineProps } from './batch-pipeline.ts';
export { batchDefinition, STATE_NAMES } from './batch-definition.ts';
export type { BatchDefinitionProps } from './batch-definition.ts';
export { DATA_PREFIXES, DataBucket } from './data-bucket.ts';
export type { DataBucketProps } from './data-bucket.ts';
export { FUNCTION_ACCESS, KEY_PATTERNS } from './bucket-access.ts';
export { Monitoring } from './monitoring.ts';
export type { MonitoringProps } from './monitoring.ts';
export { PredictionTable, TABLE_SCHEMA } from './prediction-table.ts';
export type { PredictionTableProps } from './prediction-table.ts';
export { API_ROUTES, RealtimeApi } from './realtime-api.ts';
export type { ApiAuth, RealtimeApiProps } from './realtime-api.ts';
export {
  readSettings,
  SETTINGS,
  SettingsError,
  TandemPropsError,
  tandemPropsProblems,
  validateTandemProps,
} from './settings.ts';
export type { SettingName, TandemSettings } from './settings.ts';
export { TandemFunction } from './tandem-function.ts';
export type { TandemFunctionProps } from './tandem-function.ts';
