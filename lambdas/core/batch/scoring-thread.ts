/**
 * Where a batch worker's onnxruntime sessions run. `session.run` in onnxruntime-node blocks the JS thread
 * for the whole run, so a worker that parses, validates and writes on the same thread does all of it in
 * sequence. With two vCPUs or more, runs go to scoring threads (one session of one onnxruntime thread
 * each, one thread per vCPU but the first): the chunk scorer keeps reading, validating and writing while
 * they run. When every scoring thread already has a run queued, the next run is done inline instead, so
 * the calling thread spends its spare time scoring and no vCPU idles whichever side is slower. On one vCPU
 * every run is inline, as in the real-time lane.
 *
 * Either way the runner takes pre-filled input tensors (FeedSpec) and gives back the raw output tensors,
 * which the caller decodes with the real-time lane's decoder, so both modes give the same predictions.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { InferenceError, ModelLoadError } from '../errors.ts';
import type { TensorType } from '../manifest.ts';
import { SESSION_OPTIONS } from '../model-loader.ts';

export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

/** One input tensor, filled: numbers, or strings as codes (see feed-batch.ts). */
export type FeedSpec =
  | {
      readonly name: string;
      readonly type: Exclude<TensorType, 'string'>;
      readonly data: TensorData;
      readonly dims: readonly number[];
    }
  | {
      readonly name: string;
      readonly type: 'string';
      /** Per cell: an index into the input's dictionary, then (from its length on) into `extras`. */
      readonly codes: Int32Array;
      readonly extras: readonly string[];
      /** Which input's dictionary (the index of the input plan). */
      readonly input: number;
      readonly dims: readonly number[];
    };

/** The strings of a coded string feed. */
export function feedStrings(
  codes: Int32Array,
  dictionary: readonly string[],
  extras: readonly string[],
): string[] {
  const known = dictionary.length;
  const strings = new Array<string>(codes.length);
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i]!;
    strings[i] = code < known ? dictionary[code]! : extras[code - known]!;
  }
  return strings;
}

function feedData(feed: FeedSpec): TensorData {
  return feed.type === 'string' ? feed.codes : feed.data;
}

/** One output tensor as onnxruntime returned it (what decodePredictions reads). */
export interface OutputTensor {
  readonly type: string;
  readonly data: ArrayLike<number | bigint | string>;
  readonly dims: readonly number[];
}

export type Outputs = Readonly<Record<string, OutputTensor>>;

export interface RunResult {
  readonly outputs: Outputs;
  /** The feeds' data, handed back (a worker thread transfers them back) so the caller can reuse them. */
  readonly inputs: readonly TensorData[];
  /** Time spent in session.run. */
  readonly runMs: number;
}

export interface FeedRunner {
  /** Scoring threads (0: every run is inline, on the calling thread). */
  readonly threads: number;
  /** False once the runner cannot run any more (its scoring thread died): load the model again. */
  readonly healthy: boolean;
  /** Runs the session once; rejects with InferenceError when onnxruntime fails. */
  run(feeds: readonly FeedSpec[], fetches: readonly string[]): Promise<RunResult>;
  close(): Promise<void>;
}

/** Lambda gives a function one vCPU's worth of CPU time per 1,769 MB of memory. */
const LAMBDA_MB_PER_VCPU = 1769;

/**
 * How many scoring threads: a number as given (0 = inline), or `auto`: one less than the vCPUs of CPU
 * time the process has, rounded (the calling thread is the other one), and 0 below 1.5 vCPUs. The vCPUs
 * are the CPUs it may run on (os.availableParallelism), capped on Lambda by the function's memory
 * (AWS_LAMBDA_FUNCTION_MEMORY_SIZE, 1,769 MB per vCPU), since Lambda shows two CPUs even to functions
 * that get less than one vCPU of time.
 */
