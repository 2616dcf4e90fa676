/**
 * The real-time measurements (see realtime.ts), run in a process of their own. Started by the bench
 * runner with the options as JSON in argv[2]; sends {kind: 'result', data: RealtimeRaw}.
 */
import { BatchGetItemCommand, GetItemCommand } from '@aws-sdk/client-dynamodb';
import ort from 'onnxruntime-node';
import { DynamoDbPredictionStore } from '../lambdas/adapters/dynamodb-prediction-store.ts';
import { predictionKey, storedPrediction } from '../lambdas/core/cache-policy.ts';
import { SESSION_OPTIONS } from '../lambdas/core/model-loader.ts';
import { LOCAL_TABLE, startLocalStack } from '../local/stack.ts';
import { apiEvent, lambdaContext } from '../test/support/api-events.ts';
import { DEPLOYED_HANDLER_ENV, runChild, sendToParent } from './child.ts';
import {
  bareEncoder,
  demoRow,
  DEMO_MODEL,
  DEMO_VERSION,
  PROBABILITIES_OUTPUT,
  positiveProbability,
  readDemoManifest,
  unzippedModelBytes,
} from './demo.ts';
import type { RealtimeOptions, RealtimeRaw } from './realtime.ts';
import { nsToUs, percentile, summarize } from './stats.ts';

/** One measured side: one call, timed with hrtime; returns microseconds and whether it answered right. */
interface Side {
  readonly name: string;
  once(): Promise<{ us: number; ok: boolean }>;
}

/** A side whose `prepare` (untimed) builds the arguments of the timed `call`. */
function side<P>(name: string, prepare: () => P, call: (prepared: P) => Promise<boolean>): Side {
  return {
    name,
    once: async () => {
      const prepared = prepare();
      const start = process.hrtime.bigint();
      const ok = await call(prepared);
      return { us: nsToUs(process.hrtime.bigint() - start), ok };
    },
  };
}

class Recorder {
  readonly samples: number[] = [];
  failures = 0;
}

async function timeBlock(measured: Side, n: number, into: Recorder | undefined): Promise<number[]> {
  const block: number[] = [];
  for (let i = 0; i < n; i++) {
    const { us, ok } = await measured.once();
    if (into) {
      into.samples.push(us);
      block.push(us);
      if (!ok) into.failures++;
    }
  }
  return block;
}

/**
 * Runs the sides in alternating blocks (rotating which goes first) after a warm-up of each; returns
 * every side's samples and, for each block, the p50 of `sides[1]` over the p50 of `sides[0]`.
 */
async function sideBySide(sides: readonly Side[], iterations: number, warmup: number, blockSize: number) {
  const recorders = sides.map(() => new Recorder());
  for (let done = 0; done < warmup; done += blockSize) {
    for (const measured of sides) await timeBlock(measured, Math.min(blockSize, warmup - done), undefined);
  }
  const blockRatios: number[] = [];
  for (let b = 0, done = 0; done < iterations; b++, done += blockSize) {
    const n = Math.min(blockSize, iterations - done);
    const p50s = new Array<number>(sides.length);
    for (let k = 0; k < sides.length; k++) {
      const index = (k + b) % sides.length;
      p50s[index] = percentile(await timeBlock(sides[index]!, n, recorders[index]), 50);
    }
    blockRatios.push(p50s[1]! / p50s[0]!);
  }
  return { recorders, blockRatios };
}

