/**
 * The chunk scorer's output against a reference built from the real-time lane's parts: the general CSV
 * decode (parseCsv), FeatureValidator.fromText, the served model's score() and JSON.stringify. For every
 * model shape of the zoo and the demo model, over random datasets with bad rows, with onnxruntime inline
 * and on a scoring thread, in small micro-batches and several chunks: the part files hold exactly the
 * reference's lines (same ids, rows, predictions, byte for byte) and the rejected files exactly its rows
 * and reasons. Also CSV output with pass-through columns, and JSON Lines input.
 */
import fc from 'fast-check';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { ChunkScorer } from '../../lambdas/core/batch/chunk-scorer.ts';
import type { BatchOptions, BatchPlan, RunManifest } from '../../lambdas/core/batch/contracts.ts';
import { planRun } from '../../lambdas/core/batch/planner.ts';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import type { FeatureIssue, FeatureRow } from '../../lambdas/core/features.ts';
import { loadModel, type ServedModel } from '../../lambdas/core/model-loader.ts';
import type { Prediction } from '../../lambdas/core/predictions.ts';
import { FsObjectStore } from '../../local/fs-object-store.ts';
import { allZooModels, type ZooFeatures } from '../support/model-zoo.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const REPO = path.resolve(import.meta.dirname, '../..');

interface Subject {
  readonly name: string;
  readonly version: string;
  readonly manifest: unknown;
  readonly modelBytes: Uint8Array;
  readonly rows: ZooFeatures[];
}

let root: string;
let subjects: Subject[];
const served = new Map<string, ServedModel>();
const scorers: ChunkScorer[] = [];

function text(value: unknown): string {
  return value === undefined ? '' : String(value);
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'tandem-chunk-paths-'));
  const demoManifest = JSON.parse(
    await readFile(path.join(REPO, 'models/fraud-detector/1.0.0/manifest.json'), 'utf8'),
  ) as { name: string; version: string; features: { name: string }[] };
  const [header, ...demoRows] = parseCsv(
    await readFile(path.join(REPO, 'models/fraud-detector/demo-transactions.csv'), 'utf8'),
  );
  subjects = [
    ...allZooModels().map((m) => ({
      name: m.name,
      version: m.manifest.version,
      manifest: m.manifest,
      modelBytes: m.modelBytes,
      rows: m.sampleRows,
    })),
    {
      name: demoManifest.name,
      version: demoManifest.version,
      manifest: demoManifest,
      modelBytes: await readFile(path.join(REPO, 'models/fraud-detector/1.0.0/model.onnx')),
      rows: demoRows
        .slice(0, 40)
        .map((r) => Object.fromEntries(header!.fields.slice(1).map((n, i) => [n, r.fields[i + 1]!]))),
    },
  ];
  for (const subject of subjects) {
    const dir = path.join(root, 'models', subject.name, subject.version);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'model.onnx'), subject.modelBytes);
    await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(subject.manifest));
    await writeFile(
      path.join(root, 'models', subject.name, 'current.json'),
      JSON.stringify({ version: subject.version }),
    );
    served.set(subject.name, await loadModel({ manifest: subject.manifest, modelBytes: subject.modelBytes }));
  }
  const objects = new FsObjectStore(path.join(root, 'store'));
  const models = new FsModelSource(path.join(root, 'models'));
  scorers.push(
    new ChunkScorer({ objects, models, scoringThreads: 0 }),
    new ChunkScorer({ objects, models, scoringThreads: 1 }),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(scorers.map((s) => s.close()));
  await Promise.all([...served.values()].map((m) => m.close()));
  await rm(root, { recursive: true, force: true });
}, 60_000);

/** Ways to spoil one field: each is either rejected or read the same way by both paths. */
const SPOILERS = ['', ' 1', 'x', '-1', '1e2', '9999999', 'TRUE', 'purple', '"quoted, text"', 'é', '2.5'];

/** A dataset: the subject's sample rows in random order, some fields spoiled, some rows ragged. */
function datasetArbitrary(subject: Subject, idField: string, names: readonly string[]) {
  const row = fc.record({
    sample: fc.nat(subject.rows.length - 1),
    spoil: fc.option(fc.tuple(fc.nat(names.length), fc.constantFrom(...SPOILERS)), { freq: 4 }),
    ragged: fc.boolean().map((b) => b && Math.random() < 0.1),
  });
  return fc
    .array(row, { minLength: 1, maxLength: 60 })
    .map((rows) =>
      rows.map(({ sample, spoil, ragged }, i) => {
        const fields = [
          `${subject.name}-${i % 7 === 6 ? 'dup' : i}`,
          ...names.map((n) => text(subject.rows[sample]![n])),
        ];
        if (spoil) fields[spoil[0]] = spoil[1];
        if (ragged) fields.push('extra');
        return fields;
      }),
    )
    .map((rows) => ({ header: [idField, ...names], rows }));
}

