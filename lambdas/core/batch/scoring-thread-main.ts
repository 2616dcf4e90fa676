/**
 * The code a scoring thread runs (scoring-thread.ts starts it), and the messages it exchanges with the
 * chunk scorer's thread. Messages are handled one at a time, in order.
 *
 * The thread is started from this function's source text (`scoringThreadSource`), evaluated as a script:
 * that works the same from the TypeScript sources (tsx, tests) and from the single-file Lambda bundle,
 * which has no file for a worker to load. So the function is self-contained: it uses only its `require`
 * parameter and globals, never anything else of this module (type imports are erased), and declares no
 * named inner functions (the bundle's keepNames would wrap them in a helper the thread does not have):
 * its helpers are methods of an object.
 */
import type * as Ort from 'onnxruntime-node';
import type { TensorType } from '../manifest.ts';

type TensorData = Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

/** One input tensor, filled: numbers, or strings as codes into the thread's dictionaries. */
export type ThreadFeed =
  | {
      readonly name: string;
      readonly type: Exclude<TensorType, 'string'>;
      readonly data: TensorData;
      readonly dims: readonly number[];
    }
  | {
      readonly name: string;
      readonly type: 'string';
      readonly codes: Int32Array;
      readonly extras: readonly string[];
      readonly input: number;
      readonly dims: readonly number[];
    };

export interface ThreadData {
  /** The path of onnxruntime-node as the main thread resolved it. */
  readonly onnxruntime: string;
  /** An Int32Array's buffer: runs sent and not finished, which the thread decrements as each ends. */
  readonly unfinished: SharedArrayBuffer;
}

export type ThreadMessage =
  | {
      readonly kind: 'load';
      readonly bytes: Uint8Array;
      readonly options: Ort.InferenceSession.SessionOptions;
      readonly dictionaries: readonly (readonly string[] | undefined)[];
    }
  | {
      readonly kind: 'run';
      readonly id: number;
      readonly feeds: readonly ThreadFeed[];
      readonly fetches: string[];
    };

export interface ThreadTensor {
  readonly type: string;
  readonly data: ArrayLike<number | bigint | string>;
  readonly dims: readonly number[];
}

export type ThreadReply =
  | { kind: 'loaded' }
  | { kind: 'load-failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, ThreadTensor>; inputs: TensorData[]; runMs: number }
  | { kind: 'failed'; id: number; message: string; inputs: TensorData[] };

type Require = (id: string) => unknown;

/** The scoring thread's main. Self-contained: see the module comment. */
export function scoringThreadMain(require: Require): void {
  const { parentPort, workerData } = require('node:worker_threads') as typeof import('node:worker_threads');
  const data = workerData as ThreadData;
  const ort = require(data.onnxruntime) as typeof Ort;
  const port = parentPort!;
  const thread = {
    session: undefined as Ort.InferenceSession | undefined,
    dictionaries: [] as readonly (readonly string[] | undefined)[],
    queue: [] as ThreadMessage[],
    busy: false,
    // Shared with the main thread, which adds a run as it sends it; this thread takes it away as the run
    // ends, before its reply is even read there.
    unfinished: new Int32Array(data.unfinished),

    messageOf(error: unknown): string {
      return (error instanceof Error && error.message) || String(error);
    },

    buffersOf(values: readonly unknown[]): ArrayBuffer[] {
      const buffers = new Set<ArrayBuffer>();
      for (const value of values) if (ArrayBuffer.isView(value)) buffers.add(value.buffer as ArrayBuffer);
      return [...buffers];
    },

    reply(message: ThreadReply, transfer: ArrayBuffer[] = []): void {
      port.postMessage(message, transfer);
    },

    tensor(feed: ThreadFeed): Ort.Tensor {
      if (feed.type !== 'string') return new ort.Tensor(feed.type, feed.data as never, feed.dims);
      const dictionary = this.dictionaries[feed.input] ?? [];
      const known = dictionary.length;
      const strings = new Array<string>(feed.codes.length);
      for (let i = 0; i < feed.codes.length; i++) {
        const code = feed.codes[i]!;
        strings[i] = code < known ? dictionary[code]! : feed.extras[code - known]!;
      }
      return new ort.Tensor('string', strings, feed.dims);
    },

    async load(message: Extract<ThreadMessage, { kind: 'load' }>): Promise<void> {
      try {
        this.session = await ort.InferenceSession.create(message.bytes, message.options);
        this.dictionaries = message.dictionaries;
        this.reply({ kind: 'loaded' });
      } catch (error) {
        this.reply({ kind: 'load-failed', message: this.messageOf(error) });
      }
    },

    async run(message: Extract<ThreadMessage, { kind: 'run' }>): Promise<void> {
      const inputs = message.feeds.map((feed) => (feed.type === 'string' ? feed.codes : feed.data));
      let results: Ort.InferenceSession.OnnxValueMapType;
      let runMs: number;
      try {
        const feeds: Record<string, Ort.Tensor> = {};
        for (const feed of message.feeds) feeds[feed.name] = this.tensor(feed);
        const started = performance.now();
        results = await this.session!.run(feeds, message.fetches);
        runMs = performance.now() - started;
      } catch (error) {
        Atomics.sub(this.unfinished, 0, 1);
        const failed = { kind: 'failed', id: message.id, message: this.messageOf(error), inputs } as const;
        this.reply(failed, this.buffersOf(inputs));
        return;
      }
      Atomics.sub(this.unfinished, 0, 1);
      const outputs: Record<string, ThreadTensor> = {};
      for (const name of Object.keys(results)) {
        const tensor = results[name] as Ort.Tensor;
        outputs[name] = { type: tensor.type, data: tensor.data as ThreadTensor['data'], dims: tensor.dims };
      }
      const result: ThreadReply = { kind: 'result', id: message.id, outputs, inputs, runMs };
      const datas = Object.keys(outputs).map((name) => outputs[name]!.data);
      try {
        this.reply(result, this.buffersOf([...inputs, ...datas]));
      } catch {
        // An output buffer that cannot be transferred is copied instead.
        this.reply(result, this.buffersOf(inputs));
      }
    },

    async drain(): Promise<void> {
      this.busy = true;
      for (let message = this.queue.shift(); message; message = this.queue.shift())
        await (message.kind === 'load' ? this.load(message) : this.run(message));
      this.busy = false;
    },
  };
  port.on('message', (message: ThreadMessage) => {
    thread.queue.push(message);
    if (!thread.busy) void thread.drain();
  });
}

/** The script a Worker evaluates (`eval: true`, where `require` is defined): scoringThreadMain, run. */
export function scoringThreadSource(): string {
  return `'use strict';\n(${scoringThreadMain.toString()})(require);\n`;
}
