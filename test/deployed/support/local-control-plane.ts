/**
 * The parts of AWS the deployed functions call that have no emulator in the repository, on one loopback
 * HTTP endpoint speaking the SDK's JSON protocols:
 *
 * - Step Functions `StartExecution` (the trigger): runs the synthesized state machine definition with
 *   aws-local-stepfunctions, each Lambda task invoking the function its `Resource` ARN names, in the
 *   sandbox. A reused execution name answers `ExecutionAlreadyExists`, as Step Functions does.
 * - EventBridge `PutEvents` (finalize): records the entries.
 *
 * aws-local-stepfunctions has no ItemReader: after the task whose result the Map's ItemReader reads, the
 * items object is read from S3 (bucket and key from the ItemReader's parameters) and handed to the Map
 * through the state; the Map's ResultWriter is dropped (nothing reads its output).
 */
import '../../../local/polyfills.ts';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { StateMachine } from 'aws-local-stepfunctions';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeployedFunction } from './assembly.ts';

type State = Record<string, unknown>;
type States = Record<string, State>;

export interface PublishedEvent {
  readonly Source: string;
  readonly DetailType: string;
  readonly Detail: string;
  readonly EventBusName?: string;
}

export interface Execution {
  readonly name: string;
  readonly input: Record<string, unknown>;
  /** Settles when the execution ends: its status and (failed) error. */
  readonly done: Promise<{ status: 'SUCCEEDED' | 'FAILED'; error?: string; cause?: string }>;
}

export interface ControlPlaneOptions {
  readonly stateMachineArn: string;
  readonly definition: Record<string, unknown>;
  readonly functions: readonly DeployedFunction[];
  /** Invokes a function; resolves with its result or rejects with an Error named by its errorType. */
  readonly invoke: (fn: DeployedFunction, event: unknown) => Promise<unknown>;
  /** Reads the Map's items. */
  readonly s3: S3Client;
  /** Retry pauses in ms instead of the definition's seconds. */
  readonly retryIntervalMs: number;
}

export class LocalControlPlane {
  readonly executions = new Map<string, Execution>();
  readonly events: PublishedEvent[] = [];
  private server: Server | undefined;
  private machine: StateMachine;
  private readonly tasks: Map<string, DeployedFunction>;
  private readonly itemsFrom: { afterState: string; resultPath: string; bucket: string; key: string };

  constructor(private readonly options: ControlPlaneOptions) {
    const definition = structuredClone(options.definition) as { StartAt: string; States: States };
    this.tasks = taskFunctions(definition.States, options.functions);
    const [mapName, map] = Object.entries(definition.States).find(([, s]) => s['Type'] === 'Map') ?? [];
    if (!mapName || !map) throw new Error('the definition has no Map state');
    const reader = map['ItemReader'] as { Parameters: Record<string, string> } | undefined;
    if (!reader) throw new Error(`the Map state ${mapName} has no ItemReader`);
    const [afterState, before] =
      Object.entries(definition.States).find(([, s]) => s['Next'] === mapName) ?? [];
    if (!afterState || !before) throw new Error(`no state leads to ${mapName}`);
    const resultPath = before['ResultPath'] as string;
    this.itemsFrom = {
      afterState,
      resultPath,
      bucket: reader.Parameters['Bucket.$']!,
      key: reader.Parameters['Key.$']!,
    };
    delete map['ItemReader'];
    delete map['ResultWriter'];
    map['ItemsPath'] = `${resultPath}.items`;
    // Child outputs stay out of the state, as the ResultWriter keeps them out when deployed.
    map['ResultPath'] = null;
    this.machine = new StateMachine(definition as never);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
    const target = String(req.headers['x-amz-target'] ?? '');
    const reply = (status: number, payload: unknown, contentType: string) => {
      res.writeHead(status, { 'content-type': contentType });
      res.end(JSON.stringify(payload));
    };
    if (target === 'AWSStepFunctions.StartExecution') {
      const json = 'application/x-amz-json-1.0';
      if (body['stateMachineArn'] !== this.options.stateMachineArn) {
        return reply(
          400,
          { __type: 'StateMachineDoesNotExist', message: `${String(body['stateMachineArn'])}` },
          json,
        );
      }
      const name = String(body['name']);
      if (this.executions.has(name)) {
        return reply(
          400,
          { __type: 'ExecutionAlreadyExists', message: `Execution Already Exists: '${name}'` },
          json,
        );
      }
      const input = JSON.parse(String(body['input'] ?? '{}')) as Record<string, unknown>;
      this.executions.set(name, { name, input, done: this.run(input) });
      return reply(
        200,
        {
          executionArn: `${this.options.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`,
          startDate: Date.now() / 1000,
        },
        json,
      );
    }
    if (target === 'AWSEvents.PutEvents') {
      const entries = body['Entries'] as PublishedEvent[];
      this.events.push(...entries);
      return reply(
        200,
        {
          FailedEntryCount: 0,
          Entries: entries.map((_, i) => ({ EventId: `local-${this.events.length}-${i}` })),
        },
        'application/x-amz-json-1.1',
      );
    }
    reply(400, { __type: 'UnknownOperationException', message: `no local ${target}` }, 'application/json');
  }

