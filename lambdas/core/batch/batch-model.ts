/**
 * A model as a batch worker holds it: the real-time lane's manifest checks, validator, input plans and
 * output plan (compileModel), and one session behind a FeedRunner (inline or on a scoring thread).
 */
import { FeatureValidator } from '../features.ts';
import type { ClassLabel, Manifest } from '../manifest.ts';
import { compileModel } from '../model-loader.ts';
import { checkPackagePath, readModelPackage } from '../model-package.ts';
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

/** Loads one version of a model package, as loadModelVersion does, for batch scoring. */
export async function loadBatchModel(
  source: ModelSource,
  name: string,
  version: string,
  /** Scoring threads (0: inline), see resolveScoringThreads. */
  threads: number,
): Promise<BatchModel> {
  const compiled = compileModel(await readModelPackage(source, name, version));
  const { manifest } = compiled;
  checkPackagePath(manifest, name, version);
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
