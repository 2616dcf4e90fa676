/**
 * An incremental RFC 4180 CSV record parser: quoted fields with doubled quotes and embedded newlines,
 * CRLF or LF line ends, a UTF-8 BOM on the first chunk, any one-character delimiter. Text is pushed in
 * chunks of any size; complete records come out with the line number they started on.
 */
import { TandemError, type TandemErrorOptions } from '../errors.ts';

export interface CsvRecord {
  readonly fields: string[];
  /** 1-based line number where the record starts (header = line 1). */
  readonly line: number;
}

/** A record the CSV grammar refuses; `line` is the 1-based line it is about. */
export class CsvSyntaxError extends TandemError<'UNTERMINATED_QUOTE' | 'MALFORMED_CSV'> {
  readonly line: number;

  constructor(
    code: 'UNTERMINATED_QUOTE' | 'MALFORMED_CSV',
    message: string,
    options: TandemErrorOptions & { line: number },
  ) {
    super(code, message, options);
    this.line = options.line;
  }
}

export class CsvParser {
  private readonly delimiter: number;
  private started = false;
  private pending = '';
  private line = 1;

  constructor(delimiter = ',') {
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
      throw new Error(`invalid CSV delimiter ${JSON.stringify(delimiter)}`);
    }
    this.delimiter = delimiter.charCodeAt(0);
  }

  /** Parses the complete records in `pending + chunk`; keeps the incomplete tail for the next call. */
  push(chunk: string, out: CsvRecord[] = []): CsvRecord[] {
    let text = this.pending + chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    const consumed = this.parse(text, out, false);
    this.pending = text.slice(consumed);
    return out;
  }

  /** Parses what is left at the end of input: a last record without a line end. */
  end(out: CsvRecord[] = []): CsvRecord[] {
    const text = this.pending;
    this.pending = '';
    if (text.length > 0) this.parse(text, out, true);
    return out;
  }

  /** Returns how many characters were consumed (complete records only unless `final`). */
  private parse(text: string, out: CsvRecord[], final: boolean): number {
    const length = text.length;
    const delimiter = this.delimiter;
    let position = 0;
    while (position < length) {
      const recordStart = position;
      const startLine = this.line;
      let linesInRecord = 0;
      const fields: string[] = [];
      let complete = false;
      let fieldStart = position;
      while (position <= length) {
        if (position === length) {
          if (!final) break;
          fields.push(text.slice(fieldStart, position));
          complete = true;
          break;
        }
        const code = text.charCodeAt(position);
        if (code === 34 /* " */ && position === fieldStart) {
          // Quoted field: scan to the closing quote, unescaping doubled quotes.
          let value = '';
          let chunkStart = position + 1;
          let cursor = position + 1;
          let closed = false;
          while (cursor < length) {
            const c = text.charCodeAt(cursor);
            if (c === 34) {
              if (cursor + 1 < length && text.charCodeAt(cursor + 1) === 34) {
                value += text.slice(chunkStart, cursor + 1);
                cursor += 2;
                chunkStart = cursor;
                continue;
              }
              if (cursor + 1 === length && !final) break;
              value += text.slice(chunkStart, cursor);
              closed = true;
              cursor++;
              break;
            }
            if (c === 10) linesInRecord++;
            cursor++;
          }
          if (!closed) {
            if (!final) return recordStart;
            throw new CsvSyntaxError('UNTERMINATED_QUOTE', 'unterminated quoted field', { line: startLine });
          }
          const next = cursor < length ? text.charCodeAt(cursor) : -1;
          if (next !== delimiter && next !== 10 && next !== 13 && next !== -1) {
            throw new CsvSyntaxError('MALFORMED_CSV', 'unexpected character after a closing quote', {
              line: startLine + linesInRecord,
            });
          }
          if (next === -1 && !final) return recordStart;
          fields.push(value);
          position = cursor;
          if (next === delimiter) {
            position++;
            fieldStart = position;
            if (position === length && final) {
              fields.push('');
              complete = true;
              break;
            }
            continue;
          }
          if (next === -1) {
            complete = true;
            break;
          }
          // Fall through to the line end handling below with position at \r or \n.
          fieldStart = position;
        }
        const c = text.charCodeAt(position);
        if (c === delimiter) {
          fields.push(text.slice(fieldStart, position));
          position++;
          fieldStart = position;
          continue;
        }
        if (c === 10 || c === 13) {
          if (c === 13 && position + 1 === length && !final) break;
          if (fieldStart < position || fields.length === 0 || text.charCodeAt(position - 1) === delimiter) {
            fields.push(text.slice(fieldStart, position));
          }
          position += c === 13 && text.charCodeAt(position + 1) === 10 ? 2 : 1;
          linesInRecord++;
          complete = true;
          break;
        }
        position++;
      }
      if (!complete) return recordStart;
      this.line = startLine + linesInRecord;
      // A blank line is not a record.
      if (!(fields.length === 1 && fields[0] === '')) out.push({ fields, line: startLine });
    }
    return position;
  }
}

/** Parses a whole CSV text. */
export function parseCsv(text: string, delimiter = ','): CsvRecord[] {
  const parser = new CsvParser(delimiter);
  const records = parser.push(text);
  return parser.end(records);
}
