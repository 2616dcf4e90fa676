/**
 * The `tandem` command: operate models on the local stack or a deployed one. `runCli` takes the
 * arguments and where to write, and returns the exit code (0 done, 1 a problem or a refusal, 2 a usage
 * error), so that tests run it in-process exactly as `bin/cli.ts` does.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { S3ModelSource } from '../../lambdas/adapters/s3-model-source.ts';
import { S3ModelStore } from '../../lambdas/adapters/s3-model-store.ts';
import { readCsvRecords } from '../../lambdas/core/codecs/csv-reader.ts';
import { readJsonlRecords } from '../../lambdas/core/codecs/jsonl-reader.ts';
import { TandemError } from '../../lambdas/core/errors.ts';
import { ModelLifecycle, ShadowGateError } from '../../lambdas/core/lifecycle/lifecycle.ts';
import { readShadowCaptures } from '../../lambdas/core/shadow/shadow-captures.ts';
import { summarizeShadow, type ShadowReport } from '../../lambdas/core/shadow/shadow-report.ts';
import {
  checkPackage,
  scoreSample,
  type PackageFiles,
  type PackageProblem,
  type SampleRecord,
} from '../../lambdas/core/lifecycle/package-check.ts';
import { inspectGraph, shapeText } from '../../lambdas/core/lifecycle/graph-skeleton.ts';
import type { GraphValue } from '../../lambdas/core/onnx-graph.ts';
import { loadModelVersion } from '../../lambdas/core/model-registry.ts';
import { isPackageName } from '../../lambdas/core/names.ts';
import { S3ObjectStore } from '../../lambdas/adapters/s3-object-store.ts';
import { baselineText, latest, makeBaseline, monitorNow, reportText } from './monitor-cli.ts';
import { qualityOf, qualityTable } from './quality-cli.ts';
import { listRuns, runsTable, showRun, startRun } from './runs-cli.ts';
import { DEFAULT_ROLLOUT_STEPS, parseDuration, parseSteps } from '../../lambdas/core/lifecycle/rollout.ts';
import { rolloutLines, startRollout, statusOf } from './rollout-cli.ts';

/** `models rollout`'s default bake time per step. */
const DEFAULT_BAKE = '5m';
import { scheduleRows, schedulesTable } from './schedules-cli.ts';
import { resolveTarget, type Target } from './target.ts';

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** The folder relative paths and the default data folder are resolved against. */
  readonly cwd: string;
  readonly cloudFormation?: Pick<CloudFormationClient, 'send'>;
  /** The clock of `schedules list` (ms). @default Date.now */
  readonly now?: () => number;
}

const GLOBAL_OPTIONS = `Where it acts (default: the local stack that \`npm start\` runs):
  --data-dir <dir>    the local stack's data folder, as given to npm start (default: .tandem)
  --stack <name>      a deployed stack, found from its CloudFormation outputs (your AWS credentials)
  --region <region>   the deployed stack's region (default: $AWS_REGION)
Output:
  --json              machine-readable output on stdout
  -h, --help          help (per command: tandem models <command> --help)`;

