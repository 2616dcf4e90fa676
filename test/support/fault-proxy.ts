/**
 * An HTTP proxy in front of an emulator (dynalite, s3rver) that injects faults at the wire level, so the
 * code under test meets them exactly as it would meet them from AWS: the SDK parses a real throttling
 * response, a socket that never answers, or a connection reset. Switch `mode` at any time.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultMode =
  /** Forward everything. */
  | 'pass'
  /** DynamoDB's throttling error (HTTP 400, ProvisionedThroughputExceededException). */
  | 'throttle'
  /** HTTP 500 InternalServerError, as DynamoDB sends it. */
  | 'server-error'
  /** Read the request, never answer (a black hole: only a client-side timeout ends it). */
  | 'hang'
  /** Cut the connection without answering (the service went away mid-request). */
  | 'reset';

export interface FaultProxy {
  readonly url: string;
  mode: FaultMode;
  /** Requests seen, by the mode they were handled in. */
  readonly seen: Record<FaultMode, number>;
  /** DynamoDB operations seen (the X-Amz-Target suffix), in order. */
  readonly operations: string[];
  close(): Promise<void>;
}

function dynamoError(res: ServerResponse, status: number, type: string, message: string): void {
  const body = JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message });
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.0',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': `fault-${Date.now()}`,
  });
  res.end(body);
}

/** `target`: the emulator's URL, or a function giving it (when the emulator starts after the proxy). */
export async function startFaultProxy(target: string | (() => string)): Promise<FaultProxy> {
  const upstreamUrl = () => new URL(typeof target === 'string' ? target : target());
  const sockets = new Set<Socket>();
  const seen: Record<FaultMode, number> = { pass: 0, throttle: 0, 'server-error': 0, hang: 0, reset: 0 };
  const operations: string[] = [];
  const proxy: { mode: FaultMode } = { mode: 'pass' };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const mode = proxy.mode;
    seen[mode]++;
    const target = req.headers['x-amz-target'];
    if (typeof target === 'string') operations.push(target.slice(target.indexOf('.') + 1));
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      switch (mode) {
        case 'throttle':
          return dynamoError(
            res,
            400,
            'ProvisionedThroughputExceededException',
            'The level of configured provisioned throughput for the table was exceeded.',
          );
        case 'server-error':
          return dynamoError(res, 500, 'InternalServerError', 'Internal server error');
        case 'hang':
          return; // the socket stays open until the client gives up or the proxy closes
        case 'reset':
          return req.socket.destroy();
        case 'pass': {
          const upstream = upstreamUrl();
          const forward = request(
            {
              host: upstream.hostname,
              port: upstream.port,
              method: req.method,
              path: req.url,
              headers: req.headers,
            },
            (answer) => {
              res.writeHead(answer.statusCode ?? 502, answer.headers);
              answer.pipe(res);
            },
          );
          forward.on('error', () => req.socket.destroy());
          forward.end(Buffer.concat(chunks));
        }
      }
    });
  };

  const server: Server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get mode() {
      return proxy.mode;
    },
    set mode(mode: FaultMode) {
      proxy.mode = mode;
    },
    seen,
    operations,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
