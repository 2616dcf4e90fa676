/**
 * The local API server under overload and slow or broken clients: a bounded queue answered with 503
 * SERVER_BUSY, queued requests of clients that left never run, stalled bodies and headers time out with
 * 408, and Node's own rejections (400, 431) use the JSON error shape. Loopback only, short timeouts.
 */
import type { Server } from 'node:http';
import { connect } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2 } from 'aws-lambda';
import { afterEach, describe, expect, it } from '@jest/globals';
import { createApiServer, listen, type ApiServerOptions } from '../../local/api-server.ts';
import { ConcurrencyGate } from '../../local/concurrency-gate.ts';

const calls: string[] = [];
let releaseBlocked: (() => void)[] = [];

/** `/block` waits until the test releases it; every other path answers at once. */
async function handler(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> {
  calls.push(event.rawPath);
  if (event.rawPath === '/block') await new Promise<void>((resolve) => releaseBlocked.push(resolve));
  return { statusCode: 200, body: JSON.stringify({ path: event.rawPath }) };
}

let server: Server | undefined;

async function start(opts: ApiServerOptions): Promise<number> {
  server = createApiServer(handler, { onError: () => undefined, ...opts });
  return (await listen(server, 0, '127.0.0.1')).port;
}

afterEach(async () => {
  for (const release of releaseBlocked) release();
  releaseBlocked = [];
  calls.length = 0;
  if (server) {
    const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
    server.closeAllConnections();
    await closed;
    server = undefined;
  }
}, 60_000);

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Writes raw bytes and resolves with everything the server sends until it closes the connection. */
function rawExchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('close', () => resolve(received));
    socket.on('error', reject);
  });
}

function parseRaw(text: string): {
  status: number;
  headers: string;
  body: { error: Record<string, unknown> };
} {
  const [head, body] = text.split('\r\n\r\n', 2) as [string, string];
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]),
    headers: head.toLowerCase(),
    body: JSON.parse(body) as { error: Record<string, unknown> },
  };
}

describe('local API server under overload', () => {
  it('answers 503 SERVER_BUSY with Retry-After beyond the queue bound, and serves the queued ones', async () => {
    const gate = new ConcurrencyGate(1, 1);
    const port = await start({ gate });
    const base = `http://127.0.0.1:${port}`;
    const running = fetch(`${base}/block`);
    await until(() => gate.inFlight === 1 && releaseBlocked.length === 1, 'the first request to run');
    const queued = fetch(`${base}/queued`);
    await until(() => gate.queued === 1, 'the second request to queue');

    const turnedAway = await fetch(`${base}/turned-away`);
    expect(turnedAway.status).toBe(503);
    expect(turnedAway.headers.get('retry-after')).toBe('1');
    expect(turnedAway.headers.get('content-type')).toMatch(/^application\/json/);
    const { error } = (await turnedAway.json()) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code: 'SERVER_BUSY', requestId: expect.any(String) });
    expect(error['message']).toMatch(/concurrency limit \(1 running, 1 waiting\)/);

    releaseBlocked[0]!();
    expect((await running).status).toBe(200);
    expect((await queued).status).toBe(200);
    expect(calls).toEqual(['/block', '/queued']);
  });

  it('never runs a queued request whose client disconnected', async () => {
    const gate = new ConcurrencyGate(1, 4);
    const port = await start({ gate });
    const base = `http://127.0.0.1:${port}`;
    const running = fetch(`${base}/block`);
    await until(() => releaseBlocked.length === 1, 'the first request to run');

    const socket = connect(port, '127.0.0.1', () =>
      socket.write(
        'POST /left HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}',
      ),
    );
    socket.on('error', () => undefined);
    await until(() => gate.queued === 1, 'the request to queue');
    socket.destroy();
    await until(() => gate.queued === 0, 'the queue to drop it');

    releaseBlocked[0]!();
    expect((await running).status).toBe(200);
    expect((await fetch(`${base}/after`)).status).toBe(200);
    expect(calls).toEqual(['/block', '/after']);
  });
});

describe('local API server and slow or broken clients', () => {
  it('answers 408 REQUEST_TIMEOUT in the JSON shape to a body that stalls, without calling the handler', async () => {
    const port = await start({ bodyTimeoutMs: 300 });
    const reply = parseRaw(
      await rawExchange(
        port,
        'POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":',
      ),
    );
    expect(reply.status).toBe(408);
    expect(reply.headers).toContain('content-type: application/json');
    expect(reply.body.error).toMatchObject({ code: 'REQUEST_TIMEOUT', requestId: expect.any(String) });
    expect(reply.body.error['message']).toMatch(/did not arrive within 300 ms/);
    expect(calls).toEqual([]);
  });

  it('answers 408 in the JSON shape to headers that never finish', async () => {
    const port = await start({ bodyTimeoutMs: 300 });
    const reply = parseRaw(await rawExchange(port, 'GET /slow-headers HTTP/1.1\r\nHost: x\r\n'));
    expect(reply.status).toBe(408);
    expect(reply.body.error).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    expect(calls).toEqual([]);
  });

  it("answers Node's 400 for malformed HTTP in the JSON shape", async () => {
    const port = await start({});
    const reply = parseRaw(await rawExchange(port, 'THIS IS NOT HTTP\r\n\r\n'));
    expect(reply.status).toBe(400);
    expect(reply.headers).toContain('content-type: application/json');
    expect(reply.body.error).toMatchObject({ code: 'BAD_REQUEST', requestId: expect.any(String) });
  });

  it("answers Node's 431 for oversized headers in the JSON shape", async () => {
    const port = await start({});
    const reply = parseRaw(
      await rawExchange(port, `GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
    );
    expect(reply.status).toBe(431);
    expect(reply.body.error).toMatchObject({ code: 'HEADERS_TOO_LARGE' });
    expect(calls).toEqual([]);
  });
});