const HELP: Record<string, string> = {
  '': `Usage: npm run tandem -- <command> [options]

Commands:
  models list                         every model: live version, versions present
  models show <name>                  the pointer, every version and whether it loads (full errors)
  models history <name>               every pointer change: time, who, from, to, reason
  models inspect <model.onnx>         the graph's inputs and outputs, and a manifest skeleton
  models check <dir>                  load a package folder as the server would; --sample scores rows
  models push <dir> --version <v>     check, then upload a package as a new version
  models promote <name> <version>     make a version live (conditional write, recorded in history)
  models rollback <name>              back to the version live before the current one
  models canary <name> <version> --percent <p>
                                      send p % of the traffic to a candidate (0 ends the canary)
  models rollout <name> <version> [--steps 10,50,100] [--bake 5m]
                                      step a canary up, checking it between steps; promote or roll back
  models rollout-status <name>        the latest rollout: its steps, checks and outcome
  models shadow <name> <version> --sample <fraction>
                                      score a sample of the instances with a version unseen by callers
                                      and compare it with the live one (0 ends the shadow)
  models shadow-report <name>         the shadow's comparisons: agreement, differences, worst cases
  runs start <model> --prefix <p>     score every data file under a folder of the data bucket as one run
  runs list [--model <m>]             runs and their outcome, newest first
  runs show <runId>                   a run's manifest
  monitor baseline <model> --dataset <file|prefix> [--version v]
                                      score a dataset and store the version's drift baseline
  monitor run <model>                 run the drift monitor now (captures since its last run)
  monitor report <model>              the latest drift report: features by PSI, histograms
  schedules list                      the schedules (folders re-scored on a schedule), next fire times
  monitor quality <model>             live quality per version: outcomes (POST /feedback) vs predictions

${GLOBAL_OPTIONS}
`,
  list: `Usage: npm run tandem -- models list [--json]

Lists every model in the store: the version its current.json names and the versions present.

${GLOBAL_OPTIONS}
`,
  show: `Usage: npm run tandem -- models show <name> [--json]

Shows the model's pointer (live version, previous version, when and by whom it changed) and every
version present, each loaded exactly as the server loads it; a version that does not load is shown
with the server's code and full message, per manifest field.

${GLOBAL_OPTIONS}
`,
  history: `Usage: npm run tandem -- models history <name> [--json]

Every pointer change, oldest first: time, who, action, from, to, reason. The pointer is the truth: a
change whose history record is missing (a crash between the two writes) is shown from the pointer and
flagged, as is a current.json written outside this command.

${GLOBAL_OPTIONS}
`,
  inspect: `Usage: npm run tandem -- models inspect <model.onnx> [--skeleton] [--json]

Prints the ONNX graph's inputs and outputs (name, element type, shape), the class labels its
classifier holds, and a manifest.json skeleton built from them: one feature per input column, the
task and outputs read from the graph. Feature names the graph cannot know are placeholders
("<input>_<n>"): rename them to your dataset's columns, then run \`models check\`. With --json,
prints {graph, skeleton, notes}. Acts on no stack.

Options:
  --skeleton          print only the manifest skeleton (to redirect into manifest.json)
  --json              machine-readable output
`,
  check: `Usage: npm run tandem -- models check <dir> [--sample <file.csv|file.jsonl>] [--json]

Loads the package in <dir> (manifest.json + model.onnx) exactly as the server would: the manifest's
JSON and schema, the manifest against the ONNX graph (input names, types and widths, output names,
task against the classes), and an onnxruntime session. Prints every problem with the manifest field it
concerns. With --sample, validates and scores the rows of a CSV (header row) or JSON Lines file (one
object per line, features at the top level or under "features") and prints the predictions and the
rejected rows. Exits 1 on any problem (a rejected sample row included). Acts on no stack.

Options:
  --sample <file>     rows to score
  --json              machine-readable output
`,
  push: `Usage: npm run tandem -- models push <dir> --version <v> [--name <n>] [--json]

Checks the package in <dir> as \`models check\` does, published as <n>@<v> (default name: the
manifest's; the manifest must name the same model and version), then uploads model.onnx and
manifest.json to models/<n>/<v>/. Never overwrites a version that exists. Does not promote.

Options:
  --version <v>       the version to publish as (required)
  --name <n>          the model name (default: the manifest's name)
${GLOBAL_OPTIONS}
`,
  promote: `Usage: npm run tandem -- models promote <name> <version> [--reason <text>] [--force] [--json]

Makes <version> live: rewrites models/<name>/current.json with a conditional write (if another
operator changed it since it was read, nothing is written and the command fails with POINTER_CONFLICT)
and records the change in models/<name>/history/. Refuses a version that does not exist or does not
load (the pointer is left untouched) unless --force. A version that has been a shadow must pass the
agreement gate (SHADOW_GATE): at least 200 comparisons with the live version and label agreement of
at least 0.95, or its manifest's "promotion" thresholds; the refusal prints the evidence. Ends a
canary and a shadow.

Options:
  --reason <text>     why (recorded in the history)
  --force             promote even a version that does not load (the server keeps the last good one),
                      or that does not pass the agreement gate (recorded in the history)
${GLOBAL_OPTIONS}
`,
  rollback: `Usage: npm run tandem -- models rollback <name> [--reason <text>] [--force] [--json]

Makes the version live before the current one live again (the pointer's "previous"), with the same
conditional write, history record and refusals as promote.

Options:
  --reason <text>     why (recorded in the history)
  --force             roll back even to a version that does not load
${GLOBAL_OPTIONS}
`,
  canary: `Usage: npm run tandem -- models canary <name> <version> --percent <p> [--reason <text>] [--force] [--json]

Sends <p> % of the model's instances to <version> while the live version answers the rest: an
instance with an id goes by a stable hash of (model, id), so an entity sees one version for the whole
canary; one without an id goes at random. Each response's model.version says which version answered,
and the API's metrics carry the version as a dimension. --percent 0 ends the canary (<version> must be
the canary's). Same conditional write and history as promote; a version that does not exist or does
not load is refused unless --force (the API never sends traffic to a candidate that does not load).
A promote or rollback ends the canary.

Options:
  --percent <p>       0 to 100 (decimals allowed, to 0.01); 0 ends the canary (required)
  --reason <text>     why (recorded in the history)
  --force             start the canary even with a version that does not load (it takes no traffic)
${GLOBAL_OPTIONS}
`,
  shadow: `Usage: npm run tandem -- models shadow <name> <version> --sample <fraction> [--reason <text>] [--force] [--json]

Makes <version> the model's shadow: for a <fraction> of the instances that carry features and that the
live version answers, the API scores the same features with <version> after the response is computed
(within SHADOW_BUDGET_MS; it never delays or changes a response) and compares the two answers: label
agreement and the difference of the live label's probability (classifiers) or of the value
(regressors). Comparisons are counted in metrics and captured under capture/<name>/shadow/ (see
models shadow-report). --sample 0 ends the shadow (<version> must be the shadow's). Same conditional
write and history as promote; refused: a version that does not exist or does not load (unless
--force), the live version, the same shadow again. A promote or rollback ends the shadow.

Options:
  --sample <fraction> 0 to 1; 0 ends the shadow (required)
  --reason <text>     why (recorded in the history)
  --force             start the shadow even with a version that does not load (nothing is compared)
${GLOBAL_OPTIONS}
`,
  'shadow-report': `Usage: npm run tandem -- models shadow-report <name> [--version <v>] [--since <iso>] [--json]

Reads the shadow comparisons captured under capture/<name>/shadow/ and prints: n, the label agreement
rate, the mean and p99 (nearest rank) absolute difference, the live versions compared against, and
the 10 largest disagreements (id, features, both answers). Prints "no comparisons" when there are none.
Captures are written by the API in batches (within CAPTURE_FLUSH_SECONDS, 5 s under npm start).

Options:
  --version <v>       the shadow version (default: the pointer's shadow, else every version)
  --since <iso>       only comparisons at or after this time (e.g. 2026-12-06T04:00:00Z)
${GLOBAL_OPTIONS}
`,
};

