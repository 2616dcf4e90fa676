/**
 * Cold-start section, in the deployed configuration: a fresh process to the first prediction through
 * the API handler (module load, its DynamoDB and S3 clients, the default model read from the S3 emulator
 * as MODELS_URI = s3://..., a table configured) vs a fresh process that creates the same two clients,
 * reads the model file from the same S3 emulator, creates the session and runs once.
 *
 * Mechanism: both sides are pre-bundled with esbuild as lib/tandem-function.ts bundles the deployed
 * functions (ESM, minified, onnxruntime-node and the AWS SDK clients left external; node20 here) and
 * started as plain `node <bundle>.mjs`. Bundling is what Lambda runs, and it keeps tsx's loader hooks and
 * per-file transpile out of the figure: under `node --import tsx` that cost grows with the number of .ts
 * files imported, which would charge the handler (~dozens of modules) for a tool that never runs in
 * Lambda while the bare side (one file) barely pays it. Bundling happens once, before any timed run.
 *
 * Figure: wall time from spawn() to the child's result line on stdout (marked: the handler's own log
 * lines go to stdout too), measured here the same way for both sides; the children also report their
 * own init / first-prediction times (from their performance.timeOrigin) as a breakdown. One untimed run
 * of each first (file cache), then `runs` rounds alternating which side goes first.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build, type Plugin } from 'esbuild';
import { SESSION_OPTIONS } from '../lambdas/core/model-loader.ts';
import { LOCAL_BUCKET, LOCAL_TABLE, startLocalStack } from '../local/stack.ts';
import { childEnv } from './child.ts';
import {
  bareLayout,
  demoRow,
  DEMO_MODEL,
  DEMO_VERSION,
  readDemoManifest,
  SCRATCH_DIR,
  unzippedModelBytes,
} from './demo.ts';
import { summarize, type Summary } from './stats.ts';

export interface ColdStartOptions {
  readonly runs: number;
  readonly warmupRuns: number;
}

export const COLD_START_QUICK: ColdStartOptions = { runs: 5, warmupRuns: 1 };
export const COLD_START_FULL: ColdStartOptions = { runs: 15, warmupRuns: 2 };

interface ChildReport {
  readonly ok: boolean;
  readonly initMs: number;
  readonly firstPredictionMs: number;
  readonly body?: string;
}

interface Run {
  readonly wallMs: number;
  readonly report: ChildReport;
}

export interface ColdSide {
  /** Spawn to result line, ms. */
  readonly wallMs: Summary;
  /** The child's own view: process start to module / session ready, and to the first prediction. */
  readonly initMs: Summary;
  readonly firstPredictionMs: Summary;
  readonly bundleKb: number;
}

export interface ColdStartResult {
  readonly bareMs: number;
  readonly ms: number;
  readonly ratio: number;
  // extras
  /** ours / bare wall time of each round: the spread of `ratio`. */
  readonly roundRatios: Summary;
  readonly ours: ColdSide;
  readonly bare: ColdSide;
  readonly mechanism: string;
}

const require = createRequire(import.meta.url);

/**
 * The deployed bundles' externals (lib/tandem-function.ts EXTERNAL_MODULES: onnxruntime-node, shipped as
 * files, and the AWS SDK clients, which the Lambda runtime provides), imported by absolute path so that
 * bundles run from the scratch folder.
 */
const deployedExternals: Plugin = {
  name: 'deployed-externals',
  setup(b) {
    b.onResolve({ filter: /^(?:onnxruntime-node|@aws-sdk\/client-[\w-]+)$/ }, (args) => ({
      path: require.resolve(args.path),
      external: true,
    }));
  },
};

async function bundle(entry: string, outfile: string, minify: boolean): Promise<number> {
  const result = await build({
    entryPoints: [path.join(import.meta.dirname, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // As lib/tandem-function.ts bundles the deployed functions: minified, ESM entry points of packages,
    // the same externals.
    minify,
    keepNames: minify,
    mainFields: ['module', 'main'],
    // CommonJS dependencies (the AWS SDK...) call require() on Node built-ins.
    banner: {
      js: "import { createRequire as __benchCreateRequire } from 'node:module'; const require = __benchCreateRequire(import.meta.url);",
    },
    plugins: [deployedExternals],
    logLevel: 'error',
    metafile: true,
  });
  const output = Object.values(result.metafile.outputs)[0];
  return (output?.bytes ?? 0) / 1024;
}

/**
 * The children's report line. The handler logs to the same stdout (its INFO lines and metrics, as in
 * Lambda), so the report is marked rather than being the first line.
 */
const RESULT_MARKER = 'BENCH_RESULT ';

function resultLine(stdout: string): string | undefined {
  const complete = stdout.split('\n').slice(0, -1);
  const line = complete.find((l) => l.startsWith(RESULT_MARKER));
  return line?.slice(RESULT_MARKER.length);
}

function runOnce(bundleFile: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, [bundleFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let wallMs: number | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (wallMs === undefined && resultLine(stdout) !== undefined) wallMs = performance.now() - started;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = resultLine(stdout) ?? '';
      try {
        if (wallMs === undefined) throw new Error('no result line');
        const report = JSON.parse(line) as ChildReport;
        if (!report.ok) throw new Error(`the first prediction failed: ${report.body ?? ''}`);
        resolve({ wallMs, report });
      } catch (error) {
        reject(
          new Error(
            `${path.basename(bundleFile)} (exit ${code}): ${(error as Error).message}\n${stdout}\n${stderr}`,
          ),
        );
      }
    });
  });
}

