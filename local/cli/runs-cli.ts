/**
 * `tandem runs start|list|show`: batch runs of a folder, and the runs' manifests. On the local stack a
 * run is executed by this process (the same state machine definition the local stack runs, on its S3
 * and DynamoDB) and the command waits for its manifest; on a deployed stack it is started on the batch
 * state machine and the command prints where its manifest will be.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { StepFunctionsRunStarter } from '../../lambdas/adapters/step-functions-starter.ts';
import {
  folderDatasetName,
  resultsPrefix,
  type BatchOptions,
  type RunManifest,
} from '../../lambdas/core/batch/contracts.ts';
import { startFolderRun } from '../../lambdas/core/batch/trigger.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { LocalBatchRunner } from '../batch-runner.ts';
import { localCapture } from '../local-capture.ts';
import type { Target } from './target.ts';

const utf8 = new TextDecoder();

export interface RunSummary {
  readonly runId: string;
  readonly status: RunManifest['status'] | 'RUNNING';
  readonly model: string;
  readonly dataset: string;
  readonly input: string;
  readonly read: number;
  readonly scored: number;
  readonly rejected: number;
  readonly finishedAt?: string;
  readonly manifestKey?: string;
  readonly notice?: string;
  readonly error?: string;
}

async function readJson<T>(objects: ObjectStore, bucket: string, key: string): Promise<T> {
  return JSON.parse(utf8.decode(await objects.readBytes(bucket, key))) as T;
}

function summary(manifest: RunManifest, manifestKey: string): RunSummary {
  return {
    runId: manifest.runId,
    status: manifest.status,
    model: manifest.model.name,
    dataset: manifest.dataset,
    input: manifest.input.key,
    read: manifest.counts.read,
    scored: manifest.counts.scored,
    rejected: manifest.counts.rejected,
    finishedAt: manifest.timings.finishedAt,
    manifestKey,
    ...(manifest.notice ? { notice: `[${manifest.notice.code}] ${manifest.notice.message}` } : {}),
    ...(manifest.error ? { error: `[${manifest.error.code}] ${manifest.error.message}` } : {}),
  };
}

/** Every run with a manifest, newest first, and the planned runs without one yet (RUNNING). */
export async function listRuns(objects: ObjectStore, bucket: string, model?: string): Promise<RunSummary[]> {
  const manifests = (await objects.list(bucket, model ? `results/${model}/` : 'results/')).filter((k) =>
    k.endsWith('/_manifest.json'),
  );
  const runs = await Promise.all(
    manifests.map(async (key) => summary(await readJson<RunManifest>(objects, bucket, key), key)),
  );
  const ended = new Set(runs.map((r) => r.runId));
  const plans = (await objects.list(bucket, 'runs/')).filter((k) => /^runs\/[^/]+\/plan\.json$/.test(k));
  for (const key of plans) {
    const runId = key.split('/')[1]!;
    if (ended.has(runId)) continue;
    const plan = await readJson<{ model: string; dataset: string; input: { key: string } }>(
      objects,
      bucket,
      key,
    );
    if (model && plan.model !== model) continue;
    runs.push({
      runId,
      status: 'RUNNING',
      model: plan.model,
      dataset: plan.dataset,
      input: plan.input.key,
      read: 0,
      scored: 0,
      rejected: 0,
    });
  }
  return runs.sort((a, b) => (b.finishedAt ?? '~').localeCompare(a.finishedAt ?? '~'));
}

export async function showRun(
  objects: ObjectStore,
  bucket: string,
  runId: string,
): Promise<{ manifestKey: string; manifest: RunManifest } | undefined> {
  const key = (await objects.list(bucket, 'results/')).find((k) => k.endsWith(`/${runId}/_manifest.json`));
  return key ? { manifestKey: key, manifest: await readJson<RunManifest>(objects, bucket, key) } : undefined;
}

export function runsTable(runs: readonly RunSummary[]): string {
  const lines = runs.map(
    (r) =>
      `${r.runId.padEnd(44)} ${r.status.padEnd(9)} ${r.model.padEnd(18)} ${String(r.scored).padStart(8)} ${String(r.rejected).padStart(8)}  ${r.input}${r.notice ? `  ${r.notice}` : ''}${r.error ? `  ${r.error}` : ''}`,
  );
  return [
    `${'RUN'.padEnd(44)} ${'STATUS'.padEnd(9)} ${'MODEL'.padEnd(18)} ${'SCORED'.padStart(8)} ${'REJECTED'.padStart(8)}  INPUT`,
    ...lines,
  ].join('\n');
}

export interface StartedRun {
  readonly runId: string;
  /** Local: the run's summary once it ended. */
  readonly result?: RunSummary;
  /** Deployed: where the manifest will be. */
  readonly manifestPrefix?: string;
}

/** Starts a run of every data file under a prefix of the target's data bucket. */
export async function startRun(
  target: Target,
  model: string,
  prefix: string,
  options: Partial<BatchOptions> = {},
): Promise<StartedRun> {
  const objects = new S3ObjectStore(target.s3);
  const request = { bucket: target.bucket, model, prefix, options };
  if (target.local) {
    const endpoints = target.local;
    const dynamo = new DynamoDBClient({
      endpoint: endpoints.dynamoEndpoint,
      region: endpoints.region,
      credentials: endpoints.credentials,
    });
    const capture = localCapture('batch', objects, target.bucket, (line) =>
      process.stderr.write(`${line}\n`),
    );
    const runner = new LocalBatchRunner({
      bucket: target.bucket,
      objects,
      models: new S3ModelSource(target.s3, target.bucket, endpoints.modelsPrefix),
      predictions: new DynamoDbPredictionStore(dynamo, endpoints.table, 4),
      ...(capture ? { capture } : {}),
    });
    try {
      const started = await startFolderRun(request, runner);
      const run = runner.run(started.runId);
      if (!run) throw new Error(`no run started for ${prefix}`);
      const result = await run.result;
      const manifest = await readJson<RunManifest>(objects, target.bucket, result.manifestKey);
      return { runId: started.runId, result: summary(manifest, result.manifestKey) };
    } finally {
      await runner.close();
      dynamo.destroy();
    }
  }
  if (!target.stateMachineArn) throw new Error(`${target.label} has no BatchStateMachineArn output`);
  const sfn = new SFNClient(target.region ? { region: target.region } : {});
  try {
    const started = await startFolderRun(request, new StepFunctionsRunStarter(sfn, target.stateMachineArn));
    return {
      runId: started.runId,
      manifestPrefix: resultsPrefix(model, folderDatasetName(prefix), started.runId),
    };
  } finally {
    sfn.destroy();
  }
}
