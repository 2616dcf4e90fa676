/**
 * Errors about a whole dataset file (as opposed to one bad row, which is rejected with a reason and
 * does not stop the run). Retrying cannot fix any of them: the file itself has to change.
 */

import { TandemError, type TandemErrorOptions } from '../errors.ts';

export type DatasetErrorCode =
  /** The file has no bytes at all. */
  | 'EMPTY_FILE'
  /** A CSV file without a header record (only blank lines, or a BOM). */
  | 'NO_HEADER'
  /** The CSV header record is longer than the scanner's limit (usually a missing closing quote). */
  | 'HEADER_TOO_LARGE'
  /** The CSV header record cannot be parsed (e.g. a character after a closing quote). */
  | 'MALFORMED_CSV'
  /** A data record is longer than the scan's maxRecordBytes. */
  | 'RECORD_TOO_LARGE'
  /** A quoted CSV field is still open at the end of the file. */
  | 'UNTERMINATED_QUOTE'
  /** Text that must be UTF-8 (the CSV header) is not. Data rows with bad UTF-8 are rejected instead. */
  | 'INVALID_UTF8'
  | 'CORRUPT_GZIP'
  | 'CORRUPT_PARQUET'
  /** A format, codec or option the codecs do not support (e.g. a non-ASCII CSV delimiter). */
  | 'UNSUPPORTED_FORMAT'
  /** A requested column is not in the file. */
  | 'UNKNOWN_COLUMN';

export class DatasetError extends TandemError<DatasetErrorCode> {
  /** 1-based line number the problem is about, when it is about one. */
  readonly line: number | undefined;

  constructor(code: DatasetErrorCode, message: string, options: TandemErrorOptions & { line?: number } = {}) {
    super(code, message, options);
    this.line = options.line;
  }
}
