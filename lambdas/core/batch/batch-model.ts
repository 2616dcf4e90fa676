/**
 * A model as a batch worker holds it: the real-time lane's manifest checks, validator, input plans and
 * output plan (compileModel), and one session behind a FeedRunner (inline or on a scoring thread).
 */
import { ModelLoadError } from '../errors.ts';
import { FeatureValidator } from '../features.ts';
import type { ClassLabel, Manifest } from '../manifest.ts';
import { compileModel } from '../model-loader.ts';
import type { ModelSource } from '../ports.ts';
import { fetchedOutputs, type OutputPlan } from '../predictions.ts';
import type { InputPlan } from '../tensors.ts';
import { stringDictionaries, type StringDictionaries } from './feed-batch.ts';
import { startFeedRunner, type FeedRunner } from './scoring-thread.ts';

export interface BatchModel {
  readonly manifest: Manifest;
  readonly name: string;
  readonly version: string;
  readonly classes: readonly ClassLabel[] | undefined;
  readonly validator: FeatureValidator;
  readonly inputPlans: readonly InputPlan[];
  readonly outputPlan: OutputPlan;
  /** The outputs each run fetches. */
  readonly fetches: readonly string[];
  /** The graph takes one row per run. */
  readonly fixedBatchOne: boolean;
  /** The dictionaries of the string inputs (feed-batch.ts). */
  readonly dictionaries: StringDictionaries;
  readonly runner: FeedRunner;
  close(): Promise<void>;
}

const utf8 = new TextDecoder();

function parseJsonFile(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(utf8.decode(bytes)) as unknown;
  } catch (cause) {
    throw new ModelLoadError(`${where} is not valid JSON: ${(cause as Error).message}`, 'INVALID_MANIFEST', {
      cause,
    });
  }
}

/** Loads one version of a model package, as loadModelVersion does, for batch scoring. */
export async function loadBatchModel(
  source: ModelSource,
  name: string,
  version: string,
  /** Scoring threads (0: inline), see resolveScoringThreads. */
  threads: number,
): Promise<BatchModel> {
  const [manifestBytes, modelBytes] = await Promise.all([
    source.read(name, version, 'manifest.json'),
    source.read(name, version, 'model.onnx'),
  ]);
  const where = `${name}/${version}/manifest.json`;
  const compiled = compileModel({ manifest: parseJsonFile(manifestBytes, where), modelBytes });
  const { manifest } = compiled;
  if (manifest.name !== name || manifest.version !== version) {
    throw new ModelLoadError(
      `${where} says ${manifest.name}@${manifest.version}; the package path says ${name}@${version}`,
      'INVALID_MANIFEST',
    );
  }
  const dictionaries = stringDictionaries(manifest, compiled.inputPlans);
  const runner = await startFeedRunner(
    compiled.graphBytes,
    threads,
    `${name}@${version}`,
    dictionaries.values,
  );
  return {
    manifest,
    name,
    version,
    classes: compiled.outputPlan.classes,
    validator: new FeatureValidator(manifest),
    inputPlans: compiled.inputPlans,
    outputPlan: compiled.outputPlan,
    fetches: fetchedOutputs(compiled.outputPlan),
    fixedBatchOne: compiled.fixedBatchOne,
    dictionaries,
    runner,
    close: () => runner.close(),
  };
}
