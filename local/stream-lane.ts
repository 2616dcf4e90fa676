/**
 * The stream lane in the local stack: both streams created on the embedded Kinesis (kinesalite), the
 * consumer handler (the same createStreamHandler the Lambda runs) fed by the local poller with the
 * event source mapping's semantics and settings, checkpoints under the data folder, and batches that
 * exhausted their retries written to `failed/stream/` in the data bucket (the local on-failure
 * destination; deployed, an SQS queue).
 */
import path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import type { S3Client } from '@aws-sdk/client-s3';
import { DynamoDbPredictionStore } from '../lambdas/adapters/dynamodb-prediction-store.ts';
import { KinesisStream } from '../lambdas/adapters/kinesis-stream.ts';
import { S3ModelSource } from '../lambdas/adapters/s3-model-source.ts';
import { S3ObjectStore } from '../lambdas/adapters/s3-object-store.ts';
import type { CaptureBuffer } from '../lambdas/core/capture/capture-buffer.ts';
import { ModelRegistry } from '../lambdas/core/model-registry.ts';
import type { PredictionStore } from '../lambdas/core/ports.ts';
import type { RecordPublisher } from '../lambdas/core/stream/micro-batch.ts';
import {
  DEFAULT_STREAM_SETTINGS,
  streamSettingsEnvironment,
  type StreamSettings,
} from '../lambdas/core/settings.ts';
import { createStreamHandler } from '../lambdas/handlers/stream/stream-handler.ts';
import type { EmbeddedAws } from './embedded-aws.ts';
import { ensureStream } from './kinesis-streams.ts';
import { StreamPoller, type FailedBatch, type StreamHandler } from './stream-poller.ts';

export interface LocalStreamOptions {
  /** Settings of the lane (defaults: lambdas/core/settings.ts). */
  readonly settings?: Partial<StreamSettings>;
  /** Fault injection for tests: wrap what the consumer writes to, or the handler itself. */
  readonly wrapStore?: (store: PredictionStore) => PredictionStore;
  readonly wrapPublisher?: (publisher: RecordPublisher) => RecordPublisher;
  readonly wrapHandler?: (handler: StreamHandler) => StreamHandler;
  /** @default 100 */
  readonly pollIntervalMs?: number;
}

export interface LocalStreamLane {
  readonly settings: StreamSettings;
  readonly kinesis: KinesisClient;
  readonly input: KinesisStream;
  readonly poller: StreamPoller;
  stop(): Promise<void>;
}

/** The API handler's stream settings (POST /events), as the deployed stack sets them. */
export function streamEnv(settings: StreamSettings): Record<string, string> {
  return streamSettingsEnvironment(settings);
}

export const FAILED_STREAM_PREFIX = 'failed/stream/';

export async function startStreamLane(deps: {
  readonly aws: EmbeddedAws;
  readonly s3: S3Client;
  readonly dynamo: DynamoDBClient;
  readonly bucket: string;
  readonly table: string;
  readonly defaultModel: string;
  readonly dataDir: string | undefined;
  readonly log: (line: string) => void;
  readonly options: LocalStreamOptions;
  /** Data capture of the consumer's scored events; the caller flushes it. */
  readonly capture?: CaptureBuffer;
}): Promise<LocalStreamLane> {
  const { options } = deps;
  const settings: StreamSettings = { ...DEFAULT_STREAM_SETTINGS, ...options.settings, streamLane: true };
  const kinesis = new KinesisClient(deps.aws.clientConfig('kinesis'));
  await ensureStream(kinesis, settings.inputStreamName);
  await ensureStream(kinesis, settings.outputStreamName);
  const objects = new S3ObjectStore(deps.s3);
  const registry = new ModelRegistry(new S3ModelSource(deps.s3, deps.bucket, 'models/'), {
    defaultModel: deps.defaultModel,
    refreshSeconds: 10,
    retryFailedSeconds: 2,
  });
  const store: PredictionStore = new DynamoDbPredictionStore(deps.dynamo, deps.table, 4);
  const publisher: RecordPublisher = new KinesisStream(kinesis, settings.outputStreamName);
  const handler: StreamHandler = createStreamHandler({
    models: registry,
    store: options.wrapStore ? options.wrapStore(store) : store,
    publisher: options.wrapPublisher ? options.wrapPublisher(publisher) : publisher,
    objects,
    bucket: deps.bucket,
    maxEventBytes: settings.maxEventBytes,
    ...(deps.capture ? { capture: deps.capture } : {}),
    log: {
      info: () => undefined,
      warn: (message, extra) => deps.log(`[stream] ${message} ${JSON.stringify(extra)}`),
      error: (message, extra) =>
        deps.log(`[stream] ${message}: ${String((extra['error'] as Error | undefined)?.message ?? '')}`),
    },
  });
  const poller = new StreamPoller({
    client: kinesis,
    streamName: settings.inputStreamName,
    settings,
    handler: options.wrapHandler ? options.wrapHandler(handler) : handler,
    checkpointFile:
      deps.dataDir === undefined
        ? undefined
        : path.resolve(deps.dataDir, 'stream-checkpoints', `${settings.inputStreamName}.json`),
    onFailure: async (batch: FailedBatch) => {
      const key = `${FAILED_STREAM_PREFIX}${batch.shardId}/${batch.startSequenceNumber}-${batch.endSequenceNumber}.json`;
      await objects.writeBytes(deps.bucket, key, JSON.stringify(batch, null, 2), 'application/json');
    },
    pollIntervalMs: options.pollIntervalMs ?? 100,
    log: (line) => deps.log(`[stream] ${line}`),
  });
  await poller.start();
  return {
    settings,
    kinesis,
    input: new KinesisStream(kinesis, settings.inputStreamName),
    poller,
    async stop() {
      await poller.stop();
      await registry.close();
      kinesis.destroy();
    },
  };
}
