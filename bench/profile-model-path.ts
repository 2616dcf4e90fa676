/**
 * Profiling workload for the model path: the predict handler in-process, as in the realtime section
 * (`{id, features, bypassCache: true}`), then the bare session.run of the same row. The model is read
 * from the repo's models/ folder and no table is set (bypassCache never reads it), so no embedded
 * server shares the profile. Each loop is profiled after its own warm-up (inspector-profile.ts).
 * argv: <output folder> [iterations]. Started by profile.ts; sends {kind: 'result', data: {...}}.
 */
import path from 'node:path';
import ort from 'onnxruntime-node';
import { SESSION_OPTIONS } from '../lambdas/core/model-loader.ts';
import { apiEvent, lambdaContext } from '../test/support/api-events.ts';
import { DEPLOYED_HANDLER_ENV, runChild, sendToParent } from './child.ts';
import {
  bareEncoder,
  demoRow,
  DEMO_MODEL,
  MODELS_DIR,
  PROBABILITIES_OUTPUT,
  readDemoManifest,
  unzippedModelBytes,
} from './demo.ts';
import { startProfiling } from './inspector-profile.ts';

runChild(async () => {
  const [dir, iterationsText = '30000'] = process.argv.slice(2);
  if (!dir) throw new Error('usage: profile-model-path.ts <output folder> [iterations]');
  const iterations = Number(iterationsText);
  Object.assign(process.env, DEPLOYED_HANDLER_ENV, { MODELS_URI: MODELS_DIR, DEFAULT_MODEL: DEMO_MODEL });
  delete process.env['TABLE_NAME'];
  const { handler } = await import('../lambdas/handlers/predict.ts');

  const row = await demoRow(0);
  const body = JSON.stringify({ id: row.id, features: row.features, bypassCache: true });
  const context = lambdaContext();
  const session = await ort.InferenceSession.create(await unzippedModelBytes(), SESSION_OPTIONS);
  const encode = bareEncoder(await readDemoManifest());

  const loop = async (n: number, call: () => Promise<boolean>): Promise<number> => {
    let failed = 0;
    for (let i = 0; i < n; i++) if (!(await call())) failed++;
    return failed;
  };
  const viaHandler = async () =>
    (await handler(apiEvent('POST', '/predict', body), context)).statusCode === 200;
  const bare = async () =>
    (await session.run(encode(row.features), [PROBABILITIES_OUTPUT]))[PROBABILITIES_OUTPUT] !== undefined;

  const files = { handler: path.join(dir, 'handler.cpuprofile'), bare: path.join(dir, 'bare.cpuprofile') };
  const wallMs = { handler: 0, bare: 0 };
  let failed = 0;
  for (const [name, call] of [
    ['handler', viaHandler],
    ['bare', bare],
  ] as const) {
    failed += await loop(Math.max(2000, iterations / 5), call);
    const stop = await startProfiling();
    const start = performance.now();
    failed += await loop(iterations, call);
    wallMs[name] = performance.now() - start;
    await stop(files[name]);
  }
  await sendToParent({ kind: 'result', data: { iterations, failed, files, wallMs } });
});
