/**
 * The quality loop on the local stack: predictions through the API (captured, source realtime) and a
 * batch run (in the table, and captured with source batch at rate 1), outcomes posted to POST
 * /feedback, then `tandem monitor quality` reports the figures of version 1.0.0 that the test computes
 * by hand from the predictions (accuracy, ROC AUC by counting pairs, log loss). Also: the batch captures
 * carry the rows' features as the CSV has them, and POST /feedback's bad input catalogue.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DynamoDbPredictionStore } from '../../lambdas/adapters/dynamodb-prediction-store.ts';
import { predictionKey } from '../../lambdas/core/cache-policy.ts';
import type { CaptureRecord } from '../../lambdas/core/capture/capture-record.ts';
import type { FeedbackRecord } from '../../lambdas/core/feedback/feedback-record.ts';
import type { QualityReport } from '../../lambdas/core/monitoring/quality.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const demo = await readDemoDataset();
const BATCH_ROWS = demo.rows.slice(0, 6);
const API_ROWS = demo.rows.slice(6, 10);
const apiId = (i: number) => `api-${i}`;

let stack: LocalStack;
let scratch: string;
let dataDir: string;
/** The model's classes as its manifest gives them (numbers for the demo model), and as text. */
let rawClasses: (string | number)[];
let classes: string[];
const predicted = new Map<string, { label: string; probabilities: Record<string, number> }>();

interface ApiBody {
  readonly error: { code: string; details: { field?: string; instance?: number; message: string }[] };
  readonly predictions: {
    id: string;
    prediction: { label: string; probabilities: Record<string, number> };
  }[];
  readonly accepted?: number;
}