HELP['rollout'] =
  `Usage: npm run tandem -- models rollout <name> <version> [--steps <p,p,...>] [--bake <duration>] [--reason <text>] [--force] [--json]

Rolls <version> out automatically with the rollout state machine: from a pointer without a canary, the
canary takes each percentage in turn (default 10,50,100) for the bake time (default 5m; 30s, 5m, 1h),
then the candidate's health is checked against thresholds: its share of failed requests, its p99
model latency, the instances it answered, and the shift of its predictions from the live version's
(label shares, mean probabilities, mean value). Healthy after the last step: promoted. A failed check:
rolled back (the canary ends; the live version takes everything) and notified. Every step and check is
in the model's history. One rollout per model at a time; a pointer change by an operator during the
rollout stops it, leaving the pointer as the operator set it. Thresholds: ROLLOUT_MAX_ERROR_RATE,
ROLLOUT_MAX_LATENCY_MS, ROLLOUT_MAX_SHIFT, ROLLOUT_MIN_INSTANCES (docs/configuration.md); deployed,
the stack's.

Locally the rollout runs in this command, which prints each step and waits for the end (exit code 0:
promoted, 1: rolled back or stopped); it reads the per-version metrics \`npm start\` writes in the data
folder. With --stack, the command starts an execution of the stack's rollout state machine and
returns: follow it with \`models rollout-status\`. A version that has been a shadow must first pass the
agreement gate, as for \`models promote\` (refused as SHADOW_GATE with the evidence).

Options:
  --steps <p,p,...>   ascending canary percentages, each above 0 and at most 100 (default 10,50,100)
  --bake <duration>   how long each step takes traffic before its check (default 5m; 1s to 24h)
  --reason <text>     why (recorded in the history)
  --force             start even if the version has been a shadow that fails the agreement gate
${GLOBAL_OPTIONS}
`;
HELP['rollout-status'] = `Usage: npm run tandem -- models rollout-status <name> [--json]

The model's latest rollout, from its history: the plan, the status (running, promoted, rolled-back,
stopped, or interrupted: its process stopped), every step and every check's verdicts (metric, value,
threshold), and why it ended.

${GLOBAL_OPTIONS}
`;

HELP['runs start'] =
  `Usage: npm run tandem -- runs start <model> --prefix <folder/> [--option key=value ...] [--json]

Scores every data file under <folder/> of the data bucket (the part files Spark, Athena or Glue write:
.csv, .jsonl/.ndjson/.json, .parquet, gzipped or not, all of one format) as one run with one manifest
(docs/batch.md). Markers and checksums (_SUCCESS, .crc) are skipped; an empty folder makes a run that
says so. Locally the run executes in this command, which waits for it; on a deployed stack it is
started on the batch state machine and the command prints where its manifest will be.

Options:
  --prefix <folder/>  the folder (a key prefix of the data bucket)
  --option k=v        a batch option (chunkBytes, outputFormat, tableWrites, modelVersion, ...)
${GLOBAL_OPTIONS}
`;
HELP['runs list'] = `Usage: npm run tandem -- runs list [--model <m>] [--json]

Every run with a manifest (newest first) and the planned runs without one yet (RUNNING).

${GLOBAL_OPTIONS}
`;
HELP['runs show'] = `Usage: npm run tandem -- runs show <runId> [--json]

Prints the run's manifest.

${GLOBAL_OPTIONS}
`;

HELP['monitor baseline'] =
  `Usage: npm run tandem -- monitor baseline <model> --dataset <file|folder|prefix> [--version <v>] [--json]

Scores the dataset with <model>@<v> (default: the live version) as the server would, and stores what
its inputs and predictions look like as models/<model>/<v>/baseline.json (docs/monitoring.md): per
feature a quantile-binned histogram (numbers) or frequencies (categories) and the missing rate, and
the prediction distribution. The dataset is a local CSV (header row) or JSON Lines file, gzipped or
not, a local folder of them, or else a key or prefix of the data bucket. Replaces an existing baseline.

Options:
  --dataset <d>       the reference data (usually the training data)
  --version <v>       the version to baseline (default: the live one)
${GLOBAL_OPTIONS}
`;
HELP['monitor run'] = `Usage: npm run tandem -- monitor run <model> [--json]

Runs the drift monitor for <model> now, as its schedule does: reads the captures written since the
last run (realtime, stream and batch), compares them with the live version's baseline, writes
monitoring/<model>/drift/<time>.json and prints it as \`monitor report\` does. Exits 1 on drift.
Settings: DRIFT_THRESHOLD, DRIFT_MIN_RECORDS, MONITOR_FIRST_LOOKBACK_MINUTES (docs/configuration.md).

${GLOBAL_OPTIONS}
`;
HELP['monitor report'] = `Usage: npm run tandem -- monitor report <model> [--json]

Prints the latest drift report of <model>: status, records per source and version, every feature by
PSI with its missing rate and unseen categories, the predictions, and text histograms (baseline vs
current) of the worst features. --json prints the report as stored.

${GLOBAL_OPTIONS}
`;
HELP['schedules list'] = `Usage: npm run tandem -- schedules list [--json]

The schedules of the stack (the "schedules" setting: docs/batch.md, "Schedules") with their next fire
time in UTC. Locally: those npm start runs (a rate counts from when it started). Deployed: those of the
stack's Schedules output (a rate counts from when EventBridge Scheduler created the schedule).

${GLOBAL_OPTIONS}
`;

