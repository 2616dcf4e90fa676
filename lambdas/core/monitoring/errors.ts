/** Errors of the drift monitor: a baseline that cannot be read, a report that cannot be made. */
import { TandemError } from '../errors.ts';

export type MonitoringErrorCode =
  /** baseline.json is not JSON or does not match the schema (the message names the field). */
  | 'INVALID_BASELINE'
  /** The version has no baseline.json. */
  | 'BASELINE_NOT_FOUND'
  /** A baseline could not be computed (no row of the dataset could be scored). */
  | 'EMPTY_DATASET'
  /** monitoring/<model>/state.json is not what a monitor run writes. */
  | 'INVALID_MONITOR_STATE'
  /** No model of that name under models/ (a typo, most likely): nothing is written for it. */
  | 'MODEL_NOT_FOUND';

export class MonitoringError extends TandemError<MonitoringErrorCode> {}
