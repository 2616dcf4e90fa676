/** The precomputed predictions table (contract in ARCHITECTURE.md) behind the PredictionStore port. */
import {
  BatchGetItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type BatchGetItemCommandOutput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { predictionKey, type StoredPrediction } from '../core/cache-policy.ts';
import { PredictionStoreError, type PredictionStoreErrorCode } from '../core/errors.ts';
import type { PredictionStore } from '../core/ports.ts';
import type { Prediction } from '../core/predictions.ts';

/**
 * BatchGetItem takes at most 100 keys per call. Reads fetch whole items: a projection would leave out
 * only `model` and `sourceRow` (a few bytes), consumes the same read capacity (DynamoDB charges for the
 * whole item) and is one more expression for the server to parse on every read.
 */
const BATCH_GET_LIMIT = 100;

export function toItem(p: StoredPrediction): Record<string, AttributeValue> {
  return marshall(
    {
      pk: predictionKey(p.model, p.modelVersion, p.entityId),
      model: p.model,
      entityId: p.entityId,
      prediction: p.prediction,
      modelVersion: p.modelVersion,
      computedAt: p.computedAt,
      expiresAt: p.expiresAt,
      source: p.source,
      ...(p.runId === undefined ? {} : { runId: p.runId }),
      ...(p.sourceRow === undefined ? {} : { sourceRow: p.sourceRow }),
      ...(p.eventTime === undefined ? {} : { eventTime: p.eventTime }),
    },
    { removeUndefinedValues: true },
  );
}

export function fromItem(item: Record<string, AttributeValue>): StoredPrediction | undefined {
  const raw = unmarshall(item) as Record<string, unknown>;
  const pk = raw['pk'];
  // <model>#<version>#<entityId>
  const separator = typeof pk === 'string' ? pk.indexOf('#') : -1;
  const versionEnd = separator < 0 ? -1 : (pk as string).indexOf('#', separator + 1);
  if (typeof pk !== 'string' || versionEnd < 0) return undefined;
  const { prediction, modelVersion, computedAt, expiresAt, runId, source } = raw;
  if (
    typeof prediction !== 'object' ||
    prediction === null ||
    typeof modelVersion !== 'string' ||
    typeof computedAt !== 'number' ||
    typeof expiresAt !== 'number'
  ) {
    return undefined;
  }
  return {
    model: pk.slice(0, separator),
    entityId: typeof raw['entityId'] === 'string' ? raw['entityId'] : pk.slice(versionEnd + 1),
    prediction: prediction as Prediction,
    modelVersion,
    computedAt,
    expiresAt,
    source: source === 'online' || source === 'stream' ? source : 'batch',
    ...(typeof runId === 'string' ? { runId } : {}),
    ...(typeof raw['eventTime'] === 'number' ? { eventTime: raw['eventTime'] } : {}),
    ...(typeof raw['sourceRow'] === 'number' ? { sourceRow: raw['sourceRow'] } : {}),
  };
}

/**
 * An item is replaced only by one computed later. Within one batch run (same computedAt), the later
 * dataset row wins, so duplicate ids give the same table whatever order chunks run in, and a re-run
 * chunk rewrites identical items.
 */
function writeCondition(item: StoredPrediction) {
  if (item.eventTime !== undefined) return streamWriteCondition(item.eventTime, item.modelVersion);
  const values: Record<string, AttributeValue> = { ':computedAt': { N: String(item.computedAt) } };
  if (item.runId === undefined || item.sourceRow === undefined) {
    return {
      ConditionExpression: 'attribute_not_exists(pk) OR computedAt < :computedAt',
      ExpressionAttributeValues: values,
    };
  }
  values[':runId'] = { S: item.runId };
  values[':sourceRow'] = { N: String(item.sourceRow) };
  return {
    ConditionExpression:
      'attribute_not_exists(pk) OR computedAt < :computedAt OR (computedAt = :computedAt AND runId = :runId AND sourceRow <= :sourceRow)',
    ExpressionAttributeValues: values,
  };
}

/**
 * Stream items: an event replaces the item unless the item holds a newer event of the same model
 * version (events are retried and arrive out of order; the scoring time says nothing about them). An
 * equal event time rewrites (a redelivered record). Items without an event time (batch, online) are
 * replaced, as any later computation replaces them.
 */
function streamWriteCondition(eventTime: number, modelVersion: string) {
  return {
    ConditionExpression:
      'attribute_not_exists(pk) OR attribute_not_exists(eventTime) OR modelVersion <> :modelVersion OR eventTime <= :eventTime',
    ExpressionAttributeValues: {
      ':eventTime': { N: String(eventTime) },
      ':modelVersion': { S: modelVersion },
    } satisfies Record<string, AttributeValue>,
  };
}

/** By name: the SDK's class is imported lazily (below), and an error may come from another copy of it. */
function isConditionalCheckFailure(error: unknown): boolean {
  return (error as { name?: string } | null)?.name === 'ConditionalCheckFailedException';
}

const THROTTLING = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

/** The port's kind of a DynamoDB SDK (or socket) error. */
export function storeErrorCode(error: unknown): PredictionStoreErrorCode {
  const e = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } } | null;
  const name = typeof e?.name === 'string' ? e.name : '';
  if (THROTTLING.has(name)) return 'STORE_THROTTLED';
  if (name === 'ResourceNotFoundException') return 'STORE_TABLE_MISSING';
  if (name === 'AccessDeniedException' || name === 'UnrecognizedClientException') return 'STORE_FORBIDDEN';
  // Before the name: the SDK renames socket errors such as ECONNRESET to TimeoutError, keeping the code.
  if (typeof e?.code === 'string' && UNREACHABLE.has(e.code)) return 'STORE_UNREACHABLE';
  // The SDK's request timeout, or the caller's signal ending the call at its time budget.
  if (name === 'TimeoutError' || name === 'AbortError') return 'STORE_TIMEOUT';
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500) return 'STORE_SERVER_ERROR';
  return 'STORE_FAILED';
}

