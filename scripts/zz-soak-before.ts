/**
 * `npm run soak`: the local stack under sustained load. autocannon holds 64 connections on the API for
 * 60 s with a fixed mix of cache hits, model-path requests, multi-instance requests and bad requests,
 * each checked against the status (and source or error code) it must get; meanwhile two batch runs
 * score generated datasets through the same process, and the demo model's `current.json` is broken and
 * repaired (pointed at a corrupt model, at a version never uploaded, made invalid JSON, deleted, restored).
 * Passes when no response is unexpected (no cache hit or prediction fails while the pointer is broken),
 * no request errors or times out, /ready and /models/{name} report each pointer case with its code while
 * the last good version serves, both batch runs account for every row exactly, and the server's RSS
 * after the run is within 1.2x of its RSS after warm-up. The last stdout line is the JSON summary.
 */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { readDemoDataset, type DemoDataset } from '../local/demo-dataset.ts';
import { DEMO_MODEL, REPO_ROOT } from '../local/stack.ts';

const HELP = `Usage: npm run soak [-- options]

Runs the local stack in a child process and loads it: cache hits, model-path requests, multi-instance
requests and bad requests (each must get its expected status), plus two concurrent batch runs; during
the load, the demo model's current.json is broken four ways, given a canary that does not load, and restored (the promotion cases).

Options:
  --seconds <n>       load duration after warm-up (default: 60; --quick: 10)
  --connections <n>   concurrent connections (default: 64)
  --batch-rows <n>    rows in each of the two batch datasets (default: 50000; --quick: 5000)
  --quick             the short form CI runs
  --cpu-prof <dir>    write V8 CPU profiles of the server process (one per thread) to <dir>
  -h, --help          show this help

Exit code 0 when every check passes, 1 when one fails.
`;

const RSS_GROWTH_LIMIT = 1.2;

interface Expectation {
  readonly kind: 'hit' | 'model' | 'multi' | 'bad';
  readonly status: number;
  /** `source` of a single answer, or the error code of a failed one. */
  readonly check: (body: unknown) => string | undefined;
}

interface Template extends Expectation {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly path: string;
  readonly body?: string;
}

// --- the request mix ----------------------------------------------------------------------------------

type Demo = DemoDataset;

