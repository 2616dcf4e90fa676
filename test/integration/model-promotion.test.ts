/**
 * Promotions that fail, against the local API (the real handler over s3rver) under steady traffic:
 * `current.json` pointed at a corrupt model, at a version never uploaded, made invalid JSON, deleted, and
 * the store made unreadable, each then repaired. Throughout, cache hits and predictions keep working on
 * the last good version; /ready and /models/{name} say which version serves and why the pointer's does
 * not; the log has one line per change.
 */
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { DEMO_MODEL, LOCAL_BUCKET, REPO_ROOT, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.ts';

const demo = await readDemoDataset();
const POINTER_KEY = `models/${DEMO_MODEL}/current.json`;

let stack: LocalStack;
let proxy: FaultProxy;
const lines: string[] = [];

/** Requests sent while the pointer is broken and repaired, and those that did not get what they should. */
const traffic = { sent: 0, failed: [] as string[], running: true, done: Promise.resolve() };

/** A port free now, for s3rver: the proxy must know where to forward before the handler's first read. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  const s3Port = await freePort();
  proxy = await startFaultProxy(`http://127.0.0.1:${s3Port}`);
  // The seeding run and the uploads here use the stack's own client; the handler reads models through the proxy.
  stack = await startLocalStack({
    apiPort: 0,
    s3Port,
    handlerEnv: { MODEL_REFRESH_SECONDS: '1', AWS_ENDPOINT_URL_S3: proxy.url, POWERTOOLS_LOG_LEVEL: 'INFO' },
  });
  expect(stack.aws.env()['AWS_ENDPOINT_URL_S3']).toBe(`http://127.0.0.1:${s3Port}`);
  // The logger writes ERROR lines to stderr and the others to stdout: both are kept (and still printed).
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    jest.spyOn(stream, 'write').mockImplementation((chunk: unknown, ...rest: unknown[]) => {
      lines.push(String(chunk));
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    });
  }
  traffic.done = sendTraffic();
}, 120_000);
afterAll(async () => {
  traffic.running = false;
  await traffic.done;
  jest.restoreAllMocks();
  await stack?.stop();
  await proxy?.close();
}, 60_000);

async function post(body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${stack.apiUrl}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A cache hit and a model-path request after another, checked, until the suite ends. */
async function sendTraffic(): Promise<void> {
  for (let i = 0; traffic.running; i++) {
    const row = demo.rows[i % demo.rows.length]!;
    const hit = await post({ id: row[0] });
    const scored = await post({ id: `promotion-${i}`, features: demo.featuresOf(row) });
    traffic.sent += 2;
    for (const [kind, answer, source] of [
      ['hit', hit, 'cache'],
      ['model', scored, 'model'],
    ] as const) {
      const version = (answer.body['model'] as { version?: string } | undefined)?.version;
      if (answer.status !== 200 || answer.body['source'] !== source || version !== '1.0.0') {
        traffic.failed.push(`${kind}: ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`);
      }
    }
  }
}

const put = (key: string, body: string | Uint8Array) =>
  stack.s3.send(new PutObjectCommand({ Bucket: LOCAL_BUCKET, Key: key, Body: body }));
const point = (body: string) => put(POINTER_KEY, body);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- read field by field

async function getJson(route: string): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${stack.apiUrl}${route}`);
  return { status: response.status, body: (await response.json()) as Json };
}

/** Polls /ready until the pointer's state is the one expected (the handler re-reads it every second). */
async function readyWhen(check: (body: Json) => boolean): Promise<Json> {
  const deadline = Date.now() + 15_000;
  let last: Json = {};
  while (Date.now() < deadline) {
    const ready = await getJson('/ready');
    last = { ...ready.body, httpStatus: ready.status };
    if (check(ready.body)) return last;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`/ready never got there: ${JSON.stringify(last)}`);
}

/** The log entries the handler wrote about the demo model's serving state. */
function servingLog(): Json[] {
  return lines
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes(`"model":"${DEMO_MODEL}"`))
    .map((l) => JSON.parse(l) as Json)
    .filter((e) => typeof e['message'] === 'string' && e['message'].startsWith(`model ${DEMO_MODEL}:`));
}

/** Each way to break the pointer, what /ready must then say, and the version the pointer names. */
const BREAKS: {
  name: string;
  code: string;
  pointerVersion?: string;
  message: RegExp;
  apply: () => Promise<unknown>;
}[] = [
  {
    name: 'pointer at a corrupt model',
    code: 'MODEL_CORRUPT',
    pointerVersion: '2.0.0',
    message: /^model\.onnx is not a valid ONNX protobuf/,
    apply: async () => {
      const dir = path.join(REPO_ROOT, 'models', DEMO_MODEL, '1.0.0');
      const manifest = {
        ...JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')),
        version: '2.0.0',
      };
      await put(`models/${DEMO_MODEL}/2.0.0/manifest.json`, JSON.stringify(manifest));
      await put(`models/${DEMO_MODEL}/2.0.0/model.onnx`, 'this is not an onnx model');
      return point('{"version": "2.0.0"}');
    },
  },
  {
    name: 'pointer at a version never uploaded',
    code: 'VERSION_NOT_FOUND',
    pointerVersion: '3.0.0',
    message: /^version 3\.0\.0 of fraud-detector does not exist/,
    apply: () => point('{"version": "3.0.0"}'),
  },
  {
    name: 'pointer not JSON',
    code: 'INVALID_POINTER',
    message: /current\.json is not valid JSON \(.+\)$/,
    apply: () => point('{"version": '),
  },
  {
    name: 'pointer deleted',
    code: 'POINTER_MISSING',
    message: /^fraud-detector has no current\.json/,
    apply: () => stack.s3.send(new DeleteObjectCommand({ Bucket: LOCAL_BUCKET, Key: POINTER_KEY })),
  },
  {
    name: 'store unreadable',
    code: 'MODEL_STORE_UNAVAILABLE',
    message: /^the model store is unavailable/,
    apply: async () =>
      proxy.decide((request) =>
        request.url.includes('current.json') ? { kind: 'reset' } : { kind: 'pass' },
      ),
  },
];

describe('promotions that fail, under traffic', () => {
  it('starts serving 1.0.0 as the pointer says', async () => {
    const ready = await readyWhen((b) => b['status'] === 'ready');
    expect(ready).toMatchObject({
      httpStatus: 200,
      model: { name: DEMO_MODEL, version: '1.0.0' },
      pointer: { version: '1.0.0', serving: true },
    });
    expect(ready['pointer'].error).toBeUndefined();
  });

  it.each(BREAKS)(
    '$name: 1.0.0 keeps serving, /ready and /models/{name} say $code, then it recovers',
    async (broken) => {
      const sentBefore = traffic.sent;
      await broken.apply();
      const ready = await readyWhen((b) => b['pointer']?.error?.code === broken.code);
      expect(ready).toMatchObject({
        httpStatus: 200,
        model: { name: DEMO_MODEL, version: '1.0.0' },
        pointer: { serving: false, error: { code: broken.code, since: expect.any(String) } },
      });
      expect(ready['pointer'].version).toBe(broken.pointerVersion);
      expect(ready['pointer'].error.message).toMatch(broken.message);

      const described = await getJson(`/models/${DEMO_MODEL}`);
      expect(described.status).toBe(200);
      expect(described.body).toMatchObject({
        name: DEMO_MODEL,
        version: '1.0.0',
        idField: 'transaction_id',
        pointer: { serving: false, error: { code: broken.code } },
      });
      expect(described.body['error']).toBeUndefined(); // the model itself is served
      expect(JSON.stringify(described.body)).not.toMatch(/s3:\/\/|tandem-data|Exception|127\.0\.0\.1/);
      const listed = await getJson('/models');
      expect(listed.body['models']).toEqual([
        expect.objectContaining({
          name: DEMO_MODEL,
          version: '1.0.0',
          pointer: expect.objectContaining({ serving: false }),
        }),
      ]);
      // Traffic went on while it was broken, on 1.0.0.
      const sent = traffic.sent;
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(traffic.sent).toBeGreaterThan(sent);
      expect(traffic.sent).toBeGreaterThan(sentBefore);

      proxy.decide(() => ({ kind: 'pass' }));
      await point('{"version": "1.0.0"}');
      const repaired = await readyWhen((b) => b['pointer']?.serving === true);
      expect(repaired).toMatchObject({
        httpStatus: 200,
        model: { version: '1.0.0' },
        pointer: { version: '1.0.0' },
      });
      expect(repaired['pointer'].error).toBeUndefined();
    },
    40_000,
  );

  it('logged each failure and each recovery once, with its code', () => {
    const entries = servingLog();
    const failures = entries.filter((e) => e['level'] === 'ERROR').map((e) => e['code']);
    expect(failures).toEqual(BREAKS.map((b) => b.code));
    const recoveries = entries.filter((e) => e['recovered']).map((e) => e['recovered'].code);
    expect(recoveries).toEqual(BREAKS.map((b) => b.code));
  });

  it('answered every cache hit and every prediction from 1.0.0 throughout', () => {
    expect(traffic.sent).toBeGreaterThan(50);
    expect(traffic.failed).toEqual([]);
  });
});