interface Expected {
  readonly lines: string[];
  readonly rejected: { row: number; reason: string }[];
}

/** Where the chunk scorer's micro-batches start: at each chunk, then every microBatchRows scored rows. */
interface Batching {
  readonly chunkFirstRows: readonly number[];
  readonly microBatchRows: number;
}

/**
 * Scores rows in the chunk scorer's groups: onnxruntime's float results for a row can depend on the size
 * of the batch it is in (LinearClassifier's vectorized softmax, say), in the real-time lane as much as here.
 */
async function scoreInGroups(
  model: ServedModel,
  rows: readonly { row: number; features: FeatureRow }[],
  batching: Batching,
): Promise<Prediction[]> {
  const predictions: Prediction[] = [];
  let group: FeatureRow[] = [];
  let chunk = 0;
  for (const { row, features } of rows) {
    let next = chunk;
    while (next + 1 < batching.chunkFirstRows.length && row >= batching.chunkFirstRows[next + 1]!) next++;
    if (group.length > 0 && (next !== chunk || group.length === batching.microBatchRows)) {
      predictions.push(...(await model.score(group)));
      group = [];
    }
    chunk = next;
    group.push(features);
  }
  if (group.length > 0) predictions.push(...(await model.score(group)));
  return predictions;
}

/** The reference: the general decode and the real-time lane's validator and model. */
async function reference(
  subject: Subject,
  csvText: string,
  passThrough: readonly string[],
  batching: Batching,
): Promise<Expected> {
  const model = served.get(subject.name)!;
  const [header, ...records] = parseCsv(csvText);
  const fields = header!.fields;
  const columns = model.validator.names.map((n) => fields.indexOf(n));
  const idColumn = fields.indexOf(model.manifest.idField);
  const accepted: {
    id: string;
    row: number;
    features: FeatureRow;
    input: unknown[];
  }[] = [];
  const rejected: { row: number; reason: string }[] = [];
  records.forEach((record, i) => {
    const row = i + 1;
    if (record.fields.length !== fields.length) {
      rejected.push({
        row,
        reason: `expected ${fields.length} fields (the header's), got ${record.fields.length}`,
      });
      return;
    }
    const issues: FeatureIssue[] = [];
    const features = model.validator.fromText(record.fields, columns, issues);
    const id = record.fields[idColumn] || undefined;
    if (id === undefined) issues.push({ field: model.manifest.idField, message: 'is required' });
    if (features && id !== undefined) {
      accepted.push({
        id,
        row,
        features,
        input: passThrough.map((c) => record.fields[fields.indexOf(c)] ?? null),
      });
    } else {
      rejected.push({
        row,
        reason: `invalid features: ${issues.map((x) => `${x.field} ${x.message}`).join('; ')}`,
      });
    }
  });
  const predictions = await scoreInGroups(model, accepted, batching);
  const lines = accepted.map((a, i) =>
    JSON.stringify({
      id: a.id,
      row: a.row,
      prediction: predictions[i],
      ...(passThrough.length > 0
        ? { input: Object.fromEntries(passThrough.map((c, k) => [c, a.input[k]])) }
        : {}),
    }),
  );
  return { lines, rejected };
}

let runs = 0;

async function scoreWith(
  scorer: ChunkScorer,
  subject: Subject,
  file: string,
  body: string,
  options: Partial<BatchOptions>,
): Promise<{
  parts: string[];
  rejected: { row: number; reason: string }[];
  manifest: { counts: Omit<RunManifest['counts'], 'planned'> };
  batching: Batching;
}> {
  const objects = new FsObjectStore(path.join(root, 'store'));
  const models = new FsModelSource(path.join(root, 'models'));
  const runId = `run-${++runs}`;
  const key = `incoming/${subject.name}/${runId}-${file}`;
  await objects.writeBytes('data', key, body);
  const plan = await planRun(
    { runId, bucket: 'data', key, model: subject.name, options: { tableWrites: 'none', ...options } },
    { objects, models },
  );
  const parts: string[] = [];
  const rejected: { row: number; reason: string }[] = [];
  const counts = { read: 0, scored: 0, rejected: 0, writtenToTable: 0, tableSkipped: 0 };
  for (let index = 0; index < plan.chunks; index++) {
    const report = await scorer.score({ runId, bucket: 'data', planKey: plan.planKey, index });
    counts.read += report.read;
    counts.scored += report.scored;
    counts.rejected += report.rejected;
    if (report.partKey)
      parts.push(Buffer.from(await objects.readBytes('data', report.partKey)).toString('utf8'));
    if (report.rejectedKey) {
      const lines = Buffer.from(await objects.readBytes('data', report.rejectedKey))
        .toString('utf8')
        .trim()
        .split('\n');
      for (const line of lines) {
        const entry = JSON.parse(line) as { row: number; reason: string };
        rejected.push({ row: entry.row, reason: entry.reason });
      }
    }
  }
  const planned = JSON.parse(
    Buffer.from(await objects.readBytes('data', plan.planKey)).toString('utf8'),
  ) as BatchPlan;
  const batching = {
    chunkFirstRows: planned.chunks.map((c) => c.firstRow),
    microBatchRows: planned.options.microBatchRows,
  };
  return { parts, rejected, manifest: { counts }, batching };
}