HELP['monitor quality'] =
  `Usage: npm run tandem -- monitor quality <model> [--days <n>] [--lookback-days <n>] [--publish-metrics] [--json]

Live quality of each version of the model: the outcomes posted to POST /feedback in the window, each
matched by id to the version's latest prediction made at or before the outcome was observed (captured
from the real-time, stream and batch lanes, or precomputed in the table). Classifiers: accuracy, ROC AUC
and log loss; regressors: MAE and RMSE; with the number of outcomes matched (docs/monitoring.md).

Options:
  --days <n>          outcomes observed in the last n days (default 7)
  --lookback-days <n> predictions made up to n days before the window (default 7)
  --publish-metrics   also publish the figures as CloudWatch metrics (EMF on stdout; model, version)
${GLOBAL_OPTIONS}
`;

class UsageError extends Error {}

function usage(command: string, problem: string): never {
  throw new UsageError(`${problem}\n\n${HELP[command] ?? HELP['']!}`);
}

function problemLines(problems: readonly PackageProblem[], indent = '  '): string {
  return problems.map((p) => `${indent}${p.field ? `${p.field}: ` : ''}${p.message} (${p.code})`).join('\n');
}

async function readIfPresent(file: string): Promise<Uint8Array | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function readPackageFolder(dir: string): Promise<PackageFiles> {
  const [manifest, model, baseline] = await Promise.all([
    readIfPresent(path.join(dir, 'manifest.json')),
    readIfPresent(path.join(dir, 'model.onnx')),
    readIfPresent(path.join(dir, 'baseline.json')),
  ]);
  if (manifest === undefined && model === undefined) {
    throw new UsageError(`${dir} holds neither manifest.json nor model.onnx: is it a model package folder?`);
  }
  return { manifest, model, ...(baseline !== undefined ? { baseline } : {}) };
}

async function* chunksOf(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** The sample's rows: CSV (first record is the header) or JSON Lines, by file extension. */
async function readSample(file: string): Promise<SampleRecord[]> {
  const bytes = await readFile(file);
  const records: SampleRecord[] = [];
  if (/\.jsonl?$/i.test(file)) {
    for await (const batch of readJsonlRecords(chunksOf(bytes), { firstRow: 1, firstLine: 1 })) {
      for (const r of batch) {
        if (r.error !== undefined) {
          records.push({ row: r.row, error: r.error });
          continue;
        }
        const value = r.value as Record<string, unknown>;
        const nested = value['features'];
        const features =
          nested !== null && typeof nested === 'object' && !Array.isArray(nested)
            ? (nested as Record<string, unknown>)
            : value;
        records.push({ row: r.row, features });
      }
    }
    return records;
  }
  if (!/\.csv$/i.test(file)) throw new UsageError(`--sample must be a .csv or .jsonl file, got ${file}`);
  let header: string[] | undefined;
  for await (const batch of readCsvRecords(chunksOf(bytes), { delimiter: ',', firstRow: 0, firstLine: 1 })) {
    for (const r of batch) {
      if (header === undefined) {
        header = r.fields.map((f) => f.trim());
        continue;
      }
      if (r.error !== undefined) records.push({ row: r.row, error: r.error });
      else records.push({ row: r.row, header, fields: r.fields });
    }
  }
  return records;
}

interface Parsed {
  readonly command: string;
  readonly args: string[];
  readonly values: {
    'data-dir'?: string;
    stack?: string;
    region?: string;
    json?: boolean;
    help?: boolean;
    sample?: string;
    version?: string;
    name?: string;
    reason?: string;
    force?: boolean;
    prefix?: string;
    model?: string;
    option?: string[];
    skeleton?: boolean;
    percent?: string;
    dataset?: string;
    steps?: string;
    bake?: string;
    days?: string;
    'lookback-days'?: string;
    'publish-metrics'?: boolean;
    since?: string;
  };
}

function parse(argv: readonly string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        stack: { type: 'string' },
        region: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        sample: { type: 'string' },
        version: { type: 'string' },
        name: { type: 'string' },
        reason: { type: 'string' },
        force: { type: 'boolean' },
        prefix: { type: 'string' },
        model: { type: 'string' },
        option: { type: 'string', multiple: true },
        skeleton: { type: 'boolean' },
        percent: { type: 'string' },
        dataset: { type: 'string' },
        steps: { type: 'string' },
        bake: { type: 'string' },
        days: { type: 'string' },
        'lookback-days': { type: 'string' },
        'publish-metrics': { type: 'boolean' },
        since: { type: 'string' },
      },
    });
  } catch (error) {
    usage('', (error as Error).message);
  }
  const [group, command = '', ...args] = parsed.positionals;
  if (group === undefined) return { command: '', args: [], values: { ...parsed.values, help: true } };
  // `runs`, `monitor` and `schedules` commands are named with their group in HELP; `models` ones without.
  if (group === 'runs' || group === 'monitor' || group === 'schedules') {
    const named = `${group} ${command}`;
    if (!(named in HELP)) {
      if (parsed.values.help) return { command: '', args: [], values: parsed.values };
      usage('', command ? `unknown command "${named}"` : `which ${group} command?`);
    }
    return { command: named, args, values: parsed.values };
  }
  if (group !== 'models') usage('', `unknown command "${group}"`);
  if (!(command in HELP) || command === '') {
    if (parsed.values.help) return { command: '', args: [], values: parsed.values };
    usage('', command ? `unknown command "models ${command}"` : 'which models command?');
  }
  return { command, args, values: parsed.values };
}

