/**
 * The drift loop on the local stack, end to end: real traffic through the API with `amount` multiplied by
 * 20 (other features as in the demo data) is captured; `tandem monitor run` flags amount and not the
 * unshifted features, `monitor report` prints the table; a batch run's manifest carries the same drift;
 * `models push` ships a package's baseline.json, and a baseline of another version is refused.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parseCsv } from '../../lambdas/core/codecs/csv.ts';
import type { DriftReport } from '../../lambdas/core/monitoring/monitor-run.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';

let stack: LocalStack;
let scratch: string;
let rows: { id: string; features: Record<string, unknown> }[];
let demoCsv: string;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...argv, '--data-dir', 'data'], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    cwd: scratch,
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  demoCsv = await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'), 'utf8');
  const [head, ...records] = parseCsv(demoCsv);
  const header = head!.fields;
  rows = records.slice(0, 600).map((r) => ({
    id: `shifted-${r.fields[0]!}`,
    features: Object.fromEntries(
      header.slice(1).map((name, i) => {
        const text = r.fields[i + 1]!;
        const n = Number(text);
        return [name, text === 'true' ? true : text === 'false' ? false : Number.isNaN(n) ? text : n];
      }),
    ),
  }));
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-drift-'));
  stack = await startLocalStack({ apiPort: 0, seed: false, monitorIntervalMinutes: false });
  await mkdir(path.join(scratch, 'data'));
  await writeEndpointsFile(path.join(scratch, 'data'), {
    apiUrl: stack.apiUrl,
    s3Endpoint: stack.aws.s3Endpoint,
    dynamoEndpoint: stack.aws.dynamoEndpoint,
    region: stack.aws.region,
    credentials: stack.aws.credentials,
    bucket: LOCAL_BUCKET,
    table: 'unused',
    modelsPrefix: 'models/',
    pid: process.pid,
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('drift monitor (local stack)', () => {
  it('reports no data, not drift, before any capture', async () => {
    const first = await cli('monitor', 'run', DEMO_MODEL, '--json');
    expect(first.code).toBe(0);
    const report = JSON.parse(first.out) as DriftReport;
    expect(report.status).toBe('no-data');
    expect(report.baseline?.version).toBe('1.0.0');
  });

  it('refuses a model that does not exist, writing nothing for it', async () => {
    const typo = await cli('monitor', 'run', 'fraud-detectr');
    expect(typo.code).toBe(1);
    expect(typo.err).toMatch(/no model named "fraud-detectr".*\(MODEL_NOT_FOUND\)/s);
    expect(await stack.objects.list(LOCAL_BUCKET, 'monitoring/fraud-detectr/')).toEqual([]);
  });

  it('names both places it looked when a baseline dataset is neither a local path nor in the bucket', async () => {
    const missing = await cli('monitor', 'baseline', DEMO_MODEL, '--dataset', '/nonexistent/train.csv');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(
      /\/nonexistent\/train\.csv: no such file or folder here .* under s3:\/\/tandem-data\/nonexistent\/train\.csv \(EMPTY_DATASET\)/,
    );
  });

  it('flags amount x 20 in real traffic, and not the unshifted features', async () => {
    for (let i = 0; i < rows.length; i += 100) {
      const instances = rows.slice(i, i + 100).map((r) => ({
        ...r,
        features: { ...r.features, amount: Math.min(100_000, (r.features['amount'] as number) * 20) },
      }));
      const response = await fetch(`${stack.apiUrl}/predict`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ instances }),
      });
      expect(response.status).toBe(200);
    }
    await stack.flushCaptures();

    const run = await cli('monitor', 'run', DEMO_MODEL, '--json');
    const report = JSON.parse(run.out) as DriftReport;
    expect(run.code).toBe(1);
    expect(report.status).toBe('drift');
    expect(report.records.total).toBe(600);
    expect(report.records.bySource.realtime).toBe(600);
    expect(report.records.byVersion).toEqual({ '1.0.0': 600 });
    const drift = report.drift!;
    expect(drift.drifted).toEqual(['amount']);
    const amount = drift.features.find((f) => f.name === 'amount')!;
    expect(amount.psi).toBeGreaterThan(0.2);
    for (const feature of drift.features.filter((f) => f.name !== 'amount'))
      expect(feature.psi ?? 0).toBeLessThan(0.2);

    const table = await cli('monitor', 'report', DEMO_MODEL);
    expect(table.code).toBe(0);
    const lines = table.out.split('\n');
    expect(lines.find((l) => l.startsWith('FEATURE'))).toBeDefined();
    const firstFeature = lines[lines.findIndex((l) => l.startsWith('FEATURE')) + 1]!;
    expect(firstFeature).toMatch(/^amount\s+\d+\.\d{4}!/);
    expect(table.out).toMatch(/^amount \(PSI \d+\.\d{4}\): baseline \| current$/m);
    expect(table.out).toMatch(/^ {2}> 6531 /m);

    // The next run reads only what came after: nothing.
    const next = JSON.parse((await cli('monitor', 'run', DEMO_MODEL, '--json')).out) as DriftReport;
    expect(next.status).toBe('no-data');
  });

  it("carries the same drift figures in a batch run's manifest", async () => {
    const [head, ...lines] = demoCsv.trim().split('\n');
    const amount = head!.split(',').indexOf('amount');
    const shifted = lines.slice(0, 600).map((line) => {
      const fields = line.split(',');
      fields[amount] = String(Math.min(100_000, Number(fields[amount]) * 20));
      return fields.join(',');
    });
    const file = path.join(scratch, 'shifted.csv');
    await writeFile(file, `${[head, ...shifted].join('\n')}\n`);
    const result = await stack.runDataset(file, DEMO_MODEL);
    expect(result.status).toBe('SUCCEEDED');
    const manifest = JSON.parse(
      Buffer.from(await stack.objects.readBytes(LOCAL_BUCKET, result.manifestKey)).toString('utf8'),
    ) as { drift: { status: string; drifted: string[]; records: number } };
    expect(manifest.drift.status).toBe('drift');
    expect(manifest.drift.drifted).toEqual(['amount']);
    expect(manifest.drift.records).toBe(600);
  });

  it("uploads a package's baseline.json with models push, and refuses one of another version", async () => {
    const dir = path.join(scratch, 'pkg');
    await mkdir(dir);
    const pkg = await demoV2Package(REPO_ROOT, DEMO_MODEL, '3.0.0');
    await writeFile(path.join(dir, 'manifest.json'), pkg.manifest);
    await writeFile(path.join(dir, 'model.onnx'), pkg.modelBytes);
    const baseline = JSON.parse(
      await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0', 'baseline.json'), 'utf8'),
    ) as Record<string, unknown>;
    await writeFile(path.join(dir, 'baseline.json'), JSON.stringify(baseline));
    const refused = await cli('models', 'push', dir, '--version', '3.0.0');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(
      /baseline\.json is the baseline of fraud-detector@1\.0\.0, not fraud-detector@3\.0\.0; nothing was uploaded/,
    );
    expect(await stack.objects.head(LOCAL_BUCKET, `models/${DEMO_MODEL}/3.0.0/model.onnx`)).toBeUndefined();

    await writeFile(path.join(dir, 'baseline.json'), JSON.stringify({ ...baseline, version: '3.0.0' }));
    const pushed = await cli('models', 'push', dir, '--version', '3.0.0');
    expect(pushed.err).toBe('');
    expect(pushed.code).toBe(0);
    expect(await stack.objects.head(LOCAL_BUCKET, `models/${DEMO_MODEL}/3.0.0/baseline.json`)).toBeDefined();
  });
});