/**
 * The SDK error as the port's: its message is the SDK error's name, socket code and message (for logs
 * and run manifests; API callers are told only the kind, in plain words), the SDK error its cause.
 */
export function toStoreError(error: unknown): PredictionStoreError {
  if (error instanceof PredictionStoreError) return error;
  const e = error as { name?: unknown; code?: unknown; message?: unknown } | null;
  const name = typeof e?.name === 'string' ? e.name : 'Error';
  const described = typeof e?.code === 'string' && e.code !== name ? `${name} ${e.code}` : name;
  const message = typeof e?.message === 'string' && e.message !== '' ? `: ${e.message.slice(0, 300)}` : '';
  return new PredictionStoreError(storeErrorCode(error), `${described}${message}`, { cause: error });
}

/** "Too many requests right now": the write may succeed later, slower (the caller sends it again). */
function isThrottling(error: unknown): boolean {
  return storeErrorCode(error) === 'STORE_THROTTLED';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });
}

export class DynamoDbPredictionStore implements PredictionStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly writeConcurrency = 32,
  ) {}

  async getMany(keys: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPrediction>> {
    try {
      return await this.read(keys, signal);
    } catch (error) {
      throw toStoreError(error);
    }
  }

  async putMany(
    items: readonly StoredPrediction[],
    signal?: AbortSignal,
  ): Promise<{ written: number; skipped: number; unprocessed: readonly StoredPrediction[] }> {
    try {
      return await this.write(items, signal);
    } catch (error) {
      throw toStoreError(error);
    }
  }

  private async read(keys: readonly string[], signal?: AbortSignal): Promise<Map<string, StoredPrediction>> {
    const found = new Map<string, StoredPrediction>();
    if (keys.length === 1) {
      // One key: GetItem is one round trip too, and cheaper to serve than a BatchGetItem.
      const response = await this.client.send(
        new GetItemCommand({ TableName: this.tableName, Key: { pk: { S: keys[0]! } } }),
        { abortSignal: signal },
      );
      const stored = response.Item ? fromItem(response.Item) : undefined;
      if (stored) found.set(predictionKey(stored.model, stored.modelVersion, stored.entityId), stored);
      return found;
    }
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) chunks.push(keys.slice(i, i + BATCH_GET_LIMIT));
    // All chunks at once: one round trip whatever the number of keys.
    await Promise.all(chunks.map((chunk) => this.getChunk(chunk, found, signal)));
    return found;
  }

  private async write(
    items: readonly StoredPrediction[],
    signal?: AbortSignal,
  ): Promise<{ written: number; skipped: number; unprocessed: readonly StoredPrediction[] }> {
    let written = 0;
    let skipped = 0;
    let next = 0;
    let failure: { error: unknown } | undefined;
    const throttled: StoredPrediction[] = [];
    // Conditional writes cannot go through BatchWriteItem: one PutItem each, a bounded number in flight.
    // After a failure or a throttled write (past the SDK's own retries) no new write starts; the error is
    // thrown once the writes in flight have settled, so a caller that retries never races writes of the
    // attempt that failed. Throttled and unstarted items come back as `unprocessed`, for the caller to
    // send again at a lower rate.
    const worker = async () => {
      while (next < items.length && failure === undefined && throttled.length === 0) {
        const item = items[next++]!;
        try {
          await this.client.send(
            new PutItemCommand({ TableName: this.tableName, Item: toItem(item), ...writeCondition(item) }),
            { abortSignal: signal },
          );
          written++;
        } catch (error) {
          if (isConditionalCheckFailure(error)) skipped++;
          else if (isThrottling(error) && !signal?.aborted) throttled.push(item);
          else failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.writeConcurrency, items.length) }, worker));
    if (failure) throw failure.error;
    return { written, skipped, unprocessed: [...throttled, ...items.slice(next)] };
  }

  private async getChunk(
    keys: string[],
    found: Map<string, StoredPrediction>,
    signal?: AbortSignal,
  ): Promise<void> {
    let pending: Record<string, AttributeValue>[] = keys.map((pk) => ({ pk: { S: pk } }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(Math.min(200, 10 * 2 ** attempt) * Math.random(), signal);
      const response: BatchGetItemCommandOutput = await this.client.send(
        new BatchGetItemCommand({
          RequestItems: { [this.tableName]: { Keys: pending } },
        }),
        { abortSignal: signal },
      );
      for (const item of response.Responses?.[this.tableName] ?? []) {
        const stored = fromItem(item);
        if (stored) found.set(predictionKey(stored.model, stored.modelVersion, stored.entityId), stored);
      }
      // Throttled reads come back as UnprocessedKeys: retried with jittered backoff until the budget ends.
      pending = response.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
    }
  }
}
