/**
 * An HTTP proxy in front of an embedded AWS emulator (dynalite, s3rver) that injects faults per request,
 * so that the real SDK clients, with their real retry strategies, meet throttling, timeouts, dropped
 * connections and bodies cut mid-stream. Requests are forwarded unchanged (Host included, so S3
 * signatures still verify); the decision function sees each request and picks what happens to it.
 */
import { createServer, request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultAction =
  /** Forward the request and its response. */
  | { readonly kind: 'pass' }
  /** Answer without forwarding (e.g. a throttling error). */
  | {
      readonly kind: 'respond';
      readonly status: number;
      readonly headers?: Record<string, string>;
      readonly body: string;
    }
  /** Forward, but hold the response back this long (the write happens; the caller may time out). */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Never answer: the caller has to time out. */
  | { readonly kind: 'hang' }
  /** Drop the connection without answering (a service that is down). */
  | { readonly kind: 'reset' }
  /** Forward, then drop the connection after this many bytes of the response body. */
  | { readonly kind: 'cut'; readonly afterBytes: number };

export interface ProxiedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export type FaultDecider = (request: ProxiedRequest) => FaultAction;

export interface FaultProxy {
  readonly url: string;
  /** Every request seen and what was done to it, oldest first. */
  readonly log: { readonly request: ProxiedRequest; readonly action: FaultAction['kind'] }[];
  /** Replaces the decision function (default: pass everything). */
  decide(decider: FaultDecider): void;
  close(): Promise<void>;
}

const PASS: FaultAction = { kind: 'pass' };

/** `target`: the emulator's URL, or a function giving it (when the emulator starts after the proxy). */
export async function startFaultProxy(target: string | (() => string)): Promise<FaultProxy> {
  const upstreamUrl = () => new URL(typeof target === 'string' ? target : target());
  const agent = new Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  let decider: FaultDecider = () => PASS;
  const log: FaultProxy['log'] = [];

  const server = createServer((req, res) => {
    const pieces: Buffer[] = [];
    req.on('data', (piece: Buffer) => pieces.push(piece));
    req.on('end', () => {
      const request: ProxiedRequest = {
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        body: Buffer.concat(pieces),
      };
      let action: FaultAction;
      try {
        action = decider(request);
      } catch {
        action = PASS;
      }
      log.push({ request, action: action.kind });
      if (action.kind === 'hang') return;
      if (action.kind === 'reset') {
        req.socket.destroy();
        return;
      }
      if (action.kind === 'respond') {
        res.writeHead(action.status, { 'content-length': Buffer.byteLength(action.body), ...action.headers });
        res.end(action.body);
        return;
      }
      const upstream = upstreamUrl();
      const forwarded = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: request.url,
          headers: request.headers,
          agent,
        },
        (upstreamRes) => {
          const reply = () => {
            res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
            if (action.kind !== 'cut') {
              upstreamRes.pipe(res);
              return;
            }
            let sent = 0;
            upstreamRes.on('data', (piece: Buffer) => {
              if (sent >= action.afterBytes) return;
              const room = action.afterBytes - sent;
              sent += piece.length;
              if (piece.length < room) {
                res.write(piece);
                return;
              }
              // Flushed first, then the connection is closed: the client has the headers and part of the
              // body, and its stream ends early (a connection lost mid-download).
              res.write(piece.subarray(0, room), () => setTimeout(() => res.socket?.destroy(), 20));
            });
            upstreamRes.on('end', () => {
              if (sent < action.afterBytes) res.end();
            });
          };
          if (action.kind === 'delay') setTimeout(reply, action.ms);
          else reply();
        },
      );
      forwarded.on('error', () => {
        if (action.kind !== 'cut') res.socket?.destroy();
      });
      forwarded.end(request.body);
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    decide(next) {
      decider = next;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      agent.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The DynamoDB JSON protocol's operation name (x-amz-target `DynamoDB_20120810.PutItem`). */
export function dynamoOperation(request: ProxiedRequest): string | undefined {
  const target = request.headers['x-amz-target'];
  return typeof target === 'string' ? target.split('.').pop() : undefined;
}

/** The partition key of a PutItem request. */
export function putItemKey(request: ProxiedRequest): string | undefined {
  if (dynamoOperation(request) !== 'PutItem') return undefined;
  const body = JSON.parse(request.body.toString('utf8')) as { Item?: { pk?: { S?: string } } };
  return body.Item?.pk?.S;
}

/** What DynamoDB answers when a table's throughput is exceeded. */
export const THROTTLED: FaultAction = {
  kind: 'respond',
  status: 400,
  headers: { 'content-type': 'application/x-amz-json-1.0' },
  body: JSON.stringify({
    __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    message: 'The level of configured provisioned throughput for the table was exceeded.',
  }),
};

/** What DynamoDB answers when it fails on its side (HTTP 500). */
export const SERVER_ERROR: FaultAction = {
  kind: 'respond',
  status: 500,
  headers: { 'content-type': 'application/x-amz-json-1.0' },
  body: JSON.stringify({
    __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
    message: 'Internal server error',
  }),
};