async function post(pathname: string, body: unknown): Promise<{ status: number; body: ApiBody }> {
  const response = await fetch(`${stack.apiUrl}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as ApiBody };
}

async function readLines<T>(prefix: string): Promise<T[]> {
  const out: T[] = [];
  for (const key of await stack.objects.list(LOCAL_BUCKET, prefix)) {
    const text = gunzipSync(await stack.objects.readBytes(LOCAL_BUCKET, key)).toString('utf8');
    for (const line of text.split('\n')) if (line) out.push(JSON.parse(line) as T);
  }
  return out;
}

beforeAll(async () => {
  process.env['CAPTURE_BATCH_RATE'] = '1';
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-quality-'));
  dataDir = path.join(scratch, 'data');
  stack = await startLocalStack({ apiPort: 0, seed: false, dataDir });
  await writeEndpointsFile(dataDir, {
    apiUrl: stack.apiUrl,
    s3Endpoint: stack.aws.s3Endpoint,
    dynamoEndpoint: stack.aws.dynamoEndpoint,
    region: stack.aws.region,
    credentials: stack.aws.credentials,
    bucket: LOCAL_BUCKET,
    table: LOCAL_TABLE,
    modelsPrefix: 'models/',
    pid: process.pid,
  });
  const model = (await (await fetch(`${stack.apiUrl}/models/${DEMO_MODEL}`)).json()) as {
    outputs: { classes: (string | number)[] };
  };
  rawClasses = model.outputs.classes;
  classes = rawClasses.map(String);

  const csv = path.join(scratch, 'quality-batch.csv');
  await writeFile(csv, [demo.header.join(','), ...BATCH_ROWS.map((r) => r.join(','))].join('\n') + '\n');
  const run = await stack.runDataset(csv, DEMO_MODEL);
  if (run.status !== 'SUCCEEDED') throw new Error(`the batch run failed: ${run.message}`);

  const scored = await post('/predict', {
    instances: API_ROWS.map((row, i) => ({ id: apiId(i), features: demo.featuresOf(row) })),
  });
  for (const { id, prediction } of scored.body.predictions) predicted.set(id, prediction);
  // The batch rows' predictions from the table (not through the API, which would capture them again).
  const stored = await new DynamoDbPredictionStore(stack.dynamo, LOCAL_TABLE).getMany(
    BATCH_ROWS.map((row) => predictionKey(DEMO_MODEL, '1.0.0', row[0]!)),
  );
  for (const item of stored.values()) predicted.set(item.entityId, item.prediction as never);
  await stack.flushCaptures();
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  delete process.env['CAPTURE_BATCH_RATE'];
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('batch capture', () => {
  it('captures the scored rows with their features as the dataset has them, the run id and the version', async () => {
    const records = await readLines<CaptureRecord>(`capture/${DEMO_MODEL}/batch/`);
    expect(records.map((r) => r.id).sort()).toEqual(BATCH_ROWS.map((r) => r[0]).sort());
    for (const row of BATCH_ROWS) {
      const record = records.find((r) => r.id === row[0])!;
      expectWithMessage(record.features, `features of ${row[0]}`).toEqual(demo.featuresOf(row));
      expect(record).toMatchObject({
        model: DEMO_MODEL,
        version: '1.0.0',
        source: 'batch',
        servedBy: 'model',
      });
      expect(record.runId).toMatch(/\S/);
      expect(record.requestId).toBe(record.runId);
      expect(record.prediction).toEqual(predicted.get(row[0]!));
    }
  });
});

describe('POST /feedback and monitor quality', () => {
  const ids = () => [...BATCH_ROWS.map((r) => r[0]!), ...API_ROWS.map((_, i) => apiId(i))];
  /** Alternating classes, so that both are present. */
  const labelOf = (i: number) => classes[i % 2]!;

  it('stores the outcomes, durable before the 200, under feedback/<model>/dt=/', async () => {
    const response = await post('/feedback', {
      items: ids().map((id, i) => ({ id, label: labelOf(i) })),
    });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ accepted: ids().length, model: { name: DEMO_MODEL } });
    const keys = await stack.objects.list(LOCAL_BUCKET, `feedback/${DEMO_MODEL}/`);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(
      /^feedback\/fraud-detector\/dt=\d{4}-\d{2}-\d{2}\/\d{8}T\d{9}Z-[\w-]+\.jsonl\.gz$/,
    );
    const records = await readLines<FeedbackRecord>(`feedback/${DEMO_MODEL}/`);
    expect(records.map((r) => r.id)).toEqual(ids());
    // Stored as the model's class (a number here), whichever form was sent.
    expect(records[0]).toMatchObject({ model: DEMO_MODEL, label: rawClasses[0] });
    expect(Date.parse(records[0]!.observedAt)).not.toBeNaN();
  });

  it('reports the quality of version 1.0.0 as computed by hand from the predictions', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['monitor', 'quality', DEMO_MODEL, '--data-dir', dataDir, '--json'], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      cwd: scratch,
    });
    expectWithMessage(code, err.join('\n')).toBe(0);
    const report = JSON.parse(out.join('\n')) as QualityReport;

    const positive = classes[1]!;
    const pairs = ids().map((id, i) => ({ truth: labelOf(i), prediction: predicted.get(id)! }));
    const accuracy = pairs.filter((p) => String(p.prediction.label) === p.truth).length / pairs.length;
    const logLoss =
      pairs.reduce(
        (sum, p) =>
          sum - Math.log(Math.min(1 - 1e-15, Math.max(1e-15, p.prediction.probabilities[p.truth]!))),
        0,
      ) / pairs.length;
    const positives = pairs
      .filter((p) => p.truth === positive)
      .map((p) => p.prediction.probabilities[positive]!);
    const negatives = pairs
      .filter((p) => p.truth !== positive)
      .map((p) => p.prediction.probabilities[positive]!);
    let wins = 0;
    for (const a of positives) for (const b of negatives) wins += a > b ? 1 : a === b ? 0.5 : 0;
    const auc = wins / (positives.length * negatives.length);

    expect(report.status).toBe('ok');
    expect(report.outcomes).toBe(10);
    expect(report.unmatched).toBe(0);
    expect(report.versions).toHaveLength(1);
    const [v] = report.versions;
    expect(v!.version).toBe('1.0.0');
    // Batch rows match their batch capture (made after the table item's computedAt), API rows their capture.
    expect(v!.matchedBy).toEqual({ batch: 6, realtime: 4 });
    expect(v!.figures.kind).toBe('classification');
    if (v!.figures.kind !== 'classification') return;
    expect(v!.figures.count).toBe(10);
    expect(v!.figures.accuracy).toBeCloseTo(accuracy, 12);
    expect(v!.figures.rocAuc).toBeCloseTo(auc, 12);
    expect(v!.figures.logLoss).toBeCloseTo(logLoss, 12);
  });

  it('carries the same quality in the drift report of `monitor run` (as a table in `monitor report`)', async () => {
    const quality = async (): Promise<QualityReport> => {
      const out: string[] = [];
      await runCli(['monitor', 'quality', DEMO_MODEL, '--data-dir', dataDir, '--json'], {
        out: (t) => out.push(t),
        err: () => undefined,
        cwd: scratch,
      });
      return JSON.parse(out.join('\n')) as QualityReport;
    };
    const expected = await quality();
    const out: string[] = [];
    const err: string[] = [];
    // Exit 0 (no drift) or 1 (drift): the quality section is there either way.
    await runCli(['monitor', 'run', DEMO_MODEL, '--data-dir', dataDir, '--json'], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
      cwd: scratch,
    });
    const report = JSON.parse(out.join('\n')) as { quality?: QualityReport; qualityError?: string };
    expectWithMessage(report.qualityError, err.join('\n')).toBeUndefined();
    expect(report.quality?.outcomes).toBe(expected.outcomes);
    expect(report.quality?.versions).toEqual(expected.versions);

    const text: string[] = [];
    expect(
      await runCli(['monitor', 'report', DEMO_MODEL, '--data-dir', dataDir], {
        out: (t) => text.push(t),
        err: () => undefined,
        cwd: scratch,
      }),
    ).toBe(0);
    expect(text.join('\n')).toMatch(
      /live quality:\n[\s\S]*VERSION\s+MATCHED\s+ACCURACY[^\n]*\n1\.0\.0\s+10\s/,
    );
  });

  it('prints the figures as a table per version', async () => {
    const out: string[] = [];
    const code = await runCli(['monitor', 'quality', DEMO_MODEL, '--data-dir', dataDir], {
      out: (t) => out.push(t),
      err: () => undefined,
      cwd: scratch,
    });
    expect(code).toBe(0);
    expect(out.join('\n')).toMatch(
      /VERSION\s+MATCHED\s+ACCURACY\s+ROC AUC\s+LOG LOSS\s+MATCHED BY\n1\.0\.0\s+10\s/,
    );
  });
});

interface BadCase {
  readonly name: string;
  readonly body: unknown;
  readonly status: number;
  readonly code: string;
  /** Each detail expected, by field (and instance for items). */
  readonly details?: readonly { field: string; instance?: number; message: RegExp }[];
}

const tooMany = { items: Array.from({ length: 501 }, (_, i) => ({ id: `x-${i}`, label: 'legit' })) };

describe('POST /feedback bad input catalogue', () => {
  // Ids that exist (predicted above): only the named problem is wrong in each case.
  const known = () => BATCH_ROWS[0]![0]!;
  const cases = (): BadCase[] => [
    {
      name: 'not an object',
      body: '[1,2]',
      status: 400,
      code: 'INVALID_REQUEST',
      details: [{ field: '(root)', message: /object/ }],
    },
    {
      name: 'unknown class',
      body: { id: known(), label: 'maybe' },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'label', message: /is not a class of model "fraud-detector"/ }],
    },
    {
      name: 'label of the wrong type',
      body: { id: known(), label: true },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'label', message: /string or number class/ }],
    },
    {
      name: 'value for a classifier',
      body: { id: known(), value: 1 },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [
        {
          field: 'value',
          message: /is for regressors: model "fraud-detector" is a classifier, send "label"/,
        },
      ],
    },
    {
      name: 'both label and value',
      body: { id: known(), label: classes[0], value: 1 },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'value', message: /not both/ }],
    },
    {
      name: 'no outcome',
      body: { id: known() },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'label', message: /is required/ }],
    },
    {
      name: 'fractional numeric id',
      body: '{"id": 1.5, "label": "legit"}',
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'id', message: /fraction/ }],
    },
    {
      name: 'empty id',
      body: { id: '', label: classes[0] },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'id', message: /""/ }],
    },
    {
      name: 'id too long',
      body: { id: 'x'.repeat(257), label: classes[0] },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'id', message: /256/ }],
    },
    {
      name: 'no id',
      body: { label: classes[0] },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'id', message: /is required/ }],
    },
    {
      name: 'time without a zone',
      body: { id: known(), label: classes[0], observedAt: '2026-01-31T12:00:00' },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'observedAt', message: /ISO-8601 time with a zone/ }],
    },
    {
      name: 'time that is not a time',
      body: { id: known(), label: classes[0], observedAt: 'yesterday' },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'observedAt', message: /ISO-8601/ }],
    },
    {
      name: 'time in the future',
      body: { id: known(), label: classes[0], observedAt: '2999-01-01T00:00:00Z' },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'observedAt', message: /in the future/ }],
    },
    {
      name: 'unknown field',
      body: { id: known(), label: classes[0], score: 1 },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'score', message: /not a known field/ }],
    },
    {
      name: 'empty items',
      body: { items: [] },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'items', message: /non-empty array/ }],
    },
    {
      name: 'too many items',
      body: tooMany,
      status: 400,
      code: 'TOO_MANY_INSTANCES',
      details: [{ field: 'items', message: /at most 500/ }],
    },
    {
      name: 'items naming the bad one',
      body: {
        items: [
          { id: known(), label: classes[0] },
          { id: known(), label: 'nope' },
        ],
      },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'items.1.label', instance: 1, message: /is not a class/ }],
    },
    {
      name: 'an id never predicted',
      body: {
        items: [
          { id: known(), label: classes[0] },
          { id: 'never-predicted', label: classes[0] },
        ],
      },
      status: 400,
      code: 'UNKNOWN_ID',
      details: [{ field: 'items.1.id', instance: 1, message: /has no prediction of model "fraud-detector"/ }],
    },
    {
      name: 'unknown model',
      body: { model: 'no-such-model', id: known(), label: 'x' },
      status: 404,
      code: 'MODEL_NOT_FOUND',
    },
    {
      name: 'bad model name',
      body: { model: '../x', id: known(), label: 'x' },
      status: 400,
      code: 'INVALID_FEEDBACK',
      details: [{ field: 'model', message: /model name/ }],
    },
  ];

  it('rejects each with its code and a detail per bad item, and stores nothing', async () => {
    const before = (await stack.objects.list(LOCAL_BUCKET, `feedback/${DEMO_MODEL}/`)).length;
    for (const c of cases()) {
      const response = await post('/feedback', c.body);
      expectWithMessage(response.status, `${c.name}: ${JSON.stringify(response.body)}`).toBe(c.status);
      expectWithMessage(response.body.error.code, c.name).toBe(c.code);
      for (const expected of c.details ?? []) {
        const found = (
          response.body.error.details as { field?: string; instance?: number; message: string }[]
        ).find(
          (d) =>
            d.field === expected.field &&
            d.instance === expected.instance &&
            expected.message.test(d.message),
        );
        expectWithMessage(found, `${c.name}: ${JSON.stringify(response.body.error.details)}`).toBeDefined();
      }
    }
    expect(await stack.objects.list(LOCAL_BUCKET, `feedback/${DEMO_MODEL}/`)).toHaveLength(before);
  });
});