export function resolveScoringThreads(
  choice: number | 'auto',
  env: Readonly<Record<string, string | undefined>> = process.env,
  cpus: number = os.availableParallelism(),
): number {
  if (choice !== 'auto') {
    if (!Number.isInteger(choice) || choice < 0 || choice > MAX_THREADS)
      throw new RangeError(`scoringThreads must be an integer from 0 to ${MAX_THREADS}, got ${choice}`);
    return choice;
  }
  const lambdaMb = Number(env['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']);
  const vcpus = lambdaMb > 0 ? Math.min(cpus, lambdaMb / LAMBDA_MB_PER_VCPU) : cpus;
  return vcpus >= 1.5 ? Math.min(MAX_THREADS, Math.round(vcpus) - 1) : 0;
}

const MAX_THREADS = 16;

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Per input plan: the dictionary of a string input (undefined for numeric inputs). */
export type Dictionaries = readonly (readonly string[] | undefined)[];

function tensorOf(feed: FeedSpec, dictionaries: Dictionaries): ort.Tensor {
  if (feed.type === 'string') {
    return new ort.Tensor(
      'string',
      feedStrings(feed.codes, dictionaries[feed.input] ?? [], feed.extras),
      feed.dims,
    );
  }
  return new ort.Tensor(feed.type, feed.data as never, feed.dims);
}

class InlineRunner implements FeedRunner {
  readonly threads = 0;
  readonly healthy = true;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly label: string,
    private readonly dictionaries: Dictionaries,
  ) {}

  async run(feeds: readonly FeedSpec[], fetches: readonly string[]): Promise<RunResult> {
    const tensors: Record<string, ort.Tensor> = {};
    for (const feed of feeds) tensors[feed.name] = tensorOf(feed, this.dictionaries);
    // session.run starts on a later turn of the event loop; wait for it, so that runMs is the run's own.
    await new Promise(setImmediate);
    const started = performance.now();
    let results: ort.InferenceSession.OnnxValueMapType;
    try {
      results = await this.session.run(tensors, [...fetches]);
    } catch (cause) {
      throw new InferenceError(`onnxruntime failed to run ${this.label}: ${messageOf(cause)}`, undefined, {
        cause,
      });
    }
    const runMs = performance.now() - started;
    const outputs: Record<string, OutputTensor> = {};
    for (const name of Object.keys(results)) {
      const tensor = results[name] as ort.Tensor;
      outputs[name] = { type: tensor.type, data: tensor.data as OutputTensor['data'], dims: tensor.dims };
    }
    return { outputs, inputs: feeds.map(feedData), runMs };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The scoring thread's code: plain CommonJS, evaluated by the Worker (so that it works the same from the
 * TypeScript sources, tests and the single-file Lambda bundle); onnxruntime-node is required by the path
 * the main thread resolved. Messages are handled one at a time, in order.
 */
