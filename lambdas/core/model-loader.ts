/**
 * Loads a model package (manifest + ONNX bytes) into a served model: validates the manifest against the
 * graph, rewrites ZipMap outputs, builds one onnxruntime session, and compiles validation, input and
 * output plans once so that each prediction only validates, fills tensors, runs and decodes.
 */
import ort from 'onnxruntime-node';
import { InferenceError, ManifestError, ModelLoadError } from './errors.ts';
import { FeatureValidator, validateFeatureObjects, type FeatureRow } from './features.ts';
import {
  parseManifest,
  resolveInputs,
  type ClassLabel,
  type FieldIssue,
  type InputSpec,
  type Manifest,
} from './manifest.ts';
import { inspectModel, type GraphInfo, type GraphValue, type OnnxElemType } from './onnx-graph.ts';
import { decodePredictions, fetchedOutputs, type OutputPlan, type Prediction } from './predictions.ts';
import { encodeFeeds, planInput, type InputPlan } from './tensors.ts';

/**
 * One thread each and no spinning: a Lambda function below 1,769 MB has less than one vCPU, and
 * spinning threads would burn it while waiting.
 */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

/**
 * The one way either lane creates an onnxruntime session (the batch lane's scoring threads create theirs
 * with the same SESSION_OPTIONS, sent to them): a graph onnxruntime refuses gives ModelLoadError
 * MODEL_CORRUPT, naming the model.
 */
