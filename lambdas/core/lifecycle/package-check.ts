/**
 * `models check`: a package folder's files loaded exactly as the server loads them (the manifest's JSON
 * and schema, the manifest against the ONNX graph, onnxruntime's session), each problem with the field
 * it concerns; optionally sample rows scored through the same validation and session.
 */
import { TandemError } from '../errors.ts';
import type { FeatureRow } from '../features.ts';
import { loadModel, type ServedModel } from '../model-loader.ts';
import { checkPackagePath, parseJsonFile } from '../model-package.ts';
import type { Prediction } from '../predictions.ts';

export interface PackageProblem {
  /** The manifest field (dotted path) the problem is about; absent for a file-level problem. */
  readonly field?: string;
  /** INVALID_MANIFEST, MODEL_FILE_MISSING, MODEL_CORRUPT, ... (the code the server would report). */
  readonly code: string;
  readonly message: string;
}

export interface PackageFiles {
  /** undefined: the file is missing. */
  readonly manifest: Uint8Array | undefined;
  readonly model: Uint8Array | undefined;
  /** The version's drift baseline (baseline.json), when the package has one. */
  readonly baseline?: Uint8Array;
}

export interface CheckedPackage {
  readonly problems: readonly PackageProblem[];
  /** The loaded model when there is no problem (the caller closes it). */
  readonly model?: ServedModel;
}

/** The problems of one error of the loader: one per field it names, else one for the whole error. */
export function problemsOf(error: unknown): PackageProblem[] {
  if (!(error instanceof TandemError)) {
    return [{ code: 'MODEL_LOAD_FAILED', message: (error as Error).message }];
  }
  if (error.details && error.details.length > 0) {
    return error.details.map((d) => ({
      ...(d.field ? { field: d.field } : {}),
      code: error.code,
      message: d.message,
    }));
  }
  return [{ code: error.code, message: error.message }];
}

/**
 * Loads a package as the server does. `expected` (name and version the package is published as) adds
 * the server's check that the manifest names them.
 */
export async function checkPackage(
  files: PackageFiles,
  where: string,
  expected?: { readonly name: string; readonly version: string },
): Promise<CheckedPackage> {
  const problems: PackageProblem[] = [];
  if (!files.manifest) {
    problems.push({ code: 'MODEL_FILE_MISSING', message: `${where} has no manifest.json` });
  }
  if (!files.model) problems.push({ code: 'MODEL_FILE_MISSING', message: `${where} has no model.onnx` });
  if (!files.manifest || !files.model) return { problems };
  let model: ServedModel;
  try {
    const manifest = parseJsonFile(files.manifest, `${where}/manifest.json`);
    model = await loadModel({ manifest, modelBytes: files.model });
  } catch (error) {
    return { problems: problemsOf(error) };
  }
  if (expected) {
    try {
      checkPackagePath(model.manifest, expected.name, expected.version);
    } catch {
      await model.close();
      const says = `the manifest says ${model.manifest.name}@${model.manifest.version}; it is published as ${expected.name}@${expected.version}`;
      const wrong = (['name', 'version'] as const).filter((f) => model.manifest[f] !== expected[f]);
      return { problems: wrong.map((field) => ({ field, code: 'INVALID_MANIFEST', message: says })) };
    }
  }
  return { problems, model };
}

/** One sample record: a feature object (JSON Lines), or text fields by column (CSV), or why it is unreadable. */
export type SampleRecord =
  | { readonly row: number; readonly features: Record<string, unknown> }
  | { readonly row: number; readonly header: readonly string[]; readonly fields: readonly string[] }
  | { readonly row: number; readonly error: string };

export interface SampleOutcome {
  readonly scored: { readonly row: number; readonly prediction: Prediction }[];
  readonly rejected: { readonly row: number; readonly problems: readonly PackageProblem[] }[];
}

/** Validates each record as the batch lane does (unknown columns ignored) and scores the valid ones in one run. */
export async function scoreSample(
  model: ServedModel,
  records: readonly SampleRecord[],
): Promise<SampleOutcome> {
  const rows: FeatureRow[] = [];
  const rowNumbers: number[] = [];
  const rejected: { row: number; problems: PackageProblem[] }[] = [];
  for (const record of records) {
    if ('error' in record) {
      rejected.push({ row: record.row, problems: [{ code: 'INVALID_ROW', message: record.error }] });
      continue;
    }
    const issues: { field: string; message: string }[] = [];
    const row =
      'features' in record
        ? model.validator.fromObject(record.features, issues, '', { ignoreUnknown: true })
        : model.validator.fromText(
            record.fields,
            model.validator.names.map((n) => record.header.indexOf(n)),
            issues,
          );
    if (row) {
      rows.push(row);
      rowNumbers.push(record.row);
    } else {
      rejected.push({
        row: record.row,
        problems: issues.map((i) => ({ field: i.field, code: 'INVALID_FEATURES', message: i.message })),
      });
    }
  }
  const predictions = await model.score(rows);
  return { scored: predictions.map((prediction, i) => ({ row: rowNumbers[i]!, prediction })), rejected };
}
