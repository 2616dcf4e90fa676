/**
 * Peak RSS of a child process: the child reports its own `process.resourceUsage().maxRSS` at exit
 * (rss-reporter.ts, preloaded with --import), and /proc/<pid>/status VmHWM is sampled meanwhile as a
 * fallback (a child killed before its exit handler runs). The larger of the two is reported.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { childEnv } from './child.ts';

export interface PeakRssOptions {
  /** The script to run (a .ts file runs under tsx). */
  readonly script: string;
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly execArgv?: readonly string[];
  readonly timeoutMs?: number;
  /** /proc sampling period; default 50 ms. */
  readonly sampleMs?: number;
}

export interface PeakRssRun {
  readonly peakRssMb: number;
  /** Which measurement gave the peak. */
  readonly source: 'resourceUsage' | 'proc-sampling';
  readonly exitCode: number | null;
  readonly wallMs: number;
  readonly stdout: string;
  readonly stderr: string;
}

const REPORTER = pathToFileURL(path.join(import.meta.dirname, 'rss-reporter.ts')).href;

async function vmHwmKb(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0; // not Linux, or the process is gone
  }
}

export async function runWithPeakRss(options: PeakRssOptions): Promise<PeakRssRun> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tandem-bench-rss-'));
  const rssFile = path.join(dir, 'maxrss');
  try {
    const tsx = options.script.endsWith('.ts') ? ['--import', 'tsx'] : [];
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [...tsx, '--import', REPORTER, ...(options.execArgv ?? []), options.script, ...(options.args ?? [])],
      { env: { ...(options.env ?? childEnv()), BENCH_RSS_FILE: rssFile }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-8000)));
    let sampledKb = 0;
    const sampler = setInterval(() => {
      if (child.pid !== undefined)
        void vmHwmKb(child.pid).then((kb) => (sampledKb = Math.max(sampledKb, kb)));
    }, options.sampleMs ?? 50);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code));
    });
    const wallMs = performance.now() - started;
    clearInterval(sampler);
    clearTimeout(timer);
    const reportedKb = Number(await readFile(rssFile, 'utf8').catch(() => '0')) || 0;
    const source = reportedKb >= sampledKb ? 'resourceUsage' : 'proc-sampling';
    return { peakRssMb: Math.max(reportedKb, sampledKb) / 1024, source, exitCode, wallMs, stdout, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
