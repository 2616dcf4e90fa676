/**
 * The demo model and row every benchmark uses, and the "bare" onnxruntime side: the same ZipMap-free
 * graph the served model runs (onnx-graph.ts inspectModel), fed by hand-built tensors.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type ort from 'onnxruntime-node';
import { parseCsv } from '../lambdas/core/codecs/csv.ts';
import { inspectModel } from '../lambdas/core/onnx-graph.ts';
import { bareEncoder as encoderFor, type BareLayout } from './bare-encoder.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..');
export const MODELS_DIR = path.join(REPO_ROOT, 'models');
export const DEMO_MODEL = 'fraud-detector';
export const DEMO_VERSION = '1.0.0';
export const DEMO_CSV = path.join(MODELS_DIR, DEMO_MODEL, 'demo-transactions.csv');
export const MODEL_FILE = path.join(MODELS_DIR, DEMO_MODEL, DEMO_VERSION, 'model.onnx');
export const MANIFEST_FILE = path.join(MODELS_DIR, DEMO_MODEL, DEMO_VERSION, 'manifest.json');
/** The output the served model fetches (the ZipMap is rewritten into this tensor). */
export const PROBABILITIES_OUTPUT = 'probabilities';
/** Where benchmark scratch files go (generated CSVs, bundles, the ZipMap-free model). */
export const SCRATCH_DIR = path.join(tmpdir(), 'tandem-bench');

export type Features = Record<string, number | boolean | string>;

export interface DemoManifest {
  readonly features: readonly {
    readonly name: string;
    readonly type: 'number' | 'integer' | 'boolean' | 'category';
    readonly default?: number | boolean | string;
    readonly values?: readonly string[];
    readonly min?: number;
    readonly max?: number;
  }[];
  readonly inputs: readonly {
    readonly name: string;
    readonly type: string;
    readonly features: readonly string[];
  }[];
  readonly cache: { readonly maxAgeSeconds: number; readonly ttlSeconds: number };
}

export async function readDemoManifest(): Promise<DemoManifest> {
  return JSON.parse(await readFile(MANIFEST_FILE, 'utf8')) as DemoManifest;
}

/** One demo CSV row as its id and JSON features, typed by the manifest. */
export async function demoRow(index = 0): Promise<{ id: string; features: Features }> {
  const manifest = await readDemoManifest();
  const [header, ...rows] = parseCsv(await readFile(DEMO_CSV, 'utf8'));
  const row = rows[index]?.fields;
  if (!header || !row) throw new Error(`the demo dataset has no row ${index}`);
  const cell = (name: string): string => {
    const at = header.fields.indexOf(name);
    if (at < 0) throw new Error(`the demo dataset has no column ${name}`);
    return row[at]!;
  };
  const features: Features = {};
  for (const f of manifest.features) {
    const text = cell(f.name);
    features[f.name] = f.type === 'boolean' ? text === 'true' : f.type === 'category' ? text : Number(text);
  }
  return { id: cell('transaction_id'), features };
}

/** The model bytes onnxruntime is given by the loader: ZipMap rewritten into the probability tensor. */
export async function unzippedModelBytes(): Promise<Uint8Array> {
  return inspectModel(await readFile(MODEL_FILE)).bytes;
}

/** Writes the ZipMap-free model to the scratch folder (for bare child processes) and returns its path. */
export async function writeUnzippedModel(): Promise<string> {
  await mkdir(SCRATCH_DIR, { recursive: true });
  const file = path.join(SCRATCH_DIR, `${DEMO_MODEL}-${DEMO_VERSION}-unzipped.onnx`);
  // Written under a temp name and renamed: concurrent runs never read a half-written file.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, await unzippedModelBytes());
  await rename(temp, file);
  return file;
}

/** The demo manifest's input layout, for the bare encoder. */
export function bareLayout(manifest: DemoManifest): BareLayout {
  const defaults: Record<string, number | boolean | string> = {};
  for (const f of manifest.features) if (f.default !== undefined) defaults[f.name] = f.default;
  return { inputs: manifest.inputs, defaults };
}

/** Feeds of the demo model built by hand (see bare-encoder.ts). */
export function bareEncoder(manifest: DemoManifest): ReturnType<typeof encoderFor> {
  return encoderFor(bareLayout(manifest));
}

/** The positive-class probability from a `probabilities` output ([1, 2] or [1, 1]). */
export function positiveProbability(results: ort.InferenceSession.OnnxValueMapType): number {
  const tensor = results[PROBABILITIES_OUTPUT] as ort.Tensor | undefined;
  if (!tensor) throw new Error(`no ${PROBABILITIES_OUTPUT} output`);
  const data = tensor.data as Float32Array;
  return data.length >= 2 ? data[1]! : data[0]!;
}
