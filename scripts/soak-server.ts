/**
 * The soak's server process: the whole local stack (`npm start` minus the terminal banner) in a
 * process of its own, so its RSS is the server's and not the load generator's. Answers the parent
 * over IPC: `{id, op: 'rss'}` (this process's RSS), `{id, op: 'batch', files}` (upload and run
 * the datasets concurrently through the batch lane, as S3 uploads would, and return their manifests) and
 * `{id, op: 'put', key, body}` (write an object of the data bucket, or delete it when body is null: the
 * soak's promotion cases rewrite `models/<name>/current.json` this way) and `{id, op: 'lifecycle', action,
 * version, percent}` (push the test-only second version of the demo model, canary, promote or roll back
 * through the lifecycle core, as `tandem models ...` does). The API re-reads model pointers every second
 * (deployed: every 60 s), so that a promotion is seen within the soak's short run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BatchOptions } from '../lambdas/core/batch/contracts.ts';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { S3ModelSource } from '../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../lambdas/adapters/s3-model-store.ts';
import { ModelLifecycle } from '../lambdas/core/lifecycle/lifecycle.ts';
import { loadModelVersion } from '../lambdas/core/model-registry.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack } from '../local/stack.ts';
import { demoV2Package } from '../test/support/demo-v2-model.ts';

interface Request {
  readonly id: number;
  readonly op: 'rss' | 'batch' | 'put' | 'lifecycle' | 'stop';
  readonly files?: readonly string[];
  readonly key?: string;
  readonly body?: string | null;
  readonly options?: Partial<BatchOptions>;
  readonly action?: 'push' | 'canary' | 'promote' | 'rollback';
  readonly version?: string;
  readonly percent?: number;
}

function reply(id: number, data: unknown): void {
  process.send?.({ id, data });
}

const dataDir = await mkdtemp(path.join(tmpdir(), 'tandem-soak-'));
const stack = await startLocalStack({ apiPort: 0, dataDir, handlerEnv: { MODEL_REFRESH_SECONDS: '1' } });

const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
const lifecycle = new ModelLifecycle(new S3ModelStore(stack.s3, LOCAL_BUCKET), {
  loadVersion: (name, version) => loadModelVersion(source, name, version),
  identity: async () => 'soak',
});

/** One lifecycle change of the demo model; what it recorded, or why it failed. */
async function lifecycleChange(request: Request): Promise<unknown> {
  const version = request.version ?? '';
  const reason = { reason: 'soak' };
  switch (request.action) {
    case 'push': {
      const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, version);
      const encode = (text: string) => new TextEncoder().encode(text);
      await lifecycle.push(
        DEMO_MODEL,
        version,
        { manifest: encode(pkg.manifest), model: pkg.modelBytes },
        'soak',
      );
      return { pushed: version };
    }
    case 'canary':
      return lifecycle.canary(DEMO_MODEL, version, request.percent ?? 0, reason);
    case 'promote':
      return lifecycle.promote(DEMO_MODEL, version, reason);
    case 'rollback':
      return lifecycle.rollback(DEMO_MODEL, reason);
    default:
      throw new Error(`unknown lifecycle action ${String(request.action)}`);
  }
}

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
  } else if (request.op === 'lifecycle') {
    void lifecycleChange(request).then(
      (outcome) => reply(request.id, { ok: true, outcome }),
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
