/**
 * `npm start`: the whole stack on this machine, no AWS account. Embedded DynamoDB (dynalite) and S3
 * (s3rver) on loopback, the demo model uploaded, the demo dataset scored into the table, and the real
 * API handler behind an API Gateway event adapter.
 */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { FinalizeResult } from '../lambdas/core/batch/finalizer.ts';
import { TandemError } from '../lambdas/core/errors.ts';
import type { RefreshPolicy } from '../lambdas/core/refresh/refresh.ts';
import { parseSetting, SETTINGS, SettingError, STALENESS_PERIOD_SECONDS } from '../lambdas/core/settings.ts';
import type { Schedule } from '../lambdas/core/batch/schedules.ts';
import { readScheduleSetting, SettingsError } from '../lib/settings.ts';
import { readBatchOptions } from '../lambdas/handlers/batch-env.ts';
import { readDemoDataset } from '../local/demo-dataset.ts';
import { removeEndpointsFile, writeEndpointsFile } from '../local/endpoints-file.ts';
import { readStreamSettings } from '../lambdas/core/settings.ts';
import { streamBanner } from '../local/stream-banner.ts';
import { listModelFolders, type LocalModelFolder } from '../local/uploader.ts';
import {
  DEFAULT_API_CONCURRENCY,
  DEMO_MODEL,
  LOCAL_BUCKET,
  LOCAL_TABLE,
  REPO_ROOT,
  startLocalStack,
} from '../local/stack.ts';

const HELP = `Usage: npm start [-- options]

Starts Tandem locally: embedded DynamoDB and S3, the demo model, the demo dataset scored into the
predictions table, and the API on http://127.0.0.1:3000.

Options:
  --port <n>         API port (default: $PORT or 3000)
  --dynamodb-port <n> embedded DynamoDB port (default: $TANDEM_DYNAMODB_PORT or 4567)
  --s3-port <n>      embedded S3 port (default: $TANDEM_S3_PORT or 4568)
  --kinesis-port <n> embedded Kinesis port (default: $TANDEM_KINESIS_PORT or 4569)
  --data-dir <dir>   where table and bucket data are kept (default: .tandem)
  --models <dir>     also serve the model packages in <dir>, alongside the demo model: laid out as
                     <name>/<version>/{manifest.json,model.onnx} and <name>/current.json (the live
                     version); see docs/models.md. A model's current.json is uploaded only when the
                     data folder has none yet: use --fresh (or \`npm run tandem -- models promote\`)
                     to change the live version of a model served before
  --api-concurrency <n>  requests the handler serves at once, like Lambda instances; more wait
                     their turn (default: $TANDEM_API_CONCURRENCY or 8)
  --refresh-on <p>   push, promote or off: when a model version's refresh sources are re-scored, for
                     models whose manifest has no refresh.on (default: promote; docs/lifecycle.md#refresh)
  --stale-period <s> the staleness period in seconds (default: 300, as the deployed alarm's); the
                     share of stale reads is checked at the end of each period
  --monitor-minutes <n>  minutes between drift monitor runs of every model (default: the deployed
                     schedule's, 15; 5 to 1440)
  --schedules <json|file>  the folders re-scored on a schedule: a JSON list of {"model", "prefix",
                     "expression", "options"?}, or a file holding one; replaces the "schedules" of
                     cdk.json's context (the deployed setting), which is used otherwise (docs/batch.md)
  --fresh            delete the data folder first
  --no-seed          do not score the demo dataset into the table
  -h, --help         show this help

Environment: BATCH_OPTIONS (JSON) sets the options of runs started by uploads to incoming/, as it
does for the deployed trigger, e.g. BATCH_OPTIONS='{"chunkBytes": 1048576, "outputFormat": "csv"}'.
`;

function port(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new Error(`${name} must be a port number, got "${value}"`);
  return n;
}

function positive(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${value}"`);
  return n;
}

