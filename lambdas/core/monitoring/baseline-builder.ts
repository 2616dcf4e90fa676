/**
 * Makes a version's baseline from a dataset: every row is validated as the batch lane validates it,
 * the valid ones are scored with that version, and their raw values and predictions are binned
 * (baseline.ts). Datasets are CSV (a header row) or JSON Lines (features at the top level or under
 * "features"), gzipped or not; several files (a folder's part files) make one dataset.
 */
import { readCsvRecords } from '../codecs/csv-reader.ts';
import { gunzipStream } from '../codecs/gzip.ts';
import { readJsonlRecords } from '../codecs/jsonl-reader.ts';
import type { FeatureIssue, FeatureRow } from '../features.ts';
import type { ServedModel } from '../model-loader.ts';
import type { Prediction } from '../predictions.ts';
import { computeBaseline, type Baseline } from './baseline.ts';
import { MonitoringError } from './errors.ts';

/** One dataset file: its name (the format comes from its extension) and its bytes. */
export interface DatasetFile {
  readonly name: string;
  readonly bytes: () => AsyncIterable<Uint8Array>;
}

export const BASELINE_DATASET = /\.(csv|jsonl|ndjson)(\.gz)?$/i;

/** Rows scored per onnxruntime run. */
const SCORE_BATCH = 2048;

interface RawRow {
  readonly values: Record<string, unknown>;
  readonly valid: FeatureRow | undefined;
}

async function* rowsOf(model: ServedModel, file: DatasetFile): AsyncGenerator<RawRow> {
  const gz = /\.gz$/i.test(file.name);
  const bytes = gz ? gunzipStream(file.bytes()) : file.bytes();
  const issues: FeatureIssue[] = [];
  if (/\.csv(\.gz)?$/i.test(file.name)) {
    let header: string[] | undefined;
    let columns: number[] = [];
    for await (const batch of readCsvRecords(bytes, { delimiter: ',', firstRow: 0, firstLine: 1 })) {
      for (const r of batch) {
        if (header === undefined) {
          header = r.fields.map((f) => f.trim());
          columns = model.validator.names.map((n) => header!.indexOf(n));
          continue;
        }
        if (r.error !== undefined) {
          yield { values: {}, valid: undefined };
          continue;
        }
        issues.length = 0;
        const values: Record<string, unknown> = {};
        header.forEach((name, i) => (values[name] = r.fields[i]));
        yield { values, valid: model.validator.fromText(r.fields, columns, issues) };
      }
    }
    return;
  }
  for await (const batch of readJsonlRecords(bytes, { firstRow: 1, firstLine: 1 })) {
    for (const r of batch) {
      const value = r.error === undefined ? r.value : undefined;
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        yield { values: {}, valid: undefined };
        continue;
      }
      const nested = (value as Record<string, unknown>)['features'];
      const values =
        nested !== null && typeof nested === 'object' && !Array.isArray(nested)
          ? (nested as Record<string, unknown>)
          : (value as Record<string, unknown>);
      issues.length = 0;
      yield { values, valid: model.validator.fromObject(values, issues, '', { ignoreUnknown: true }) };
    }
  }
}

/** Scores the dataset with `model` and returns its baseline. */
export async function buildBaseline(
  model: ServedModel,
  files: readonly DatasetFile[],
  options: { readonly description: string; readonly createdAt: string; readonly bins?: number },
): Promise<Baseline> {
  const unsupported = files.filter((f) => !BASELINE_DATASET.test(f.name));
  if (files.length === 0 || unsupported.length === files.length)
    throw new MonitoringError(
      'EMPTY_DATASET',
      `${options.description}: no dataset file (.csv, .jsonl or .ndjson, optionally .gz)${
        unsupported.length > 0
          ? `; found ${unsupported
              .map((f) => f.name)
              .slice(0, 3)
              .join(', ')}`
          : ''
      }`,
    );
  const kept: Record<string, unknown>[] = [];
  const predictions: Prediction[] = [];
  let rejected = 0;
  let pending: FeatureRow[] = [];
  const flush = async () => {
    if (pending.length === 0) return;
    predictions.push(...(await model.score(pending)));
    pending = [];
  };
  for (const file of files.filter((f) => BASELINE_DATASET.test(f.name))) {
    for await (const row of rowsOf(model, file)) {
      if (!row.valid) {
        rejected++;
        continue;
      }
      kept.push(row.values);
      pending.push(row.valid);
      if (pending.length >= SCORE_BATCH) await flush();
    }
  }
  await flush();
  return computeBaseline({
    manifest: model.manifest,
    classes: model.classes,
    description: options.description,
    rows: kept,
    predictions,
    rejected,
    createdAt: options.createdAt,
    ...(options.bins === undefined ? {} : { bins: options.bins }),
  });
}
