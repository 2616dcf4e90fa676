/**
 * The API Gateway HTTP API mapping ($default route, payload format 2.0), without any I/O: the parts of an
 * HTTP request -> the event and context a Lambda handler receives; the handler's result -> the status,
 * headers and body the gateway writes. local/api-server.ts puts it on a socket.
 *
 * What API Gateway does is mirrored where a handler could notice: the event shape, lowercased and
 * comma-joined headers, cookies moved out of the headers, base64 for non-text bodies, the inferred
 * response format, one `set-cookie` per cookie.
 */
import { isIP } from 'node:net';
import type {
  APIGatewayProxyEventV2,
  APIGatewayProxyResultV2,
  APIGatewayProxyStructuredResultV2,
  Context,
} from 'aws-lambda';

export const ACCOUNT_ID = '000000000000';
const REGION = 'us-east-1';

/** What the mapping needs of an HTTP request (node:http's IncomingMessage and its socket have them). */
export interface HttpRequestParts {
  readonly method: string;
  /** The request target: path and query string. */
  readonly url: string;
  readonly httpVersion: string;
  /** Header names and values as received, in order: name, value, name, value... */
  readonly rawHeaders: readonly string[];
  readonly remoteAddress: string;
  readonly localPort: number;
}

/** A response ready to write: headers as name, value pairs (one `set-cookie` pair per cookie). */
export interface HttpResponseParts {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string | Buffer;
}

/** Content types API Gateway passes as text; anything else (or no type) arrives base64-encoded. */
const TEXTUAL_CONTENT_TYPE =
  /^\s*(?:text\/[^;\s]+|application\/(?:[\w.-]+\+)?(?:json|xml)|application\/x-www-form-urlencoded)\s*(?:;|$)/i;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;
/** Set by the gateway from the response it writes, never taken from the handler. */
const GATEWAY_OWNED_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive']);

export function toEvent(
  request: HttpRequestParts,
  body: Buffer,
  requestId: string,
  receivedAt: number,
  stage = '$default',
): APIGatewayProxyEventV2 {
  const { url } = request;
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQueryString = q < 0 ? '' : url.slice(q + 1);
  // IPv4 peers of a dual-stack socket appear as `::ffff:a.b.c.d`; the gateway reports `a.b.c.d`.
  const sourceIp = request.remoteAddress.replace(/^::ffff:/, '');

  // Raw headers: Node drops repeats of some headers (user-agent, host...) and joins others with ', ',
  // whereas API Gateway joins every repeat with ','.
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  const raw = request.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'cookie') {
      // Payload 2.0 moves cookies to their own field; they are not repeated in `headers`.
      for (const cookie of value.split(';')) if (cookie.trim() !== '') cookies.push(cookie.trim());
      continue;
    }
    headers[name] = headers[name] === undefined ? value : `${headers[name]},${value}`;
  }
  // What the gateway adds on its way to the integration.
  headers['x-forwarded-for'] =
    headers['x-forwarded-for'] === undefined ? sourceIp : `${headers['x-forwarded-for']},${sourceIp}`;
  headers['x-forwarded-port'] ??= String(request.localPort);
  headers['x-forwarded-proto'] ??= 'http';
  headers['x-amzn-trace-id'] ??=
    `Root=1-${Math.floor(receivedAt / 1000).toString(16)}-${traceSuffix(requestId)}`;

  const domainName = headers['host'] ?? 'localhost';
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
        method: request.method,
        path: rawPath,
        protocol: request.httpVersion === '1.1' ? 'HTTP/1.1' : `HTTP/${request.httpVersion}`,
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
  if (rawQueryString !== '') event.queryStringParameters = queryParameters(rawQueryString);
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

/** Repeated names are joined with ',', as the gateway does. */
function queryParameters(rawQueryString: string): Record<string, string> {
  const parameters: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(rawQueryString)) {
    const prev = parameters[name];
    parameters[name] = prev === undefined ? value : `${prev},${value}`;
  }
  return parameters;
}

/** The 24 random hex digits of an X-Ray trace id, taken from the request id (a random UUID). */
function traceSuffix(requestId: string): string {
  return (
    requestId.slice(0, 8) +
    requestId.slice(9, 13) +
    requestId.slice(15, 18) +
    requestId.slice(20, 23) +
    requestId.slice(24, 30)
  );
}

