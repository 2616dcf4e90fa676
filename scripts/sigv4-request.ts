/**
 * Calls the IAM-authenticated Tandem API with a SigV4-signed request (service `execute-api`), using the
 * AWS credentials of the environment (profile, SSO, env vars, instance role: the SDK's default chain).
 *
 *   npx tsx scripts/sigv4-request.ts <url> [--method GET|POST] [--data '<json>' | --data @file.json] [--region r]
 *
 *   npx tsx scripts/sigv4-request.ts "$API_URL/ready"
 *   npx tsx scripts/sigv4-request.ts "$API_URL/predict" --data '{"id": "txn-000001"}'
 *
 * The caller needs `execute-api:Invoke` on the API (see docs/deploy.md). Uses @smithy/signature-v4 and
 * @aws-sdk/credential-provider-node, which the AWS SDK clients in package.json already install.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { SourceData } from '@smithy/types';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

function bytes(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** SHA-256 (or HMAC-SHA-256 with a secret) in the shape the signer expects. */
class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
}

function usage(message?: string): never {
  if (message) console.error(message);
  console.error(
    "usage: npx tsx scripts/sigv4-request.ts <url> [--method GET|POST] [--data '<json>' | --data @file] [--region r]",
  );
  process.exit(2);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    method: { type: 'string' },
    data: { type: 'string' },
    region: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) usage();
const [target] = positionals;
if (!target) usage('missing <url>');
let url: URL;
try {
  url = new URL(target);
} catch {
  usage(`not a URL: ${target}`);
}
const body =
  values.data === undefined
    ? undefined
    : values.data.startsWith('@')
      ? readFileSync(values.data.slice(1), 'utf8')
      : values.data;
const method = (values.method ?? (body === undefined ? 'GET' : 'POST')).toUpperCase();
const region =
  values.region ??
  /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(url.hostname)?.[1] ??
  process.env['AWS_REGION'] ??
  process.env['AWS_DEFAULT_REGION'];
if (!region) usage('cannot tell the region from the URL: pass --region');

const signer = new SignatureV4({
  service: 'execute-api',
  region,
  credentials: defaultProvider(),
  sha256: Sha256,
});
const query: Record<string, string> = {};
url.searchParams.forEach((value, key) => (query[key] = value));
const signed = await signer.sign({
  method,
  protocol: url.protocol,
  hostname: url.hostname,
  ...(url.port ? { port: Number(url.port) } : {}),
  path: url.pathname,
  query,
  headers: {
    host: url.host,
    ...(body === undefined ? {} : { 'content-type': 'application/json' }),
  },
  ...(body === undefined ? {} : { body }),
});

const response = await fetch(url, {
  method,
  headers: signed.headers as Record<string, string>,
  ...(body === undefined ? {} : { body }),
});
const cache = response.headers.get('x-tandem-cache');
console.error(`HTTP ${response.status}${cache ? ` (x-tandem-cache: ${cache})` : ''}`);
const text = await response.text();
try {
  console.log(JSON.stringify(JSON.parse(text), null, 2));
} catch {
  console.log(text);
}
process.exitCode = response.ok ? 0 : 1;
