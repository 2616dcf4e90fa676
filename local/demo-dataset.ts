/**
 * The demo dataset (models/fraud-detector/demo-transactions.csv) as requests send it: each row's id and
 * its features as JSON values typed by the demo manifest. Used by `npm start`'s examples, the soak and
 * the integration tests.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseCsv } from '../lambdas/core/codecs/csv.ts';

const DEMO_DIR = path.resolve(import.meta.dirname, '..', 'models', 'fraud-detector');

export interface DemoDataset {
  readonly idField: string;
  readonly header: readonly string[];
  /** The data rows, as CSV text fields. */
  readonly rows: readonly (readonly string[])[];
  /** Column types by name from the demo manifest: each feature's, and `string` for the id column. */
  readonly types: ReadonlyMap<string, string>;
  /** A row's features as a request sends them: numbers, booleans and category strings. */
  featuresOf(row: readonly string[]): Record<string, unknown>;
}

export async function readDemoDataset(): Promise<DemoDataset> {
  const manifest = JSON.parse(await readFile(path.join(DEMO_DIR, '1.0.0', 'manifest.json'), 'utf8')) as {
    idField: string;
    features: { name: string; type: string }[];
  };
  const [header, ...records] = parseCsv(await readFile(path.join(DEMO_DIR, 'demo-transactions.csv'), 'utf8'));
  if (!header) throw new Error('the demo dataset has no header');
  const names = header.fields;
  const columns = manifest.features.map((f) => {
    const at = names.indexOf(f.name);
    if (at < 0) throw new Error(`the demo dataset has no column ${f.name}`);
    return { name: f.name, type: f.type, at };
  });
  return {
    idField: manifest.idField,
    header: names,
    rows: records.map((r) => r.fields),
    types: new Map([
      [manifest.idField, 'string'],
      ...manifest.features.map((f): [string, string] => [f.name, f.type]),
    ]),
    featuresOf: (row) =>
      Object.fromEntries(
        columns.map(({ name, type, at }) => {
          const text = row[at]!;
          const value =
            type === 'boolean'
              ? text === 'true'
              : type === 'category' || type === 'string'
                ? text
                : Number(text);
          return [name, value];
        }),
      ),
  };
}
