/**
 * Cold-start child, "ours": bundled by cold-start.ts (as Lambda runs a bundle) and run as a fresh
 * `node` process. Imports the API Lambda (module load + the default model loaded from MODELS_URI by
 * its top-level await), then answers one prediction through the handler. Prints one JSON line marked
 * `BENCH_RESULT ` (the handler's own log lines go to stdout too): {ok, initMs, firstPredictionMs}
 * (milliseconds since this process started) and exits.
 */
import { handler } from '../lambdas/handlers/predict.ts';
import { apiEvent, lambdaContext } from '../test/support/api-events.ts';

const initMs = performance.now();
const result = await handler(
  apiEvent('POST', '/predict', process.env['BENCH_PAYLOAD'] ?? ''),
  lambdaContext(),
);
const firstPredictionMs = performance.now();
const ok = result.statusCode === 200 && (JSON.parse(result.body) as { source?: string }).source === 'model';
process.stdout.write(
  `BENCH_RESULT ${JSON.stringify({ ok, initMs, firstPredictionMs, ...(ok ? {} : { body: result.body.slice(0, 500) }) })}\n`,
  () => process.exit(0),
);