const field = (body: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>(
    (v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined),
    body,
  );

function expectSource(source: 'cache' | 'model') {
  return (body: unknown) =>
    field(body, 'source') === source ? undefined : `source ${String(field(body, 'source'))}, not ${source}`;
}

function expectCode(code: string) {
  return (body: unknown) =>
    field(body, 'error', 'code') === code
      ? undefined
      : `error code ${String(field(body, 'error', 'code'))}, not ${code}`;
}

/** One pass of the mix: 20 cache hits, 10 model-path, 2 multi-instance and 8 bad requests. */
function requestMix(demo: Demo): Template[] {
  const post = (body: unknown, e: Expectation): Template => ({
    method: 'POST',
    path: '/predict',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...e,
  });
  const mix: Template[] = [];
  for (let i = 0; i < 20; i++)
    mix.push(post({ id: demo.rows[i * 97]![0] }, { kind: 'hit', status: 200, check: expectSource('cache') }));
  for (let i = 0; i < 10; i++) {
    const row = demo.rows[i * 131 + 7]!;
    mix.push(
      post(
        { id: `soak-new-${i}`, features: demo.featuresOf(row) },
        { kind: 'model', status: 200, check: expectSource('model') },
      ),
    );
  }
  const multi = demo.rows.slice(1000, 1020);
  mix.push(
    post(
      {
        instances: multi.map((row, i) =>
          i % 2 === 0 ? { id: row[0] } : { id: `soak-multi-${i}`, features: demo.featuresOf(row) },
        ),
      },
      {
        kind: 'multi',
        status: 200,
        check: (body) => {
          const sources = (field(body, 'predictions') as { source: string }[] | undefined)?.map(
            (p) => p.source,
          );
          const expected = multi.map((_, i) => (i % 2 === 0 ? 'cache' : 'model'));
          return JSON.stringify(sources) === JSON.stringify(expected)
            ? undefined
            : `sources ${String(sources)}`;
        },
      },
    ),
  );
  mix.push(
    post(
      {
        instances: demo.rows.slice(1100, 1200).map((row) => ({ id: row[0], features: demo.featuresOf(row) })),
        bypassCache: true,
      },
      {
        kind: 'multi',
        status: 200,
        check: (body) =>
          (field(body, 'predictions') as unknown[] | undefined)?.length === 100
            ? undefined
            : 'not 100 answers',
      },
    ),
  );
  const good = demo.featuresOf(demo.rows[5]!);
  const bad = (status: number, code: string) => ({ kind: 'bad' as const, status, check: expectCode(code) });
  mix.push(post('{"id": "cut short', bad(400, 'INVALID_JSON')));
  mix.push(post({ id: 'x', features: { ...good, amount: '12.5' } }, bad(400, 'INVALID_FEATURES')));
  mix.push(post({ id: 'x', features: { ...good, channel: 'pigeon' } }, bad(400, 'INVALID_FEATURES')));
  mix.push(post({ id: 'soak-never-scored' }, bad(404, 'NOT_PRECOMPUTED')));
  mix.push(post({ id: 'x', features: good, model: 'no-such-model' }, bad(404, 'MODEL_NOT_FOUND')));
  mix.push(
    post(
      { instances: Array.from({ length: 501 }, (_, i) => ({ id: `t${i}` })) },
      bad(400, 'TOO_MANY_INSTANCES'),
    ),
  );
  mix.push({ method: 'GET', path: '/no-such-route', ...bad(404, 'ROUTE_NOT_FOUND') });
  mix.push({ method: 'PUT', path: '/predict', body: '{}', ...bad(405, 'METHOD_NOT_ALLOWED') });
  return interleave(mix);
}

/**
 * Spreads each kind evenly over the pass: every connection walks the list from its start, so a list
 * grouped by kind would load the server with one kind at a time.
 */
function interleave(mix: Template[]): Template[] {
  const byKind = new Map<string, Template[]>();
  for (const t of mix) byKind.set(t.kind, [...(byKind.get(t.kind) ?? []), t]);
  // Each template gets a position in [0, 1) within its kind's share of the pass; sort by it.
  return [...byKind.values()]
    .flatMap((group) => group.map((t, i) => ({ t, at: (i + 0.5) / group.length })))
    .sort((a, b) => a.at - b.at)
    .map(({ t }) => t);
}

// --- the batch datasets --------------------------------------------------------------------------------

interface Dataset {
  readonly file: string;
  readonly rows: number;
  readonly bad: number;
}

/** Demo rows under new ids, with a known number of rows the model cannot take. */
async function writeDataset(dir: string, name: string, demo: Demo, rows: number): Promise<Dataset> {
  const amount = demo.header.indexOf('amount');
  const channel = demo.header.indexOf('channel');
  const lines = [demo.header.join(',')];
  let bad = 0;
  for (let i = 0; i < rows; i++) {
    const fields = [...demo.rows[i % demo.rows.length]!];
    fields[0] = `${name}-${String(i).padStart(8, '0')}`;
    if (i % 97 === 13) {
      fields[amount] = 'not-a-number';
      bad++;
    } else if (i % 101 === 17) {
      fields[channel] = 'carrier-pigeon';
      bad++;
    }
    lines.push(fields.join(','));
  }
  const file = path.join(dir, `${name}.csv`);
  await writeFile(file, `${lines.join('\n')}\n`);
  return { file, rows, bad };
}

// --- the server child -------------------------------------------------------------------------------

class Server {
  private next = 1;
  private readonly waiting = new Map<number, (data: unknown) => void>();
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw: unknown) => {
      const { id, data } = raw as { id: number; data: unknown };
      this.waiting.get(id)?.(data);
      this.waiting.delete(id);
    });
  }

  static async start(cpuProfDir: string | undefined): Promise<{ server: Server; apiUrl: string }> {
    const child = fork(path.join(import.meta.dirname, 'soak-server.ts'), [], {
      execArgv: [
        '--import',
        'tsx',
        '--expose-gc',
        ...(cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', cpuProfDir] : []),
      ],
      env: { ...process.env, POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'ERROR' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const server = new Server(child);
    const ready = await new Promise<{ apiUrl: string }>((resolve, reject) => {
      server.waiting.set(0, (data) => resolve(data as { apiUrl: string }));
      child.once('exit', (code) => reject(new Error(`the soak server exited (code ${code})`)));
    });
    return { server, apiUrl: ready.apiUrl };
  }

  call<T>(op: string, extra: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve) => {
      this.waiting.set(id, (data) => resolve(data as T));
      this.child.send({ id, op, ...extra });
    });
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    await this.call('stop').catch(() => undefined);
    await exited;
  }
}

interface MemoryFigures {
  readonly rssMb: number;
  readonly heapUsedMb: number;
  readonly externalMb: number;
  readonly arrayBuffersMb: number;
}

// --- the load -------------------------------------------------------------------------------------------

interface LoadFigures {
  readonly requests: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly byKind: Record<Expectation['kind'], number>;
  readonly unexpected: number;
  readonly unexpectedByKind: Record<Expectation['kind'], number>;
  readonly unexpectedSamples: string[];
}

async function load(
  apiUrl: string,
  mix: Template[],
  seconds: number,
  connections: number,
): Promise<LoadFigures> {
  const byKind: Record<Expectation['kind'], number> = { hit: 0, model: 0, multi: 0, bad: 0 };
  let unexpected = 0;
  const unexpectedByKind: Record<Expectation['kind'], number> = { hit: 0, model: 0, multi: 0, bad: 0 };
  const unexpectedSamples: string[] = [];
  const result = await autocannon({
    url: apiUrl,
    connections,
    duration: seconds,
    timeout: 10,
    requests: mix.map((t) => ({
      method: t.method,
      path: t.path,
      headers: { 'content-type': 'application/json' },
      ...(t.body === undefined ? {} : { body: t.body }),
      onResponse: (status: number, body: string) => {
        byKind[t.kind]++;
        let problem = status === t.status ? undefined : `status ${status}, not ${t.status}`;
        if (!problem) {
          try {
            problem = t.check(JSON.parse(body));
          } catch {
            problem = 'the body is not JSON';
          }
        }
        if (problem) {
          unexpected++;
          unexpectedByKind[t.kind]++;
          if (unexpectedSamples.length < 10)
            unexpectedSamples.push(`${t.method} ${t.path} (${t.kind}): ${problem}`);
        }
      },
    })),
  });
  return {
    requests: result.requests.total,
    rps: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors,
    timeouts: result.timeouts,
    byKind,
    unexpected,
    unexpectedByKind,
    unexpectedSamples,
  };
}

// --- the promotion cases -------------------------------------------------------------------------------

const POINTER_KEY = `models/${DEMO_MODEL}/current.json`;
const SERVING_VERSION = '1.0.0';

interface PromotionCase {
  readonly name: string;
  /** The code /ready must give for the pointer's version; undefined: the pointer's version serves. */
  readonly code: string | undefined;
  /** What the pointer names then (undefined when it cannot be read). */
  readonly pointerVersion: string | undefined;
  /** The pointer's canary as /ready says it: `<version> <serving | the candidate's load code>`. */
  readonly canary?: string;
  /** Objects to write (a string) or delete (null), in order. */
  readonly writes: readonly (readonly [key: string, body: string | null])[];
}

async function promotionCases(): Promise<PromotionCase[]> {
  const manifest = JSON.parse(
    await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, SERVING_VERSION, 'manifest.json'), 'utf8'),
  ) as Record<string, unknown>;
  const corrupt = `${SERVING_VERSION}-soak-corrupt`;
  return [
    {
      name: 'pointer at a corrupt model',
      code: 'MODEL_CORRUPT',
      pointerVersion: corrupt,
      writes: [
        [`models/${DEMO_MODEL}/${corrupt}/manifest.json`, JSON.stringify({ ...manifest, version: corrupt })],
        [`models/${DEMO_MODEL}/${corrupt}/model.onnx`, 'this is not an onnx model'],
        [POINTER_KEY, JSON.stringify({ version: corrupt })],
      ],
    },
    {
      name: 'pointer at a version never uploaded',
      code: 'VERSION_NOT_FOUND',
      pointerVersion: '9.9.9',
      writes: [[POINTER_KEY, '{"version": "9.9.9"}']],
    },
    {
      name: 'pointer not JSON',
      code: 'INVALID_POINTER',
      pointerVersion: undefined,
      writes: [[POINTER_KEY, '{"version": ']],
    },
    {
      name: 'pointer deleted',
      code: 'POINTER_MISSING',
      pointerVersion: undefined,
      writes: [[POINTER_KEY, null]],
    },
    {
      name: 'canary of a candidate that does not load (forced)',
      code: undefined,
      pointerVersion: SERVING_VERSION,
      canary: `${corrupt} MODEL_CORRUPT`,
      writes: [
        [
          POINTER_KEY,
          JSON.stringify({ version: SERVING_VERSION, canary: { version: corrupt, percent: 50 } }),
        ],
      ],
    },
    {
      name: 'pointer restored',
      code: undefined,
      pointerVersion: SERVING_VERSION,
      writes: [[POINTER_KEY, JSON.stringify({ version: SERVING_VERSION })]],
    },
  ];
}

