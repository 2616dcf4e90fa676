/**
 * CPU profiles of the measured paths, each over the measured window only (after start-up and warm-up),
 * summarized as top self-time functions and areas with µs per call / request:
 *   tsx bench/profile.ts model [iterations]   the handler's model path in-process, then bare session.run
 *   tsx bench/profile.ts http [seconds]       the bare server, then the local stack, under autocannon load
 *                                             (8 connections, same payload as the http section)
 *   tsx bench/profile.ts cold [runs]          the cold-start bundles (unminified) under --cpu-prof, self
 *                                             time by the package each bundled line came from
 * The .cpuprofile files stay in the scratch folder (Chrome DevTools or speedscope open them).
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import autocannon from 'autocannon';
import { forkTs, nextMessage, stopChild } from './child.ts';
import { prepareColdStart, startColdStartStorage } from './cold-start.ts';
import {
  areaOf,
  formatInclusive,
  formatSummary,
  inclusiveAndCallers,
  summarizeProfile,
  type CpuProfile,
} from './cpuprofile-top.ts';
import { demoRow, SCRATCH_DIR, writeUnzippedModel } from './demo.ts';

const SPLIT_BY_CALLER = ['getStringFromEnv', 'json', 'randomFillSync', 'writev'];

async function report(title: string, file: string, ops: number, top = 30): Promise<void> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  process.stdout.write(`\n=== ${title} (${file})\n${formatSummary(summarizeProfile(profile, top), ops)}\n\n`);
  process.stdout.write(`${formatInclusive(inclusiveAndCallers(profile, top, SPLIT_BY_CALLER), ops)}\n`);
}

async function profileModel(dir: string, iterations: number): Promise<void> {
  const child = forkTs(path.join(import.meta.dirname, 'profile-model-path.ts'), [dir, String(iterations)], {
    label: 'profile-model',
  });
  const result = await nextMessage<{
    iterations: number;
    failed: number;
    files: { handler: string; bare: string };
    wallMs: { handler: number; bare: number };
  }>(child, 'result', 600_000);
  await stopChild(child);
  const perCall = (ms: number) => ((1000 * ms) / result.iterations).toFixed(1);
  process.stdout.write(
    `model path: ${result.iterations} calls each, failed ${result.failed}; mean under the profiler: ` +
      `handler ${perCall(result.wallMs.handler)} µs, bare ${perCall(result.wallMs.bare)} µs\n`,
  );
  await report('handler, model path', result.files.handler, result.iterations);
  await report('bare session.run', result.files.bare, result.iterations, 15);
}

async function profileServer(
  dir: string,
  name: 'bare' | 'ours',
  seconds: number,
  body: string,
  modelFile: string,
): Promise<void> {
  const script = name === 'bare' ? 'http-bare-server.ts' : 'http-ours-server.ts';
  const child = forkTs(path.join(import.meta.dirname, script), name === 'bare' ? [modelFile] : [], {
    label: `profile-${name}`,
  });
  try {
    const { url } = await nextMessage<{ url: string }>(child, 'ready', 120_000);
    const load = (duration: number) =>
      autocannon({
        url: `${url}/predict`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        connections: 8,
        duration,
      });
    await load(2);
    child.process.send({ kind: 'profile-start' });
    await nextMessage(child, 'ready', 10_000);
    const result = await load(seconds);
    const file = path.join(dir, `${name}-server.cpuprofile`);
    child.process.send({ kind: 'profile-stop', file });
    await nextMessage(child, 'result', 60_000);
    const rps = Math.round(result['2xx'] / result.duration);
    process.stdout.write(`\n${name} server: ${rps} req/s under the profiler, non-2xx ${result.non2xx}\n`);
    await report(`${name} server`, file, result['2xx'], name === 'bare' ? 15 : 30);
  } finally {
    await stopChild(child);
  }
}

const MODULE_INIT = /^((?:node_modules|lambdas|bench|test|local)\/\S+)$/;

/** `node_modules/@aws-sdk/client-s3/dist-cjs/index.js` -> `@aws-sdk/client-s3`; repo paths -> their folder. */
function packageOf(source: string): string {
  return source.startsWith('node_modules/') ? areaOf(`/${source}`) : source.split('/').slice(0, 2).join('/');
}

async function profileCold(dir: string, runs: number): Promise<void> {
  // Unminified, unlike the measured bundles, so that each line can be traced to its package.
  const storage = await startColdStartStorage();
  try {
    await profileColdWith(await prepareColdStart(dir, storage, false), dir, runs);
  } finally {
    await storage.stop();
  }
}

