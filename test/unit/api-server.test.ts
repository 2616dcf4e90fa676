import { request, type Server } from 'node:http';
import { connect } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { createApiServer, DEFAULT_MAX_BODY_BYTES, listen } from '../../local/api-server.ts';

interface Echo {
  event: APIGatewayProxyEventV2;
  context: { awsRequestId: string; functionName: string; remaining: number };
}

const LIMIT = 64 * 1024;
const calls: string[] = [];
const errors: { err: unknown; requestId: string }[] = [];

/** Echoes the event, except on a few paths that exercise the other kinds of result. */
async function handler(event: APIGatewayProxyEventV2, context: Context): Promise<APIGatewayProxyResultV2> {
  calls.push(event.rawPath);
  switch (event.rawPath) {
    case '/throw':
      throw new Error('secret detail from deep inside');
    case '/binary':
      return {
        statusCode: 201,
        headers: { 'content-type': 'application/octet-stream', 'x-extra': 7 },
        cookies: ['a=1; Path=/', 'b=2; HttpOnly'],
        body: Buffer.from([0, 1, 2, 254, 255]).toString('base64'),
        isBase64Encoded: true,
      };
    case '/inferred':
      return JSON.stringify({ plain: true });
    case '/slow':
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      return { statusCode: 200, body: 'late' };
    default: {
      const echo: Echo = {
        event,
        context: {
          awsRequestId: context.awsRequestId,
          functionName: context.functionName,
          remaining: context.getRemainingTimeInMillis(),
        },
      };
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(echo) };
    }
  }
}

async function start(opts: Parameters<typeof createApiServer>[1]): Promise<{ server: Server; base: string }> {
  const server = createApiServer(handler, {
    onError: (err, requestId) => errors.push({ err, requestId }),
    ...opts,
  });
  const address = await listen(server, 0, '127.0.0.1');
  return { server, base: `http://127.0.0.1:${address.port}` };
}

