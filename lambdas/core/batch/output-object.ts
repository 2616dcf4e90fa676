/** Where a chunk streams its part and rejected files: an object written with backpressure. */
import { PassThrough } from 'node:stream';
import type { ObjectStore } from '../ports.ts';

export interface OutputObject {
  write(text: string | Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(error: Error): void;
}

/** Writes text to an object through a stream, with backpressure. */
export class StreamedObject implements OutputObject {
  private readonly pass = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
  private readonly done: Promise<void>;

  constructor(objects: ObjectStore, bucket: string, key: string, contentType: string) {
    this.done = objects.write(bucket, key, this.pass, contentType);
    this.done.catch(() => undefined);
  }

  async write(text: string | Uint8Array): Promise<void> {
    if (text.length > 0 && !this.pass.write(text))
      await new Promise((resolve) => this.pass.once('drain', resolve));
  }

  async close(): Promise<void> {
    this.pass.end();
    await this.done;
  }

  abort(error: Error): void {
    this.pass.destroy(error);
  }
}

/** An object an earlier invocation of the chunk has already written whole: nothing to write again. */
export class WrittenObject implements OutputObject {
  async write(): Promise<void> {}
  async close(): Promise<void> {}
  abort(): void {}
}
