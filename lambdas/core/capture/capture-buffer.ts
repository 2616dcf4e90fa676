/**
 * Buffers sampled captures in an execution environment and writes them in batches, so that no request
 * waits on a write: `add` only appends; a flush (by size, or by age when `flushIfDue` is called) groups
 * the records by hour partition and writes one gzipped JSON Lines object per partition, in the
 * background. A capture that cannot be written is counted and reported, never thrown to a caller.
 *
 * On Lambda nothing runs between invocations, so the handler calls `flushIfDue` at the start of each
 * one: records wait at most until the next invocation after `maxAgeMs`, or until the buffer is full.
 * The buffer is bounded: past twice `maxRecords` (a flush still in flight), new records are dropped
 * and counted. Records still buffered when an environment is shut down are lost (at most `maxRecords`
 * and `maxAgeMs` of them); a long-lived process (`npm start`) also flushes on a timer and on stop.
 */
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';
import {
  captureObjectKey,
  capturePartition,
  type CaptureRecord,
  type CaptureSource,
} from './capture-record.ts';

const gzipAsync = promisify(gzip);

/** Where flushed objects go (an object store's key space; the adapter owns the bucket). */
export interface CaptureSink {
  write(key: string, body: Uint8Array): Promise<void>;
}

export interface CaptureBufferOptions {
  /** Share of predictions captured per source, 0 to 1; a source not named is not captured. */
  readonly rates: Readonly<Partial<Record<CaptureSource, number>>>;
  /** Flush when this many records are buffered. @default 1000 */
  readonly maxRecords?: number;
  /** Flush when the oldest buffered record is this old (checked by flushIfDue). @default 60000 */
  readonly maxAgeMs?: number;
  /** Names this writer in object keys (an execution environment). */
  readonly writer: string;
  readonly random?: () => number;
  readonly now?: () => number;
  /** Called once per object that could not be written, with the records it held. */
  readonly onError?: (error: unknown, lost: number) => void;
}

export interface CaptureCounts {
  /** Records buffered (sampled in). */
  captured: number;
  /** Records written. */
  written: number;
  /** Records lost: a write failed. */
  failed: number;
  /** Records not buffered: the buffer was at its bound. */
  dropped: number;
}

export class CaptureBuffer {
  readonly counts: CaptureCounts = { captured: 0, written: 0, failed: 0, dropped: 0 };
  private records: CaptureRecord[] = [];
  private oldestMs = 0;
  private seq = 0;
  private flushing: Promise<void> | undefined;
  private readonly maxRecords: number;
  private readonly maxAgeMs: number;
  private readonly random: () => number;
  private readonly now: () => number;

  constructor(
    private readonly sink: CaptureSink,
    private readonly options: CaptureBufferOptions,
  ) {
    this.maxRecords = options.maxRecords ?? 1000;
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
  }

  /** Whether to capture one prediction of this source (a fresh draw each call). */
  sample(source: CaptureSource): boolean {
    const rate = this.options.rates[source] ?? 0;
    return rate >= 1 || (rate > 0 && this.random() < rate);
  }

  get buffered(): number {
    return this.records.length;
  }

  /** Buffers a record; starts a flush when the buffer is full. Never throws, never waits. */
  add(record: CaptureRecord): void {
    if (this.records.length >= this.maxRecords * 2) {
      this.counts.dropped++;
      return;
    }
    if (this.records.length === 0) this.oldestMs = this.now();
    this.records.push(record);
    this.counts.captured++;
    if (this.records.length >= this.maxRecords) void this.flush();
  }

  /** Starts a flush when the buffer is full or its oldest record is older than maxAgeMs. */
  flushIfDue(): void {
    if (this.records.length === 0) return;
    if (this.records.length >= this.maxRecords || this.now() - this.oldestMs >= this.maxAgeMs)
      void this.flush();
  }

  /** Writes everything buffered (after any flush in flight). Resolves when written; never rejects. */
  flush(): Promise<void> {
    const previous = this.flushing ?? Promise.resolve();
    const next = previous.then(() => this.writeBuffered());
    this.flushing = next;
    void next.then(() => {
      if (this.flushing === next) this.flushing = undefined;
    });
    return next;
  }

  private async writeBuffered(): Promise<void> {
    const records = this.records;
    if (records.length === 0) return;
    this.records = [];
    const at = this.now();
    const partitions = new Map<string, string[]>();
    for (const record of records) {
      const partition = capturePartition(record.model, record.source, Date.parse(record.time) || at);
      let lines = partitions.get(partition);
      if (!lines) partitions.set(partition, (lines = []));
      lines.push(JSON.stringify(record));
    }
    for (const [partition, lines] of partitions) {
      const key = captureObjectKey(partition, at, this.options.writer, this.seq++);
      try {
        await this.sink.write(key, await gzipAsync(`${lines.join('\n')}\n`));
        this.counts.written += lines.length;
      } catch (error) {
        this.counts.failed += lines.length;
        this.options.onError?.(error, lines.length);
      }
    }
  }
}