export async function createSession(graphBytes: Uint8Array, label: string): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(graphBytes, SESSION_OPTIONS);
  } catch (cause) {
    throw new ModelLoadError(
      'MODEL_CORRUPT',
      `onnxruntime cannot load ${label}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

/** The one way either lane runs a session: onnxruntime's failures become InferenceError, naming the model. */
export function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches: readonly string[],
  label: string,
): Promise<ort.InferenceSession.OnnxValueMapType> {
  const failed = (cause: unknown) =>
    new InferenceError(
      'INFERENCE_FAILED',
      `onnxruntime failed to run ${label}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  try {
    return session.run(feeds, fetches as string[]).catch((cause: unknown) => {
      throw failed(cause);
    });
  } catch (cause) {
    return Promise.reject(failed(cause));
  }
}

export interface ModelPackage {
  /** The parsed manifest.json (validated here). */
  readonly manifest: unknown;
  readonly modelBytes: Uint8Array;
}

export interface ServedModel {
  readonly manifest: Manifest;
  readonly name: string;
  readonly version: string;
  /** `{name, version}`, one object per model (every prediction of it refers to this one). */
  readonly ref: { readonly name: string; readonly version: string };
  /** Class labels in probability order (classifiers). */
  readonly classes: readonly ClassLabel[] | undefined;
  readonly validator: FeatureValidator;
  /** True when the graph takes exactly one instance per run (fixed batch dimension 1). */
  readonly fixedBatchOne: boolean;
  /** The ONNX inputs and the features each packs, in column order (the manifest's, or the one default input). */
  readonly inputs: readonly InputSpec[];
  /** Validates JSON feature objects; throws ValidationError (INVALID_FEATURES) naming each bad field. */
  validate(instances: readonly unknown[]): FeatureRow[];
  /** Scores validated rows: one onnxruntime run for all rows (one per row for fixed-batch-1 graphs). */
  score(rows: readonly FeatureRow[]): Promise<Prediction[]>;
  /** validate + score. */
  predict(instances: readonly unknown[]): Promise<Prediction[]>;
  close(): Promise<void>;
}

const compatibleTypes: Record<string, readonly OnnxElemType[]> = {
  float32: ['float32'],
  float64: ['float64'],
  int32: ['int32'],
  int64: ['int64'],
  string: ['string'],
  bool: ['bool'],
};

function checkInputs(manifest: Manifest, graph: GraphInfo): { plans: InputPlan[]; fixedBatchOne: boolean } {
  const inputs = resolveInputs(
    manifest,
    graph.inputs.map((i) => i.name),
  );
  const byName = new Map(graph.inputs.map((i) => [i.name, i]));
  const issues: FieldIssue[] = [];
  let fixedBatchOne = false;
  const plans = inputs.map((input, i) => {
    const field = manifest.inputs ? `inputs.${i}` : 'inputs';
    const model = byName.get(input.name);
    if (!model) {
      issues.push({
        field: `${field}.name`,
        message: `the model has no input "${input.name}" (it has: ${graph.inputs.map((g) => g.name).join(', ')})`,
      });
      return undefined;
    }
    if (model.kind !== 'tensor' || !compatibleTypes[input.type]?.includes(model.elemType)) {
      issues.push({
        field: `${field}.type`,
        message: `input "${input.name}" is ${model.kind === 'tensor' ? model.elemType : model.kind} in the model, not ${input.type}`,
      });
    }
    const dims = model.dims;
    if (dims && dims.length > 2) {
      issues.push({
        field: `${field}.name`,
        message: `input "${input.name}" has rank ${dims.length}; 1 or 2 expected`,
      });
    }
    const width = dims && dims.length === 2 ? dims[1] : dims?.length === 1 ? 1 : undefined;
    if (typeof width === 'number' && width !== input.features.length) {
      issues.push({
        field: `${field}.features`,
        message: `input "${input.name}" takes ${width} columns but the manifest lists ${input.features.length} features`,
      });
    }
    if (dims?.[0] === 1) fixedBatchOne = true;
    return planInput(manifest, input, dims?.length === 1 ? 1 : 2);
  });
  const manifestNames = new Set(inputs.map((i) => i.name));
  for (const missing of graph.inputs.filter((g) => !manifestNames.has(g.name))) {
    issues.push({ field: 'inputs', message: `the model input "${missing.name}" is not fed by the manifest` });
  }
  if (issues.length > 0) throw mismatch(manifest, issues);
  return { plans: plans as InputPlan[], fixedBatchOne };
}

/** Why an output cannot hold what the manifest declares it holds (its element type against the role). */
function outputTypeProblem(role: string, output: GraphValue, holdsClassLabels: boolean): string | undefined {
  const float = output.elemType === 'float32' || output.elemType === 'float64';
  if (role === 'value') {
    if (holdsClassLabels && !float)
      return `output "${output.name}" holds a classifier's class labels (${output.elemType}), not a regression value: declare task binary- or multiclass-classification with outputs.label / outputs.probabilities`;
    if (!float)
      return `output "${output.name}" is ${output.elemType}; a regression value is float32 or float64`;
  }
  if (role === 'probabilities' && !float)
    return `output "${output.name}" is ${output.elemType}; probabilities are float32 or float64${holdsClassLabels ? ' (it looks like the label output)' : ''}`;
  if (role === 'label' && float && holdsClassLabels)
    return `output "${output.name}" holds probabilities (${output.elemType}), not labels: name it in outputs.probabilities`;
  return undefined;
}

function checkOutputs(manifest: Manifest, graph: GraphInfo): OutputPlan {
  const byName = new Map<string, GraphValue>(graph.outputs.map((o) => [o.name, o]));
  const issues: FieldIssue[] = [];
  const { label, probabilities, value } = manifest.outputs;
  const names = manifest.task === 'regression' ? { value } : { label, probabilities };
  for (const [key, name] of Object.entries(names)) {
    if (name === undefined) continue;
    const output = byName.get(name);
    if (!output) {
      issues.push({
        field: `outputs.${key}`,
        message: `the model has no output "${name}" (it has: ${graph.outputs.map((o) => o.name).join(', ')})`,
      });
    } else if (output.kind !== 'tensor') {
      issues.push({ field: `outputs.${key}`, message: `output "${name}" is a ${output.kind}, not a tensor` });
    } else {
      const problem = outputTypeProblem(key, output, graph.classLabelsByOutput.has(name));
      if (problem) issues.push({ field: `outputs.${key}`, message: problem });
    }
  }
  let classes: readonly ClassLabel[] | undefined;
  if (manifest.task !== 'regression') {
    classes =
      manifest.outputs.classes ??
      (probabilities ? graph.classLabelsByOutput.get(probabilities) : undefined) ??
      (label ? graph.classLabelsByOutput.get(label) : undefined);
    if (probabilities && !classes) {
      issues.push({
        field: 'outputs.classes',
        message: 'class labels are needed: the model states none (no ZipMap or classifier node labels)',
      });
    }
    const graphClasses =
      (probabilities ? graph.classLabelsByOutput.get(probabilities) : undefined) ??
      (label ? graph.classLabelsByOutput.get(label) : undefined);
    // outputs.classes renames the graph's labels by position: a different count cannot be meant.
    if (manifest.outputs.classes && graphClasses && graphClasses.length !== manifest.outputs.classes.length) {
      issues.push({
        field: 'outputs.classes',
        message: `lists ${manifest.outputs.classes.length} classes but the model has ${graphClasses.length} (${JSON.stringify(graphClasses)}); outputs.classes names the model's classes in their order`,
      });
    }
    if (manifest.task === 'binary-classification' && classes && classes.length !== 2) {
      issues.push({
        field: 'task',
        message: `binary-classification but the model has ${classes.length} classes`,
      });
    }
  }
  if (issues.length > 0) throw mismatch(manifest, issues);
  return {
    task: manifest.task,
    // With probabilities, the label is their argmax (as scikit-learn's predict): onnxruntime's own label
    // output of a binary tree ensemble whose leaf weights are all positive thresholds the margin at 0.5.
    label: manifest.task === 'regression' || probabilities ? undefined : label,
    probabilities: manifest.task === 'regression' ? undefined : probabilities,
    value: manifest.task === 'regression' ? value : undefined,
    classes,
  };
}

/** Both checks, so that a manifest wrong about inputs and outputs is told about both at once. */
function checkGraph(
  manifest: Manifest,
  graph: GraphInfo,
): { plans: InputPlan[]; fixedBatchOne: boolean; outputPlan: OutputPlan } {
  const failures: ManifestError[] = [];
  const attempt = <T>(check: () => T): T | undefined => {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      failures.push(error);
      return undefined;
    }
  };
  const inputs = attempt(() => checkInputs(manifest, graph));
  const outputPlan = attempt(() => checkOutputs(manifest, graph));
  if (failures.length === 1) throw failures[0]!;
  if (failures.length > 1) {
    throw mismatch(
      manifest,
      failures.flatMap((f) =>
        (f.details ?? [{ message: f.message }]).map((d) => ({ field: d.field ?? '', message: d.message })),
      ),
    );
  }
  return { plans: inputs!.plans, fixedBatchOne: inputs!.fixedBatchOne, outputPlan: outputPlan! };
}

