/**
 * What onnxruntime alone costs on the batch section's rows: the first <rows> rows of the CSV are turned into
 * the demo model's input tensors first (untimed, with the batch lane's own parsing), then session.run is
 * timed over them in runs of 1,024 rows, on one onnxruntime thread (SESSION_OPTIONS), as one scoring
 * thread runs them. argv: <file.csv> <rows> <timed passes>. Prints one JSON line: {rows, seconds: [...]}.
 */
import { createReadStream } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { CsvFastPath } from '../lambdas/core/batch/csv-fast-path.ts';
import { FeedBatch, stringDictionaries } from '../lambdas/core/batch/feed-batch.ts';
import { feedStrings } from '../lambdas/core/batch/scoring-thread.ts';
import { readCsvSpans } from '../lambdas/core/codecs/csv-reader.ts';
import { compileModel, SESSION_OPTIONS } from '../lambdas/core/model-loader.ts';
import { fetchedOutputs } from '../lambdas/core/predictions.ts';
import { MANIFEST_FILE, MODEL_FILE } from './demo.ts';

const RUN_ROWS = 1024;
const [file, rowsText = '50000', passesText = '3'] = process.argv.slice(2);
if (!file) throw new Error('usage: batch-ort-child.ts <file.csv> [rows] [passes]');
const limit = Number(rowsText);

const compiled = compileModel({
  manifest: JSON.parse(await readFile(MANIFEST_FILE, 'utf8')) as unknown,
  modelBytes: await readFile(MODEL_FILE),
});
const dictionaries = stringDictionaries(compiled.manifest, compiled.inputPlans);
const handle = await open(file);
const start = Buffer.alloc(64 * 1024);
const { bytesRead } = await handle.read(start, 0, start.length, 0);
await handle.close();
const head = start.toString('latin1', 0, bytesRead).split('\n', 1)[0]!;
const header = head.split(',');
const fast = new CsvFastPath(compiled.manifest, compiled.inputPlans, dictionaries, header, ',', []);

const feeds: Record<string, ort.Tensor>[] = [];
let batch = new FeedBatch(compiled.inputPlans, RUN_ROWS, dictionaries);
const take = () => {
  const tensors: Record<string, ort.Tensor> = {};
  for (const feed of batch.feeds()) {
    tensors[feed.name] =
      feed.type === 'string'
        ? new ort.Tensor(
            'string',
            feedStrings(feed.codes, dictionaries.values[feed.input] ?? [], feed.extras),
            feed.dims,
          )
        : new ort.Tensor(feed.type, feed.data as Float32Array, feed.dims);
  }
  feeds.push(tensors);
  batch = new FeedBatch(compiled.inputPlans, RUN_ROWS, dictionaries);
};
let rows = 0;
const stream = createReadStream(path.resolve(file), { start: Buffer.byteLength(head) + 1 });
reading: for await (const span of readCsvSpans(stream, { delimiter: ',', firstRow: 1, firstLine: 2 })) {
  for (let k = 0; k < span.count; k++) {
    if (rows === limit) break reading;
    if (!fast.tryFill(span, k, batch)) throw new Error(`row ${span.firstRow + k} is not a plain valid row`);
    rows++;
    if (batch.full) take();
  }
}
if (batch.count > 0) take();
stream.destroy();

const session = await ort.InferenceSession.create(compiled.graphBytes, SESSION_OPTIONS);
const fetches = fetchedOutputs(compiled.outputPlan);
for (const tensors of feeds.slice(0, 20)) await session.run(tensors, fetches);
const seconds: number[] = [];
for (let pass = 0; pass < Number(passesText); pass++) {
  const started = process.hrtime.bigint();
  for (const tensors of feeds) await session.run(tensors, fetches);
  seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
}
await session.release();
process.stdout.write(`${JSON.stringify({ rows, seconds })}\n`);
