/**
 * HTTP section: the local stack's API (the real handler behind the API Gateway adapter, model path with
 * bypassCache) vs a bare node:http server that parses the JSON body and calls session.run.
 *
 * Fairness on 2 cores: each server runs in a child process of its own and autocannon (which needs a
 * core too) runs in this process; both servers are started up front and loaded one at a time, in
 * alternating rounds (the order flips each round) after a warm-up of each, with the same payload,
 * connections and round length. Only the server being loaded is busy; the other one idles.
 */
import path from 'node:path';
import autocannon from 'autocannon';
import { forkTs, nextMessage, stopChild, type Child } from './child.ts';
import { demoRow, writeUnzippedModel } from './demo.ts';
import { percentile, summarize, type Summary } from './stats.ts';

export interface HttpOptions {
  readonly connections: number;
  readonly warmupSeconds: number;
  readonly rounds: number;
  readonly roundSeconds: number;
}

/** 5 s of load on each side after 1 s of warm-up. */
export const HTTP_QUICK: HttpOptions = { connections: 8, warmupSeconds: 1, rounds: 5, roundSeconds: 1 };
/** 20 s of load on each side after 3 s of warm-up. */
export const HTTP_FULL: HttpOptions = { connections: 8, warmupSeconds: 3, rounds: 10, roundSeconds: 2 };

interface Round {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly errors: number;
}

export interface SideFigures {
  readonly rps: Summary;
  readonly p50Ms: Summary;
  readonly p99Ms: Summary;
  readonly non2xx: number;
  readonly errors: number;
}

export interface HttpResult {
  readonly bareRps: number;
  readonly rps: number;
  readonly ratio: number;
  readonly p99Ms: number;
  // extras
  readonly bareP99Ms: number;
  readonly p50Ms: number;
  readonly bareP50Ms: number;
  /** ours / bare requests per second of each round pair: the spread of `ratio`. */
  readonly roundRatios: Summary;
  readonly ours: SideFigures;
  readonly bare: SideFigures;
  readonly connections: number;
  readonly secondsPerSide: number;
}

function load(url: string, body: string, connections: number, seconds: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const latencies: number[] = [];
    const instance = autocannon(
      {
        url: `${url}/predict`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        connections,
        duration: seconds,
      },
      (error: unknown, result) => {
        if (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
          return;
        }
        // autocannon's own latency histogram has 1 ms resolution; these are hrtime-based floats.
        const sorted = Float64Array.from(latencies).sort();
        resolve({
          rps: result['2xx'] / result.duration,
          p50Ms: percentile(sorted, 50),
          p99Ms: percentile(sorted, 99),
          non2xx: result.non2xx,
          errors: result.errors,
        });
      },
    );
    instance.on('response', (_client, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime);
    });
  });
}

async function startServer(
  script: string,
  args: string[],
  label: string,
): Promise<{ child: Child; url: string }> {
  const child = forkTs(path.join(import.meta.dirname, script), args, { label });
  try {
    const { url } = await nextMessage<{ url: string }>(child, 'ready', 120_000);
    return { child, url };
  } catch (error) {
    await stopChild(child);
    throw error;
  }
}

async function checkServer(url: string, body: string, what: string): Promise<void> {
  const response = await fetch(`${url}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${what} answered ${response.status}: ${text.slice(0, 300)}`);
}

function sideFigures(rounds: readonly Round[]): SideFigures {
  return {
    rps: summarize(rounds.map((r) => r.rps)),
    p50Ms: summarize(rounds.map((r) => r.p50Ms)),
    p99Ms: summarize(rounds.map((r) => r.p99Ms)),
    non2xx: rounds.reduce((n, r) => n + r.non2xx, 0),
    errors: rounds.reduce((n, r) => n + r.errors, 0),
  };
}

export async function runHttpBench(
  options: HttpOptions,
  log: (line: string) => void = () => undefined,
): Promise<HttpResult> {
  const row = await demoRow(0);
  const body = JSON.stringify({ id: row.id, features: row.features, bypassCache: true });
  const modelFile = await writeUnzippedModel();

  const servers: { child: Child; url: string }[] = [];
  try {
    const bare = await startServer('http-bare-server.ts', [modelFile], 'http-bare');
    servers.push(bare);
    const ours = await startServer('http-ours-server.ts', [], 'http-ours');
    servers.push(ours);
    await checkServer(bare.url, body, 'the bare server');
    await checkServer(ours.url, body, 'the local stack');

    log(`http: warm-up ${options.warmupSeconds} s each`);
    await load(bare.url, body, options.connections, options.warmupSeconds);
    await load(ours.url, body, options.connections, options.warmupSeconds);

    const bareRounds: Round[] = [];
    const ourRounds: Round[] = [];
    for (let r = 0; r < options.rounds; r++) {
      log(`http: round ${r + 1}/${options.rounds}`);
      if (r % 2 === 0) {
        bareRounds.push(await load(bare.url, body, options.connections, options.roundSeconds));
        ourRounds.push(await load(ours.url, body, options.connections, options.roundSeconds));
      } else {
        ourRounds.push(await load(ours.url, body, options.connections, options.roundSeconds));
        bareRounds.push(await load(bare.url, body, options.connections, options.roundSeconds));
      }
    }
    log(
      `http: rounds bare ${bareRounds.map((r) => Math.round(r.rps)).join(' ')} | ours ${ourRounds.map((r) => Math.round(r.rps)).join(' ')}`,
    );
    const oursFigures = sideFigures(ourRounds);
    const bareFigures = sideFigures(bareRounds);
    return {
      bareRps: bareFigures.rps.p50,
      rps: oursFigures.rps.p50,
      ratio: oursFigures.rps.p50 / bareFigures.rps.p50,
      p99Ms: oursFigures.p99Ms.p50,
      bareP99Ms: bareFigures.p99Ms.p50,
      p50Ms: oursFigures.p50Ms.p50,
      bareP50Ms: bareFigures.p50Ms.p50,
      roundRatios: summarize(ourRounds.map((o, i) => o.rps / bareRounds[i]!.rps)),
      ours: oursFigures,
      bare: bareFigures,
      connections: options.connections,
      secondsPerSide: options.rounds * options.roundSeconds,
    };
  } finally {
    await Promise.all(servers.map((s) => stopChild(s.child)));
  }
}