function mismatch(manifest: Manifest, issues: FieldIssue[]): ManifestError {
  const summary = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
  return new ManifestError(
    'INVALID_MANIFEST',
    `manifest of ${manifest.name}@${manifest.version} does not match its model: ${summary}`,
    { details: issues },
  );
}

class OnnxServedModel implements ServedModel {
  readonly name: string;
  readonly version: string;
  readonly ref: { readonly name: string; readonly version: string };
  readonly inputs: readonly InputSpec[];
  private readonly fetches: readonly string[];

  constructor(
    readonly manifest: Manifest,
    readonly validator: FeatureValidator,
    readonly classes: readonly ClassLabel[] | undefined,
    readonly fixedBatchOne: boolean,
    private readonly session: ort.InferenceSession,
    private readonly inputPlans: readonly InputPlan[],
    private readonly outputPlan: OutputPlan,
  ) {
    this.name = manifest.name;
    this.version = manifest.version;
    this.ref = Object.freeze({ name: manifest.name, version: manifest.version });
    this.fetches = fetchedOutputs(outputPlan);
    this.inputs = inputPlans.map((plan) => ({
      name: plan.name,
      type: plan.type,
      features: plan.columns.map((column) => manifest.features[column]!.name),
    }));
  }

  validate(instances: readonly unknown[]): FeatureRow[] {
    return validateFeatureObjects(
      this.validator,
      instances.map((features, index) => ({ index, features })),
      instances.length === 1,
    );
  }

  score(rows: readonly FeatureRow[]): Promise<Prediction[]> {
    if (rows.length === 0) return Promise.resolve([]);
    if (this.fixedBatchOne && rows.length > 1) return this.scoreOneByOne(rows);
    return this.run(rows);
  }

  private async scoreOneByOne(rows: readonly FeatureRow[]): Promise<Prediction[]> {
    const predictions: Prediction[] = [];
    for (const row of rows) predictions.push(...(await this.run([row])));
    return predictions;
  }

  async predict(instances: readonly unknown[]): Promise<Prediction[]> {
    return this.score(this.validate(instances));
  }

  async close(): Promise<void> {
    await this.session.release();
  }

  private run(rows: readonly FeatureRow[]): Promise<Prediction[]> {
    // A promise in every case, as from an async function: encoding failures reject as they are,
    // onnxruntime's as InferenceError.
    let feeds: Record<string, ort.Tensor>;
    try {
      feeds = encodeFeeds(this.inputPlans, rows);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return runSession(this.session, feeds, this.fetches, `${this.name}@${this.version}`).then((results) =>
      decodePredictions(this.outputPlan, results, rows.length),
    );
  }
}

export async function loadModel(pkg: ModelPackage): Promise<ServedModel> {
  const manifest = parseManifest(pkg.manifest);
  const graph = inspectModel(pkg.modelBytes);
  const { plans, fixedBatchOne, outputPlan } = checkGraph(manifest, graph);
  const session = await createSession(graph.bytes, `${manifest.name}@${manifest.version}`);
  return new OnnxServedModel(
    manifest,
    new FeatureValidator(manifest),
    outputPlan.classes,
    fixedBatchOne,
    session,
    plans,
    outputPlan,
  );
}

/** A model package checked and compiled without a session: what scoring pre-filled tensors elsewhere needs. */
export interface CompiledModel {
  readonly manifest: Manifest;
  /** The bytes to give onnxruntime (ZipMap outputs rewritten), with SESSION_OPTIONS. */
  readonly graphBytes: Uint8Array;
  readonly inputPlans: readonly InputPlan[];
  readonly outputPlan: OutputPlan;
  readonly fixedBatchOne: boolean;
}

/**
 * The checks and plans of loadModel (ManifestError when the manifest does not match the graph), without
 * building a session: the batch lane runs its own, possibly on another thread.
 */
export function compileModel(pkg: ModelPackage): CompiledModel {
  const manifest = parseManifest(pkg.manifest);
  const graph = inspectModel(pkg.modelBytes);
  const { plans, fixedBatchOne, outputPlan } = checkGraph(manifest, graph);
  return { manifest, graphBytes: graph.bytes, inputPlans: plans, outputPlan, fixedBatchOne };
}
