/**
 * The stream section: how big should a micro-batch be. On the local stack (kinesalite, dynalite,
 * s3rver, the real consumer handler behind the poller with the event source mapping's semantics):
 * - latency: a steady event rate for each (batching window, batch size), end to end from the event's
 *   creation to its prediction's arrival on the output stream (p50, p99), with the invocations per
 *   1,000 records (what Lambda bills);
 * - throughput: the demo dataset's rows put as a backlog and consumed with full batches (rows/s), next
 *   to the batch lane scoring the same rows from a CSV upload.
 * Run alone: `npx tsx bench/stream.ts [--quick]`. No assertions: figures are reported.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { OutgoingRecord } from '../lambdas/core/stream/micro-batch.ts';
import { readDemoDataset } from '../local/demo-dataset.ts';
import {
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
  type LocalStack,
} from '../local/stack.ts';
import { startStreamLane, type LocalStreamOptions } from '../local/stream-lane.ts';
import { readWholeStream } from '../local/kinesis-streams.ts';
import { percentile } from './stats.ts';

export interface StreamConfig {
  readonly windowSeconds: number;
  readonly batchSize: number;
}

export interface StreamBenchOptions {
  readonly configs: readonly StreamConfig[];
  readonly eventsPerSecond: number;
  readonly seconds: number;
  readonly throughputBatchSize: number;
}

export const STREAM_QUICK: StreamBenchOptions = {
  configs: [
    { windowSeconds: 0, batchSize: 100 },
    { windowSeconds: 1, batchSize: 100 },
  ],
  eventsPerSecond: 100,
  seconds: 5,
  throughputBatchSize: 500,
};

export const STREAM_FULL: StreamBenchOptions = {
  configs: [
    { windowSeconds: 0, batchSize: 100 },
    { windowSeconds: 1, batchSize: 100 },
    { windowSeconds: 1, batchSize: 500 },
    { windowSeconds: 5, batchSize: 500 },
  ],
  eventsPerSecond: 200,
  seconds: 15,
  throughputBatchSize: 500,
};

export interface LatencyRow extends StreamConfig {
  readonly records: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly invocationsPer1000: number;
  readonly meanBatch: number;
}

export interface StreamResult {
  readonly latency: readonly LatencyRow[];
  readonly consumerRowsPerSecond: number;
  readonly batchRowsPerSecond: number;
  readonly rows: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A stream lane of its own on the stack (its own stream names), quiet. */
function benchLane(stack: LocalStack, options: LocalStreamOptions) {
  return startStreamLane({
    aws: stack.aws,
    s3: stack.s3,
    dynamo: stack.dynamo,
    bucket: LOCAL_BUCKET,
    table: LOCAL_TABLE,
    defaultModel: DEMO_MODEL,
    dataDir: undefined,
    log: () => undefined,
    options,
  });
}

async function demoEvents(): Promise<OutgoingRecord[]> {
  const demo = await readDemoDataset();
  const idIndex = demo.header.indexOf(demo.idField);
  return demo.rows.map((row) => {
    const id = row[idIndex]!;
    return { partitionKey: id, data: Buffer.from(JSON.stringify({ id, features: demo.featuresOf(row) })) };
  });
}

async function latencyRun(
  stack: LocalStack,
  config: StreamConfig,
  index: number,
  options: StreamBenchOptions,
  events: readonly OutgoingRecord[],
): Promise<LatencyRow> {
  const lane = await benchLane(stack, {
    settings: {
      inputStreamName: `bench-events-${index}`,
      outputStreamName: `bench-predictions-${index}`,
      batchSize: config.batchSize,
      batchingWindowSeconds: config.windowSeconds,
    },
    pollIntervalMs: 50,
  });
  try {
    const tickMs = 100;
    const perTick = Math.max(1, Math.round((options.eventsPerSecond * tickMs) / 1000));
    const ticks = Math.round((options.seconds * 1000) / tickMs);
    const started = Date.now();
    let next = 0;
    for (let t = 0; t < ticks; t++) {
      const batch = Array.from({ length: perTick }, () => {
        const source = events[next++ % events.length]!;
        const body = JSON.parse(Buffer.from(source.data).toString('utf8')) as Record<string, unknown>;
        return {
          partitionKey: source.partitionKey,
          data: Buffer.from(JSON.stringify({ ...body, eventTime: new Date().toISOString() })),
        };
      });
      await lane.input.put(batch);
      const wait = started + (t + 1) * tickMs - Date.now();
      if (wait > 0) await sleep(wait);
    }
    await lane.poller.waitUntilIdle(120_000);
    const published = await readWholeStream(lane.kinesis, lane.settings.outputStreamName);
    const latencies = published.map(
      (p) =>
        p.arrivalMs -
        Date.parse((JSON.parse(Buffer.from(p.data).toString('utf8')) as { eventTime: string }).eventTime),
    );
    const { invocations, recordsDelivered } = lane.poller.stats;
    return {
      ...config,
      records: published.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      invocationsPer1000: (invocations / Math.max(1, recordsDelivered)) * 1000,
      meanBatch: recordsDelivered / Math.max(1, invocations),
    };
  } finally {
    await lane.stop();
  }
}