function stop(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

/** node:http, because fetch folds repeated headers into one line before they reach the server. */
function rawRequest(
  url: string,
  opts: { method: string; headers: Record<string, string | string[]>; body?: Buffer },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method, headers: opts.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('API Gateway HTTP API adapter', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    ({ server, base } = await start({ maxBodyBytes: LIMIT, timeoutMs: 1_000 }));
  }, 60_000);
  afterAll(async () => {
    await stop(server);
  }, 60_000);
  afterEach(async () => {
    // Whatever the previous test did, the server still answers.
    const res = await fetch(`${base}/after`);
    expect(res.status).toBe(200);
    calls.length = 0;
    errors.length = 0;
  }, 60_000);

  it('builds a payload 2.0 event for a POST with JSON, a query string, repeated headers and cookies', async () => {
    const payload = JSON.stringify({ id: 't-1', features: { amount: 12.5, note: 'café' } });
    const res = await rawRequest(`${base}/predict?model=fraud&x=1&x=2&q=a%20b`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json; charset=utf-8',
        'X-Multi': ['one', 'two'],
        'User-Agent': 'adapter-test',
        Cookie: 'session=abc; theme=dark',
      },
      body: Buffer.from(payload),
    });
    expect(res.status).toBe(200);
    const { event, context } = JSON.parse(res.body) as Echo;

    expect(event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/predict',
      rawQueryString: 'model=fraud&x=1&x=2&q=a%20b',
      cookies: ['session=abc', 'theme=dark'],
      queryStringParameters: { model: 'fraud', x: '1,2', q: 'a b' },
      body: payload,
      isBase64Encoded: false,
    });
    expect(event.headers).toMatchObject({
      'content-type': 'application/json; charset=utf-8',
      'x-multi': 'one,two',
      'user-agent': 'adapter-test',
      'content-length': String(Buffer.byteLength(payload)),
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
    });
    expect(event.headers['cookie']).toBeUndefined();
    expect(Object.keys(event.headers).every((h) => h === h.toLowerCase())).toBe(true);

    const rc = event.requestContext;
    expect(rc).toMatchObject({
      accountId: expect.stringMatching(/^\d{12}$/),
      apiId: 'local',
      domainName: new URL(base).host,
      routeKey: '$default',
      stage: '$default',
      http: {
        method: 'POST',
        path: '/predict',
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: 'adapter-test',
      },
    });
    expect(rc.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(rc.time).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(Math.abs(rc.timeEpoch - Date.now())).toBeLessThan(5_000);

    expect(context.awsRequestId).toBe(rc.requestId);
    expect(context.functionName).toBe('tandem-predict-local');
    expect(context.remaining).toBeGreaterThan(0);
    expect(context.remaining).toBeLessThanOrEqual(1_000);
  });

  it('omits the optional fields for a bare GET and echoes the request id in x-request-id', async () => {
    const res = await fetch(`${base}/health`);
    const { event } = (await res.json()) as Echo;
    expect(event.rawQueryString).toBe('');
    expect(event.queryStringParameters).toBeUndefined();
    expect(event.cookies).toBeUndefined();
    expect(event.body).toBeUndefined();
    expect(event.isBase64Encoded).toBe(false);
    expect(res.headers.get('x-request-id')).toBe(event.requestContext.requestId);
  });

  it('base64-encodes binary bodies and text-typed bodies that are not UTF-8', async () => {
    const bytes = new Uint8Array([0x00, 0xff, 0xfe, 0x41, 0x80]);
    for (const contentType of ['application/octet-stream', 'application/json']) {
      const res = await fetch(`${base}/echo`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: bytes,
      });
      const { event } = (await res.json()) as Echo;
      expect(event.isBase64Encoded).toBe(true);
      expect(Buffer.from(event.body ?? '', 'base64')).toEqual(Buffer.from(bytes));
    }
  });

  it('answers 413 for a declared body over the limit without calling the handler', async () => {
    const res = await fetch(`${base}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: 'x'.repeat(LIMIT + 1),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { error: { code: string; message: string; requestId: string } };
    expect(body.error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
    expect(calls).toEqual([]);
  });

  it('answers 413 for a chunked body that grows over the limit', async () => {
    const chunk = new Uint8Array(16 * 1024).fill(0x61);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= LIMIT * 3) controller.close();
        else {
          sent += chunk.length;
          controller.enqueue(chunk);
        }
      },
    });
    const init: RequestInit & { duplex: 'half' } = {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: stream,
      duplex: 'half',
    };
    const res = await fetch(`${base}/predict`, init);
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE');
    expect(calls).toEqual([]);
  });

  it('answers 500 JSON without a stack trace when the handler throws', async () => {
    const res = await fetch(`${base}/throw`, { method: 'POST', body: '{}' });
    expect(res.status).toBe(500);
    const text = await res.text();
    const requestId = res.headers.get('x-request-id');
    expect(JSON.parse(text)).toEqual({ error: { code: 'INTERNAL', message: 'Internal error', requestId } });
    expect(text).not.toMatch(/secret detail|at .*\.ts|Error:/);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.requestId).toBe(requestId);
  });

  it('decodes an isBase64Encoded result and writes one set-cookie per cookie', async () => {
    const res = await fetch(`${base}/binary`);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-extra')).toBe('7');
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(Buffer.from([0, 1, 2, 254, 255]));
  });

  it('serves a result without statusCode as a 200 JSON body, as payload 2.0 infers', async () => {
    const res = await fetch(`${base}/inferred`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ plain: true });
  });

  it('does not call the handler for a request whose client leaves before the body is complete', async () => {
    const { port } = new URL(base);
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(
          'POST /gone HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":',
        );
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 50);
      });
      socket.on('error', reject);
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(calls).not.toContain('/gone');
  });

  it('answers 503 TIMEOUT when the handler outlives the function timeout', async () => {
    const res = await fetch(`${base}/slow`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('TIMEOUT');
  });
});

describe('API Gateway HTTP API adapter defaults', () => {
  it('accepts 10 MiB and rejects one byte more', async () => {
    const { server, base } = await start({});
    try {
      const fits = await fetch(`${base}/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array(DEFAULT_MAX_BODY_BYTES),
      });
      expect(fits.status).toBe(200);
      const { event } = (await fits.json()) as Echo;
      expect(Buffer.from(event.body ?? '', 'base64').length).toBe(DEFAULT_MAX_BODY_BYTES);

      const tooBig = await fetch(`${base}/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: new Uint8Array(DEFAULT_MAX_BODY_BYTES + 1),
      });
      expect(tooBig.status).toBe(413);
      expect((await fetch(`${base}/after`)).status).toBe(200);
    } finally {
      await stop(server);
    }
  });

  it('answers 500 when the handler throws before returning a promise', async () => {
    const reported: unknown[] = [];
    const server = createApiServer(
      () => {
        throw new Error('synchronous failure');
      },
      { onError: (err) => reported.push(err) },
    );
    const { port } = await listen(server, 0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/x`);
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INTERNAL');
      expect(reported).toEqual([new Error('synchronous failure')]);
    } finally {
      await stop(server);
    }
  });

  it('explains a port that is already taken', async () => {
    const { server, base } = await start({});
    const other = createApiServer(handler);
    try {
      await expect(listen(other, Number(new URL(base).port), '127.0.0.1')).rejects.toThrow(/already in use/);
    } finally {
      await stop(server);
    }
  });
});
