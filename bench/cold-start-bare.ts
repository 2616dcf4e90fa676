/**
 * Cold-start child, "bare": bundled and run like cold-start-handler.ts. Loads onnxruntime, creates a
 * session on the ZipMap-free model file (BENCH_MODEL_FILE) with the same SESSION_OPTIONS
 * (BENCH_SESSION_OPTIONS, JSON), and runs the same payload once. Prints the same marked JSON line.
 */
import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { bareEncoder, type BareLayout } from './bare-encoder.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const session = await ort.InferenceSession.create(
  await readFile(env('BENCH_MODEL_FILE')),
  JSON.parse(env('BENCH_SESSION_OPTIONS')) as ort.InferenceSession.SessionOptions,
);
const initMs = performance.now();
const encode = bareEncoder(JSON.parse(env('BENCH_LAYOUT')) as BareLayout);
const { features } = JSON.parse(env('BENCH_PAYLOAD')) as { features: Record<string, unknown> };
const results = await session.run(encode(features), ['probabilities']);
const firstPredictionMs = performance.now();
const ok = results['probabilities'] !== undefined;
process.stdout.write(`BENCH_RESULT ${JSON.stringify({ ok, initMs, firstPredictionMs })}\n`, () =>
  process.exit(0),
);
