/**
 * Child processes for the benchmarks. Every measured side runs in a process of its own, so one
 * process holds one handler configuration (predict.ts reads its environment at import) and the
 * parent's own work (autocannon, bookkeeping) never shares a heap with what is measured.
 *
 * Children talk to the parent over IPC ({kind: 'ready' | 'result' | 'error'}). Their stdout and
 * stderr never reach the parent's stdout (whose last line is the JSON result): they are kept in a
 * tail buffer shown when a child fails, or streamed to stderr with --verbose.
 */
import { fork, type ChildProcess } from 'node:child_process';

const ORIGINAL_ENV: NodeJS.ProcessEnv = { ...process.env };

/**
 * What the API handler reads from its environment (config.ts, Powertools). Never inherited from the shell
 * that runs the benchmark: the figures are those of the defaults users run.
 */
const HANDLER_SETTINGS =
  /^(?:POWERTOOLS_\w+|AWS_LAMBDA_LOG_\w+|AWS_LAMBDA_MAX_CONCURRENCY|MODELS_URI|DEFAULT_MODEL|TABLE_NAME|CACHE_BUDGET_MS|WRITE_THROUGH|MODEL_REFRESH_SECONDS|MAX_BODY_BYTES|MAX_INSTANCES|LOG_PAYLOADS|METRICS_FLUSH_MS)$/;

/**
 * The deployed predict function's settings beyond the code's defaults. The CDK stack (lib/realtime-api.ts)
 * sets only values equal to config.ts's defaults and no Powertools variable, so Powertools runs with its
 * own defaults: logs at INFO, metrics published. The local stack turns metrics off unless told otherwise
 * (local/stack.ts), hence the explicit `false` for in-process runs on it.
 */
export const DEPLOYED_HANDLER_ENV: Readonly<Record<string, string>> = {
  POWERTOOLS_METRICS_DISABLED: 'false',
};

/** What `npm start` (bin/local.ts) gives the handler on top of the local stack's settings. */
export const NPM_START_HANDLER_ENV: Readonly<Record<string, string>> = { POWERTOOLS_DEV: 'true' };
const TAIL_BYTES = 8 * 1024;

let verboseChildren = false;
export function setVerboseChildren(on: boolean): void {
  verboseChildren = on;
}

/** The parent's original environment (never the mutated one) without handler settings, plus `extra`. */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(ORIGINAL_ENV)) if (!HANDLER_SETTINGS.test(key)) env[key] = value;
  Object.assign(env, extra);
  // The SDK skips AWS_ACCESS_KEY_ID when a profile is set, and no child needs real credentials.
  delete env['AWS_PROFILE'];
  for (const [key, value] of Object.entries(extra)) if (value === undefined) delete env[key];
  return env;
}

export interface Child {
  readonly process: ChildProcess;
  readonly label: string;
  /** The last bytes the child wrote to stdout and stderr. */
  tail(): string;
}

function keepTail(child: ChildProcess, label: string): () => string {
  let tail = '';
  const onData = (chunk: Buffer): void => {
    if (verboseChildren) process.stderr.write(`[${label}] ${chunk.toString()}`);
    tail = (tail + chunk.toString()).slice(-TAIL_BYTES);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return () => tail;
}

/** Forks a TypeScript script under tsx with an IPC channel. */
export function forkTs(
  script: string,
  args: readonly string[],
  options: { label: string; env?: NodeJS.ProcessEnv; execArgv?: readonly string[] },
): Child {
  const child = fork(script, [...args], {
    execArgv: ['--import', 'tsx', ...(options.execArgv ?? [])],
    env: options.env ?? childEnv(),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return { process: child, label: options.label, tail: keepTail(child, options.label) };
}

export type ChildMessage =
  | { kind: 'ready'; data?: unknown }
  | { kind: 'result'; data: unknown }
  | { kind: 'error'; message: string; stack?: string };

/** The next IPC message of `kind` from the child; rejects when it reports an error, exits or times out. */
export function nextMessage<T>(child: Child, kind: 'ready' | 'result', timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`${child.label}: ${why}\n--- child output (tail) ---\n${child.tail()}`));
    };
    const onMessage = (raw: unknown): void => {
      const message = raw as ChildMessage;
      if (message.kind === 'error') fail(`${message.message}\n${message.stack ?? ''}`);
      else if (message.kind === kind) {
        cleanup();
        resolve((message as { data?: unknown }).data as T);
      }
    };
    const onExit = (code: number | null, signal: string | null): void =>
      fail(`exited (code ${code}, signal ${signal}) before sending "${kind}"`);
    const timer = setTimeout(() => fail(`no "${kind}" within ${timeoutMs} ms`), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      child.process.off('message', onMessage);
      child.process.off('exit', onExit);
    };
    child.process.on('message', onMessage);
    child.process.on('exit', onExit);
  });
}

/** Asks the child to stop ({kind: 'stop'}), then kills it (by its own pid) if it has not exited in time. */
export async function stopChild(child: Child, timeoutMs = 10_000): Promise<void> {
  const proc = child.process;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  if (proc.connected) proc.send({ kind: 'stop' });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
}

// --- the child side ---------------------------------------------------------------------------------

export function sendToParent(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('not started by the benchmark runner (no IPC channel)'));
      return;
    }
    process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}

/** Resolves when the parent asks this child to stop (or the IPC channel closes). */
export function stopRequested(): Promise<void> {
  return new Promise((resolve) => {
    process.on('message', (raw: unknown) => {
      if ((raw as { kind?: string }).kind === 'stop') resolve();
    });
    process.once('disconnect', () => resolve());
  });
}

/** Runs a child's main function and exits; a failure is reported to the parent (exit code 1). */
export function runChild(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    async (error: unknown) => {
      const err = error instanceof Error ? error : new Error(String(error));
      await sendToParent({ kind: 'error', message: err.message, stack: err.stack }).catch(() => undefined);
      process.exit(1);
    },
  );
}