const WORKER_SOURCE = `'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.onnxruntime);
// Runs sent to this thread and not finished, shared with the main thread (which adds, this thread takes
// away as each run ends, before its reply is even read there).
const unfinished = new Int32Array(workerData.unfinished);
let session;
let dictionaries = [];
const queue = [];
let busy = false;
const messageOf = (error) => (error && error.message) || String(error);
parentPort.on('message', (message) => {
  queue.push(message);
  if (!busy) void drain();
});
function buffersOf(values) {
  const buffers = new Set();
  for (const value of values) if (ArrayBuffer.isView(value)) buffers.add(value.buffer);
  return [...buffers];
}
async function handle(message) {
  if (message.kind === 'load') {
    try {
      session = await ort.InferenceSession.create(message.bytes, message.options);
      dictionaries = message.dictionaries;
      parentPort.postMessage({ kind: 'loaded' });
    } catch (error) {
      parentPort.postMessage({ kind: 'load-failed', message: messageOf(error) });
    }
    return;
  }
  const inputs = message.feeds.map((feed) => (feed.type === 'string' ? feed.codes : feed.data));
  let results;
  let runMs;
  try {
    const feeds = {};
    for (const feed of message.feeds) {
      if (feed.type === 'string') {
        const dictionary = dictionaries[feed.input] || [];
        const known = dictionary.length;
        const codes = feed.codes;
        const strings = new Array(codes.length);
        for (let i = 0; i < codes.length; i++) {
          const code = codes[i];
          strings[i] = code < known ? dictionary[code] : feed.extras[code - known];
        }
        feeds[feed.name] = new ort.Tensor('string', strings, feed.dims);
      } else {
        feeds[feed.name] = new ort.Tensor(feed.type, feed.data, feed.dims);
      }
    }
    const started = performance.now();
    results = await session.run(feeds, message.fetches);
    runMs = performance.now() - started;
  } catch (error) {
    Atomics.sub(unfinished, 0, 1);
    parentPort.postMessage({ kind: 'failed', id: message.id, message: messageOf(error), inputs }, buffersOf(inputs));
    return;
  }
  Atomics.sub(unfinished, 0, 1);
  const outputs = {};
  for (const name of Object.keys(results)) {
    const tensor = results[name];
    outputs[name] = { type: tensor.type, data: tensor.data, dims: tensor.dims };
  }
  const reply = { kind: 'result', id: message.id, outputs, inputs, runMs };
  const datas = Object.keys(outputs).map((name) => outputs[name].data);
  try {
    parentPort.postMessage(reply, buffersOf([...inputs, ...datas]));
  } catch {
    // An output buffer that cannot be transferred is copied instead.
    parentPort.postMessage(reply, buffersOf(inputs));
  }
}
async function drain() {
  busy = true;
  while (queue.length > 0) await handle(queue.shift());
  busy = false;
}
`;

type WorkerReply =
  | { kind: 'loaded' }
  | { kind: 'load-failed'; message: string }
  | { kind: 'result'; id: number; outputs: Outputs; inputs: TensorData[]; runMs: number }
  | { kind: 'failed'; id: number; message: string; inputs: TensorData[] };

interface PendingRun {
  resolve(result: RunResult): void;
  reject(error: Error): void;
}

function transferables(feeds: readonly FeedSpec[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const feed of feeds) buffers.add(feedData(feed).buffer as ArrayBuffer);
  return [...buffers];
}

/** One scoring thread and its session. */
class WorkerRunner {
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 1;
  private failure: Error | undefined;
  private closed = false;

  get healthy(): boolean {
    return this.failure === undefined;
  }

  /**
   * Runs sent and not finished on the thread yet: read from memory the thread updates as each run ends,
   * not from its replies, which wait in this thread's event loop while it is busy filling the next batch
   * (counting those would make an idle scoring thread look busy, and the run would be done inline).
   */
  get load(): number {
    return Atomics.load(this.unfinished, 0);
  }

