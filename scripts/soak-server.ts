/**
 * The soak's server process: the whole local stack (`npm start` minus the terminal banner) in a
 * process of its own, so its RSS is the server's and not the load generator's. Answers the parent
 * over IPC: `{id, op: 'rss'}` (this process's RSS) and `{id, op: 'batch', files}` (upload and run
 * the datasets concurrently through the batch lane, as S3 uploads would, and return their manifests).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { DEMO_MODEL, startLocalStack } from '../local/stack.ts';

interface Request {
  readonly id: number;
  readonly op: 'rss' | 'batch' | 'stop';
  readonly files?: readonly string[];
  readonly options?: Partial<BatchOptions>;
}

function reply(id: number, data: unknown): void {
  process.send?.({ id, data });
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-soak-'));
const stack = await startLocalStack({ apiPort: 0, dataDir });

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