interface PromotionFigures {
  readonly case: string;
  readonly expected: string;
  /** What /ready said last: `<code>` or `serving`, with the versions. */
  readonly observed: string;
  /** From the pointer write to /ready (and /models/{name}) saying so. */
  readonly seenAfterMs: number | undefined;
  readonly pass: boolean;
}

type Json = Record<string, unknown>;

async function getJson(url: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json().catch(() => ({}))) as Json };
}

/** What /ready and /models/{name} say about the pointer, as `<state> serving <version> pointer <version>`. */
async function servingState(apiUrl: string): Promise<{ ready: string; described: string }> {
  const state = (status: number, serving: unknown, pointer: unknown) => {
    const p = (pointer ?? {}) as {
      version?: string;
      serving?: boolean;
      error?: { code?: string };
      canary?: { version?: string; serving?: boolean; error?: { code?: string } };
    };
    const canary = p.canary
      ? ` canary ${p.canary.version} ${p.canary.serving ? 'serving' : (p.canary.error?.code ?? 'unknown')}`
      : '';
    return `${status} ${p.serving ? 'serving' : (p.error?.code ?? 'unknown')} serving ${String(serving)} pointer ${p.version ?? '-'}${canary}`;
  };
  const [ready, described] = await Promise.all([
    getJson(`${apiUrl}/ready`),
    getJson(`${apiUrl}/models/${DEMO_MODEL}`),
  ]);
  return {
    ready: state(ready.status, field(ready.body, 'model', 'version'), ready.body['pointer']),
    described: state(described.status, described.body['version'], described.body['pointer']),
  };
}