function toCsv(header: readonly string[], rows: readonly string[][]): string {
  return [header, ...rows]
    .map((r, i) => `${r.map(csvField).join(',')}${i % 5 === 4 ? '\r\n' : '\n'}`)
    .join('');
}

describe('ChunkScorer: fast path and scoring threads against the real-time lane', () => {
  it('writes the reference lines and rejections for every model shape, inline and on a scoring thread', async () => {
    for (const subject of subjects) {
      const model = served.get(subject.name)!;
      const names = model.validator.names;
      await fc.assert(
        fc.asyncProperty(
          datasetArbitrary(subject, model.manifest.idField, names),
          fc.integer({ min: 1, max: 5 }),
          async ({ header, rows }, microBatchRows) => {
            const body = toCsv(header, rows);
            for (const scorer of scorers) {
              const got = await scoreWith(scorer, subject, 'data.csv', body, {
                microBatchRows,
                chunkBytes: 1024,
              });
              const expected = await reference(subject, body, [], got.batching);
              expectWithMessage(got.parts.join('').split('\n').filter(Boolean), subject.name).toEqual(
                expected.lines,
              );
              expectWithMessage(got.rejected, subject.name).toEqual(expected.rejected);
              expect(got.manifest.counts.read).toBe(rows.length);
            }
          },
        ),
        { numRuns: 15 },
      );
    }
  }, 240_000);

  it('writes CSV output with pass-through columns as the general encoder does', async () => {
    const subject = subjects.find((s) => s.name === 'fraud-detector')!;
    const model = served.get(subject.name)!;
    const names = model.validator.names;
    const body = toCsv(
      ['transaction_id', ...names],
      subject.rows.map((r, i) => [`t,${i}"`, ...names.map((n) => text(r[n]))]),
    );
    for (const scorer of scorers) {
      const jsonl = await scoreWith(scorer, subject, 'pass.csv', body, {
        passThroughColumns: ['amount', 'transaction_id'],
        microBatchRows: 7,
      });
      const expected = await reference(subject, body, ['amount', 'transaction_id'], jsonl.batching);
      expect(jsonl.parts.join('').split('\n').filter(Boolean)).toEqual(expected.lines);
      const csv = await scoreWith(scorer, subject, 'out.csv', body, {
        outputFormat: 'csv',
        passThroughColumns: ['amount'],
        microBatchRows: 7,
      });
      const lines = csv.parts.join('').split('\n').filter(Boolean);
      expect(lines[0]).toBe('id,row,label,probability_0,probability_1,amount');
      const parsed = expected.lines.map(
        (l) =>
          JSON.parse(l) as {
            id: string;
            row: number;
            prediction: { label: number; probabilities: Record<string, number> };
            input: { amount: string };
          },
      );
      expect(lines.slice(1)).toEqual(
        parsed.map((p) =>
          [
            csvField(p.id),
            p.row,
            p.prediction.label,
            p.prediction.probabilities['0'],
            p.prediction.probabilities['1'],
            p.input.amount,
          ].join(','),
        ),
      );
    }
  });

  it('scores JSON Lines through the same micro-batches', async () => {
    const subject = subjects.find((s) => s.name === 'pipelineStringInputs')!;
    const model = served.get(subject.name)!;
    const lines = subject.rows.map((r, i) => JSON.stringify({ id: `j${i}`, ...r }));
    const body = `${lines.join('\n')}\n{"id": "bad", "size": "x"}\n`;
    const rows = model.validate(subject.rows).map((features, i) => ({ row: i + 1, features }));
    const predictions = await scoreInGroups(model, rows, { chunkFirstRows: [1], microBatchRows: 2 });
    for (const scorer of scorers) {
      const got = await scoreWith(scorer, subject, 'data.jsonl', body, { microBatchRows: 2 });
      expect(got.batching.chunkFirstRows).toEqual([1]);
      expect(got.parts.join('').split('\n').filter(Boolean)).toEqual(
        predictions.map((prediction, i) => JSON.stringify({ id: `j${i}`, row: i + 1, prediction })),
      );
      expect(got.rejected.map((r) => r.row)).toEqual([subject.rows.length + 1]);
    }
  });
});
