/** Writes capture objects to the data bucket (the capture/ prefix the keys carry) through an object store. */
import type { CaptureSink } from '../core/capture/capture-buffer.ts';
import type { ObjectStore } from '../core/ports.ts';

export class ObjectStoreCaptureSink implements CaptureSink {
  constructor(
    private readonly objects: ObjectStore,
    private readonly bucket: string,
  ) {}

  write(key: string, body: Uint8Array): Promise<void> {
    return this.objects.writeBytes(this.bucket, key, body, 'application/gzip');
  }
}