/** --monitor-minutes, checked with the deployed setting's definition. */
function monitorMinutes(value: string | undefined): number {
  if (value === undefined) return SETTINGS.monitorIntervalMinutes.default;
  const parsed = parseSetting(SETTINGS.monitorIntervalMinutes, value);
  if (!parsed.ok) throw new SettingError('INVALID_SETTING', `--monitor-minutes: ${parsed.problem}`);
  return parsed.value;
}

let startedUp = false;
/** Runs that ended while the stack was starting (resumed ones), printed after the banner. */
const endedDuringStart: FinalizeResult[] = [];
/** The most a first Ctrl+C waits for the stack to stop before the process exits anyway. */
const STOP_TIMEOUT_MS = 10_000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      'dynamodb-port': { type: 'string' },
      's3-port': { type: 'string' },
      'kinesis-port': { type: 'string' },
      'data-dir': { type: 'string' },
      models: { type: 'string' },
      'api-concurrency': { type: 'string' },
      'refresh-on': { type: 'string' },
      'stale-period': { type: 'string' },
      'monitor-minutes': { type: 'string' },
      schedules: { type: 'string' },
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
  const refreshOn = values['refresh-on'] ?? SETTINGS.refreshOn.default;
  if (!(SETTINGS.refreshOn.values as readonly string[]).includes(refreshOn))
    throw new Error(
      `--refresh-on must be one of ${SETTINGS.refreshOn.values.join(', ')}, got "${refreshOn}"`,
    );
  const stalePeriodSeconds = positive(values['stale-period'], STALENESS_PERIOD_SECONDS, '--stale-period');
  const dataDir = path.resolve(values['data-dir'] ?? path.join(REPO_ROOT, '.tandem'));
  // Checked before anything starts: a typo in the folder fails here, not as a model that is not served.
  const userModelsDir = values.models === undefined ? undefined : path.resolve(values.models);
  const userModels: LocalModelFolder[] = userModelsDir ? await listModelFolders(userModelsDir) : [];
  // Checked before anything starts, with the reader `cdk synth` uses: a bad schedule is named here.
  const schedules = await readSchedules(values.schedules);
  if (values.fresh) await rm(dataDir, { recursive: true, force: true });

  const monitorEvery = monitorMinutes(values['monitor-minutes']);
  const stack = await startLocalStack({
    apiPort,
    dataDir,
    dynamoPort: port(values['dynamodb-port'] ?? process.env['TANDEM_DYNAMODB_PORT'], 4567, '--dynamodb-port'),
    s3Port: port(values['s3-port'] ?? process.env['TANDEM_S3_PORT'], 4568, '--s3-port'),
    seed: !values['no-seed'],
    // The stream lane is always on locally, with the settings the deployed mapping reads.
    stream: {
      kinesisPort: port(values['kinesis-port'] ?? process.env['TANDEM_KINESIS_PORT'], 4569, '--kinesis-port'),
      settings: readStreamSettings(process.env),
    },
    ...(userModelsDir ? { userModelsDir } : {}),
    schedules,
    batchOptions: readBatchOptions(process.env),
    refresh: { on: refreshOn as RefreshPolicy, stalePeriodMs: stalePeriodSeconds * 1000 },
    monitorIntervalMinutes: monitorEvery,
    apiConcurrency: positive(
      values['api-concurrency'] ?? process.env['TANDEM_API_CONCURRENCY'],
      DEFAULT_API_CONCURRENCY,
      '--api-concurrency',
    ),
    batch: {
      onFinished: (_runId, result) => {
        if (startedUp) process.stdout.write(`[batch] ${result.status} ${result.message}\n`);
        else endedDuringStart.push(result);
      },
    },
    handlerEnv: { POWERTOOLS_DEV: process.env['POWERTOOLS_DEV'] ?? 'true' },
  });
  startedUp = true;
  const { aws, seed } = stack;
  const api = stack.apiUrl!;
  // Where the `tandem` command finds this stack (npm run tandem -- models list, with the same --data-dir).
  await writeEndpointsFile(dataDir, {
    apiUrl: api,
    s3Endpoint: aws.s3Endpoint,
    dynamoEndpoint: aws.dynamoEndpoint,
    region: aws.region,
    credentials: aws.credentials,
    bucket: LOCAL_BUCKET,
    table: LOCAL_TABLE,
    modelsPrefix: 'models/',
    pid: process.pid,
    schedules: schedules.map(({ model, prefix, expression, options }) => ({
      model,
      prefix,
      expression,
      ...(options ? { options } : {}),
    })),
    ...(stack.scheduler ? { schedulesStartedAt: stack.scheduler.startedAt } : {}),
  });
  const seedLine = seed
    ? `demo dataset scored into ${LOCAL_TABLE} by the batch lane: ${seed.counts.scored} rows (${seed.counts.rejected} rejected)`
    : 'demo dataset not seeded (--no-seed)';
  const demo = await readDemoDataset();
  const first = demo.rows[0]!;
  const cachedId = first[demo.header.indexOf(demo.idField)]!;
  const demoVersion = (
    JSON.parse(await readFile(path.join(REPO_ROOT, 'models', DEMO_MODEL, 'current.json'), 'utf8')) as {
      version: string;
    }
  ).version;
  const sampleFeatures = demo.featuresOf(first);
  // AWS CLI v1 reads only AWS_DEFAULT_REGION, v2 and the SDKs AWS_REGION first: both, so every example works.
  const creds = `AWS_ACCESS_KEY_ID=${aws.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${aws.credentials.secretAccessKey} AWS_REGION=${aws.region} AWS_DEFAULT_REGION=${aws.region}`;
  const body = JSON.stringify({ id: 'txn-new-1', features: sampleFeatures });
  process.stdout.write(`
Tandem is running locally.

  API        ${api}   (POST /predict, GET /models[/{name}], /health, /ready, /openapi.json, Open Inference Protocol under /v2)
  DynamoDB   ${aws.dynamoEndpoint}   table ${LOCAL_TABLE}
  S3         ${aws.s3Endpoint}   bucket ${LOCAL_BUCKET} (${stack.uploadedKeys.length} model files uploaded)
  Kinesis    ${aws.kinesisEndpoint}   streams ${stack.stream!.settings.inputStreamName} -> ${stack.stream!.settings.outputStreamName}
  Data       ${dataDir}
  Seed       ${seedLine}
${scheduleLines(stack.scheduler?.state() ?? [])}
${userModels.map((m) => `  Model      ${m.name} ${m.live ? `(live: ${m.live}` : '(no current.json: not live'}; versions ${m.versions.join(', ')}) from ${userModelsDir}\n`).join('')}
Try:
  # a precomputed prediction, served from the table ("source": "cache")
  curl -s ${api}/predict -H 'content-type: application/json' -d '{"id": "${cachedId}"}'

  # a new transaction, scored by the model ("source": "model")
  curl -s ${api}/predict -H 'content-type: application/json' -d '${body}'

  # what is served
  curl -s ${api}/models/${DEMO_MODEL}

  # operate models (versions, promote, rollback, history): see docs/lifecycle.md
  npm run tandem -- models show ${DEMO_MODEL}

  # drift: requests are captured; the monitor compares them with the baseline every ${monitorEvery} minutes, or now
  npm run tandem -- monitor run ${DEMO_MODEL}

  # the embedded AWS services with the AWS CLI
  ${creds} aws --endpoint-url ${aws.s3Endpoint} s3 ls s3://${LOCAL_BUCKET}/models/ --recursive
  ${creds} aws --endpoint-url ${aws.dynamoEndpoint} dynamodb get-item --table-name ${LOCAL_TABLE} --key '{"pk": {"S": "${DEMO_MODEL}#${demoVersion}#${cachedId}"}}'

  # batch: upload a dataset to incoming/<model>/; results appear under results/<model>/<dataset>/<runId>/
  ${creds} aws --endpoint-url ${aws.s3Endpoint} s3 cp models/${DEMO_MODEL}/demo-transactions.csv s3://${LOCAL_BUCKET}/incoming/${DEMO_MODEL}/my-transactions.csv
  ${creds} aws --endpoint-url ${aws.s3Endpoint} s3 ls s3://${LOCAL_BUCKET}/results/${DEMO_MODEL}/my-transactions/ --recursive

${streamBanner(stack.stream!, aws.kinesisEndpoint!, creds, api, { id: 'txn-stream-1', features: sampleFeatures })}
Press Ctrl+C to stop.
`);

  for (const result of endedDuringStart)
    if (result.manifestKey !== seed?.manifestKey)
      process.stdout.write(`[batch] ${result.status} ${result.message}\n`);
  const resumed = await stack.resumed;
  if (resumed.length > 0)
    process.stdout.write(
      `Resumed ${resumed.length} unfinished run(s) from ${dataDir}; their results appear when they end.\n`,
    );

  // The first Ctrl+C (or SIGTERM) stops within seconds: runs in flight are abandoned, not waited for,
  // and resume on the next start with this data folder. A second one exits at once.
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // SIGKILL, not process.exit: exiting while the emulators' threads and onnxruntime are being torn down
      // could abort in native code. What is left behind is what kill -9 leaves, and a restart resumes it.
      process.stdout.write(`\n${signal} while stopping: exiting now.\n`, () =>
        process.kill(process.pid, 'SIGKILL'),
      );
      return;
    }
    stopping = true;
    process.stdout.write(`\nstopping… (Ctrl+C again to exit at once)\n`);
    for (const run of stack.batch.abandon()) {
      const done = run.chunks
        ? `${run.chunks.scored} of ${run.chunks.planned} chunks scored; it resumes when Tandem next starts with ${dataDir}`
        : `stopped while it was being planned: it resumes when Tandem next starts with ${dataDir} if its plan was written (runs/${run.runId}/plan.json), otherwise upload ${run.key} again`;
      process.stdout.write(`[batch] abandoned run ${run.runId} (${run.key}): ${done}\n`);
    }
    const deadline = setTimeout(() => {
      process.stdout.write(`could not stop cleanly within ${STOP_TIMEOUT_MS / 1000} s: exiting.\n`);
      process.exit(1);
    }, STOP_TIMEOUT_MS);
    void removeEndpointsFile(dataDir)
      .then(() => stack.stop())
      .then(
        () => {
          clearTimeout(deadline);
          process.exit(0);
        },
        (error: unknown) => {
          process.stderr.write(`tandem: stopping failed: ${(error as Error).message}\n`);
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/** `--schedules` (JSON text or a file), else the "schedules" of cdk.json's context. */
async function readSchedules(flag: string | undefined): Promise<Schedule[]> {
  if (flag === undefined) {
    const cdkJson = JSON.parse(await readFile(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as {
      context?: Record<string, unknown>;
    };
    return readScheduleSetting(cdkJson.context?.['schedules'], 'the "schedules" of cdk.json "context"');
  }
  const text = flag.trimStart().startsWith('[')
    ? flag
    : await readFile(path.resolve(flag), 'utf8').catch(() => {
        throw new SettingsError(
          [`schedules: --schedules is neither a JSON list nor a readable file: ${flag}`],
          '--schedules',
        );
      });
  return readScheduleSetting(text, `--schedules ${flag.trimStart().startsWith('[') ? '' : flag}`.trim());
}

function scheduleLines(states: readonly { schedule: Schedule; next: number | undefined }[]): string {
  if (states.length === 0) return '  Schedules  none (the "schedules" setting of cdk.json, or --schedules)';
  return states
    .map(
      ({ schedule, next }) =>
        `  Schedule   ${schedule.model} ${schedule.prefix} ${schedule.expression}: next ${next === undefined ? 'never (fires no more)' : new Date(next).toISOString()}`,
    )
    .join('\n');
}

main().catch((error: unknown) => {
  // A message of our own says what to fix; anything else (an emulator's or the SDK's) needs its stack.
  const own = error instanceof TandemError || error instanceof SettingError || error instanceof SettingsError;
  process.stderr.write(
    `tandem: ${own ? (error as Error).message : ((error as Error).stack ?? String(error))}\n`,
  );
  process.exit(1);
});
