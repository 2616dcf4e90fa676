/**
 * Serves a Lambda handler over node:http the way an API Gateway HTTP API ($default route, payload
 * format 2.0) would invoke it, so the local stack runs the very handler that is deployed.
 *
 * What API Gateway does is mirrored where a handler could notice: the event shape, lowercased and
 * comma-joined headers, cookies moved out of the headers, base64 for non-text bodies, the 10 MiB
 * payload limit, the inferred response format, one `set-cookie` per cookie. Errors the gateway
 * itself produces use this project's error shape instead of API Gateway's `{"message": ...}`.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyResultV2,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';

export type ApiHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

export interface ApiServerOptions {
  /** Largest request body accepted; default 10 MiB, the HTTP API payload quota. */
  maxBodyBytes?: number;
  stage?: '$default';
  /**
   * The function's timeout: drives `context.getRemainingTimeInMillis()`, and a handler that has not
   * answered by then gets a 503 TIMEOUT (its late result is dropped). Default 30 s, the HTTP API
   * integration limit.
   */
  timeoutMs?: number;
  functionName?: string;
  memoryLimitInMB?: number;
  /** Where handler failures are reported (the client only sees a generic 500). Default console.error. */
  onError?: (err: unknown, requestId: string) => void;
}

export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const ACCOUNT_ID = '000000000000';
const REGION = 'us-east-1';
/** Past this many bytes of an over-limit body still arriving, stop draining and drop the connection. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

/** Content types API Gateway passes as text; anything else (or no type) arrives base64-encoded. */
const TEXTUAL_CONTENT_TYPE =
  /^\s*(?:text\/[^;\s]+|application\/(?:[\w.-]+\+)?(?:json|xml)|application\/x-www-form-urlencoded)\s*(?:;|$)/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
/** Set by the gateway from the response it writes, never taken from the handler. */
const GATEWAY_OWNED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

interface Config {
  maxBodyBytes: number;
  stage: string;
  timeoutMs: number;
  functionName: string;
  memoryLimitInMB: number;
  onError: (err: unknown, requestId: string) => void;
  /** One per server, as Lambda names one stream per execution environment when it starts. */
  logStreamName: string;
}

export function createApiServer(handler: ApiHandler, opts: ApiServerOptions = {}): Server {
  const config: Config = {
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    stage: opts.stage ?? '$default',
    timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    functionName: opts.functionName ?? 'tandem-predict-local',
    memoryLimitInMB: opts.memoryLimitInMB ?? 1024,
    onError: opts.onError ?? ((err, requestId) => console.error(`[api] request ${requestId} failed:`, err)),
    logStreamName: `${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/[$LATEST]local`,
  };
  return createServer((req, res) => {
    const exchange: Exchange = {
      handler,
      config,
      req,
      res,
      requestId: randomUUID(),
      receivedAt: Date.now(),
      chunks: [],
      size: 0,
      drained: 0,
      done: false,
      timer: undefined,
    };
    guarded(exchange, readBody);
  });
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

/**
 * One request on its way through the adapter: read the body, build the event, invoke the handler with a
 * deadline, write its answer. Plain callbacks around the handler's one promise (the adapter adds no
 * promise, async frame or closure of its own per request); `done` is set once the client has an answer
 * (or is gone), after which nothing else is written.
 */
interface Exchange {
  readonly handler: ApiHandler;
  readonly config: Config;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly receivedAt: number;
  readonly chunks: Buffer[];
  size: number;
  drained: number;
  done: boolean;
  timer: NodeJS.Timeout | undefined;
}

/** Runs a step; a throw can only be a bug in this file: still answer rather than leave the client hanging. */
function guarded<T>(exchange: Exchange, step: (exchange: Exchange, arg: T) => void, arg?: T): void {
  try {
    step(exchange, arg as T);
  } catch (err) {
    exchange.config.onError(err, exchange.requestId);
    exchange.done = true;
    clearTimeout(exchange.timer);
    if (!exchange.res.headersSent)
      sendError(exchange.res, 500, 'INTERNAL', 'Internal error', exchange.requestId);
    else exchange.res.destroy();
  }
}

// The body listeners are shared functions (node:events calls them with the request as `this`), finding
// their exchange on the request.
const EXCHANGE = Symbol('exchange');

type ExchangeOwner = IncomingMessage & { [EXCHANGE]: Exchange };

/**
 * Reads the body up to the limit. Over the limit (declared or actual) it keeps nothing more:
 * the rest is read and discarded so the client, still sending, can receive the 413; a client
 * that keeps sending far beyond that loses the connection.
 */
function readBody(exchange: Exchange): void {
  const { req } = exchange;
  (req as ExchangeOwner)[EXCHANGE] = exchange;
  // The client went away mid-body: nobody is left to answer. (Also keeps a reset during the
  // discard from being an unhandled 'error' event.)
  req.on('error', onRequestGone);
  req.on('close', onRequestGone); // a no-op once the request has been answered
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > exchange.config.maxBodyBytes) {
    discardRest(exchange);
    return;
  }
  req.on('data', onBodyData);
  req.on('end', onBodyEnd);
}

