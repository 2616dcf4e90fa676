/**
 * Serves a Lambda handler over node:http the way an API Gateway HTTP API ($default route, payload
 * format 2.0) invokes it (the mapping: api-gateway-event.ts), so the local stack runs the very handler
 * that is deployed. It also stands in for what is in front of the function when deployed: the 10 MiB
 * payload limit, the integration timeout, and a concurrency limit (a gate with a bounded queue). Errors the
 * server itself produces use this project's error shape instead of API Gateway's `{"message": ...}`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import {
  errorResponse,
  lambdaContext,
  toEvent,
  toResponse,
  type FunctionIdentity,
  type HttpResponseParts,
} from './api-gateway-event.ts';
import { ConcurrencyGate, GateFullError } from './concurrency-gate.ts';

export type ApiHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

export interface ApiServerOptions {
  /** Largest request body accepted. @default 10 MiB, the HTTP API payload quota */
  readonly maxBodyBytes?: number;
  readonly stage?: '$default';
  /**
   * The function's timeout: drives `context.getRemainingTimeInMillis()`, and a handler that has not
   * answered by then gets a 503 TIMEOUT (its late result is dropped). Counted from the request's arrival.
   * @default 30 s, the HTTP API integration limit
   */
  readonly timeoutMs?: number;
  /** How long a request body may take to arrive before a 408. @default timeoutMs */
  readonly bodyTimeoutMs?: number;
  /**
   * Invocations at once and requests queued for a slot; a request beyond the queue gets 503 SERVER_BUSY.
   * @default new ConcurrencyGate(DEFAULT_CONCURRENCY, DEFAULT_MAX_QUEUED)
   */
  readonly gate?: ConcurrencyGate;
  readonly functionName?: string;
  readonly memoryLimitInMB?: number;
  /** Where handler failures are reported (the client only sees a generic 500). @default console.error */
  readonly onError?: (err: unknown, requestId: string) => void;
}

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
export const DEFAULT_CONCURRENCY = 8;
/** About two seconds of demo-model requests at the default concurrency on a laptop. */
export const DEFAULT_MAX_QUEUED = 64;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Past this many bytes of an over-limit body still arriving, stop draining and drop the connection. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;
/** The Retry-After of a 503 SERVER_BUSY, seconds. */
const BUSY_RETRY_AFTER = '1';

interface Settings extends FunctionIdentity {
  readonly handler: ApiHandler;
  readonly maxBodyBytes: number;
  readonly stage: string;
  readonly timeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly gate: ConcurrencyGate;
  readonly onError: (err: unknown, requestId: string) => void;
}

export function createApiServer(handler: ApiHandler, opts: ApiServerOptions = {}): Server {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const settings: Settings = {
    handler,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    stage: opts.stage ?? '$default',
    timeoutMs,
    bodyTimeoutMs: opts.bodyTimeoutMs ?? timeoutMs,
    gate: opts.gate ?? new ConcurrencyGate(DEFAULT_CONCURRENCY, DEFAULT_MAX_QUEUED),
    functionName: opts.functionName ?? 'tandem-predict-local',
    memoryLimitInMB: opts.memoryLimitInMB ?? 1024,
    onError: opts.onError ?? ((err, requestId) => console.error(`[api] request ${requestId} failed:`, err)),
    logStreamName: `${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/[$LATEST]local`,
  };
  const server = createServer(
    // Node checks the header and request timeouts below on this interval.
    { connectionsCheckingInterval: Math.min(1_000, settings.bodyTimeoutMs) },
    (req, res) => {
      const requestId = randomUUID();
      serve(settings, req, res, requestId).catch((error: unknown) => {
        // Only a bug in this file gets here: still answer rather than leave the client hanging.
        settings.onError(error, requestId);
        if (!res.headersSent) write(res, errorResponse(500, 'INTERNAL', 'Internal error', requestId));
        else res.destroy();
      });
    },
  );
  // Headers that trickle in get Node's 408 (in the JSON shape, below) within the body's allowance;
  // the request timeout is only a backstop for serve()'s own body timer.
  server.headersTimeout = Math.min(60_000, settings.bodyTimeoutMs);
  server.requestTimeout = settings.bodyTimeoutMs + 5_000;
  server.on('clientError', answerClientError);
  return server;
}