async function consumerThroughput(
  stack: LocalStack,
  options: StreamBenchOptions,
  events: readonly OutgoingRecord[],
): Promise<number> {
  const settings = {
    inputStreamName: 'bench-backlog',
    outputStreamName: 'bench-backlog-predictions',
    batchSize: options.throughputBatchSize,
    batchingWindowSeconds: 0,
  };
  // The backlog is put first (through a lane whose poller is stopped at once), then consumed by a fresh one.
  const producer = await benchLane(stack, {
    settings,
    wrapHandler: () => async () => {
      throw new Error('paused');
    },
  });
  await producer.poller.stop();
  await producer.input.put(events);
  await producer.stop();
  const started = performance.now();
  const consumer = await benchLane(stack, { settings, pollIntervalMs: 20 });
  try {
    await consumer.poller.waitUntilIdle(300_000);
    return events.length / ((performance.now() - started) / 1000);
  } finally {
    await consumer.stop();
  }
}

export async function runStreamBench(options: StreamBenchOptions): Promise<StreamResult> {
  const stack = await startLocalStack({ seed: false, stream: {}, log: () => undefined });
  try {
    const events = await demoEvents();
    const latency: LatencyRow[] = [];
    for (const [i, config] of options.configs.entries())
      latency.push(await latencyRun(stack, config, i, options, events));
    const consumerRowsPerSecond = await consumerThroughput(stack, options, events);
    const started = performance.now();
    const run = await stack.runDataset(
      path.join(REPO_ROOT, 'models', DEMO_MODEL, 'demo-transactions.csv'),
      DEMO_MODEL,
      `incoming/${DEMO_MODEL}/bench-stream.csv`,
    );
    const batchRowsPerSecond = run.counts.scored / ((performance.now() - started) / 1000);
    return { latency, consumerRowsPerSecond, batchRowsPerSecond, rows: events.length };
  } finally {
    await stack.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
  const result = await runStreamBench(values.quick ? STREAM_QUICK : STREAM_FULL);
  process.stdout.write('window_s batch records p50_ms p99_ms invocations/1000 mean_batch\n');
  for (const r of result.latency) {
    process.stdout.write(
      `${r.windowSeconds} ${r.batchSize} ${r.records} ${r.p50Ms.toFixed(0)} ${r.p99Ms.toFixed(0)} ${r.invocationsPer1000.toFixed(1)} ${r.meanBatch.toFixed(1)}\n`,
    );
  }
  process.stdout.write(
    `consumer (full batches of ${(values.quick ? STREAM_QUICK : STREAM_FULL).throughputBatchSize}): ${result.consumerRowsPerSecond.toFixed(0)} rows/s; batch lane on the same ${result.rows} rows: ${result.batchRowsPerSecond.toFixed(0)} rows/s\n`,
  );
  process.stdout.write(`${JSON.stringify({ stream: result })}\n`);
}

/** The figures for bench/run.ts: its JSON line and table rows. */
export function streamFigures(r: StreamResult): {
  json: Record<string, unknown>;
  rows: { section: string; figure: string; value: string; spread: string }[];
} {
  const oneSecond = r.latency.find((row) => row.windowSeconds === 1);
  const ratio = r.consumerRowsPerSecond / r.batchRowsPerSecond;
  const rows = r.latency.map((row, i) => ({
    section: i === 0 ? 'stream' : '',
    figure: `window ${row.windowSeconds} s, batch ${row.batchSize}: p50 / p99 ms`,
    value: `${row.p50Ms.toFixed(0)} / ${row.p99Ms.toFixed(0)}`,
    spread: `${row.invocationsPer1000.toFixed(1)} invocations per 1000 records, mean batch ${row.meanBatch.toFixed(0)}`,
  }));
  rows.push(
    {
      section: '',
      figure: 'window1P99Ms (window 1 s, end to end)',
      value: oneSecond ? oneSecond.p99Ms.toFixed(0) : 'n/a',
      spread: '',
    },
    {
      section: '',
      figure: 'consumerToBatchRatio (full batches vs the batch lane)',
      value: ratio.toFixed(2),
      spread: `${r.consumerRowsPerSecond.toFixed(0)} vs ${r.batchRowsPerSecond.toFixed(0)} rows/s, ${r.rows} rows`,
    },
  );
  return {
    json: {
      window1P99Ms: oneSecond ? Math.round(oneSecond.p99Ms) : null,
      consumerToBatchRatio: Math.round(ratio * 100) / 100,
      consumerRowsPerSec: Math.round(r.consumerRowsPerSecond),
      batchRowsPerSec: Math.round(r.batchRowsPerSecond),
      latency: r.latency,
    },
    rows,
  };
}