/**
 * Applies each case in turn while the load runs, each for its share of `seconds`: waits until /ready and
 * /models/{name} both report it (the last good version serving, the pointer's code), then holds it.
 */
async function runPromotionCases(
  server: Server,
  apiUrl: string,
  seconds: number,
): Promise<PromotionFigures[]> {
  const cases = await promotionCases();
  const slotMs = (seconds * 1000) / (cases.length + 1);
  await new Promise((resolve) => setTimeout(resolve, slotMs / 2)); // traffic first
  const figures: PromotionFigures[] = [];
  for (const c of cases) {
    const start = Date.now();
    for (const [key, body] of c.writes) {
      const written = await server.call<{ ok: boolean; message?: string }>('put', { key, body });
      if (!written.ok) throw new Error(`could not write ${key}: ${written.message}`);
    }
    const expected =
      `200 ${c.code ?? 'serving'} serving ${SERVING_VERSION} pointer ${c.pointerVersion ?? '-'}` +
      (c.canary ? ` canary ${c.canary}` : '');
    let observed = { ready: '', described: '' };
    let seenAfterMs: number | undefined;
    // The API re-reads the pointer every second: it must say so within a few.
    while (Date.now() - start < Math.max(slotMs, 5_000)) {
      observed = await servingState(apiUrl);
      if (observed.ready === expected && observed.described === expected) {
        seenAfterMs = Date.now() - start;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rest = slotMs - (Date.now() - start);
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    figures.push({
      case: c.name,
      expected,
      observed:
        observed.ready === observed.described ? observed.ready : `${observed.ready} / ${observed.described}`,
      seenAfterMs,
      pass: seenAfterMs !== undefined,
    });
  }
  return figures;
}

// --- main -----------------------------------------------------------------------------------------------

function positiveInt(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${flag} must be a positive integer, got "${text}"`);
  return value;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      connections: { type: 'string' },
      'batch-rows': { type: 'string' },
      quick: { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick;
  const seconds = positiveInt(values.seconds, quick ? 10 : 60, '--seconds');
  const connections = positiveInt(values.connections, 64, '--connections');
  const batchRows = positiveInt(values['batch-rows'], quick ? 5_000 : 50_000, '--batch-rows');
  const log = (line: string) =>
    process.stderr.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

  const demo = await readDemoDataset();
  const mix = requestMix(demo);
  const scratch = await mkdtemp(path.join(tmpdir(), 'tandem-soak-data-'));
  log('starting the local stack');
  const { server, apiUrl } = await Server.start(values['cpu-prof']);
  try {
    const datasets = [
      await writeDataset(scratch, 'soak-a', demo, batchRows),
      await writeDataset(scratch, 'soak-b', demo, batchRows),
    ];
    const warmupSeconds = quick ? 5 : 15;
    // The warm-up is the run in small: the same load and the same two concurrent batch runs, so the
    // baseline holds everything a first run allocates (model sessions, buffers, the allocators' pools):
    // growth after it is what runs accumulate.
    log(`warm-up: ${warmupSeconds} s at ${connections} connections, two batch runs of ${batchRows} rows`);
    const warmDatasets = [
      await writeDataset(scratch, 'soak-warm-a', demo, batchRows),
      await writeDataset(scratch, 'soak-warm-b', demo, batchRows),
    ];
    const warmBatch = server.call<unknown>('batch', {
      files: warmDatasets.map((d) => d.file),
      options: { chunkBytes: 256 * 1024 },
    });
    const warm = await load(apiUrl, mix, warmupSeconds, connections);
    await warmBatch;
    const warmMemory = await server.call<MemoryFigures>('rss');
    const rssWarm = warmMemory.rssMb;

    log(`load: ${seconds} s at ${connections} connections, two batch runs of ${batchRows} rows alongside`);
    const batches = server.call<
      {
        file: string;
        status: string;
        message?: string;
        counts?: {
          read: number;
          scored: number;
          rejected: number;
          writtenToTable: number;
          tableSkipped: number;
        };
      }[]
    >('batch', { files: datasets.map((d) => d.file), options: { chunkBytes: 256 * 1024 } });
    log(
      'promotion cases: corrupt, missing version, invalid JSON, deleted, broken canary, restored (under the load)',
    );
    const promotions = runPromotionCases(server, apiUrl, seconds);
    const run = await load(apiUrl, mix, seconds, connections);
    const promotionResults = await promotions;
    const batchResults = await batches;
    const endMemory = await server.call<MemoryFigures>('rss');
    const rssEnd = endMemory.rssMb;

    const batch = batchResults.map((r, i) => {
      const d = datasets[i]!;
      const c = r.counts;
      const exact =
        r.status === 'SUCCEEDED' &&
        c !== undefined &&
        c.read === d.rows &&
        c.rejected === d.bad &&
        c.scored === d.rows - d.bad &&
        c.writtenToTable + c.tableSkipped === c.scored;
      return {
        dataset: path.basename(r.file),
        rows: d.rows,
        badRows: d.bad,
        status: r.status,
        counts: c,
        exact,
        ...(r.message && !exact ? { message: r.message } : {}),
      };
    });
    const rssRatio = Number((rssEnd / rssWarm).toFixed(3));
    const checks = {
      noUnexpectedResponses: warm.unexpected === 0 && run.unexpected === 0,
      // Implied by the one above; stated on its own since it is what the promotion cases must not break.
      noFailedCacheHitsOrPredictions:
        run.unexpectedByKind.hit + run.unexpectedByKind.model + run.unexpectedByKind.multi === 0,
      promotionCasesReported: promotionResults.every((p) => p.pass),
      noErrorsOrTimeouts: warm.errors + warm.timeouts + run.errors + run.timeouts === 0,
      batchCountsExact: batch.every((b) => b.exact),
      rssWithinLimit: rssRatio <= RSS_GROWTH_LIMIT,
    };
    const pass = Object.values(checks).every(Boolean);

    const table = [
      ['requests', `${run.requests} in ${seconds} s (${run.rps} req/s), ${connections} connections`],
      [
        'mix',
        `hit ${run.byKind.hit}, model ${run.byKind.model}, multi ${run.byKind.multi}, bad ${run.byKind.bad}`,
      ],
      ['latency', `p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms`],
      [
        'failed during load',
        `hit ${run.unexpectedByKind.hit}, model ${run.unexpectedByKind.model}, multi ${run.unexpectedByKind.multi}, bad ${run.unexpectedByKind.bad}`,
      ],
      ...promotionResults.map((p) => [
        `promotion: ${p.case}`,
        p.pass
          ? `${p.observed} (seen after ${p.seenAfterMs} ms)`
          : `FAIL: ${p.observed}, expected ${p.expected}`,
      ]),
      [
        'unexpected',
        `${run.unexpected + warm.unexpected}${run.unexpectedSamples.length ? `: ${run.unexpectedSamples.join('; ')}` : ''}`,
      ],
      ['errors / timeouts', `${run.errors + warm.errors} / ${run.timeouts + warm.timeouts}`],
      [
        'RSS warm / end',
        `${rssWarm.toFixed(1)} / ${rssEnd.toFixed(1)} MB (ratio ${rssRatio}, limit ${RSS_GROWTH_LIMIT}); JS heap ${warmMemory.heapUsedMb.toFixed(1)} / ${endMemory.heapUsedMb.toFixed(1)} MB, external ${warmMemory.externalMb.toFixed(1)} / ${endMemory.externalMb.toFixed(1)} MB`,
      ],
      ...batch.map((b) => [
        `batch ${b.dataset}`,
        `${b.status}: read ${b.counts?.read}, scored ${b.counts?.scored}, rejected ${b.counts?.rejected} (planted ${b.badRows}), table ${b.counts?.writtenToTable}${b.exact ? '' : ' MISMATCH'}`,
      ]),
      [
        'result',
        pass
          ? 'pass'
          : `FAIL (${Object.entries(checks)
              .filter(([, ok]) => !ok)
              .map(([name]) => name)
              .join(', ')})`,
      ],
    ];
    for (const [name, value] of table) process.stdout.write(`${name!.padEnd(22)} ${value}\n`);
    process.stdout.write(
      `${JSON.stringify({
        pass,
        checks,
        seconds,
        connections,
        requests: run.requests,
        rps: run.rps,
        p50Ms: run.p50Ms,
        p99Ms: run.p99Ms,
        byKind: run.byKind,
        unexpected: run.unexpected + warm.unexpected,
        unexpectedByKind: run.unexpectedByKind,
        promotions: promotionResults,
        unexpectedSamples: [...warm.unexpectedSamples, ...run.unexpectedSamples],
        errors: run.errors + warm.errors,
        timeouts: run.timeouts + warm.timeouts,
        rssWarmMb: Number(rssWarm.toFixed(1)),
        rssEndMb: Number(rssEnd.toFixed(1)),
        rssRatio,
        heapUsedWarmMb: Number(warmMemory.heapUsedMb.toFixed(1)),
        heapUsedEndMb: Number(endMemory.heapUsedMb.toFixed(1)),
        batch,
      })}\n`,
    );
    return pass ? 0 : 1;
  } finally {
    await server.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed to run: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
