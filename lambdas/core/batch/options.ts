/**
 * The options of a batch run, checked against their rules: a pure module (contracts and errors only), so
 * the CDK app checks `batchOptions` at synth with the same rules the planner applies to each run.
 */
import { DEFAULT_BATCH_OPTIONS, type BatchOptions } from './contracts.ts';
import { isPackageName } from '../names.ts';
import { BatchInputError } from './errors.ts';

const MAX_PASS_THROUGH_COLUMNS = 100;
const MAX_RECORD_BYTES_LIMIT = 256 * 1024 * 1024;
const RECORD_HARD_LIMIT_FACTOR = 16;

/**
 * The longest record a run accepts at all: a record over maxRecordBytes is rejected as a row (the run
 * goes on), one over this fails the run at plan time, since a worker must hold a record whole.
 */
export function recordHardLimit(options: Pick<BatchOptions, 'maxRecordBytes'>): number {
  return Math.min(RECORD_HARD_LIMIT_FACTOR * options.maxRecordBytes, MAX_RECORD_BYTES_LIMIT);
}

/** The run's options over the defaults; every problem at once, as one INVALID_OPTIONS error. */
export function resolveOptions(options: Partial<BatchOptions> | undefined): BatchOptions {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options)))
    throw new BatchInputError('INVALID_OPTIONS', 'the batch options must be an object');
  const merged = { ...DEFAULT_BATCH_OPTIONS, ...options };
  const problems: string[] = [];
  const unknown = Object.keys(options ?? {}).filter((name) => !Object.hasOwn(DEFAULT_BATCH_OPTIONS, name));
  // A misspelt option would otherwise fall back to its default without a word.
  if (unknown.length > 0) problems.push(`unknown option ${unknown.map((u) => `"${u}"`).join(', ')}`);
  if (
    typeof merged.delimiter !== 'string' ||
    merged.delimiter.length !== 1 ||
    '"\r\n'.includes(merged.delimiter)
  ) {
    problems.push('delimiter must be one character other than a quote or a line end');
  }
  if (
    !Array.isArray(merged.passThroughColumns) ||
    !merged.passThroughColumns.every((c) => typeof c === 'string')
  ) {
    problems.push('passThroughColumns must be a list of column names');
  } else if (merged.passThroughColumns.length > MAX_PASS_THROUGH_COLUMNS) {
    problems.push(`passThroughColumns may name at most ${MAX_PASS_THROUGH_COLUMNS} columns`);
  }
  if (merged.tableWrites !== 'all' && merged.tableWrites !== 'none')
    problems.push('tableWrites must be "all" or "none"');
  if (!Number.isInteger(merged.chunkBytes) || merged.chunkBytes < 1024)
    problems.push('chunkBytes must be an integer >= 1024');
  if (!Number.isSafeInteger(merged.maxChunkRows) || merged.maxChunkRows < 0)
    problems.push('maxChunkRows must be an integer >= 0 (0: no limit)');
  if (
    !Number.isInteger(merged.microBatchRows) ||
    merged.microBatchRows < 1 ||
    merged.microBatchRows > 100_000
  ) {
    problems.push('microBatchRows must be an integer from 1 to 100000');
  }
  if (typeof merged.maxTableWritesPerSecond !== 'number' || !(merged.maxTableWritesPerSecond >= 0))
    problems.push('maxTableWritesPerSecond must be a number >= 0');
  if (!Number.isSafeInteger(merged.maxInputBytes) || merged.maxInputBytes < 1024)
    problems.push('maxInputBytes must be an integer >= 1024');
  if (
    !Number.isInteger(merged.maxRecordBytes) ||
    merged.maxRecordBytes < 1024 ||
    merged.maxRecordBytes > MAX_RECORD_BYTES_LIMIT
  ) {
    problems.push(`maxRecordBytes must be an integer from 1024 to ${MAX_RECORD_BYTES_LIMIT}`);
  }
  if (!Number.isSafeInteger(merged.maxRowGroupRows) || merged.maxRowGroupRows < 1)
    problems.push('maxRowGroupRows must be a positive integer');
  if (merged.outputFormat !== 'jsonl' && merged.outputFormat !== 'csv')
    problems.push('outputFormat must be "jsonl" or "csv"');
  if (merged.modelVersion !== '' && !isPackageName(merged.modelVersion))
    problems.push(
      'modelVersion must be a version (letters, digits, ".", "_" or "-"), or "" for the live one',
    );
  if (merged.csvFormulas !== 'neutralize' && merged.csvFormulas !== 'raw')
    problems.push('csvFormulas must be "neutralize" or "raw"');
  if (problems.length > 0) throw new BatchInputError('INVALID_OPTIONS', problems.join('; '));
  return merged;
}
