/**
 * The soak's server process: the whole local stack (`npm start` minus the terminal banner) in a
 * process of its own, so its RSS is the server's and not the load generator's. Answers the parent
 * over IPC: `{id, op: 'rss'}` (this process's RSS), `{id, op: 'batch', files}` (upload and run
 * the datasets concurrently through the batch lane, as S3 uploads would, and return their manifests) and
 * `{id, op: 'put', key, body}` (write an object of the data bucket, or delete it when body is null: the
 * soak's promotion cases rewrite `models/<name>/current.json` this way). The API re-reads model pointers
 * every second (deployed: every 60 s), so that a promotion is seen within the soak's short run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { DEMO_MODEL, LOCAL_BUCKET, startLocalStack } from '../local/stack.ts';

interface Request {
  readonly id: number;
  readonly op: 'rss' | 'batch' | 'put' | 'stop';
  readonly files?: readonly string[];
  readonly key?: string;
  readonly body?: string | null;
  readonly options?: Partial<BatchOptions>;
}

function reply(id: number, data: unknown): void {
  process.send?.({ id, data });
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-soak-'));
const stack = await startLocalStack({ apiPort: 0, dataDir, handlerEnv: { MODEL_REFRESH_SECONDS: '1' } });

process.on('message', (raw: unknown) => {
  const request = raw as Request;
  if (request.op === 'rss') {
    // After full collections, so that what is measured is what the process holds, not garbage that a
    // collection has not reached yet (the soak asks for it after warm-up and after the run alike).
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    gc?.();
    const memory = process.memoryUsage();
    reply(request.id, {
      rssMb: memory.rss / 1_048_576,
      heapUsedMb: memory.heapUsed / 1_048_576,
      externalMb: memory.external / 1_048_576,
      arrayBuffersMb: memory.arrayBuffers / 1_048_576,
    });
  } else if (request.op === 'batch') {
    void Promise.all(
      (request.files ?? []).map((file) =>
        stack.runDataset(file, DEMO_MODEL, undefined, request.options).then(
          (result) => ({ file, ...result }),
          (error: unknown) => ({ file, status: 'ERROR', message: (error as Error).message }),
        ),
      ),
    ).then((results) => reply(request.id, results));
  } else if (request.op === 'put' && request.key) {
    const key = request.key;
    const written =
      request.body === null || request.body === undefined
        ? stack.s3.send(new DeleteObjectCommand({ Bucket: LOCAL_BUCKET, Key: key }))
        : stack.objects.writeBytes(LOCAL_BUCKET, key, request.body, 'application/json');
    void written.then(
      () => reply(request.id, { ok: true }),
      (error: unknown) => reply(request.id, { ok: false, message: (error as Error).message }),
    );
  } else if (request.op === 'stop') {
    void stack
      .stop()
      .then(() => rm(dataDir, { recursive: true, force: true }))
      .then(() => {
        reply(request.id, { stopped: true });
        process.exit(0);
      });
  }
});
process.once('disconnect', () => process.exit(0));
process.send?.({ id: 0, data: { apiUrl: stack.apiUrl } });
