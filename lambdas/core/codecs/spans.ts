/**
 * The record spans shared by the CSV and JSON Lines chunk readers: a byte stream fed to a record machine
 * (record-machines.ts) and cut into spans of whole records, so that a reader decodes complete records
 * only. Memory: one span of about `batchBytes` (default 256 KiB) plus one stream piece, or one record
 * when a record is longer; the caller consumes a micro-batch before the next is read.
 *
 * UTF-8: a span always ends on a record's line end (an ASCII byte), so a multi-byte character split
 * across stream pieces is whole by the time it is decoded.
 */
import type { RecordMachine } from './record-machines.ts';

export const DEFAULT_BATCH_BYTES = 256 * 1024;

export interface Span {
  /** The bytes from `base` to the end of the last record completed (machine.ends). */
  readonly bytes: Uint8Array;
  /** Absolute offset (in the stream) of bytes[0]. */
  readonly base: number;
}

/**
 * Feeds the stream to the machine and yields spans of complete records, each about batchBytes (or the
 * one record, when longer). The machine's arrays describe the span's records until the next iteration.
 * Pieces are only joined when a span is cut, so a record spanning many pieces is copied once.
 */
export async function* spans(
  stream: AsyncIterable<Uint8Array>,
  machine: RecordMachine,
  batchBytes: number,
): AsyncGenerator<Span> {
  let pieces: Uint8Array[] = [];
  let base = 0;
  let pending = 0;
  const take = (): Span => {
    const buffer = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    const last = machine.ends[machine.ends.length - 1]!;
    const cut = last - base;
    const span = { bytes: buffer.subarray(0, cut), base };
    const rest = buffer.subarray(cut);
    pieces = rest.length > 0 ? [rest] : [];
    pending = rest.length;
    base = last;
    return span;
  };
  for await (const piece of stream) {
    if (piece.length === 0) continue;
    machine.feed(piece);
    pieces.push(piece);
    pending += piece.length;
    if (pending >= batchBytes && machine.ends.length > 0) {
      yield take();
      machine.clear();
    }
  }
  machine.finish();
  if (machine.ends.length > 0) {
    yield take();
    machine.clear();
  }
}

export function stripLineEnd(text: string): string {
  let end = text.length;
  if (end > 0 && text.charCodeAt(end - 1) === 10) end--;
  if (end > 0 && text.charCodeAt(end - 1) === 13) end--;
  return end === text.length ? text : text.slice(0, end);
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** How much of a record over the size limit the rejected file keeps (it is cut, not scored). */
export const TOO_LARGE_PREVIEW_BYTES = 1024;

/** The reason a record over maxRecordBytes is rejected. */
export function recordTooLarge(bytes: number, limit: number): string {
  return `RECORD_TOO_LARGE: the record is ${bytes} bytes; the limit is ${limit} (maxRecordBytes)`;
}
