/**
 * `npm run soak`: the local stack under sustained load. autocannon holds 64 connections on the API for
 * 60 s with a fixed mix of cache hits, model-path requests, multi-instance requests and bad requests,
 * each checked against the status (and source or error code) it must get; meanwhile two batch runs
 * score generated datasets through the same process, and the demo model's `current.json` is broken and
 * repaired (pointed at a corrupt model, at a version never uploaded, made invalid JSON, deleted, restored).
 * Then, still under the load, the model lifecycle through its core (as `tandem models ...`): a second
 * version, pushed and precomputed for the ids the soak asks for (a batch run with modelVersion during the
 * warm-up), is canaried at 10 % and 50 %, promoted, and rolled back.
 * Passes when no response is unexpected (no cache hit or prediction fails while the pointer is broken or
 * switches: no NOT_PRECOMPUTED for a precomputed id), no request errors or times out, /ready and
 * /models/{name} report each pointer case with its code while the last good version serves, each
 * lifecycle phase is reported and every answer's model.version is the one the split gives its id (probes
 * of 500 ids after each switch and at the end of each phase; the load's answers), both batch runs account
 * for every row exactly, and the server's RSS after the run is within 1.2x of its RSS after warm-up. The
 * last stdout line is the JSON summary.
 */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { RETIRED_SESSION_CLOSE_MS } from '../lambdas/core/model-registry.ts';
import { goesToCanary } from '../lambdas/core/traffic-split.ts';
import { readDemoDataset, type DemoDataset } from '../local/demo-dataset.ts';
import { DEMO_MODEL, REPO_ROOT } from '../local/stack.ts';

const HELP = `Usage: npm run soak [-- options]

Runs the local stack in a child process and loads it: cache hits, model-path requests, multi-instance
requests and bad requests (each must get its expected status), plus two concurrent batch runs; during
the load, the demo model's current.json is broken four ways, given a canary that does not load, and restored (the promotion cases);
then a second version, precomputed for the ids asked, is canaried at 10% and 50%, promoted and rolled back
(the lifecycle phases: no failed request, every answer from the version the split gives its id).

Options:
  --seconds <n>       load duration after warm-up (default: 60; --quick: 10), longer when the
                      pointer cases and lifecycle phases take longer to be seen
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

/** The demo rows the soak asks for by id alone: the mix's (cache hits) and the lifecycle probes. */
function rowsAskedById(demo: Demo, mix: readonly Template[]): (readonly string[])[] {
  const ids = new Set(demo.rows.slice(0, PROBE_IDS).map((r) => r[0]!));
  for (const t of mix) {
    if (t.kind === 'bad' || t.body === undefined) continue;
    const body = JSON.parse(t.body) as { instances?: unknown[] };
    for (const instance of body.instances ?? [body]) {
      const { id, features } = instance as { id?: unknown; features?: unknown };
      if (typeof id === 'string' && features === undefined) ids.add(id);
    }
  }
  return demo.rows.filter((r) => ids.has(r[0]!));
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

interface BatchResult {
  readonly file: string;
  readonly status: string;
  readonly message?: string;
  readonly counts?: {
    readonly read: number;
    readonly scored: number;
    readonly rejected: number;
    readonly writtenToTable: number;
    readonly tableSkipped: number;
  };
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

/** One answer with an entity id in a 200 response, as the load saw it: when, which id, which version. */
interface Answer {
  readonly at: number;
  readonly id: string;
  readonly version: string;
}

/**
 * Runs the mix for `seconds`, or until `until` settles when it is given (never less than `seconds`), and
 * records every answer's entity id and version in `answers` when given.
 */
async function load(
  apiUrl: string,
  mix: Template[],
  seconds: number,
  connections: number,
  extra: { until?: Promise<unknown>; answers?: Answer[]; failedAt?: number[] } = {},
): Promise<LoadFigures> {
  const byKind: Record<Expectation['kind'], number> = { hit: 0, model: 0, multi: 0, bad: 0 };
  let unexpected = 0;
  const unexpectedByKind: Record<Expectation['kind'], number> = { hit: 0, model: 0, multi: 0, bad: 0 };
  const unexpectedSamples: string[] = [];
  let instance: autocannon.Instance | undefined;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(
      {
        url: apiUrl,
        connections,
        // With `until`, stopped when it settles (the cap only bounds a run whose stages hang).
        duration: extra.until ? seconds * 10 + 120 : seconds,
        timeout: 10,
        requests: mix.map((t) => ({
          method: t.method,
          path: t.path,
          headers: { 'content-type': 'application/json' },
          ...(t.body === undefined ? {} : { body: t.body }),
          onResponse: (status: number, body: string) => {
            byKind[t.kind]++;
            let problem =
              status === t.status ? undefined : `status ${status} (${errorOf(body)}), not ${t.status}`;
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
              if (t.kind !== 'bad') extra.failedAt?.push(Date.now());
            } else if (extra.answers && status === 200) {
              recordAnswers(extra.answers, JSON.parse(body));
            }
          },
        })),
      },
      (error, result) => (error ? reject(error as Error) : resolve(result)),
    );
  });
  if (extra.until) {
    const minimum = new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    void Promise.all([extra.until.catch(() => undefined), minimum]).then(() => instance?.stop());
  }
  const result = await finished;
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

/** A failed response's error code and message, for the samples of unexpected responses. */
function errorOf(body: string): string {
  try {
    const parsed = JSON.parse(body) as unknown;
    return `${String(field(parsed, 'error', 'code'))}: ${String(field(parsed, 'error', 'message'))}`;
  } catch {
    return body.slice(0, 200);
  }
}

function recordAnswers(answers: Answer[], body: unknown): void {
  const at = Date.now();
  const list = (field(body, 'predictions') as unknown[] | undefined) ?? [body];
  for (const answer of list) {
    const id = field(answer, 'id');
    const version = field(answer, 'model', 'version');
    if (typeof id === 'string' && typeof version === 'string') answers.push({ at, id, version });
  }
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
  /** The pointer's canary as /ready says it: `<version> <percent>% <serving | the candidate's load code>`. */
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
      canary: `${corrupt} 50% MODEL_CORRUPT`,
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