runChild(async () => {
  const options = JSON.parse(process.argv[2] ?? '{}') as RealtimeOptions;
  // The deployed function's defaults: INFO logs and published metrics go to this process's stdout, a pipe
  // to the bench runner, as a function's go to the Lambda runtime.
  const stack = await startLocalStack({ apiPort: 0, seed: false, handlerEnv: { ...DEPLOYED_HANDLER_ENV } });
  try {
    // The module startLocalStack imported (one handler configuration per process): the same instance.
    const { handler } = await import('../lambdas/handlers/predict.ts');
    const { dynamoClient } = await import('../lambdas/adapters/aws-clients.ts');
    const manifest = await readDemoManifest();
    const row = await demoRow(0);

    const modelBody = JSON.stringify({ id: row.id, features: row.features, bypassCache: true });
    const cacheBody = JSON.stringify({ id: row.id });

    // The model's own answer for the row, checked against the bare run and stored as the cached item.
    const first = await handler(apiEvent('POST', '/predict', modelBody), lambdaContext());
    if (first.statusCode !== 200) throw new Error(`model path answered ${first.statusCode}: ${first.body}`);
    const answer = JSON.parse(first.body) as {
      source: string;
      prediction: { label: number; probabilities: Record<string, number> };
    };
    if (answer.source !== 'model') throw new Error(`model path answered from ${answer.source}`);

    // Seeded as the batch lane writes it (same item layout: toItem of a StoredPrediction).
    await new DynamoDbPredictionStore(stack.dynamo, LOCAL_TABLE).putMany([
      storedPrediction(
        {
          model: DEMO_MODEL,
          entityId: row.id,
          prediction: answer.prediction,
          modelVersion: DEMO_VERSION,
          computedAt: Date.now(),
          source: 'batch',
          runId: 'bench-seed',
          sourceRow: 1,
        },
        manifest.cache.ttlSeconds,
      ),
    ]);
    const hit = await handler(apiEvent('POST', '/predict', cacheBody), lambdaContext());
    if (hit.statusCode !== 200 || (JSON.parse(hit.body) as { source: string }).source !== 'cache') {
      throw new Error(`the seeded id was not a cache hit: ${hit.statusCode} ${hit.body}`);
    }

    const session = await ort.InferenceSession.create(await unzippedModelBytes(), SESSION_OPTIONS);
    const encode = bareEncoder(manifest);
    const bareCheck = positiveProbability(await session.run(encode(row.features), [PROBABILITIES_OUTPUT]));
    const handlerCheck = answer.prediction.probabilities['1'] ?? NaN;
    if (!(Math.abs(bareCheck - handlerCheck) < 1e-5)) {
      throw new Error(`bare run and handler disagree: ${bareCheck} vs ${handlerCheck}`);
    }

    const handlerSide = (name: string, body: string, expectCache: string): Side => {
      const context = lambdaContext();
      return side(
        name,
        () => apiEvent('POST', '/predict', body),
        async (event) => {
          const result = await handler(event, context);
          return result.statusCode === 200 && result.headers?.['x-tandem-cache'] === expectCache;
        },
      );
    };
    // Tensors are built inside the timed call: any server must build them for each request.
    const bareOrt = side(
      'ort',
      () => undefined,
      async () =>
        (await session.run(encode(row.features), [PROBABILITIES_OUTPUT]))[PROBABILITIES_OUTPUT] !== undefined,
    );
    const model = await sideBySide(
      [bareOrt, handlerSide('handler-model', modelBody, 'bypassed')],
      options.modelIterations,
      options.modelWarmup,
      options.blockSize,
    );

    const client = dynamoClient();
    const key = { pk: { S: predictionKey(DEMO_MODEL, DEMO_VERSION, row.id) } };
    const getItem = side(
      'sdk-get',
      () => undefined,
      async () =>
        (await client.send(new GetItemCommand({ TableName: LOCAL_TABLE, Key: key }))).Item !== undefined,
    );
    // What the store sends for several keys (BatchGetItem), for one key, as an extra figure.
    const batchGet = side(
      'sdk-batch-get',
      () => undefined,
      async () => {
        const response = await client.send(
          new BatchGetItemCommand({ RequestItems: { [LOCAL_TABLE]: { Keys: [key] } } }),
        );
        return response.Responses?.[LOCAL_TABLE]?.length === 1;
      },
    );
    // Bare GetItem first, the handler second (the ratio is handler / GetItem); BatchGetItem third.
    const cache = await sideBySide(
      [getItem, handlerSide('handler-cache', cacheBody, 'used'), batchGet],
      options.cacheIterations,
      options.cacheWarmup,
      Math.max(10, Math.round(options.blockSize / 2)),
    );
    await session.release();

    const [ortRec, handlerModelRec] = model.recorders;
    const [getRec, handlerCacheRec, batchGetRec] = cache.recorders;
    const raw: RealtimeRaw = {
      ort: summarize(ortRec!.samples),
      handlerModel: summarize(handlerModelRec!.samples),
      modelBlockRatios: summarize(model.blockRatios),
      sdkGet: summarize(getRec!.samples),
      sdkBatchGet: summarize(batchGetRec!.samples),
      handlerCache: summarize(handlerCacheRec!.samples),
      cacheBlockRatios: summarize(cache.blockRatios),
      errors: {
        model: handlerModelRec!.failures + ortRec!.failures,
        cache: handlerCacheRec!.failures + getRec!.failures + batchGetRec!.failures,
      },
      check: { handler: handlerCheck, bare: bareCheck },
      seededId: row.id,
    };
    await sendToParent({ kind: 'result', data: raw });
  } finally {
    await stack.stop();
  }
});