async function profileColdWith(
  setup: Awaited<ReturnType<typeof prepareColdStart>>,
  dir: string,
  runs: number,
): Promise<void> {
  for (const [name, side] of [
    ['handler', setup.ours],
    ['bare', setup.bare],
  ] as const) {
    const bundleText = await readFile(side.bundle, 'utf8');
    const sources: { line: number; source: string }[] = [];
    bundleText.split('\n').forEach((text, line) => {
      const match = /^\/\/ ((?:node_modules|lambdas|bench|test|local)\/\S+)$/.exec(text);
      if (match) sources.push({ line, source: match[1]! });
    });
    const areaOfLine = (line: number): string => {
      let lo = 0;
      let hi = sources.length - 1;
      let found = '(bundle prelude)';
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (sources[mid]!.line <= line) {
          found = sources[mid]!.source;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return packageOf(found);
    };
    const bundleUrl = pathToFileURL(side.bundle).href;
    const totals = new Map<string, number>();
    let reports = '';
    for (let r = 0; r < runs; r++) {
      const profileDir = path.join(dir, `${name}-${r}`);
      const child = spawn(
        process.execPath,
        ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', '100', side.bundle],
        { env: side.env, stdio: ['ignore', 'pipe', 'ignore'] },
      );
      child.stdout.on('data', (c: Buffer) => (reports += c.toString()));
      await new Promise((resolve) => child.once('exit', resolve));
      const file = (await readdir(profileDir)).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no profile in ${profileDir}`);
      const profile = JSON.parse(await readFile(path.join(profileDir, file), 'utf8')) as CpuProfile;
      const byId = new Map(profile.nodes.map((n) => [n.id, n]));
      const parent = new Map<number, number>();
      for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
      const memo = new Map<number, string>();
      // esbuild names each bundled module's init function after its path: a sample under one is that
      // module's evaluation (lazy compilation and required built-ins included).
      const attribute = (id: number): string => {
        const known = memo.get(id);
        if (known) return known;
        let area: string | undefined;
        for (let cur: number | undefined = id; cur !== undefined && !area; cur = parent.get(cur)) {
          const init = MODULE_INIT.exec(byId.get(cur)!.callFrame.functionName);
          if (init) area = `evaluate ${packageOf(init[1]!)}`;
        }
        const frame = byId.get(id)!.callFrame;
        area ??=
          frame.functionName === 'compileSourceTextModule'
            ? '(parse + compile the bundle)'
            : frame.url === bundleUrl
              ? `run ${areaOfLine(frame.lineNumber)}`
              : frame.url === '' && frame.functionName.startsWith('(')
                ? frame.functionName
                : frame.url === ''
                  ? '(native / VM)'
                  : areaOf(frame.url);
        memo.set(id, area);
        return area;
      };
      for (let i = 0; i < profile.samples.length; i++) {
        const area = attribute(profile.samples[i]!);
        totals.set(area, (totals.get(area) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000 / runs);
      }
    }
    const sum = [...totals.values()].reduce((a, b) => a + b, 0);
    process.stdout.write(
      `\n=== cold start, ${name} (${(side.kb / 1024).toFixed(2)} MB bundle), mean of ${runs} profiled runs: ${sum.toFixed(0)} ms sampled\n`,
    );
    process.stdout.write(`child reports: ${reports.trim().split('\n').join(' | ')}\n`);
    for (const [area, ms] of [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      process.stdout.write(
        `  ${((100 * ms) / sum).toFixed(1).padStart(5)}%  ${ms.toFixed(1).padStart(7)} ms  ${area}\n`,
      );
    }
  }
}

async function main(): Promise<void> {
  const [target = 'model', amount] = process.argv.slice(2);
  const dir = path.join(SCRATCH_DIR, 'profiles', `${target}-${new Date().toISOString().replaceAll(':', '')}`);
  await mkdir(dir, { recursive: true });
  if (target === 'model') {
    await profileModel(dir, Number(amount ?? '30000'));
  } else if (target === 'http') {
    const row = await demoRow(0);
    const body = JSON.stringify({ id: row.id, features: row.features, bypassCache: true });
    const modelFile = await writeUnzippedModel();
    await profileServer(dir, 'bare', Number(amount ?? '8'), body, modelFile);
    await profileServer(dir, 'ours', Number(amount ?? '8'), body, modelFile);
  } else if (target === 'cold') {
    await profileCold(dir, Number(amount ?? '3'));
  } else {
    throw new Error(`unknown target "${target}": model | http | cold`);
  }
}

await main();
