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
import { SESSION_OPTIONS, createSession, runSession } from '../model-loader.ts';
import {
  scoringThreadSource,
  type ThreadData,
  type ThreadFeed,
  type ThreadMessage,
  type ThreadReply,
} from './scoring-thread-main.ts';

export type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

/**
 * One input tensor, filled: numbers, or strings as codes (see feed-batch.ts): per cell an index into the
 * input's dictionary (`input`: the index of the input plan), then, from its length on, into `extras`.
 */
export type FeedSpec = ThreadFeed;

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
 * (`lambdaMemoryMb`, 1,769 MB per vCPU), since Lambda shows two CPUs even to functions that get less
 * than one vCPU of time.
 */
export function resolveScoringThreads(
  choice: number | 'auto',
  lambdaMemoryMb?: number,
  cpus: number = os.availableParallelism(),
): number {
  if (choice !== 'auto') {
    if (!Number.isInteger(choice) || choice < 0 || choice > MAX_THREADS)
      throw new RangeError(`scoringThreads must be an integer from 0 to ${MAX_THREADS}, got ${choice}`);
    return choice;
  }
  const vcpus =
    lambdaMemoryMb !== undefined && lambdaMemoryMb > 0
      ? Math.min(cpus, lambdaMemoryMb / LAMBDA_MB_PER_VCPU)
      : cpus;
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
    const results = await runSession(this.session, tensors, fetches, this.label);
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
    worker.on('message', (reply: ThreadReply) => this.receive(reply));
    worker.on('error', (error) =>
      this.fail(
        new InferenceError('INFERENCE_FAILED', `the scoring thread of ${label} failed: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    worker.on('exit', (code) => {
      if (!this.closed)
        this.fail(
          new InferenceError('INFERENCE_FAILED', `the scoring thread of ${label} exited (code ${code})`),
        );
    });
  }

  static async start(
    graphBytes: Uint8Array,
    label: string,
    dictionaries: Dictionaries,
  ): Promise<WorkerRunner> {
    const onnxruntime = createRequire(import.meta.url).resolve('onnxruntime-node');
    const unfinished = new Int32Array(new SharedArrayBuffer(4));
    const data: ThreadData = { onnxruntime, unfinished: unfinished.buffer as SharedArrayBuffer };
    const worker = new Worker(scoringThreadSource(), { eval: true, workerData: data });
    const loaded = new Promise<void>((resolve, reject) => {
      const onMessage = (reply: ThreadReply) => {
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
    const load: ThreadMessage = { kind: 'load', bytes, options: SESSION_OPTIONS, dictionaries };
    worker.postMessage(load, [bytes.buffer]);
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
    const message: ThreadMessage = { kind: 'run', id, feeds, fetches: [...fetches] };
    this.worker.postMessage(message, transferables(feeds));
    return result;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fail(new InferenceError('INFERENCE_FAILED', `the scoring thread of ${this.label} was closed`));
    await this.worker.terminate();
  }

  private receive(reply: ThreadReply): void {
    if (reply.kind !== 'result' && reply.kind !== 'failed') return;
    const run = this.pending.get(reply.id);
    if (!run) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.kind === 'result') {
      run.resolve({ outputs: reply.outputs, inputs: reply.inputs, runMs: reply.runMs });
    } else {
      run.reject(
        new InferenceError('INFERENCE_FAILED', `onnxruntime failed to run ${this.label}: ${reply.message}`),
      );
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

/**
 * Builds the sessions for a compiled model: inline (threads 0) or on scoring threads. A graph onnxruntime
 * refuses gives ModelLoadError MODEL_CORRUPT, as loadModel does.
 */
export async function startFeedRunner(
  graphBytes: Uint8Array,
  threads: number,
  label: string,
  dictionaries: Dictionaries,
): Promise<FeedRunner> {
  const inline = new InlineRunner(await createSession(graphBytes, label), label, dictionaries);
  if (threads === 0) return inline;
  const started = await Promise.allSettled(
    Array.from({ length: threads }, () => startScoringThread(graphBytes, label, dictionaries)),
  );
  const workers = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) {
    await Promise.all([...workers.map((w) => w.close()), inline.close()]);
    // A thread's session refused the graph (or the thread did not start): fails as createSession does.
    throw new ModelLoadError(
      'MODEL_CORRUPT',
      `onnxruntime cannot load ${label}: ${messageOf(failed.reason)}`,
      {
        cause: failed.reason,
      },
    );
  }
  return new HybridRunner(workers, inline);
}
