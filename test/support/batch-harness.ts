/**
 * Helpers for batch-lane integration tests: the demo dataset as fields and typed records, CSV lines,
 * and one finished run's outputs read back from the object store (manifest, part rows, rejected rows,
 * completion event), with the accounting checks every completed run must pass.
 */
import { expect } from '@jest/globals';
import type { RunCompletedEvent, RunManifest } from '../../lambdas/core/batch/contracts.ts';
import type { FinalizeResult } from '../../lambdas/core/batch/finalizer.ts';
import type { ObjectStore } from '../../lambdas/core/ports.ts';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { expectWithMessage } from './expect-message.ts';

export interface DemoData {
  readonly header: string[];
  readonly rows: string[][];
  /** Feature (and id) types by column name, from the demo manifest. */
  readonly types: ReadonlyMap<string, string>;
}

/** The demo dataset as mutable fields, from the one demo-dataset reader (local/demo-dataset.ts). */
export async function loadDemoData(): Promise<DemoData> {
  const demo = await readDemoDataset();
  return { header: [...demo.header], rows: demo.rows.map((r) => [...r]), types: demo.types };
}

export function csvLine(fields: readonly string[], delimiter = ','): string {
  return fields
    .map((f) => (/[",\r\n]/.test(f) || f.includes(delimiter) ? `"${f.replace(/"/g, '""')}"` : f))
    .join(delimiter);
}

/** A demo row as a JSON object with the manifest's types (numbers, booleans, strings). */
export function typedRecord(data: DemoData, fields: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(
    data.header.map((name, i) => {
      const type = data.types.get(name);
      const text = fields[i]!;
      return [
        name,
        type === 'boolean' ? text === 'true' : type === 'number' || type === 'integer' ? Number(text) : text,
      ];
    }),
  );
}

export type JsonRow = Record<string, unknown>;

export async function readJson<T>(objects: ObjectStore, bucket: string, key: string): Promise<T> {
  return JSON.parse(new TextDecoder().decode(await objects.readBytes(bucket, key))) as T;
}

export async function readJsonLines(
  objects: ObjectStore,
  bucket: string,
  keys: readonly string[],
): Promise<JsonRow[]> {
  const rows: JsonRow[] = [];
  for (const key of keys) {
    const text = new TextDecoder().decode(await objects.readBytes(bucket, key));
    for (const line of text.split('\n')) if (line) rows.push(JSON.parse(line) as JsonRow);
  }
  return rows;
}

export interface RunOutcome {
  readonly result: FinalizeResult;
  readonly manifest: RunManifest;
  /** Every part row of the run, sorted by row number. */
  readonly predictions: JsonRow[];
  /** Every rejected row of the run, sorted by row number. */
  readonly rejected: JsonRow[];
  /** The completion event published for this run. */
  readonly event: RunCompletedEvent | undefined;
}

const byRow = (a: JsonRow, b: JsonRow) => (a['row'] as number) - (b['row'] as number);

/** Reads what a finished run wrote: its manifest, part rows, rejected rows and its completion event. */
export async function collectRun(
  objects: ObjectStore,
  bucket: string,
  events: readonly RunCompletedEvent[],
  result: FinalizeResult,
): Promise<RunOutcome> {
  const manifest = await readJson<RunManifest>(objects, bucket, result.manifestKey);
  const predictions = (await readJsonLines(objects, bucket, manifest.outputs.parts)).sort(byRow);
  const rejected = (await readJsonLines(objects, bucket, manifest.outputs.rejected)).sort(byRow);
  const event = events.filter((e) => e.runId === manifest.runId).at(-1);
  return { result, manifest, predictions, rejected, event };
}

/**
 * A run that completed: `dataRows` (counted by the test from what it wrote, not from the manifest) were
 * all read, each ended up exactly once as a prediction or a rejection, and the manifest, the outputs and
 * the completion event agree.
 */
export function expectAccounted(outcome: RunOutcome, dataRows: number): void {
  const { manifest, predictions, rejected, event } = outcome;
  const why = `${manifest.runId}: ${manifest.error?.code ?? ''} ${manifest.error?.message ?? ''}`;
  expectWithMessage(manifest.status, why).toBe('SUCCEEDED');
  expectWithMessage(manifest.counts.read, why).toBe(dataRows);
  expectWithMessage(manifest.counts.scored + manifest.counts.rejected, why).toBe(dataRows);
  expectWithMessage(predictions.length, why).toBe(manifest.counts.scored);
  expectWithMessage(rejected.length, why).toBe(manifest.counts.rejected);
  const seen = [...predictions, ...rejected].map((r) => r['row'] as number).sort((a, b) => a - b);
  expectWithMessage(seen, why).toEqual(Array.from({ length: dataRows }, (_, i) => i + 1));
  expectWithMessage(manifest.chunks.failed, why).toBe(0);
  expectWithMessage(manifest.chunks.completed, why).toBe(manifest.chunks.planned);
  expectWithMessage(event, `${why}: completion event`).toMatchObject({
    status: 'SUCCEEDED',
    counts: manifest.counts,
    manifest: { key: outcome.result.manifestKey },
  });
  for (const r of rejected) {
    expectWithMessage(typeof r['reason'], `row ${String(r['row'])} has a reason`).toBe('string');
    expectWithMessage(r, `row ${String(r['row'])} keeps its original record`).toHaveProperty('record');
  }
}

/** A run that failed as a whole: its manifest and its completion event give the code and the reason. */
export function expectFailed(outcome: RunOutcome, code: string, message: RegExp): void {
  const { manifest, event } = outcome;
  expect(manifest.status).toBe('FAILED');
  expectWithMessage(manifest.error, `${manifest.runId}`).toMatchObject({ code });
  expect(manifest.error?.message).toMatch(message);
  expectWithMessage(event, 'completion event').toMatchObject({
    runId: manifest.runId,
    status: 'FAILED',
    error: { code },
    manifest: { key: outcome.result.manifestKey },
  });
  expect(outcome.result.status).toBe('FAILED');
}

/** The rejected row with this row number (fails the test when there is none). */
export function rejectedRow(outcome: RunOutcome, row: number): JsonRow {
  const found = outcome.rejected.find((r) => r['row'] === row);
  expectWithMessage(found, `row ${row} is rejected`).toBeDefined();
  return found!;
}