  private constructor(
    private readonly worker: Worker,
    private readonly label: string,
    private readonly unfinished: Int32Array,
  ) {
    worker.on('message', (reply: WorkerReply) => this.receive(reply));
    worker.on('error', (error) =>
      this.fail(
        new InferenceError(`the scoring thread of ${label} failed: ${error.message}`, undefined, {
          cause: error,
        }),
      ),
    );
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new InferenceError(`the scoring thread of ${label} exited (code ${code})`));
    });
  }

  static async start(
    graphBytes: Uint8Array,
    label: string,
    dictionaries: Dictionaries,
  ): Promise<WorkerRunner> {
    const onnxruntime = createRequire(import.meta.url).resolve('onnxruntime-node');
    const unfinished = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { onnxruntime, unfinished: unfinished.buffer },
    });
    const loaded = new Promise<void>((resolve, reject) => {
      const onMessage = (reply: WorkerReply) => {
        worker.off('error', onError);
        if (reply.kind === 'loaded') resolve();
        else reject(new Error(reply.kind === 'load-failed' ? reply.message : `unexpected ${reply.kind}`));
      };
      const onError = (error: Error) => {
        worker.off('message', onMessage);
        reject(error);
      };
      worker.once('message', onMessage);
      worker.once('error', onError);
    });
    const bytes = new Uint8Array(graphBytes); // a copy: its buffer is transferred
    worker.postMessage({ kind: 'load', bytes, options: SESSION_OPTIONS, dictionaries }, [bytes.buffer]);
    try {
      await loaded;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    const runner = new WorkerRunner(worker, label, unfinished);
    worker.unref();
    return runner;
  }

  run(feeds: readonly FeedSpec[], fetches: readonly string[]): Promise<RunResult> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const result = new Promise<RunResult>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    // Referenced only while runs are pending, so an idle scorer never keeps a process alive.
    if (this.pending.size === 1) this.worker.ref();
    Atomics.add(this.unfinished, 0, 1);
    this.worker.postMessage({ kind: 'run', id, feeds, fetches }, transferables(feeds));
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fail(new InferenceError(`the scoring thread of ${this.label} was closed`));
    await this.worker.terminate();
  }

  private receive(reply: WorkerReply): void {
    if (reply.kind !== 'result' && reply.kind !== 'failed') return;
    const run = this.pending.get(reply.id);
    if (!run) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.kind === 'result') {
      run.resolve({ outputs: reply.outputs, inputs: reply.inputs, runMs: reply.runMs });
    } else {
      run.reject(new InferenceError(`onnxruntime failed to run ${this.label}: ${reply.message}`));
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const run of this.pending.values()) run.reject(this.failure);
    this.pending.clear();
    this.worker.unref();
  }
}

/** Runs a scoring thread may have pending (one running, one queued) before runs are done inline. */
const THREAD_BACKLOG = 2;

/**
 * Scoring threads and an inline session: each run goes to the thread with the fewest runs pending, or
 * inline when every thread has THREAD_BACKLOG pending.
 */
class HybridRunner implements FeedRunner {
  constructor(
    private readonly workers: readonly WorkerRunner[],
    private readonly inline: InlineRunner,
  ) {}

  get threads(): number {
    return this.workers.length;
  }

  get healthy(): boolean {
    return this.workers.every((w) => w.healthy);
  }

  run(feeds: readonly FeedSpec[], fetches: readonly string[]): Promise<RunResult> {
    let target = this.workers[0]!;
    for (const worker of this.workers) if (worker.load < target.load) target = worker;
    return target.load >= THREAD_BACKLOG ? this.inline.run(feeds, fetches) : target.run(feeds, fetches);
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.map((w) => w.close()), this.inline.close()]);
  }
}

/**
 * Builds the sessions for a compiled model: inline (threads 0) or on scoring threads. A graph onnxruntime refuses gives
 * ModelLoadError MODEL_CORRUPT, as loadModel does.
 */
/**
 * One scoring thread with its own session of the graph; rejects with onnxruntime's message when the thread
 * cannot load it (the thread is terminated).
 */
export function startScoringThread(
  graphBytes: Uint8Array,
  label: string,
  dictionaries: Dictionaries,
): Promise<WorkerRunner> {
  return WorkerRunner.start(graphBytes, label, dictionaries);
}

export async function startFeedRunner(
  graphBytes: Uint8Array,
  threads: number,
  label: string,
  dictionaries: Dictionaries,
): Promise<FeedRunner> {
  try {
    const session = await ort.InferenceSession.create(graphBytes, SESSION_OPTIONS);
    const inline = new InlineRunner(session, label, dictionaries);
    if (threads > 0) {
      const started = await Promise.allSettled(
        Array.from({ length: threads }, () => startScoringThread(graphBytes, label, dictionaries)),
      );
      const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) {
        await Promise.all([...workers.map((w) => w.close()), inline.close()]);
        throw failed.reason;
      }
      return new HybridRunner(workers, inline);
    }
    return inline;
  } catch (cause) {
    throw new ModelLoadError(`onnxruntime cannot load ${label}: ${messageOf(cause)}`, 'MODEL_CORRUPT', {
      cause,
    });
  }
}