function onBodyData(this: IncomingMessage, chunk: Buffer): void {
  const exchange = (this as ExchangeOwner)[EXCHANGE];
  exchange.size += chunk.length;
  if (exchange.size > exchange.config.maxBodyBytes) discardRest(exchange);
  else exchange.chunks.push(chunk);
}

function onBodyEnd(this: IncomingMessage): void {
  const exchange = (this as ExchangeOwner)[EXCHANGE];
  guarded(exchange, invoke);
}

function onRequestGone(this: IncomingMessage): void {
  const exchange = (this as ExchangeOwner)[EXCHANGE];
  // Before the body is complete there is nobody left to answer; after it, the handler's answer is
  // written if it comes (to a closed socket, harmlessly), as before.
  if (!this.complete && !exchange.done) {
    exchange.done = true;
    clearTimeout(exchange.timer);
  }
}

function discardRest(exchange: Exchange): void {
  const { req, config, requestId } = exchange;
  req.removeListener('data', onBodyData);
  req.removeListener('end', onBodyEnd);
  exchange.chunks.length = 0;
  req.on('data', onDrainData);
  req.resume();
  exchange.done = true;
  sendError(
    exchange.res,
    413,
    'PAYLOAD_TOO_LARGE',
    `Request body exceeds ${config.maxBodyBytes} bytes`,
    requestId,
  );
}

function onDrainData(this: IncomingMessage, chunk: Buffer): void {
  const exchange = (this as ExchangeOwner)[EXCHANGE];
  exchange.drained += chunk.length;
  if (exchange.drained > MAX_DRAIN_BYTES) this.socket.destroy();
}

/** Builds the event and the context and calls the handler, with the function's timeout running. */
function invoke(exchange: Exchange): void {
  if (exchange.done) return;
  const { chunks, size, config, requestId, receivedAt } = exchange;
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
  chunks.length = 0;
  const event = toEvent(exchange.req, body, requestId, receivedAt, config.stage);
  const deadline = receivedAt + config.timeoutMs;
  exchange.timer = setTimeout(onTimeout, Math.max(0, deadline - Date.now()), exchange);
  let ran: Promise<APIGatewayProxyResultV2>;
  try {
    ran = Promise.resolve(exchange.handler(event, lambdaContext(config, requestId, deadline)));
  } catch (error) {
    // A handler that throws synchronously fails the same way as one that rejects.
    onHandlerError(exchange, error);
    return;
  }
  ran.then(
    (result) => guarded(exchange, onHandlerResult, result),
    (error: unknown) => guarded(exchange, onHandlerError, error),
  );
}

function onTimeout(exchange: Exchange): void {
  if (exchange.done) return;
  exchange.done = true;
  const { config, requestId } = exchange;
  sendError(
    exchange.res,
    503,
    'TIMEOUT',
    `The handler did not answer within ${config.timeoutMs} ms`,
    requestId,
  );
}

function onHandlerError(exchange: Exchange, error: unknown): void {
  if (exchange.done) return; // answered 503 TIMEOUT already
  exchange.done = true;
  clearTimeout(exchange.timer);
  exchange.config.onError(error, exchange.requestId);
  sendError(exchange.res, 500, 'INTERNAL', 'Internal error', exchange.requestId);
}

function onHandlerResult(exchange: Exchange, result: APIGatewayProxyResultV2): void {
  if (exchange.done) return; // its late result is dropped
  exchange.done = true;
  clearTimeout(exchange.timer);
  const { res, requestId, config } = exchange;
  const written = writeResult(res, result, requestId);
  if (written !== true) {
    config.onError(new Error(`handler returned an invalid response: ${written}`), requestId);
    sendError(res, 500, 'INTERNAL', 'Internal error', requestId);
  }
}