function side(runs: readonly Run[], bundleKb: number): ColdSide {
  return {
    wallMs: summarize(runs.map((r) => r.wallMs)),
    initMs: summarize(runs.map((r) => r.report.initMs)),
    firstPredictionMs: summarize(runs.map((r) => r.report.firstPredictionMs)),
    bundleKb,
  };
}

export async function runColdStartBench(
  options: ColdStartOptions,
  log: (line: string) => void = () => undefined,
): Promise<ColdStartResult> {
  await mkdir(SCRATCH_DIR, { recursive: true });
  // A folder per run: concurrent benchmark runs never overwrite each other's bundles.
  const dir = await mkdtemp(path.join(SCRATCH_DIR, 'cold-start-'));
  const storage = await startColdStartStorage();
  try {
    return await measure(dir, storage, options, log);
  } finally {
    await storage.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Where both sides read their model: the S3 emulator (with the table), as the deployed function does. */
export interface ColdStartStorage {
  /** Points the SDK clients of a child at the emulators. */
  readonly env: Record<string, string>;
  /** The ZipMap-free model file the bare side reads. */
  readonly bareModelKey: string;
  stop(): Promise<void>;
}

/** The local stack's emulators with the demo model uploaded (and its ZipMap-free copy for the bare side). */
export async function startColdStartStorage(): Promise<ColdStartStorage> {
  const stack = await startLocalStack({ seed: false });
  const bareModelKey = `bench/${DEMO_MODEL}-${DEMO_VERSION}-unzipped.onnx`;
  try {
    await stack.objects.writeBytes(
      LOCAL_BUCKET,
      bareModelKey,
      await unzippedModelBytes(),
      'application/octet-stream',
    );
  } catch (error) {
    await stack.stop();
    throw error;
  }
  return { env: stack.aws.env(), bareModelKey, stop: () => stack.stop() };
}

export interface ColdStartSetup {
  readonly ours: { readonly bundle: string; readonly env: NodeJS.ProcessEnv; readonly kb: number };
  readonly bare: { readonly bundle: string; readonly env: NodeJS.ProcessEnv; readonly kb: number };
}

/**
 * Bundles both children into `dir` and builds their environments (also used by profile.ts cold, which
 * bundles unminified: its attribution reads the path comments esbuild writes before each module).
 */
export async function prepareColdStart(
  dir: string,
  storage: ColdStartStorage,
  minify = true,
): Promise<ColdStartSetup> {
  const oursBundle = path.join(dir, 'cold-start-handler.mjs');
  const bareBundle = path.join(dir, 'cold-start-bare.mjs');
  const [oursKb, bareKb] = await Promise.all([
    bundle('cold-start-handler.ts', oursBundle, minify),
    bundle('cold-start-bare.ts', bareBundle, minify),
  ]);
  const row = await demoRow(0);
  const payload = JSON.stringify({ features: row.features });
  const oursEnv = childEnv({
    ...storage.env,
    MODELS_URI: `s3://${LOCAL_BUCKET}/models/`,
    DEFAULT_MODEL: DEMO_MODEL,
    TABLE_NAME: LOCAL_TABLE,
    BENCH_PAYLOAD: payload,
  });
  const bareEnv = childEnv({
    ...storage.env,
    BENCH_MODEL_BUCKET: LOCAL_BUCKET,
    BENCH_MODEL_KEY: storage.bareModelKey,
    BENCH_SESSION_OPTIONS: JSON.stringify(SESSION_OPTIONS),
    BENCH_LAYOUT: JSON.stringify(bareLayout(await readDemoManifest())),
    BENCH_PAYLOAD: payload,
  });
  return {
    ours: { bundle: oursBundle, env: oursEnv, kb: oursKb },
    bare: { bundle: bareBundle, env: bareEnv, kb: bareKb },
  };
}

async function measure(
  dir: string,
  storage: ColdStartStorage,
  options: ColdStartOptions,
  log: (line: string) => void,
): Promise<ColdStartResult> {
  const setup = await prepareColdStart(dir, storage);
  const [oursBundle, oursEnv, oursKb] = [setup.ours.bundle, setup.ours.env, setup.ours.kb];
  const [bareBundle, bareEnv, bareKb] = [setup.bare.bundle, setup.bare.env, setup.bare.kb];

  for (let i = 0; i < options.warmupRuns; i++) {
    await runOnce(bareBundle, bareEnv);
    await runOnce(oursBundle, oursEnv);
  }
  const ours: Run[] = [];
  const bare: Run[] = [];
  for (let r = 0; r < options.runs; r++) {
    if (r % 2 === 0) {
      bare.push(await runOnce(bareBundle, bareEnv));
      ours.push(await runOnce(oursBundle, oursEnv));
    } else {
      ours.push(await runOnce(oursBundle, oursEnv));
      bare.push(await runOnce(bareBundle, bareEnv));
    }
    log(
      `coldStart: run ${r + 1}/${options.runs}: bare ${bare.at(-1)!.wallMs.toFixed(0)} ms, ours ${ours.at(-1)!.wallMs.toFixed(0)} ms`,
    );
  }
  const oursSide = side(ours, oursKb);
  const bareSide = side(bare, bareKb);
  return {
    bareMs: bareSide.wallMs.p50,
    ms: oursSide.wallMs.p50,
    ratio: oursSide.wallMs.p50 / bareSide.wallMs.p50,
    roundRatios: summarize(ours.map((o, i) => o.wallMs / bare[i]!.wallMs)),
    ours: oursSide,
    bare: bareSide,
    mechanism:
      'esbuild bundles (esm, node20, minified, onnxruntime-node and @aws-sdk/client-* external) run as `node <bundle>.mjs`; models read from the S3 emulator (s3rver), table configured (dynalite)',
  };
}
