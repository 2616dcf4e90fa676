/** Decodes onnxruntime outputs into predictions, with the output plan compiled at load. */
import type ort from 'onnxruntime-node';
import { InferenceError } from './errors.ts';
import type { ClassLabel, Task } from './manifest.ts';

export type ClassPrediction = {
  readonly label: ClassLabel;
  /** Probability by class label (as a string key); absent when the model outputs labels only. */
  readonly probabilities?: Record<string, number>;
};
export type RegressionPrediction = { readonly value: number } | { readonly values: number[] };
export type Prediction = ClassPrediction | RegressionPrediction;

export interface OutputPlan {
  readonly task: Task;
  readonly label: string | undefined;
  readonly probabilities: string | undefined;
  readonly value: string | undefined;
  /** Class labels in probability-column order. */
  readonly classes: readonly ClassLabel[] | undefined;
}

/** The output names to request from onnxruntime: only what the predictions use. */
export function fetchedOutputs(plan: OutputPlan): string[] {
  return [plan.label, plan.probabilities, plan.value].filter((n): n is string => n !== undefined);
}

function output(results: ort.InferenceSession.OnnxValueMapType, name: string): ort.Tensor {
  const tensor = results[name];
  if (!tensor) throw new InferenceError('INFERENCE_FAILED', `the model returned no output "${name}"`);
  return tensor as ort.Tensor;
}

function numberAt(data: ort.Tensor['data'], i: number): number {
  const value = (data as ArrayLike<number | bigint>)[i];
  return typeof value === 'bigint' ? Number(value) : (value as number);
}

function labelAt(tensor: ort.Tensor, i: number): ClassLabel {
  return tensor.type === 'string' ? (tensor.data as string[])[i]! : numberAt(tensor.data, i);
}

const keysByClasses = new WeakMap<readonly ClassLabel[], readonly string[]>();

/** The probability keys of a class list (its labels as strings), made once per plan. */
function classKeys(classes: readonly ClassLabel[]): readonly string[] {
  let keys = keysByClasses.get(classes);
  if (!keys) {
    keys = classes.map(String);
    keysByClasses.set(classes, keys);
  }
  return keys;
}

function decodeClassification(
  plan: OutputPlan,
  results: ort.InferenceSession.OnnxValueMapType,
  batch: number,
): ClassPrediction[] {
  const labels = plan.label ? output(results, plan.label) : undefined;
  const probabilities = plan.probabilities ? output(results, plan.probabilities) : undefined;
  const classes = plan.classes;
  const predictions = new Array<ClassPrediction>(batch);
  if (!probabilities || !classes) {
    for (let i = 0; i < batch; i++) predictions[i] = { label: labelAt(labels!, i) };
    return predictions;
  }
  const columns = probabilities.dims.length >= 2 ? probabilities.dims[probabilities.dims.length - 1]! : 1;
  const positiveOnly = columns === 1 && classes.length === 2;
  if (!positiveOnly && columns !== classes.length) {
    throw new InferenceError(
      'INFERENCE_FAILED',
      `output "${plan.probabilities}" has ${columns} columns but the model has ${classes.length} classes`,
    );
  }
  const keys = classKeys(classes);
  const data = probabilities.data;
  for (let i = 0; i < batch; i++) {
    const byClass: Record<string, number> = {};
    let best = 0;
    let bestP = -Infinity;
    for (let c = 0; c < keys.length; c++) {
      const p = positiveOnly
        ? c === 1
          ? numberAt(data, i)
          : 1 - numberAt(data, i)
        : numberAt(data, i * columns + c);
      byClass[keys[c]!] = p;
      if (p > bestP) {
        bestP = p;
        best = c;
      }
    }
    predictions[i] = { label: labels ? labelAt(labels, i) : classes[best]!, probabilities: byClass };
  }
  return predictions;
}

function decodeRegression(
  plan: OutputPlan,
  results: ort.InferenceSession.OnnxValueMapType,
  batch: number,
): RegressionPrediction[] {
  const values = output(results, plan.value!);
  const targets = values.dims.length >= 2 ? values.dims[values.dims.length - 1]! : 1;
  const predictions = new Array<RegressionPrediction>(batch);
  for (let i = 0; i < batch; i++) {
    if (targets === 1) {
      predictions[i] = { value: numberAt(values.data, i) };
    } else {
      const row: number[] = [];
      for (let t = 0; t < targets; t++) row.push(numberAt(values.data, i * targets + t));
      predictions[i] = { values: row };
    }
  }
  return predictions;
}

export function decodePredictions(
  plan: OutputPlan,
  results: ort.InferenceSession.OnnxValueMapType,
  batch: number,
): Prediction[] {
  return plan.task === 'regression'
    ? decodeRegression(plan, results, batch)
    : decodeClassification(plan, results, batch);
}
