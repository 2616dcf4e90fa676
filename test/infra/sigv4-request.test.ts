/**
 * scripts/sigv4-request.ts, the deploy guide's way to call the IAM-authorized API: run as a user runs it,
 * against a local HTTP server that checks each request's SigV4 signature with an independent
 * implementation of the algorithm (canonical request, string to sign, derived key), as API Gateway does.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from './support.ts';

const ACCESS_KEY = 'AKIDTANDEMEXAMPLE';
const SECRET_KEY = 'tandem/secret/key/for/the/signature/test';
const SESSION_TOKEN = 'session-token-for-the-test';
const REGION = 'eu-west-1';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

const sha256 = (data: string): string => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: Buffer | string, data: string): Buffer =>
  createHmac('sha256', key).update(data, 'utf8').digest();
const rfc3986 = (value: string): string =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Why a request's signature is not valid for these credentials, or undefined when it is. */
function signatureProblem(request: Received): string | undefined {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
    String(request.headers['authorization'] ?? ''),
  );
  if (!auth) return `no SigV4 Authorization header: ${String(request.headers['authorization'])}`;
  const [, credential, signedHeaders, signature] = auth as unknown as [string, string, string, string];
  const [accessKey, date, region, service, terminator] = credential.split('/');
  if (accessKey !== ACCESS_KEY) return `signed with access key ${accessKey}`;
  if (region !== REGION || service !== 'execute-api' || terminator !== 'aws4_request') {
    return `credential scope ${credential}`;
  }
  const amzDate = String(request.headers['x-amz-date']);
  if (!amzDate.startsWith(date!)) return `x-amz-date ${amzDate} is not of ${date}`;
  const names = signedHeaders.split(';');
  for (const required of ['host', 'x-amz-date', 'x-amz-security-token']) {
    if (!names.includes(required)) return `${required} is not signed`;
  }
  const url = new URL(request.url, 'http://placeholder');
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalHeaders = names
    .map(
      (name) =>
        `${name}:${String(request.headers[name] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
    .join('');
  const payloadHash = sha256(request.body);
  const declared = request.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== payloadHash) return 'x-amz-content-sha256 is not the body hash';
  const canonicalRequest = [
    request.method,
    url.pathname
      .split('/')
      .map((segment) => rfc3986(rfc3986(decodeURIComponent(segment))))
      .join('/'),
    query,
    canonicalHeaders,
    signedHeaders,
    payloadHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${SECRET_KEY}`, date!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  return expected === signature ? undefined : 'the signature does not match the request';
}

function runScript(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(REPO_ROOT, 'scripts', 'sigv4-request.ts'), ...args],
      {
        cwd: REPO_ROOT,
        timeout: 60_000,
        env: {
          PATH: process.env['PATH'] ?? '',
          HOME: home,
          AWS_ACCESS_KEY_ID: ACCESS_KEY,
          AWS_SECRET_ACCESS_KEY: SECRET_KEY,
          AWS_SESSION_TOKEN: SESSION_TOKEN,
          AWS_EC2_METADATA_DISABLED: 'true',
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('scripts/sigv4-request.ts', () => {
  let server: Server;
  let base: string;
  let home: string;
  const received: Received[] = [];

  beforeAll(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-sigv4-home-'));
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const request = {
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        };
        received.push(request);
        const problem = signatureProblem(request);
        res.writeHead(problem ? 403 : 200, {
          'content-type': 'application/json',
          ...(problem ? {} : { 'x-tandem-cache': 'used' }),
        });
        res.end(JSON.stringify(problem ? { message: problem } : { ok: true, method: request.method }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(home, { recursive: true, force: true });
  }, 60_000);

  it('signs a POST with a JSON body and a query string; prints the status, the cache header and the JSON', async () => {
    const body = '{"id": "txn-000001", "note": "a b/c"}';
    const result = await runScript([`${base}/predict?b=2&a=x%20y`, '--data', body, '--region', REGION], home);
    const request = received.at(-1)!;
    expect(signatureProblem(request)).toBeUndefined();
    expect(request).toMatchObject({ method: 'POST', url: '/predict?b=2&a=x%20y', body });
    expect(request.headers['content-type']).toBe('application/json');
    expect(result.stderr).toContain('HTTP 200 (x-tandem-cache: used)');
    expect(JSON.parse(result.stdout)).toEqual({ ok: true, method: 'POST' });
    expect(result.code).toBe(0);
    // The verifier is sensitive to what is signed: any change to the request breaks the signature.
    expect(signatureProblem({ ...request, url: '/predict?b=3&a=x%20y' })).toBe(
      'the signature does not match the request',
    );
    expect(signatureProblem({ ...request, method: 'PUT' })).toBe('the signature does not match the request');
    expect(signatureProblem({ ...request, body: `${body} ` })).toMatch(/body hash|does not match/);
  });

  it('signs a GET (no body) of a path with a parameter', async () => {
    const result = await runScript([`${base}/models/fraud-detector`, '--region', REGION], home);
    const request = received.at(-1)!;
    expect(signatureProblem(request)).toBeUndefined();
    expect(request).toMatchObject({ method: 'GET', url: '/models/fraud-detector', body: '' });
    expect(result.code).toBe(0);
  });

  it('reads the body from a file with --data @file', async () => {
    const file = path.join(home, 'request.json');
    fs.writeFileSync(file, '{"instances": [{"id": "txn-000002"}]}');
    const result = await runScript([`${base}/predict`, '--data', `@${file}`, '--region', REGION], home);
    const request = received.at(-1)!;
    expect(signatureProblem(request)).toBeUndefined();
    expect(request.body).toBe('{"instances": [{"id": "txn-000002"}]}');
    expect(result.code).toBe(0);
  });

  it('exits 1 on an error status and still prints the body; exits 2 with usage on bad arguments', async () => {
    // Signed for another region than the one the server checks: rejected, like a wrong-region call.
    const denied = await runScript([`${base}/ready`, '--region', 'us-east-1'], home);
    expect(denied.stderr).toContain('HTTP 403');
    expect(JSON.parse(denied.stdout)).toEqual({ message: expect.stringContaining('credential scope') });
    expect(denied.code).toBe(1);
    const usage = await runScript([], home);
    expect(usage.stderr).toMatch(/missing <url>\nusage: npx tsx scripts\/sigv4-request.ts <url>/);
    expect(usage.code).toBe(2);
  });
});