/** Listens and resolves with the bound address; rejects with a readable message (port in use...). */
export function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      const why =
        err.code === 'EADDRINUSE'
          ? `port ${port} is already in use (set another port, or 0 for any)`
          : err.message;
      reject(new Error(`cannot listen on ${host}:${port}: ${why}`, { cause: err }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

/** One request: read the body, wait for a slot, invoke the handler with a deadline, write its answer. */
async function serve(
  settings: Settings,
  req: IncomingMessage,
  res: ServerResponse,
  requestId: string,
): Promise<void> {
  const receivedAt = Date.now();
  // A reset mid-body (or while a 413's body is discarded) is seen as 'close'; without a listener it
  // would also be an unhandled 'error' event.
  req.on('error', () => undefined);
  // Fires when the client goes away before it has its answer.
  const clientGone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) clientGone.abort();
  });

  const body = await readBody(req, settings.maxBodyBytes, settings.bodyTimeoutMs);
  if (body === 'gone') return;
  if (body === 'too-large') {
    write(
      res,
      errorResponse(
        413,
        'PAYLOAD_TOO_LARGE',
        `Request body exceeds ${settings.maxBodyBytes} bytes`,
        requestId,
      ),
    );
    discardRest(req);
    return;
  }
  if (body === 'timeout') {
    const message = `The request body did not arrive within ${settings.bodyTimeoutMs} ms`;
    write(res, errorResponse(408, 'REQUEST_TIMEOUT', message, requestId, { connection: 'close' }));
    res.on('finish', () => req.socket.destroy());
    return;
  }

  try {
    await settings.gate.enter(clientGone.signal);
  } catch (error) {
    // Abandoned while queued: the client left, nobody is left to answer.
    if (!(error instanceof GateFullError)) return;
    const message = `The server is at its concurrency limit (${settings.gate.limit} running, ${settings.gate.maxQueued} waiting): retry later`;
    write(res, errorResponse(503, 'SERVER_BUSY', message, requestId, { 'retry-after': BUSY_RETRY_AFTER }));
    return;
  }

  const deadline = receivedAt + settings.timeoutMs;
  const event = toEvent(
    {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      remoteAddress: req.socket.remoteAddress ?? '127.0.0.1',
      localPort: req.socket.localPort ?? 0,
    },
    body,
    requestId,
    receivedAt,
    settings.stage,
  );
  // The slot is held until the handler settles, even after a timeout answer: the work is still running.
  const invocation = invoke(settings.handler, event, lambdaContext(settings, requestId, deadline));
  void invocation.finally(() => settings.gate.leave());
  const outcome = await withDeadline(invocation, deadline);

  if (outcome === 'timeout') {
    const message = `The handler did not answer within ${settings.timeoutMs} ms`;
    write(res, errorResponse(503, 'TIMEOUT', message, requestId));
    return;
  }
  if ('error' in outcome) {
    settings.onError(outcome.error, requestId);
    write(res, errorResponse(500, 'INTERNAL', 'Internal error', requestId));
    return;
  }
  const response = toResponse(outcome.result, requestId);
  if ('invalid' in response) {
    settings.onError(new Error(`handler returned an invalid response: ${response.invalid}`), requestId);
    write(res, errorResponse(500, 'INTERNAL', 'Internal error', requestId));
    return;
  }
  write(res, response);
}

type Invocation = { result: APIGatewayProxyResultV2 } | { error: unknown };

/** The handler's outcome; a handler that throws synchronously fails the same way as one that rejects. */
async function invoke(
  handler: ApiHandler,
  event: APIGatewayProxyEventV2,
  context: Context,
): Promise<Invocation> {
  try {
    return { result: await handler(event, context) };
  } catch (error) {
    return { error };
  }
}

async function withDeadline(
  invocation: Promise<Invocation>,
  deadline: number,
): Promise<Invocation | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), 'timeout');
  });
  try {
    return await Promise.race([invocation, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The body, up to the limit (declared or actual); 'gone' when the client leaves before it is complete,
 * 'timeout' when it has not all arrived within `timeoutMs`.
 */
function readBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
): Promise<Buffer | 'too-large' | 'timeout' | 'gone'> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) return Promise.resolve('too-large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (outcome: Buffer | 'too-large' | 'timeout' | 'gone'): void => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      resolve(outcome);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) finish('too-large');
      else chunks.push(chunk);
    };
    const onEnd = (): void => finish(Buffer.concat(chunks, size));
    const onClose = (): void => {
      if (!req.complete) finish('gone');
    };
    const timer = setTimeout(finish, timeoutMs, 'timeout');
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onClose);
  });
}

/**
 * After a 413 the rest of the body is read and dropped, so the client, still sending, can receive the
 * answer; a client that keeps sending far beyond that loses the connection.
 */
function discardRest(req: IncomingMessage): void {
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > MAX_DRAIN_BYTES) req.socket.destroy();
  });
  req.resume();
}

/** Status, headers and body in one go: node:http then sends headers and body in one write. */
function write(res: ServerResponse, response: HttpResponseParts): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(response.status, response.headers.flat());
  res.end(response.body);
}

const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'HEADERS_TOO_LARGE', 'The request headers are too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'REQUEST_TIMEOUT', 'The request did not arrive in time'],
};

/**
 * Requests Node rejects before the handler sees them (malformed HTTP, headers too large or too slow)
 * are answered in the JSON error shape rather than Node's empty-bodied defaults.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // Nothing can be written to a connection that is gone, or mid-response.
  const midResponse = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent;
  if (error.code === 'ECONNRESET' || !socket.writable || midResponse) {
    socket.destroy();
    return;
  }
  const [status, code, message] = CLIENT_ERRORS[error.code ?? ''] ?? [
    400,
    'BAD_REQUEST',
    'The request is not valid HTTP',
  ];
  const body = JSON.stringify({ error: { code, message, requestId: randomUUID() } });
  const reason =
    status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