/** `--option key=value`: numbers and true/false as such, lists comma-separated for passThroughColumns. */
function batchOptions(command: string, pairs: readonly string[]): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) usage(command, `--option takes key=value, got "${pair}"`);
    const key = pair.slice(0, at);
    const value = pair.slice(at + 1);
    options[key] =
      key === 'passThroughColumns'
        ? value.split(',').filter((c) => c !== '')
        : /^-?\d+(\.\d+)?$/.test(value)
          ? Number(value)
          : value;
  }
  return options;
}

function modelName(command: string, value: string | undefined, what = 'model name'): string {
  if (value === undefined) usage(command, `missing the ${what}`);
  if (!isPackageName(value)) {
    usage(command, `"${value}" is not a valid ${what} (letters, digits, ".", "_" or "-")`);
  }
  return value;
}

function arity(command: string, args: readonly string[], count: number): void {
  if (args.length > count) usage(command, `unexpected argument "${args[count]}"`);
}

const figure = (value: number | null, digits = 4): string => (value === null ? 'n/a' : value.toFixed(digits));

function shadowReportText(
  name: string,
  version: string | undefined,
  report: ShadowReport,
  unreadable: readonly string[],
): string {
  const head = `${name}: shadow ${version ?? '(every version)'}`;
  const warnings = unreadable.map((u) => `! unreadable: ${u}`);
  if (report.n === 0)
    return [
      `${head}: no comparisons (yet: they are written in batches, within CAPTURE_FLUSH_SECONDS of being made: 60 s deployed, 5 s under npm start)`,
      ...warnings,
    ].join('\n');
  const against = Object.entries(report.against)
    .map(([v, n]) => `${v} (${n})`)
    .join(', ');
  const worst = report.largest.map(
    (d) =>
      `  ${String(d.id ?? '(no id)').padEnd(16)} ${d.agreement === false ? 'labels differ' : 'same label   '}  diff ${figure(d.absDifference)}\n` +
      `      live ${d.liveVersion}: ${JSON.stringify(d.live)}\n      shadow ${d.shadowVersion}: ${JSON.stringify(d.shadow)}\n` +
      `      features: ${JSON.stringify(d.features)}`,
  );
  return [
    head,
    `comparisons: ${report.n} (${report.firstAt} to ${report.lastAt}), against live ${against}`,
    `label agreement: ${report.agreement === null ? 'n/a (no labels)' : `${figure(report.agreement)} of ${report.labelled}`}`,
    `absolute difference: mean ${figure(report.meanAbsDifference)}, p99 ${figure(report.p99AbsDifference)}`,
    ...(worst.length > 0 ? ['largest disagreements:', ...worst] : ['no disagreements']),
    ...warnings,
  ].join('\n');
}

