/**
 * A shadow version end to end on the local stack, operated with the `tandem` command as a user would: a
 * shadow that does not load is refused, and forced never affects serving; a shadow that loads scores
 * every request's instances after the response (the responses are the same as without it), its
 * comparisons are captured and `models shadow-report` gives the figures computed here from the two
 * versions; a promote of a shadowed version is refused below the agreement gate with the evidence, and
 * accepted once the comparisons pass it (the manifest's thresholds) or with --force.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import type { Prediction } from '../../lambdas/core/predictions.ts';
import { comparePredictions } from '../../lambdas/core/shadow/comparison.ts';
import { percentile } from '../../lambdas/core/shadow/shadow-report.ts';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { writeEndpointsFile } from '../../local/endpoints-file.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../../local/stack.ts';
import { demoV2Package } from '../support/demo-v2-model.ts';

const demo = await readDemoDataset();
const idIndex = demo.header.indexOf(demo.idField);
const instancesOf = (rows: readonly (readonly string[])[]) =>
  rows.map((row) => ({ id: row[idIndex]!, features: demo.featuresOf(row) }));
const FIRST = instancesOf(demo.rows.slice(0, 60));
const SECOND = instancesOf(demo.rows.slice(60, 120));

let stack: LocalStack;
let scratch: string;
/** The responses to FIRST before any shadow ran. */
let baseline: unknown[];

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON output, asserted field by field
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string; json: any }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([...argv, '--data-dir', 'data'], {
    out: (t) => out.push(t),
    err: (t) => err.push(t),
    cwd: scratch,
  });
  const text = out.join('\n');
  return {
    code,
    out: text,
    err: err.join('\n'),
    json: argv.includes('--json') ? JSON.parse(text) : undefined,
  };
}

/** The predictions of instances sent in requests of 20, as the API answers them. */
async function send(instances: readonly { id: string; features: unknown }[]): Promise<unknown[]> {
  const predictions: unknown[] = [];
  for (let start = 0; start < instances.length; start += 20) {
    const response = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ instances: instances.slice(start, start + 20), bypassCache: true }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      predictions: { id: string; prediction: unknown; model: unknown }[];
    };
    predictions.push(
      ...body.predictions.map((p) => ({ id: p.id, prediction: p.prediction, model: p.model })),
    );
  }
  return predictions;
}