function toEvent(
  req: IncomingMessage,
  body: Buffer,
  requestId: string,
  receivedAt: number,
  stage: string,
): APIGatewayProxyEventV2 {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQueryString = q < 0 ? '' : url.slice(q + 1);
  const sourceIp = sourceIpOf(req.socket.remoteAddress ?? '127.0.0.1');

  // rawHeaders rather than req.headers: Node drops repeats of some headers (user-agent, host...)
  // and joins others with ', ', whereas API Gateway joins every repeat with ','.
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = lowerHeaderName(raw[i]!);
    const value = raw[i + 1]!;
    if (name === 'cookie') {
      // Payload 2.0 moves cookies to their own field; they are not repeated in `headers`.
      cookies.push(
        ...value
          .split(';')
          .map((c) => c.trim())
          .filter((c) => c !== ''),
      );
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  // What the gateway adds on its way to the integration.
  headers['x-forwarded-for'] =
    headers['x-forwarded-for'] === undefined ? sourceIp : `${headers['x-forwarded-for']},${sourceIp}`;
  headers['x-forwarded-port'] ??= String(req.socket.localPort ?? '');
  headers['x-forwarded-proto'] ??= 'http';
  headers['x-amzn-trace-id'] ??=
    `Root=1-${Math.floor(receivedAt / 1000).toString(16)}-${traceSuffix(requestId)}`;

  let queryStringParameters: Record<string, string> | undefined;
  if (rawQueryString !== '') {
    queryStringParameters = {};
    for (const [name, value] of new URLSearchParams(rawQueryString)) {
      const prev = queryStringParameters[name];
      queryStringParameters[name] = prev === undefined ? value : `${prev},${value}`;
    }
  }

  const domainName = headers['host'] ?? 'localhost';
  // Built as one literal (spreads of optional fields into it would define every later field slowly).
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey: '$default',
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: ACCOUNT_ID,
      apiId: 'local',
      domainName,
      domainPrefix: domainPrefixOf(domainName),
      http: {
        method: req.method ?? 'GET',
        path: rawPath,
        protocol: req.httpVersion === '1.1' ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`,
        sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId,
      routeKey: '$default',
      stage,
      time: clfTime(receivedAt),
      timeEpoch: receivedAt,
    },
    isBase64Encoded: false,
  };
  if (cookies.length > 0) event.cookies = cookies;
  if (queryStringParameters !== undefined) event.queryStringParameters = queryStringParameters;
  if (body.length > 0) {
    const text = textBody(body, headers['content-type']);
    if (text === undefined) {
      event.body = body.toString('base64');
      event.isBase64Encoded = true;
    } else {
      event.body = text;
    }
  }
  return event;
}

/**
 * The 24 random hex digits of an X-Ray trace id, taken from the request id (a random UUID, whose random
 * hex digits are all but the version and variant ones): one draw of randomness per request.
 */
function traceSuffix(requestId: string): string {
  return (
    requestId.slice(0, 8) +
    requestId.slice(9, 13) +
    requestId.slice(15, 18) +
    requestId.slice(20, 23) +
    requestId.slice(24, 30)
  );
}

let lastDomain = '';
let lastDomainPrefix = '';

/** requestContext.domainPrefix: the first label of a host name; `local` for an IP address. */
function domainPrefixOf(domainName: string): string {
  if (domainName !== lastDomain) {
    const hostname = domainName.replace(/:\d+$/, '');
    lastDomainPrefix = isIP(hostname) === 0 ? (hostname.split('.')[0] ?? hostname) : 'local';
    lastDomain = domainName;
  }
  return lastDomainPrefix;
}

/**
 * The body as text when its type is one API Gateway passes as text and it is valid UTF-8; undefined when it
 * goes base64-encoded (binary types, no type, or text that is not valid UTF-8: the bytes stay intact).
 */
function textBody(body: Buffer, contentType: string | undefined): string | undefined {
  if (contentType === undefined || !isTextualType(contentType)) return undefined;
  try {
    return utf8.decode(body);
  } catch {
    return undefined;
  }
}

let lastType = '';
let lastTypeIsText = false;

function isTextualType(contentType: string): boolean {
  if (contentType !== lastType) {
    lastTypeIsText = TEXTUAL_CONTENT_TYPE.test(contentType);
    lastType = contentType;
  }
  return lastTypeIsText;
}

let lastRemote = '';
let lastSourceIp = '';

/** IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`; the gateway reports `a.b.c.d`. */
function sourceIpOf(remoteAddress: string): string {
  if (remoteAddress !== lastRemote) {
    lastSourceIp = remoteAddress.replace(/^::ffff:/, '');
    lastRemote = remoteAddress;
  }
  return lastSourceIp;
}

/** Lowercased header names, remembered (clients send the same few names on every request). */
const lowerNames = new Map<string, string>();

function lowerHeaderName(name: string): string {
  let lower = lowerNames.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (lowerNames.size >= 1024) lowerNames.clear();
    lowerNames.set(name, lower);
  }
  return lower;
}

let clfSecond = Number.NaN;
let clfText = '';

/** `12/Mar/2020:19:03:58 +0000`, the format of requestContext.time (made once per second). */
function clfTime(epochMs: number): string {
  const second = Math.floor(epochMs / 1000);
  if (second !== clfSecond) {
    const d = new Date(second * 1000);
    const pad = (n: number): string => String(n).padStart(2, '0');
    clfText =
      `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
      `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
    clfSecond = second;
  }
  return clfText;
}

const legacy = (): void => {
  throw new Error('context.done/succeed/fail are not supported: return a promise from the handler');
};

function lambdaContext(config: Config, requestId: string, deadline: number): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: config.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${config.functionName}`,
    memoryLimitInMB: String(config.memoryLimitInMB),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${config.functionName}`,
    logStreamName: config.logStreamName,
    getRemainingTimeInMillis() {
      return Math.max(0, deadline - Date.now());
    },
    done: legacy,
    fail: legacy,
    succeed: legacy,
  };
}

