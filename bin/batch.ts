/**
 * `npm run batch -- <file>`: one dataset through the batch lane on this machine, the same pipeline as
 * deployed (plan -> chunks scored in parallel -> manifest), against embedded S3 and DynamoDB.
 */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { classifyUploadKey } from '../lambdas/core/batch/trigger.ts';
import { DEMO_MODEL, LOCAL_BUCKET, startLocalStack } from '../local/stack.ts';
import { listModelFolders } from '../local/uploader.ts';

const HELP = `Usage: npm run batch -- <file> [options]

Scores a dataset (.csv, .jsonl, .parquet, or .csv.gz / .jsonl.gz) through the batch lane locally and
copies the results (part files, rejected rows, _manifest.json) to a folder.

It starts its own embedded S3 and DynamoDB in a temporary folder, deleted when it exits: the
predictions it writes to the table ("written to the table" in its output) are gone with it, and a
running \`npm start\` does not see them. To fill the table a running \`npm start\` serves from, upload
the file to its bucket instead (aws s3 cp <file> s3://tandem-data/incoming/<model>/, the command
npm start prints); see docs/batch.md.

Options:
  --model <name>        model to score with (default: ${DEMO_MODEL})
  --models <dir>        also load the model packages in <dir> (<name>/<version>/ and
                        <name>/current.json, as for npm start -- --models); by default only the
                        repository's models/ folder is loaded
  --version <v>         model version to score with (default: the live one); its predictions go to
                        the table under that version, ready before it is promoted
  --out <dir>           where results are copied (default: ./batch-results)
  --chunk-mb <n>        target chunk size in MiB (default: 64)
  --concurrency <n>     chunks scored at once (default: 4)
  --output-format <f>   jsonl (default) or csv
  --pass-through <cols> comma-separated input columns copied into each prediction row
  --delimiter <c>       CSV delimiter (default: ,)
  --no-table            do not write predictions to the table (S3 output only)
  -h, --help            show this help
`;

function bar(done: number, total: number): string {
  const width = 30;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} chunks`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      model: { type: 'string', default: DEMO_MODEL },
      version: { type: 'string' },
      models: { type: 'string' },
      out: { type: 'string', default: 'batch-results' },
      'chunk-mb': { type: 'string' },
      concurrency: { type: 'string', default: '4' },
      'output-format': { type: 'string' },
      'pass-through': { type: 'string' },
      delimiter: { type: 'string' },
      'no-table': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const file = positionals[0];
  if (values.help || !file) {
    process.stdout.write(HELP);
    if (!file && !values.help) process.exitCode = 2;
    return;
  }
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new Error('--concurrency must be a positive integer');
  const chunkMb = values['chunk-mb'] === undefined ? undefined : Number(values['chunk-mb']);
  if (chunkMb !== undefined && !(chunkMb > 0)) throw new Error('--chunk-mb must be a positive number');
  const key = `incoming/${values.model}/${path.basename(file)}`;
  // The same rule as uploads: what the trigger would ignore is refused here, with its reason.
  const classified = classifyUploadKey(key);
  if ('ignored' in classified) {
    const { code, message } = classified.ignored;
    throw new Error(
      code === 'NO_MODEL_FOLDER'
        ? `--model ${JSON.stringify(values.model)} is not a model name`
        : `${path.basename(file)}: ${message}`,
    );
  }

  const userModelsDir = values.models === undefined ? undefined : path.resolve(values.models);
  if (userModelsDir) {
    const found = await listModelFolders(userModelsDir);
    if (values.model !== DEMO_MODEL && !found.some((m) => m.name === values.model))
      throw new Error(
        `--model ${values.model}: no such model in ${userModelsDir} (it has ${found.map((m) => m.name).join(', ')})`,
      );
  }

  const started = performance.now();
  const stack = await startLocalStack({
    seed: false,
    ...(userModelsDir ? { userModelsDir } : {}),
    batch: {
      maxConcurrency: concurrency,
      onChunk: (_runId, _report, planned) => {
        done++;
        if (process.stderr.isTTY) process.stderr.write(`\r${bar(done, planned)}`);
      },
    },
  });
  let done = 0;
  try {
    const options = {
      ...(chunkMb ? { chunkBytes: Math.round(chunkMb * 1024 * 1024) } : {}),
      ...(values['output-format'] ? { outputFormat: values['output-format'] as 'jsonl' | 'csv' } : {}),
      ...(values['pass-through']
        ? { passThroughColumns: values['pass-through'].split(',').map((c) => c.trim()) }
        : {}),
      ...(values.delimiter ? { delimiter: values.delimiter } : {}),
      ...(values['no-table'] ? { tableWrites: 'none' as const } : {}),
      ...(values.version ? { modelVersion: values.version } : {}),
    };
    const result = await stack.runDataset(path.resolve(file), values.model!, key, options);
    if (process.stderr.isTTY) process.stderr.write('\n');
    const manifestBytes = await stack.objects.readBytes(LOCAL_BUCKET, result.manifestKey);
    const manifest = JSON.parse(new TextDecoder().decode(manifestBytes)) as {
      outputs: { parts: string[]; rejected: string[] };
    };
    const runPrefix = result.manifestKey.slice(0, -'_manifest.json'.length);
    const outDir = path.resolve(values.out!, path.basename(runPrefix));
    for (const objectKey of [result.manifestKey, ...manifest.outputs.parts, ...manifest.outputs.rejected]) {
      const target = path.join(outDir, objectKey.slice(runPrefix.length));
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(target, await stack.objects.readBytes(LOCAL_BUCKET, objectKey));
    }
    const seconds = (performance.now() - started) / 1000;
    const { counts } = result;
    process.stdout.write(
      [
        `${result.status}: ${result.message.replace(/; manifest .*$/, '')}`,
        `  read ${counts.read}, scored ${counts.scored}, rejected ${counts.rejected}`,
        values['no-table']
          ? '  table: not written (--no-table)'
          : `  table: ${counts.writtenToTable} predictions written to this command's temporary table (deleted on exit; to fill a running npm start's table, upload the file to its incoming/${values.model}/)`,
        `  ${seconds.toFixed(1)} s (${Math.round(counts.read / seconds)} rows/s including start-up)`,
        `  results: ${outDir}`,
        `  manifest: ${path.join(outDir, '_manifest.json')}`,
        '',
      ].join('\n'),
    );
    if (result.status !== 'SUCCEEDED') process.exitCode = 1;
  } finally {
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`tandem batch: ${(error as Error).message}\n`);
  process.exit(1);
});