  private async run(input: Record<string, unknown>): Promise<Awaited<Execution['done']>> {
    const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const [stateName, fn] of this.tasks) {
      handlers[stateName] = async (state) => {
        let result = await this.options.invoke(fn, stripItems(state, this.itemsFrom.resultPath));
        if (stateName === this.itemsFrom.afterState) result = await this.withItems(state, result);
        return result;
      };
    }
    const retryIntervalOverrides = Object.fromEntries(
      [...this.tasks.keys()].map((s) => [s, this.options.retryIntervalMs]),
    );
    const execution = this.machine.run(input as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        retryIntervalOverrides: retryIntervalOverrides as never,
      },
    });
    try {
      await execution.result;
      return { status: 'SUCCEEDED' };
    } catch (error) {
      const e = error as Error & { cause?: unknown };
      return { status: 'FAILED', error: e.name, cause: typeof e.cause === 'string' ? e.cause : e.message };
    }
  }

  /** The ItemReader's read: its Bucket.$ and Key.$ paths on the state after the task's ResultPath. */
  private async withItems(stateIn: unknown, result: unknown): Promise<unknown> {
    const state = setPath(stateIn as State, this.itemsFrom.resultPath, result);
    const object = await this.options.s3.send(
      new GetObjectCommand({
        Bucket: String(getPath(state, this.itemsFrom.bucket)),
        Key: String(getPath(state, this.itemsFrom.key)),
      }),
    );
    const items = JSON.parse(await object.Body!.transformToString()) as unknown;
    return { ...(result as State), items };
  }
}

/** Each Task state's function, found by the ARN in its Resource (every nested state machine included). */
function taskFunctions(
  states: States,
  functions: readonly DeployedFunction[],
): Map<string, DeployedFunction> {
  const tasks = new Map<string, DeployedFunction>();
  for (const [name, state] of Object.entries(states)) {
    if (state['Type'] === 'Task') {
      const fn = functions.find((f) => f.arn === state['Resource']);
      if (!fn)
        throw new Error(`task ${name} invokes ${String(state['Resource'])}, not a function of the stack`);
      tasks.set(name, fn);
    }
    const nested = (state['ItemProcessor'] ?? state['Iterator']) as { States?: States } | undefined;
    if (nested?.States) for (const [n, f] of taskFunctions(nested.States, functions)) tasks.set(n, f);
  }
  return tasks;
}

const pathParts = (jsonPath: string): string[] => {
  if (!/^\$(\.[A-Za-z0-9_]+)+$/.test(jsonPath)) throw new Error(`unsupported path ${jsonPath}`);
  return jsonPath.split('.').slice(1);
};

function getPath(state: State, jsonPath: string): unknown {
  return pathParts(jsonPath).reduce<unknown>((value, key) => (value as State | undefined)?.[key], state);
}

function setPath(state: State, jsonPath: string, value: unknown): State {
  const [head, ...rest] = pathParts(jsonPath);
  if (rest.length === 0) return { ...state, [head!]: value };
  return { ...state, [head!]: setPath((state[head!] as State) ?? {}, `$.${rest.join('.')}`, value) };
}

/** The items handed to the Map through the state are not part of what later tasks get when deployed. */
function stripItems(state: unknown, resultPath: string): unknown {
  const planned = getPath(state as State, resultPath) as State | undefined;
  if (!planned || !('items' in planned)) return state;
  const { items: _items, ...rest } = planned;
  return setPath(state as State, resultPath, rest);
}