/** The headers every answer carries, as API Gateway sets them (a handler's own headers win). */
function gatewayHeaders(requestId: string): Record<string, string> {
  return { 'x-request-id': requestId, 'apigw-requestid': requestId };
}

/**
 * Writes the status, the headers (name, value, name, value...) and the body in one go: node:http then
 * sends headers and body in one write.
 */
function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  setCookies: readonly string[],
  body: string | Buffer,
): void {
  const flat: string[] = [];
  for (const name in headers) flat.push(name, headers[name]!);
  for (const cookie of setCookies) flat.push('set-cookie', cookie);
  flat.push('content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length));
  res.writeHead(status, flat);
  res.end(body);
}

/** Writes the handler's answer; returns true, or why it is not a valid payload 2.0 response. */
function writeResult(res: ServerResponse, result: APIGatewayProxyResultV2, requestId: string): true | string {
  const headers = gatewayHeaders(requestId);
  // Payload 2.0: a result without statusCode is the body itself, served as 200 JSON.
  if (typeof result !== 'object' || result === null || result.statusCode === undefined) {
    headers['content-type'] = 'application/json';
    send(res, 200, headers, [], typeof result === 'string' ? result : JSON.stringify(result ?? null));
    return true;
  }
  const structured: APIGatewayProxyStructuredResultV2 = result;
  const status = structured.statusCode;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return `statusCode ${String(status)}`;
  }
  if (structured.body !== undefined && typeof structured.body !== 'string') return 'body is not a string';

  const setCookies: string[] = [];
  const own = structured.headers;
  for (const name in own) {
    const lower = name.toLowerCase();
    if (GATEWAY_OWNED_HEADERS.has(lower)) continue;
    if (lower === 'set-cookie') setCookies.push(String(own[name]));
    else headers[lower] = String(own[name]);
  }
  if (structured.cookies) setCookies.push(...structured.cookies);

  const body =
    structured.body === undefined
      ? ''
      : structured.isBase64Encoded === true
        ? Buffer.from(structured.body, 'base64')
        : structured.body;
  if (body.length > 0 && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  send(res, status, headers, setCookies, body);
  return true;
}

function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  requestId: string,
): void {
  const headers = gatewayHeaders(requestId);
  headers['content-type'] = 'application/json';
  send(res, status, headers, [], JSON.stringify({ error: { code, message, requestId } }));
}