/** requestContext.domainPrefix: the first label of a host name; `local` for an IP address. */
function domainPrefixOf(domainName: string): string {
  const hostname = domainName.replace(/:\d+$/, '');
  return isIP(hostname) === 0 ? (hostname.split('.')[0] ?? hostname) : 'local';
}

/**
 * The body as text when its type is one API Gateway passes as text and it is valid UTF-8; undefined when it
 * goes base64-encoded (binary types, no type, or text that is not valid UTF-8: the bytes stay intact).
 */
function textBody(body: Buffer, contentType: string | undefined): string | undefined {
  if (contentType === undefined || !TEXTUAL_CONTENT_TYPE.test(contentType)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    return undefined;
  }
}

/** `12/Mar/2020:19:03:58 +0000`, the format of requestContext.time. */
function clfTime(epochMs: number): string {
  const d = new Date(epochMs);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return (
    `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

export interface FunctionIdentity {
  readonly functionName: string;
  readonly memoryLimitInMB: number;
  /** One per server, as Lambda names one stream per execution environment when it starts. */
  readonly logStreamName: string;
}

const legacy = (): void => {
  throw new Error('context.done/succeed/fail are not supported: return a promise from the handler');
};

/** The Lambda context of one invocation that must answer by `deadline` (epoch ms). */
export function lambdaContext(fn: FunctionIdentity, requestId: string, deadline: number): Context {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: fn.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:${fn.functionName}`,
    memoryLimitInMB: String(fn.memoryLimitInMB),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${fn.functionName}`,
    logStreamName: fn.logStreamName,
    getRemainingTimeInMillis() {
      return Math.max(0, deadline - Date.now());
    },
    done: legacy,
    fail: legacy,
    succeed: legacy,
  };
}

/** The headers every answer carries, as API Gateway sets them (a handler's own headers win). */
function gatewayHeaders(requestId: string): Map<string, string> {
  return new Map([
    ['x-request-id', requestId],
    ['apigw-requestid', requestId],
  ]);
}

function withLength(
  status: number,
  headers: Map<string, string>,
  setCookies: readonly string[],
  body: string | Buffer,
): HttpResponseParts {
  const pairs: [string, string][] = [...headers];
  for (const cookie of setCookies) pairs.push(['set-cookie', cookie]);
  pairs.push(['content-length', String(typeof body === 'string' ? Buffer.byteLength(body) : body.length)]);
  return { status, headers: pairs, body };
}

/** The handler's answer as the gateway writes it, or why it is not a valid payload 2.0 response. */
export function toResponse(
  result: APIGatewayProxyResultV2,
  requestId: string,
): HttpResponseParts | { readonly invalid: string } {
  const headers = gatewayHeaders(requestId);
  // Payload 2.0: a result without statusCode is the body itself, served as 200 JSON.
  if (typeof result !== 'object' || result === null || result.statusCode === undefined) {
    headers.set('content-type', 'application/json');
    const body = typeof result === 'string' ? result : JSON.stringify(result ?? null);
    return withLength(200, headers, [], body);
  }
  const structured: APIGatewayProxyStructuredResultV2 = result;
  const status = structured.statusCode;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return { invalid: `statusCode ${String(status)}` };
  }
  if (structured.body !== undefined && typeof structured.body !== 'string') {
    return { invalid: 'body is not a string' };
  }
  const setCookies: string[] = [];
  for (const [name, value] of Object.entries(structured.headers ?? {})) {
    const lower = name.toLowerCase();
    if (GATEWAY_OWNED_HEADERS.has(lower)) continue;
    if (lower === 'set-cookie') setCookies.push(String(value));
    else headers.set(lower, String(value));
  }
  if (structured.cookies) setCookies.push(...structured.cookies);
  const body =
    structured.body === undefined
      ? ''
      : structured.isBase64Encoded === true
        ? Buffer.from(structured.body, 'base64')
        : structured.body;
  if (body.length > 0 && !headers.has('content-type')) headers.set('content-type', 'application/json');
  return withLength(status, headers, setCookies, body);
}

/**
 * An answer the gateway (here: the local server) gives itself, in this project's error shape rather
 * than API Gateway's `{"message": ...}`.
 */
export function errorResponse(
  status: number,
  code: string,
  message: string,
  requestId: string,
  extraHeaders: Record<string, string> = {},
): HttpResponseParts {
  const headers = gatewayHeaders(requestId);
  headers.set('content-type', 'application/json');
  for (const [name, value] of Object.entries(extraHeaders)) headers.set(name, value);
  return withLength(status, headers, [], JSON.stringify({ error: { code, message, requestId } }));
}