/**
 * What /ready and /models/{name} say about the pointer, as
 * `<status> <state> serving <version> pointer <version>[ canary <version> <percent>% <state>]`.
 */
async function servingState(apiUrl: string): Promise<{ ready: string; described: string }> {
  const state = (status: number, serving: unknown, pointer: unknown) => {
    const p = (pointer ?? {}) as {
      version?: string;
      serving?: boolean;
      error?: { code?: string };
      canary?: { version?: string; percent?: number; serving?: boolean; error?: { code?: string } };
    };
    const canary = p.canary
      ? ` canary ${p.canary.version} ${p.canary.percent}% ${p.canary.serving ? 'serving' : (p.canary.error?.code ?? 'unknown')}`
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
  cases: readonly PromotionCase[],
  slotMs: number,
): Promise<PromotionFigures[]> {
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

// --- the lifecycle under load ----------------------------------------------------------------------------

/** The candidate: a second version of the demo model, its predictions precomputed for the ids asked. */
const CANDIDATE = '2.0.0';

/** The first demo ids, asked in one id-only request after each switch (at most 500 instances). */
const PROBE_IDS = 500;

/** Which version answers: the live one, and a canary taking `percent` % of the ids. */
interface Split {
  readonly live: string;
  readonly canary?: { readonly version: string; readonly percent: number };
}

function versionFor(split: Split, id: string): string {
  return split.canary && goesToCanary(DEMO_MODEL, id, split.canary.percent)
    ? split.canary.version
    : split.live;
}

function splitText(split: Split): string {
  return split.canary ? `${split.live} + ${split.canary.version} at ${split.canary.percent}%` : split.live;
}

interface LifecyclePhase {
  readonly name: string;
  readonly change: { readonly action: 'canary' | 'promote' | 'rollback'; readonly percent?: number };
  readonly split: Split;
}

const LIFECYCLE_PHASES: readonly LifecyclePhase[] = [
  {
    name: `canary ${CANDIDATE} at 10%`,
    change: { action: 'canary', percent: 10 },
    split: { live: SERVING_VERSION, canary: { version: CANDIDATE, percent: 10 } },
  },
  {
    name: `canary ${CANDIDATE} at 50%`,
    change: { action: 'canary', percent: 50 },
    split: { live: SERVING_VERSION, canary: { version: CANDIDATE, percent: 50 } },
  },
  { name: `promote ${CANDIDATE}`, change: { action: 'promote' }, split: { live: CANDIDATE } },
  {
    name: `roll back to ${SERVING_VERSION}`,
    change: { action: 'rollback' },
    split: { live: SERVING_VERSION },
  },
];

interface ProbeFigures {
  /** Id-only instances asked for, all precomputed for both versions. */
  readonly ids: number;
  /** Answers not a cache hit (NOT_PRECOMPUTED and the like) or not a 200 at all. */
  readonly failed: number;
  /** Answers from another version than the split gives the id. */
  readonly wrongVersion: number;
  /** The share of answers from the candidate, in percent. */
  readonly candidateShare: number;
}

interface LifecycleFigures {
  readonly phase: string;
  readonly split: string;
  /** From the change to /ready and /models/{name} saying so. */
  readonly seenAfterMs: number | undefined;
  /** Two probes of every probe id: right after the change is seen, and at the end of the phase. */
  readonly probes: readonly ProbeFigures[];
  /** Load answers with an id during the phase (from the change to the next one). */
  readonly answers: number;
  readonly candidateAnswers: number;
  /** Load answers from a version neither the split before nor this one gives their id. */
  readonly wrongVersion: number;
  /** Ids answered by both versions after the change was seen (for a canary: the split must hold). */
  readonly idsSeeingBothVersions: number;
  /** Unexpected responses to cache hits, predictions and multi-instance requests during the phase. */
  readonly failedRequests: number;
  readonly pass: boolean;
  readonly problem?: string;
}

/** Every demo id in one id-only request (at most 500 instances): each must be a cache hit of its version. */
async function probe(apiUrl: string, ids: readonly string[], split: Split): Promise<ProbeFigures> {
  const response = await fetch(`${apiUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ instances: ids.map((id) => ({ id })) }),
  });
  const body = (await response.json().catch(() => ({}))) as Json;
  const answers = (body['predictions'] as unknown[] | undefined) ?? [];
  let failed = response.status === 200 ? ids.length - answers.length : ids.length;
  let wrongVersion = 0;
  let candidate = 0;
  answers.forEach((answer, i) => {
    const version = field(answer, 'model', 'version');
    if (field(answer, 'source') !== 'cache') failed++;
    if (version !== versionFor(split, ids[i]!)) wrongVersion++;
    if (version === CANDIDATE) candidate++;
  });
  return {
    ids: ids.length,
    failed,
    wrongVersion,
    candidateShare: Number(((100 * candidate) / Math.max(1, answers.length)).toFixed(1)),
  };
}

/** Within how many points of the canary's percentage the probe ids' share must be (500 ids: sd <= 2.3). */
const SHARE_TOLERANCE = 7;

/**
 * After the pointer cases: canary the candidate at 10 % then 50 %, promote it, roll back, each through
 * the lifecycle core and held for its share of the load. Each phase passes when /ready and
 * /models/{name} report it, every probe id is a cache hit of the version the split gives it (so the
 * candidate's share is the split's), and no answer of the load during the phase came from a version
 * that neither the split before nor this one gives its id.
 */
async function runLifecyclePhases(
  server: Server,
  apiUrl: string,
  slotMs: number,
  probeIds: readonly string[],
  answers: readonly Answer[],
  failedAt: readonly number[],
): Promise<LifecycleFigures[]> {
  const figures: LifecycleFigures[] = [];
  let before: Split = { live: SERVING_VERSION };
  for (const phase of LIFECYCLE_PHASES) {
    const start = Date.now();
    const changed = await server.call<{ ok: boolean; message?: string }>('lifecycle', {
      action: phase.change.action,
      version: CANDIDATE,
      ...(phase.change.percent !== undefined ? { percent: phase.change.percent } : {}),
    });
    const { split } = phase;
    const expected =
      `200 serving serving ${split.live} pointer ${split.live}` +
      (split.canary ? ` canary ${split.canary.version} ${split.canary.percent}% serving` : '');
    let seenAt: number | undefined;
    let observed = '';
    while (changed.ok && Date.now() - start < Math.max(slotMs, 5_000)) {
      const state = await servingState(apiUrl);
      observed = state.ready === state.described ? state.ready : `${state.ready} / ${state.described}`;
      if (state.ready === expected && state.described === expected) {
        seenAt = Date.now();
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const probes = seenAt === undefined ? [] : [await probe(apiUrl, probeIds, split)];
    const rest = slotMs - (Date.now() - start);
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
    if (seenAt !== undefined) probes.push(await probe(apiUrl, probeIds, split));
    const end = Date.now();

    const during = answers.filter((a) => a.at >= start && a.at < end);
    const wrongVersion = during.filter(
      (a) => a.version !== versionFor(split, a.id) && a.version !== versionFor(before, a.id),
    ).length;
    // Answers received a second after the change was seen were decided after it (p99 is far below).
    const settled = during.filter((a) => seenAt !== undefined && a.at >= seenAt + 1_000);
    const versionsById = new Map<string, Set<string>>();
    for (const a of settled) versionsById.set(a.id, (versionsById.get(a.id) ?? new Set()).add(a.version));
    const idsSeeingBothVersions = [...versionsById.values()].filter((v) => v.size > 1).length;
    const failedRequests = failedAt.filter((at) => at >= start && at < end).length;
    const shareProblem = probes.find(
      (p) =>
        Math.abs(p.candidateShare - (split.canary?.percent ?? (split.live === CANDIDATE ? 100 : 0))) >
        SHARE_TOLERANCE,
    );
    const problem = !changed.ok
      ? `the change failed: ${changed.message}`
      : seenAt === undefined
        ? `not reported: ${observed}, expected ${expected}`
        : probes.some((p) => p.failed > 0 || p.wrongVersion > 0)
          ? 'a probe id was not a cache hit of its version'
          : shareProblem
            ? `the candidate's share ${shareProblem.candidateShare}% is not near the split's`
            : wrongVersion + idsSeeingBothVersions + failedRequests > 0
              ? 'load answers broke the split, or failed'
              : undefined;
    figures.push({
      phase: phase.name,
      split: splitText(split),
      seenAfterMs: seenAt === undefined ? undefined : seenAt - start,
      probes,
      answers: during.length,
      candidateAnswers: during.filter((a) => a.version === CANDIDATE).length,
      wrongVersion,
      idsSeeingBothVersions,
      failedRequests,
      pass: problem === undefined,
      ...(problem ? { problem } : {}),
    });
    before = split;
  }
  return figures;
}

// --- main -----------------------------------------------------------------------------------------------

/** Waits until the sessions replaced by the last pointer change have been closed by the server. */
async function settleRetiredSessions(log: (line: string) => void): Promise<void> {
  log(
    `memory: waiting ${(RETIRED_SESSION_CLOSE_MS + 1000) / 1000} s for replaced versions' sessions to close`,
  );
  await new Promise((resolve) => setTimeout(resolve, RETIRED_SESSION_CLOSE_MS + 1000));
}

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
    // The candidate for the lifecycle phases: pushed, then precomputed for the ids the soak asks for by a
    // batch run with modelVersion, alongside the warm-up; once it is, the warm-up runs the lifecycle
    // phases too.
    const pushed = await server.call<{ ok: boolean; message?: string }>('lifecycle', {
      action: 'push',
      version: CANDIDATE,
    });
    if (!pushed.ok) throw new Error(`could not push ${DEMO_MODEL}@${CANDIDATE}: ${pushed.message}`);
    const candidateFile = path.join(scratch, `soak-candidate-${CANDIDATE}.csv`);
    const candidateRows = rowsAskedById(demo, mix);
    await writeFile(candidateFile, [demo.header, ...candidateRows].map((r) => r.join(',')).join('\n') + '\n');
    const precomputeStart = Date.now();
    const warmCandidate = (async () => {
      const [precomputed] = await server.call<BatchResult[]>('batch', {
        files: [candidateFile],
        options: { modelVersion: CANDIDATE },
      });
      const exact =
        precomputed?.status === 'SUCCEEDED' &&
        precomputed.counts?.scored === candidateRows.length &&
        precomputed.counts.writtenToTable === candidateRows.length;
      if (!exact)
        throw new Error(`precomputing ${CANDIDATE} for the demo ids failed: ${JSON.stringify(precomputed)}`);
      log(
        `${DEMO_MODEL}@${CANDIDATE} pushed, precomputed for ${candidateRows.length} ids in ${((Date.now() - precomputeStart) / 1000).toFixed(1)} s; its lifecycle phases run in the warm-up`,
      );
      // The lifecycle phases in small (each switch seen within the API's 1 s refresh, then served a
      // while): the baseline then holds the same versions loaded, and retired but not yet closed (the
      // registry closes a replaced version 30 s later), as the end of the run does.
      for (const phase of LIFECYCLE_PHASES) {
        const changed = await server.call<{ ok: boolean; message?: string }>('lifecycle', {
          action: phase.change.action,
          version: CANDIDATE,
          ...(phase.change.percent !== undefined ? { percent: phase.change.percent } : {}),
        });
        if (!changed.ok) throw new Error(`warm-up ${phase.name}: ${changed.message}`);
        await new Promise((resolve) => setTimeout(resolve, 1_500));
      }
    })();
    const warm = await load(apiUrl, mix, warmupSeconds, connections, { until: warmCandidate });
    await warmBatch;
    await warmCandidate;
    // Both memory figures are taken once the versions the pointer changes replaced have been closed
    // (RETIRED_SESSION_CLOSE_MS after each change): otherwise how many ONNX sessions are still open at
    // either moment depends on timing, and the ratio with it (seen from 0.98 to 1.24 on the quick soak).
    await settleRetiredSessions(log);
    const warmMemory = await server.call<MemoryFigures>('rss');
    const rssWarm = warmMemory.rssMb;

    log(`load: ${seconds} s at ${connections} connections, two batch runs of ${batchRows} rows alongside`);
    const batches = server.call<BatchResult[]>('batch', {
      files: datasets.map((d) => d.file),
      options: { chunkBytes: 256 * 1024 },
    });
    log(
      'promotion cases: corrupt, missing version, invalid JSON, deleted, broken canary, restored; then ' +
        `canary ${CANDIDATE} at 10% and 50%, promote, roll back (under the load)`,
    );
    const cases = await promotionCases();
    // Each pointer case and lifecycle phase holds an equal share of the load (longer when it is slow to
    // be seen); half a share of plain traffic before the first and after the last.
    const slotMs = (seconds * 1000) / (cases.length + LIFECYCLE_PHASES.length + 1);
    const answers: Answer[] = [];
    const failedAt: number[] = [];
    const probeIds = demo.rows.slice(0, PROBE_IDS).map((r) => r[0]!);
    const stages = (async () => {
      const promotionResults = await runPromotionCases(server, apiUrl, cases, slotMs);
      const lifecycleResults = await runLifecyclePhases(server, apiUrl, slotMs, probeIds, answers, failedAt);
      await new Promise((resolve) => setTimeout(resolve, slotMs / 2));
      return { promotionResults, lifecycleResults };
    })();
    const loadStart = Date.now();
    const run = await load(apiUrl, mix, seconds, connections, { until: stages, answers, failedAt });
    const { promotionResults, lifecycleResults } = await stages;
    const loadSeconds = Number(((Date.now() - loadStart) / 1000).toFixed(1));
    const batchResults = await batches;
    await settleRetiredSessions(log);
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
      // Canary at 10 % and 50 %, promote, roll back: reported, split as the hash says, no failed request.
      lifecyclePhasesPass: lifecycleResults.every((p) => p.pass),
      noErrorsOrTimeouts: warm.errors + warm.timeouts + run.errors + run.timeouts === 0,
      batchCountsExact: batch.every((b) => b.exact),
      rssWithinLimit: rssRatio <= RSS_GROWTH_LIMIT,
    };
    const pass = Object.values(checks).every(Boolean);

    const table = [
      ['requests', `${run.requests} in ${loadSeconds} s (${run.rps} req/s), ${connections} connections`],
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
      ...lifecycleResults.map((p) => [
        `lifecycle: ${p.phase}`,
        `${p.pass ? '' : `FAIL (${p.problem}): `}seen after ${p.seenAfterMs ?? '-'} ms; probe share of ${CANDIDATE} ${p.probes.map((q) => `${q.candidateShare}%`).join(' / ')}; load answers ${p.answers} (${CANDIDATE}: ${p.candidateAnswers}), wrong version ${p.wrongVersion}, ids seeing both ${p.idsSeeingBothVersions}, failed ${p.failedRequests}`,
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
        loadSeconds,
        connections,
        requests: run.requests,
        rps: run.rps,
        p50Ms: run.p50Ms,
        p99Ms: run.p99Ms,
        byKind: run.byKind,
        unexpected: run.unexpected + warm.unexpected,
        unexpectedByKind: run.unexpectedByKind,
        promotions: promotionResults,
        lifecycle: lifecycleResults,
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