/** Runs one command; returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.err(`tandem: ${(error as Error).message}`);
    return 2;
  }
  const { command, args, values } = parsed;
  const json = values.json === true;
  if (values.help) {
    io.out(HELP[command]!);
    return 0;
  }
  const print = (human: string, machine: unknown): void =>
    io.out(json ? JSON.stringify(machine, null, 2) : human);
  let target: Target | undefined;
  const resolve = async (): Promise<Target> =>
    (target = await resolveTarget(
      {
        dataDir: path.resolve(io.cwd, values['data-dir'] ?? '.tandem'),
        ...(values.stack !== undefined ? { stack: values.stack } : {}),
        ...(values.region !== undefined ? { region: values.region } : {}),
      },
      io.cloudFormation ? { cloudFormation: io.cloudFormation } : {},
    ));
  const lifecycle = async (): Promise<ModelLifecycle> => {
    target = await resolveTarget(
      {
        dataDir: path.resolve(io.cwd, values['data-dir'] ?? '.tandem'),
        ...(values.stack !== undefined ? { stack: values.stack } : {}),
        ...(values.region !== undefined ? { region: values.region } : {}),
      },
      io.cloudFormation ? { cloudFormation: io.cloudFormation } : {},
    );
    const t = target;
    const source = new S3ModelSource(t.s3, t.bucket, t.prefix);
    const objects = new S3ObjectStore(t.s3);
    return new ModelLifecycle(new S3ModelStore(t.s3, t.bucket, t.prefix), {
      loadVersion: (name, version) => loadModelVersion(source, name, version),
      identity: () => t.identity(),
      shadowCaptures: async (name, version) =>
        (await readShadowCaptures(objects, t.bucket, name, { shadowVersion: version })).records,
    });
  };

  try {
    switch (command) {
      case 'list': {
        arity(command, args, 0);
        const models = await (await lifecycle()).list();
        const lines = models.map(
          (m) => `${m.name.padEnd(24)} ${(m.live ?? `(${m.pointer})`).padEnd(16)} ${m.versions.join(', ')}`,
        );
        print([`${'MODEL'.padEnd(24)} ${'LIVE'.padEnd(16)} VERSIONS`, ...lines].join('\n'), {
          target: target!.label,
          models,
        });
        return 0;
      }
      case 'show': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        const model = await (await lifecycle()).show(name);
        const p = model.pointer;
        const pointerLine =
          p.status === 'ok'
            ? `${p.version}${p.previous ? ` (previous ${p.previous})` : ''}${p.changedAt ? `, changed ${p.changedAt}` : ''}${p.changedBy ? ` by ${p.changedBy}` : ''}`
            : p.status === 'missing'
              ? '(no current.json: nothing is promoted)'
              : `(current.json is invalid: ${p.message})`;
        const versionLines = model.versions.map((v) => {
          const role = v.live
            ? 'live'
            : [
                ...(v.canaryPercent !== undefined ? [`canary ${v.canaryPercent}%`] : []),
                ...(v.shadowSample !== undefined ? [`shadow ${v.shadowSample}`] : []),
              ].join(', ');
          const head = `  ${v.version.padEnd(16)} ${role.padEnd(12)}  ${v.loads ? 'loads' : 'does not load'}`;
          return v.problems ? `${head}\n${problemLines(v.problems, '      ')}` : head;
        });
        const canaryLine =
          p.status === 'ok' && p.canary
            ? [
                `canary: ${p.canary.version} takes ${p.canary.percent}% of the instances${p.canary.rollout ? ` (rollout ${p.canary.rollout}: models rollout-status ${name})` : ''}`,
              ]
            : [];
        const shadowVersion = p.status === 'ok' ? p.shadow : undefined;
        const shadowLoads = model.versions.find((v) => v.version === shadowVersion?.version)?.loads;
        const shadowLine = shadowVersion
          ? [
              `shadow: ${shadowVersion.version} scores ${shadowVersion.sample} of the instances with features` +
                (shadowLoads === false ? ' (does not load: nothing is compared)' : ''),
            ]
          : [];
        print(
          [
            `${name}  (${target!.label})`,
            `live: ${pointerLine}`,
            ...canaryLine,
            ...shadowLine,
            'versions:',
            ...versionLines,
          ].join('\n'),
          model,
        );
        return model.versions.some((v) => v.live && !v.loads) ? 1 : 0;
      }
      case 'history': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        const history = await (await lifecycle()).history(name);
        const lines = history.entries.map(
          (e) =>
            `${e.at || '(time unknown)'}  ${e.action.padEnd(13)} ${(e.from ?? '(none)').padEnd(12)} -> ${e.to.padEnd(12)}` +
            `${e.percent !== undefined ? ` ${e.percent}%` : ''}${e.sample !== undefined ? ` sample ${e.sample}` : ''} by ${e.by}` +
            `${e.reason ? `  "${e.reason}"` : ''}${e.forced ? '  [forced]' : ''}${e.recorded === false ? '  [NOT RECORDED]' : ''}`,
        );
        const flags = history.flags.map((f) => `! ${f}`);
        print([...(lines.length > 0 ? lines : ['(no recorded changes)']), ...flags].join('\n'), history);
        return history.flags.length > 0 ? 1 : 0;
      }
      case 'inspect': {
        arity(command, args, 1);
        if (args[0] === undefined) usage(command, 'missing the model file');
        const bytes = await readFile(path.resolve(io.cwd, args[0]));
        const inspected = inspectGraph(bytes);
        const { graph } = inspected;
        if (values.skeleton) {
          io.out(JSON.stringify(inspected.skeleton, null, 2));
          return 0;
        }
        const valueLine = (v: GraphValue) =>
          `  ${v.name.padEnd(24)} ${shapeText(v)}${graph.classLabels[v.name] ? `  classes ${JSON.stringify(graph.classLabels[v.name])}` : ''}${graph.zipMapOutputs.includes(v.name) ? '  (ZipMap: served as the probability tensor)' : ''}`;
        print(
          [
            `${args[0]}`,
            'inputs:',
            ...graph.inputs.map(valueLine),
            'outputs:',
            ...graph.outputs.map(valueLine),
            ...(inspected.notes.length > 0 ? ['notes:', ...inspected.notes.map((n) => `  - ${n}`)] : []),
            'manifest.json skeleton (rename the placeholders, then: npm run tandem -- models check <dir>):',
            JSON.stringify(inspected.skeleton, null, 2),
          ].join('\n'),
          inspected,
        );
        return 0;
      }
      case 'check': {
        arity(command, args, 1);
        if (args[0] === undefined) usage(command, 'missing the package folder');
        const dir = path.resolve(io.cwd, args[0]);
        const checked = await checkPackage(await readPackageFolder(dir), args[0]);
        const model = checked.model;
        try {
          if (!model) {
            print(
              `${args[0]}: ${checked.problems.length} problem(s); the server would not load it\n${problemLines(checked.problems)}`,
              { ok: false, problems: checked.problems },
            );
            return 1;
          }
          const summary = `${args[0]}: loads as ${model.name}@${model.version} (${model.manifest.task}, ${model.manifest.features.length} features)`;
          if (values.sample === undefined) {
            print(summary, { ok: true, name: model.name, version: model.version, problems: [] });
            return 0;
          }
          const outcome = await scoreSample(model, await readSample(path.resolve(io.cwd, values.sample)));
          const rejectedLines = outcome.rejected.map(
            (r) => `  row ${r.row}:\n${problemLines(r.problems, '    ')}`,
          );
          const scoredLines = outcome.scored
            .slice(0, 10)
            .map((s) => `  row ${s.row}: ${JSON.stringify(s.prediction)}`);
          print(
            [
              summary,
              `sample: ${outcome.scored.length} row(s) scored, ${outcome.rejected.length} rejected`,
              ...scoredLines,
              ...(outcome.scored.length > 10 ? [`  ... ${outcome.scored.length - 10} more`] : []),
              ...(rejectedLines.length > 0 ? ['rejected:', ...rejectedLines] : []),
            ].join('\n'),
            {
              ok: outcome.rejected.length === 0,
              name: model.name,
              version: model.version,
              problems: [],
              sample: outcome,
            },
          );
          return outcome.rejected.length > 0 ? 1 : 0;
        } finally {
          await model?.close();
        }
      }
      case 'push': {
        arity(command, args, 1);
        if (args[0] === undefined) usage(command, 'missing the package folder');
        if (values.version === undefined) usage(command, '--version is required');
        const version = modelName(command, values.version, 'version');
        const files = await readPackageFolder(path.resolve(io.cwd, args[0]));
        let name = values.name;
        if (name === undefined) {
          try {
            name = (JSON.parse(new TextDecoder().decode(files.manifest)) as { name?: string }).name;
          } catch {
            name = undefined;
          }
          if (name === undefined) usage(command, 'the manifest names no model: give --name');
        }
        name = modelName(command, name);
        const ops = await lifecycle();
        await ops.push(name, version, files, args[0]);
        print(
          `pushed ${name}@${version} to ${ops.description} (not live: npm run tandem -- models promote ${name} ${version})`,
          { pushed: { name, version }, store: ops.description },
        );
        return 0;
      }
      case 'promote':
      case 'rollback': {
        arity(command, args, command === 'promote' ? 2 : 1);
        const name = modelName(command, args[0]);
        const version = command === 'promote' ? modelName(command, args[1], 'version') : undefined;
        const ops = await lifecycle();
        const options = {
          ...(values.reason !== undefined ? { reason: values.reason } : {}),
          ...(values.force ? { force: true } : {}),
        };
        const outcome =
          version !== undefined
            ? await ops.promote(name, version, options)
            : await ops.rollback(name, options);
        const e = outcome.entry;
        print(
          `${name}: ${e.from ?? '(none)'} -> ${e.to} (${command}, change ${e.change})` +
            (outcome.historyError
              ? `\nwarning: the pointer changed but its history record was not written (${outcome.historyError}); \`models history\` flags it`
              : ''),
          outcome,
        );
        return 0;
      }
      case 'canary':
      case 'shadow': {
        arity(command, args, 2);
        const name = modelName(command, args[0]);
        const version = modelName(command, args[1], 'version');
        const [option, raw, max] =
          command === 'canary' ? ['--percent', values.percent, 100] : ['--sample', values.sample, 1];
        if (raw === undefined) usage(command, `${option} is required (0 ends the ${command})`);
        const share = Number(raw);
        if (raw.trim() === '' || !Number.isFinite(share) || share < 0 || share > max) {
          usage(command, `${option} must be a number from 0 to ${max}, not "${raw}"`);
        }
        const ops = await lifecycle();
        const options = {
          ...(values.reason !== undefined ? { reason: values.reason } : {}),
          ...(values.force ? { force: true } : {}),
        };
        const outcome =
          command === 'canary'
            ? await ops.canary(name, version, share, options)
            : await ops.shadow(name, version, share, options);
        const e = outcome.entry;
        const done =
          command === 'canary'
            ? share === 0
              ? `canary of ${e.to} ended; ${e.from} takes all the traffic`
              : `${e.to} takes ${share}% of the instances, ${e.from} the rest`
            : share === 0
              ? `shadow of ${e.to} ended`
              : `${e.to} shadows ${e.from} on ${share} of the instances with features (models shadow-report ${name})`;
        print(
          `${name}: ${done} (change ${e.change})` +
            (outcome.historyError
              ? `\nwarning: the pointer changed but its history record was not written (${outcome.historyError})`
              : ''),
          outcome,
        );
        return 0;
      }
      case 'rollout': {
        arity(command, args, 2);
        const model = modelName(command, args[0]);
        const candidate = modelName(command, args[1], 'version');
        let steps: number[];
        let bakeSeconds: number;
        try {
          steps = parseSteps(values.steps ?? DEFAULT_ROLLOUT_STEPS.join(','));
          bakeSeconds = parseDuration(values.bake ?? DEFAULT_BAKE);
        } catch (error) {
          usage(command, (error as Error).message);
        }
        const t = await resolve();
        // The rollout's last step promotes: a version that has been a shadow must pass the agreement gate
        // first, as `models promote` requires (--force skips it).
        if (values.force !== true) await (await lifecycle()).requireShadowGate(model, candidate);
        const started = await startRollout(
          t,
          {
            model,
            candidate,
            steps,
            bakeSeconds,
            ...(values.reason !== undefined ? { reason: values.reason } : {}),
          },
          (line) => {
            if (!json) io.out(line);
          },
        );
        if (started.executionName !== undefined) {
          print(
            `rollout ${started.rolloutId} of ${model}@${candidate} started on ${t.label} (execution ${started.executionName}); follow it: npm run tandem -- models rollout-status ${model} --stack ${values.stack}`,
            started,
          );
          return 0;
        }
        if (json) io.out(JSON.stringify(started, null, 2));
        return started.report?.status === 'promoted' ? 0 : 1;
      }
      case 'rollout-status': {
        arity(command, args, 1);
        const model = modelName(command, args[0]);
        const report = await statusOf(await resolve(), model);
        if (!report) {
          print(`${model} has had no rollout`, { rollout: null });
          return 0;
        }
        print(rolloutLines(report).join('\n'), { rollout: report });
        return 0;
      }
      case 'shadow-report': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        const since = values.since === undefined ? undefined : Date.parse(values.since);
        if (since !== undefined && !Number.isFinite(since)) {
          usage(
            command,
            `--since must be an ISO-8601 time (e.g. 2026-12-06T04:00:00Z), not "${values.since}"`,
          );
        }
        let version =
          values.version === undefined ? undefined : modelName(command, values.version, 'version');
        const ops = await lifecycle();
        if (version === undefined) {
          const described = await ops.show(name).catch(() => undefined);
          const pointer = described?.pointer;
          if (pointer?.status === 'ok' && pointer.shadow) version = pointer.shadow.version;
        }
        const captures = await readShadowCaptures(new S3ObjectStore(target!.s3), target!.bucket, name, {
          ...(version !== undefined ? { shadowVersion: version } : {}),
          ...(since !== undefined ? { sinceMs: since } : {}),
        });
        const report = summarizeShadow(captures.records);
        print(shadowReportText(name, version, report, captures.unreadable), {
          model: name,
          ...(version !== undefined ? { shadowVersion: version } : {}),
          ...(values.since !== undefined ? { since: values.since } : {}),
          ...report,
          unreadable: captures.unreadable,
        });
        return 0;
      }
      case 'runs start': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        if (values.prefix === undefined) usage(command, 'missing --prefix <folder/>');
        const options = batchOptions(command, values.option ?? []);
        const t = await resolve();
        const started = await startRun(t, name, values.prefix, options);
        if (started.result) {
          print(
            runsTable([started.result]) + `\nmanifest: s3://${t.bucket}/${started.result.manifestKey}`,
            started,
          );
          return started.result.status === 'SUCCEEDED' ? 0 : 1;
        }
        print(
          `started ${started.runId}; its manifest: s3://${t.bucket}/${started.manifestPrefix}_manifest.json`,
          started,
        );
        return 0;
      }
      case 'runs list': {
        arity(command, args, 0);
        const t = await resolve();
        const runs = await listRuns(new S3ObjectStore(t.s3), t.bucket, values.model);
        print(runsTable(runs), { target: t.label, runs });
        return 0;
      }
      case 'runs show': {
        arity(command, args, 1);
        const runId = args[0];
        if (runId === undefined) usage(command, 'missing the run id');
        const t = await resolve();
        const found = await showRun(new S3ObjectStore(t.s3), t.bucket, runId);
        if (!found) throw new Error(`no manifest for run ${runId} in ${t.label} (\`runs list\` shows runs)`);
        print(`s3://${t.bucket}/${found.manifestKey}\n${JSON.stringify(found.manifest, null, 2)}`, found);
        return 0;
      }
      case 'monitor baseline': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        if (values.dataset === undefined) usage(command, 'missing --dataset <file|folder|prefix>');
        const version =
          values.version === undefined ? undefined : modelName(command, values.version, 'version');
        const t = await resolve();
        const made = await makeBaseline(t, name, version, values.dataset, io.cwd);
        print(baselineText(made, t.bucket), { key: made.key, baseline: made.baseline });
        return 0;
      }
      case 'monitor run':
      case 'monitor report': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        const t = await resolve();
        const outcome = command === 'monitor run' ? await monitorNow(t, name) : await latest(t, name);
        if (!outcome)
          throw new Error(
            `no drift report of ${name} in ${t.label} yet (npm run tandem -- monitor run ${name})`,
          );
        print(reportText(outcome.key, outcome.report, t.bucket), outcome.report);
        return command === 'monitor run' && outcome.report.status === 'drift' ? 1 : 0;
      }
      case 'schedules list': {
        arity(command, args, 0);
        const t = await resolve();
        const rows = scheduleRows(t.schedules ?? [], (io.now ?? Date.now)(), t.schedulesStartedAt);
        print(schedulesTable(rows), { target: t.label, schedules: rows });
        return 0;
      }
      case 'monitor quality': {
        arity(command, args, 1);
        const name = modelName(command, args[0]);
        const days = (flag: 'days' | 'lookback-days', fallback: number): number => {
          const text = values[flag];
          if (text === undefined) return fallback;
          const n = Number(text);
          if (text.trim() === '' || !Number.isFinite(n) || n <= 0 || n > 366)
            usage(command, `--${flag} must be a number of days above 0 and at most 366, not "${text}"`);
          return n;
        };
        const window = {
          windowMs: days('days', 7) * 86_400_000,
          lookbackMs: days('lookback-days', 7) * 86_400_000,
        };
        const report = await qualityOf(await resolve(), name, window, {
          publishMetrics: values['publish-metrics'] === true,
        });
        print(qualityTable(report), report);
        return 0;
      }
      default:
        return usage('', `unknown command "${command}"`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`tandem: ${error.message}`);
      return 2;
    }
    const e = error as Error;
    const code = error instanceof TandemError ? error.code : undefined;
    const details = error instanceof TandemError ? (error.details ?? []) : [];
    if (json) {
      io.out(
        JSON.stringify(
          {
            error: {
              ...(code ? { code } : {}),
              message: e.message,
              ...(details.length ? { details } : {}),
              ...(error instanceof ShadowGateError ? { evidence: error.decision } : {}),
            },
          },
          null,
          2,
        ),
      );
    } else {
      const detailLines = details.map((d) => `  ${d.field ? `${d.field}: ` : ''}${d.message}`);
      io.err([`tandem: ${e.message}${code ? ` (${code})` : ''}`, ...detailLines].join('\n'));
    }
    return 1;
  } finally {
    (target as Target | undefined)?.close();
  }
}
