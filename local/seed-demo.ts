/**
 * Scores the demo dataset into the predictions table so that cache hits work as soon as the local
 * stack is up. Uses the same validation, scoring and store code as the lanes.
 */
import { readFile } from 'node:fs/promises';
import { storedPrediction, type StoredPrediction } from '../lambdas/core/cache-policy.ts';
import { parseCsv } from '../lambdas/core/codecs/csv.ts';
import type { FeatureIssue, FeatureRow } from '../lambdas/core/features.ts';
import type { ServedModel } from '../lambdas/core/model-loader.ts';
import type { PredictionStore } from '../lambdas/core/ports.ts';

export interface SeedSummary {
  readonly rows: number;
  readonly written: number;
  readonly skipped: number;
  readonly rejected: { line: number; issues: FeatureIssue[] }[];
  /** The first ids seeded, for examples. */
  readonly sampleIds: string[];
  /** The first valid row's features as a request would send them, for examples. */
  readonly sampleFeatures: Record<string, number | string | boolean> | undefined;
}

const MICRO_BATCH = 500;

export async function seedDemoDataset(
  csvPath: string,
  model: ServedModel,
  store: PredictionStore,
  runId: string,
  now = Date.now(),
): Promise<SeedSummary> {
  const [header, ...records] = parseCsv(await readFile(csvPath, 'utf8'));
  if (!header) throw new Error(`${csvPath} is empty`);
  const idColumn = header.fields.indexOf(model.manifest.idField);
  if (idColumn < 0) throw new Error(`${csvPath} has no "${model.manifest.idField}" column`);
  const columns = model.validator.names.map((name) => header.fields.indexOf(name));

  const rejected: SeedSummary['rejected'] = [];
  const valid: { id: string; row: FeatureRow }[] = [];
  for (const record of records) {
    const issues: FeatureIssue[] = [];
    const row = model.validator.fromText(record.fields, columns, issues);
    const id = record.fields[idColumn];
    if (!id) issues.push({ field: model.manifest.idField, message: 'is required' });
    if (row && id) valid.push({ id, row });
    else rejected.push({ line: record.line, issues });
  }

  let written = 0;
  let skipped = 0;
  for (let start = 0; start < valid.length; start += MICRO_BATCH) {
    const batch = valid.slice(start, start + MICRO_BATCH);
    const predictions = await model.score(batch.map((b) => b.row));
    const items: StoredPrediction[] = batch.map((b, i) =>
      storedPrediction(
        {
          model: model.name,
          entityId: b.id,
          prediction: predictions[i]!,
          modelVersion: model.version,
          computedAt: now,
          runId,
          source: 'batch',
        },
        model.manifest.cache.ttlSeconds,
      ),
    );
    const result = await store.putMany(items);
    written += result.written;
    skipped += result.skipped;
  }
  const first = valid[0];
  const sampleFeatures = first
    ? Object.fromEntries(
        model.manifest.features.map((f, i) => [
          f.name,
          f.type === 'boolean' ? first.row[i] === 1 : first.row[i]!,
        ]),
      )
    : undefined;
  return {
    rows: records.length,
    written,
    skipped,
    rejected,
    sampleIds: valid.slice(0, 3).map((v) => v.id),
    sampleFeatures,
  };
}
