/**
 * `npm start`: the whole stack on this machine, no AWS account. Embedded DynamoDB (dynalite) and S3
 * (s3rver) on loopback, the demo model uploaded, the demo dataset scored into the table, and the real
 * API handler behind an API Gateway event adapter.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDbPredictionStore } from '../lambdas/adapters/dynamodb-prediction-store.ts';
import { S3ModelSource } from '../lambdas/adapters/s3-model-source.ts';
import { ModelRegistry } from '../lambdas/core/model-registry.ts';
import { createApiServer, listen } from '../local/api-gateway-adapter.ts';
import { ensureBucket, ensureTable, startEmbeddedAws } from '../local/embedded-aws.ts';
import { seedDemoDataset } from '../local/seed-demo.ts';
import { uploadModelPackages } from '../local/uploader.ts';

const HELP = `Usage: npm start [-- options]

Starts Tandem locally: embedded DynamoDB and S3, the demo model, the demo dataset scored into the
predictions table, and the API on http://127.0.0.1:3000.

Options:
  --port <n>         API port (default: $PORT or 3000)
  --dynamodb-port <n> embedded DynamoDB port (default: $TANDEM_DYNAMODB_PORT or 4567)
  --s3-port <n>      embedded S3 port (default: $TANDEM_S3_PORT or 4568)
  --data-dir <dir>   where table and bucket data are kept (default: .tandem)
  --fresh            delete the data folder first
  --no-seed          do not score the demo dataset into the table
  -h, --help         show this help
`;

const BUCKET = 'tandem-data';
const TABLE = 'tandem-predictions';
const DEFAULT_MODEL = 'fraud-detector';
const ROOT = path.resolve(import.meta.dirname, '..');

function port(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new Error(`${name} must be a port number, got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'dynamodb-port': { type: 'string' },
      's3-port': { type: 'string' },
      'data-dir': { type: 'string' },
      fresh: { type: 'boolean', default: false },
      'no-seed': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const apiPort = port(values.port ?? process.env['PORT'], 3000, '--port');
  const dataDir = path.resolve(values['data-dir'] ?? path.join(ROOT, '.tandem'));
  if (values.fresh) await rm(dataDir, { recursive: true, force: true });

  const aws = await startEmbeddedAws({
    dataDir,
    dynamoPort: port(values['dynamodb-port'] ?? process.env['TANDEM_DYNAMODB_PORT'], 4567, '--dynamodb-port'),
    s3Port: port(values['s3-port'] ?? process.env['TANDEM_S3_PORT'], 4568, '--s3-port'),
    buckets: [BUCKET],
  });
  const dynamo = new DynamoDBClient(aws.clientConfig('dynamodb'));
  const s3 = new S3Client(aws.clientConfig('s3'));
  await ensureTable(dynamo, TABLE);
  await ensureBucket(s3, BUCKET);
  const uploaded = await uploadModelPackages(s3, BUCKET, path.join(ROOT, 'models'));

  // The handler reads its settings from the environment at import, exactly as in Lambda.
  delete process.env['AWS_PROFILE'];
  Object.assign(process.env, aws.env(), {
    MODELS_URI: `s3://${BUCKET}/models/`,
    DEFAULT_MODEL,
    TABLE_NAME: TABLE,
    POWERTOOLS_METRICS_DISABLED: process.env['POWERTOOLS_METRICS_DISABLED'] ?? 'true',
    POWERTOOLS_DEV: process.env['POWERTOOLS_DEV'] ?? 'true',
  });
  const { handler } = await import('../lambdas/handlers/predict.ts');

  let seedLine = 'demo dataset not seeded (--no-seed)';
  let cachedId = 'txn-000001';
  let sampleFeatures: Record<string, unknown> | undefined;
  if (!values['no-seed']) {
    const registry = new ModelRegistry(new S3ModelSource(s3, BUCKET, 'models/'), {
      defaultModel: DEFAULT_MODEL,
      refreshSeconds: 0,
      retryFailedSeconds: 0,
    });
    const model = await registry.get();
    const seed = await seedDemoDataset(
      path.join(ROOT, 'models', DEFAULT_MODEL, 'demo-transactions.csv'),
      model,
      new DynamoDbPredictionStore(dynamo, TABLE),
      `demo-seed-${new Date().toISOString()}`,
    );
    await registry.close();
    seedLine = `demo dataset scored into ${TABLE}: ${seed.written} of ${seed.rows} rows (${seed.rejected.length} rejected)`;
    cachedId = seed.sampleIds[0] ?? cachedId;
    if (seed.sampleRecord) {
      const issues: never[] = [];
      const row = model.validator.fromText(
        model.validator.names.map((n) => seed.sampleRecord![n]),
        model.validator.names.map((_, i) => i),
        issues,
      );
      sampleFeatures = row
        ? Object.fromEntries(
            model.manifest.features.map((f, i) => [f.name, f.type === 'boolean' ? row[i] === 1 : row[i]]),
          )
        : undefined;
    }
  }

  const server = createApiServer(handler);
  const address = await listen(server, apiPort, '127.0.0.1');
  const api = `http://127.0.0.1:${address.port}`;
  const creds = `AWS_ACCESS_KEY_ID=${aws.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${aws.credentials.secretAccessKey} AWS_REGION=${aws.region}`;
  const body = JSON.stringify({ id: 'txn-new-1', features: sampleFeatures ?? {} });
  process.stdout.write(`
Tandem is running locally.

  API        ${api}   (POST /predict, GET /models, GET /models/{name}, GET /health, GET /ready)
  DynamoDB   ${aws.dynamoEndpoint}   table ${TABLE}
  S3         ${aws.s3Endpoint}   bucket ${BUCKET} (${uploaded.length} model files uploaded)
  Data       ${dataDir}
  Seed       ${seedLine}

Try:
  # a precomputed prediction, served from the table ("source": "cache")
  curl -s ${api}/predict -H 'content-type: application/json' -d '{"id": "${cachedId}"}'

  # a new transaction, scored by the model ("source": "model")
  curl -s ${api}/predict -H 'content-type: application/json' -d '${body}'

  # what is served
  curl -s ${api}/models/${DEFAULT_MODEL}

  # the embedded AWS services with the AWS CLI
  ${creds} aws --endpoint-url ${aws.s3Endpoint} s3 ls s3://${BUCKET}/models/ --recursive
  ${creds} aws --endpoint-url ${aws.dynamoEndpoint} dynamodb get-item --table-name ${TABLE} --key '{"pk": {"S": "${DEFAULT_MODEL}#${cachedId}"}}'

Press Ctrl+C to stop.
`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping…\n');
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await aws.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`tandem: ${(error as Error).message}\n`);
  process.exit(1);
});