/** Asks until the API's pointer view of the shadow satisfies `check` (it re-reads the pointer every second). */
async function untilShadow(check: (shadow: { version?: string; serving?: boolean } | undefined) => boolean) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const body = (await (await fetch(`${stack.apiUrl}/models/${DEMO_MODEL}`)).json()) as {
      pointer?: { shadow?: { version?: string; serving?: boolean } };
    };
    if (check(body.pointer?.shadow)) return body.pointer?.shadow;
    if (Date.now() > deadline)
      throw new Error(`the API never showed the expected shadow: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What the report must say: each instance scored by both versions here, compared as the API does. */
async function expectedFigures(live: string, shadow: string, instances: readonly { features: unknown }[]) {
  const source = new S3ModelSource(stack.s3, LOCAL_BUCKET);
  const [a, b] = await Promise.all([
    loadModelVersion(source, DEMO_MODEL, live),
    loadModelVersion(source, DEMO_MODEL, shadow),
  ]);
  try {
    const features = instances.map((i) => i.features);
    const [pa, pb] = await Promise.all([a.predict(features), b.predict(features)]);
    const comparisons = pa.map((p, i) => comparePredictions(p as Prediction, pb[i]!));
    const differences = comparisons.map((c) => c.absDifference!);
    return {
      agreement: comparisons.filter((c) => c.agreement).length / comparisons.length,
      mean: differences.reduce((x, y) => x + y, 0) / differences.length,
      p99: percentile(differences, 0.99)!,
    };
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-shadow-'));
  await mkdir(path.join(scratch, 'data'));
  stack = await startLocalStack({
    apiPort: 0,
    seed: false,
    // A generous budget: the figures below count every comparison (a 2-core machine shared with others).
    handlerEnv: { MODEL_REFRESH_SECONDS: '1', CAPTURE_REALTIME_RATE: '0', SHADOW_BUDGET_MS: '10000' },
  });
  await writeEndpointsFile(path.join(scratch, 'data'), {
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
  const put = async (version: string, manifest: string, model: Uint8Array) => {
    const prefix = `models/${DEMO_MODEL}/${version}`;
    await stack.objects.writeBytes(LOCAL_BUCKET, `${prefix}/model.onnx`, model, 'application/octet-stream');
    await stack.objects.writeBytes(LOCAL_BUCKET, `${prefix}/manifest.json`, manifest, 'application/json');
  };
  const v2 = await demoV2Package(REPO_ROOT, DEMO_MODEL, '2.0.0');
  await put('2.0.0', v2.manifest, v2.modelBytes);
  await put('3.0.0', v2.manifest.replace('"2.0.0"', '"3.0.0"'), new TextEncoder().encode('not a model'));
  // 1.0.1: the live model itself, republished with its own gate thresholds.
  const live = JSON.parse(
    new TextDecoder().decode(
      await stack.objects.readBytes(LOCAL_BUCKET, `models/${DEMO_MODEL}/1.0.0/manifest.json`),
    ),
  ) as Record<string, unknown>;
  await put(
    '1.0.1',
    JSON.stringify({
      ...live,
      version: '1.0.1',
      promotion: { minShadowComparisons: 60, minShadowAgreement: 0.99 },
    }),
    await stack.objects.readBytes(LOCAL_BUCKET, `models/${DEMO_MODEL}/1.0.0/model.onnx`),
  );
  baseline = await send(FIRST);
}, 180_000);

afterAll(async () => {
  await stack?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

describe('a shadow version on the local stack', () => {
  it('refuses a shadow that does not load; forced, it never affects serving and compares nothing', async () => {
    const refused = await cli('models', 'shadow', DEMO_MODEL, '3.0.0', '--sample', '1');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/does not load \(MODEL_CORRUPT\).*--force to shadow anyway/s);
    const forced = await cli('models', 'shadow', DEMO_MODEL, '3.0.0', '--sample', '1', '--force');
    expect(forced.code).toBe(0);
    const view = await untilShadow((s) => s?.version === '3.0.0');
    expect(view).toMatchObject({
      version: '3.0.0',
      sample: 1,
      serving: false,
      error: { code: 'MODEL_CORRUPT' },
    });
    expect(await send(FIRST)).toEqual(baseline);
    const shown = await cli('models', 'show', DEMO_MODEL);
    expect(shown.out).toMatch(/shadow: 3\.0\.0 scores 1 of the instances with features \(does not load/);
    await stack.flushCaptures();
    expect((await cli('models', 'shadow-report', DEMO_MODEL)).out).toMatch(/shadow 3\.0\.0: no comparisons/);
    const ended = await cli('models', 'shadow', DEMO_MODEL, '3.0.0', '--sample', '0');
    expect(ended.code).toBe(0);
    await untilShadow((s) => s === undefined);
  }, 90_000);

  it('scores every sampled instance with the shadow after the response, leaving responses unchanged', async () => {
    const started = await cli(
      'models',
      'shadow',
      DEMO_MODEL,
      '2.0.0',
      '--sample',
      '1',
      '--reason',
      'try v2',
      '--json',
    );
    expect(started.code).toBe(0);
    expect(started.json.entry).toMatchObject({ action: 'shadow', from: '1.0.0', to: '2.0.0', sample: 1 });
    expect(await untilShadow((s) => s?.serving === true)).toEqual({
      version: '2.0.0',
      sample: 1,
      serving: true,
    });
    // The live answers are exactly those given without a shadow (same version, same figures).
    expect(await send(FIRST)).toEqual(baseline);
    await stack.flushCaptures();
    const report = await cli('models', 'shadow-report', DEMO_MODEL, '--json');
    expect(report.code).toBe(0);
    const expected = await expectedFigures('1.0.0', '2.0.0', FIRST);
    expect(report.json).toMatchObject({
      model: DEMO_MODEL,
      shadowVersion: '2.0.0',
      n: 60,
      against: { '1.0.0': 60 },
    });
    expect(report.json.agreement).toBeCloseTo(expected.agreement, 10);
    expect(report.json.meanAbsDifference).toBeCloseTo(expected.mean, 6);
    expect(report.json.p99AbsDifference).toBeCloseTo(expected.p99, 6);
    expect(report.json.largest.length).toBeGreaterThan(0);
    expect(report.json.largest.length).toBeLessThanOrEqual(10);
    const ids = new Set(FIRST.map((i) => i.id));
    for (const d of report.json.largest) {
      expect(ids.has(d.id)).toBe(true);
      expect(d).toMatchObject({ liveVersion: '1.0.0', shadowVersion: '2.0.0', features: expect.any(Object) });
    }
    const text = await cli('models', 'shadow-report', DEMO_MODEL);
    expect(text.out).toMatch(/comparisons: 60 .*against live 1\.0\.0 \(60\)/);
    expect(text.out).toMatch(/largest disagreements:/);
  }, 90_000);

  it('refuses to promote the shadow below the agreement gate, with the evidence', async () => {
    const refused = await cli('models', 'promote', DEMO_MODEL, '2.0.0', '--json');
    expect(refused.code).toBe(1);
    expect(refused.json.error).toMatchObject({
      code: 'SHADOW_GATE',
      evidence: { passed: false, n: 60, thresholds: { minShadowComparisons: 200, minShadowAgreement: 0.95 } },
    });
    // A rollout ends with a promote: it is refused before it starts, on the same evidence.
    const rollout = await cli('models', 'rollout', DEMO_MODEL, '2.0.0', '--bake', '1s', '--json');
    expect(rollout.code).toBe(1);
    expect(rollout.json.error).toMatchObject({ code: 'SHADOW_GATE', evidence: { passed: false, n: 60 } });
    const show = await cli('models', 'show', DEMO_MODEL, '--json');
    expect(show.json.pointer).toMatchObject({ version: '1.0.0', shadow: { version: '2.0.0', sample: 1 } });
    expect(show.json.pointer.canary).toBeUndefined();
  }, 60_000);

  it("promotes a shadow whose comparisons pass its manifest's gate, which ends the shadow", async () => {
    expect((await cli('models', 'shadow', DEMO_MODEL, '1.0.1', '--sample', '1')).code).toBe(0);
    await untilShadow((s) => s?.version === '1.0.1' && s.serving === true);
    expect(await send(SECOND)).toHaveLength(60);
    await stack.flushCaptures();
    const report = await cli('models', 'shadow-report', DEMO_MODEL, '--version', '1.0.1', '--json');
    expect(report.json).toMatchObject({
      n: 60,
      agreement: 1,
      meanAbsDifference: 0,
      p99AbsDifference: 0,
      largest: [],
    });
    const promoted = await cli('models', 'promote', DEMO_MODEL, '1.0.1', '--json');
    expect(promoted.code).toBe(0);
    expect(promoted.json.entry.gate).toMatchObject({
      passed: true,
      n: 60,
      agreement: 1,
      thresholds: { minShadowComparisons: 60, minShadowAgreement: 0.99 },
    });
    const show = await cli('models', 'show', DEMO_MODEL, '--json');
    expect(show.json.pointer.version).toBe('1.0.1');
    expect(show.json.pointer.shadow).toBeUndefined();
  }, 90_000);

  it('promotes a shadowed version without evidence against the live one only with --force, recorded', async () => {
    const refused = await cli('models', 'promote', DEMO_MODEL, '2.0.0', '--json');
    expect(refused.json.error).toMatchObject({ code: 'SHADOW_GATE', evidence: { n: 0 } });
    const forced = await cli('models', 'promote', DEMO_MODEL, '2.0.0', '--force', '--json');
    expect(forced.code).toBe(0);
    expect(forced.json.entry.forced).toMatch(/does not pass the agreement gate against 1\.0\.1/);
    const history = await cli('models', 'history', DEMO_MODEL, '--json');
    expect(history.json.entries.map((e: { action: string; to: string }) => [e.action, e.to])).toEqual([
      ['shadow', '3.0.0'],
      ['shadow', '3.0.0'],
      ['shadow', '2.0.0'],
      ['shadow', '1.0.1'],
      ['promote', '1.0.1'],
      ['promote', '2.0.0'],
    ]);
  }, 60_000);
});
