import * as z from 'zod';
import { ManifestError } from './errors.ts';
import { PACKAGE_NAME } from './names.ts';

// A manifest is parsed once per model version: zod's compiled validators (built with `new Function` on
// a schema's first use) cost more to build than that one parse saves (8 ms against 4 at a cold start).
// zod is used nowhere else in the project.
z.config({ jitless: true });

const identifier = z.string().regex(PACKAGE_NAME, 'letters, digits, ".", "_" or "-", starting alphanumeric');

const finiteNumber = z.number().refine(Number.isFinite, 'must be a finite number');

const featureBase = {
  name: z.string().min(1).max(128),
  description: z.string().max(1000).optional(),
  /** A feature with a default is optional whatever `required` says. */
  required: z.boolean().default(true),
};

const numericFeature = z
  .object({
    ...featureBase,
    type: z.enum(['number', 'integer']),
    min: finiteNumber.optional(),
    max: finiteNumber.optional(),
    default: finiteNumber.optional(),
  })
  .strict()
  .refine((f) => f.min === undefined || f.max === undefined || f.min <= f.max, {
    message: 'min must not exceed max',
    path: ['min'],
  })
  .refine((f) => f.type !== 'integer' || f.default === undefined || Number.isInteger(f.default), {
    message: 'default of an integer feature must be an integer',
    path: ['default'],
  });

const booleanFeature = z
  .object({ ...featureBase, type: z.literal('boolean'), default: z.boolean().optional() })
  .strict();

const categoryFeature = z
  .object({
    ...featureBase,
    type: z.enum(['category', 'string']),
    /** Allowed values. Required when the feature goes into a numeric tensor (encoded as the value's index). */
    values: z.array(z.string()).min(1).optional(),
    /**
     * What to do with a value outside `values`: `reject` the instance (400 / rejected row), or `pass` it to
     * the model as it is (string tensors only: encoders such as OneHotEncoder map it to all zeros).
     */
    unknown: z.enum(['reject', 'pass']).default('reject'),
    maxLength: z.number().int().positive().max(65_536).default(256),
    default: z.string().optional(),
  })
  .strict();

const featureSchema = z.union([numericFeature, booleanFeature, categoryFeature]);

const tensorTypeSchema = z.enum(['float32', 'float64', 'int32', 'int64', 'string', 'bool']);

const inputSchema = z
  .object({
    /** The ONNX graph input name. */
    name: z.string().min(1),
    type: tensorTypeSchema,
    /** The features packed into this input, in column order: shape [batch, features.length]. */
    features: z.array(z.string().min(1)).min(1),
  })
  .strict();

const outputsSchema = z
  .object({
    /** Output holding the predicted class (classification). */
    label: z.string().min(1).optional(),
    /** Output holding class probabilities: a [batch, classes] tensor or a ZipMap sequence of maps. */
    probabilities: z.string().min(1).optional(),
    /** Output holding the regression value ([batch] or [batch, 1]). */
    value: z.string().min(1).optional(),
    /** Class labels in probability-column order; read from the model (ZipMap or classifier node) when omitted. */
    classes: z
      .array(z.union([z.string(), z.number().int()]))
      .min(2)
      .optional(),
  })
  .strict();

const cacheSchema = z
  .object({
    /** A cached prediction older than this is not served (the real-time lane recomputes it). */
    maxAgeSeconds: z.number().int().positive().default(86_400),
    /** The table item's TTL: DynamoDB deletes the item this long after it was computed. */
    ttlSeconds: z
      .number()
      .int()
      .positive()
      .default(7 * 86_400),
  })
  .strict()
  .refine((c) => c.ttlSeconds >= c.maxAgeSeconds, {
    message: 'ttlSeconds must be at least maxAgeSeconds',
    path: ['ttlSeconds'],
  });

/** Per-model thresholds of the agreement gate a promote of this version passes (docs/lifecycle.md). */
const promotionSchema = z
  .object({
    /** Shadow comparisons against the live version required before this version is promoted. @default 200 */
    minShadowComparisons: z.number().int().min(0).max(1_000_000_000).optional(),
    /** Share of those comparisons whose labels agree (classifiers). @default 0.95 */
    minShadowAgreement: z.number().min(0).max(1).optional(),
  })
  .strict();

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1).default(1),
    name: identifier,
    version: identifier,
    task: z.enum(['binary-classification', 'multiclass-classification', 'regression']),
    description: z.string().max(2000).optional(),
    /** The dataset column (CSV, JSON Lines, Parquet) holding the entity id, the cache key. Requests always send it as `id`. */
    idField: z.string().min(1).max(128),
    features: z.array(featureSchema).min(1).max(1000),
    /** How features become ONNX inputs. Omitted: one float32 input named after the model's only input. */
    inputs: z.array(inputSchema).min(1).optional(),
    outputs: outputsSchema,
    cache: cacheSchema.default({ maxAgeSeconds: 86_400, ttlSeconds: 7 * 86_400 }),
    promotion: promotionSchema.optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    const seen = new Set<string>();
    m.features.forEach((f, i) => {
      if (seen.has(f.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['features', i, 'name'],
          message: `duplicate feature "${f.name}"`,
        });
      }
      seen.add(f.name);
      if (f.name === m.idField) {
        ctx.addIssue({
          code: 'custom',
          path: ['features', i, 'name'],
          message: `feature "${f.name}" is also the idField`,
        });
      }
    });
    if (m.task === 'regression') {
      if (!m.outputs.value) {
        ctx.addIssue({
          code: 'custom',
          path: ['outputs', 'value'],
          message: 'a regression model needs outputs.value',
        });
      }
    } else if (!m.outputs.label && !m.outputs.probabilities) {
      ctx.addIssue({
        code: 'custom',
        path: ['outputs'],
        message: 'a classifier needs outputs.label or outputs.probabilities',
      });
    }
    if (m.task === 'binary-classification' && m.outputs.classes && m.outputs.classes.length !== 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['outputs', 'classes'],
        message: 'a binary classifier has exactly 2 classes',
      });
    }
    if (m.inputs) {
      const byName = new Map(m.features.map((f) => [f.name, f]));
      const used = new Set<string>();
      m.inputs.forEach((input, i) => {
        input.features.forEach((name, j) => {
          const feature = byName.get(name);
          const path = ['inputs', i, 'features', j];
          if (!feature) {
            ctx.addIssue({ code: 'custom', path, message: `unknown feature "${name}"` });
            return;
          }
          if (used.has(name))
            ctx.addIssue({ code: 'custom', path, message: `feature "${name}" is used twice` });
          used.add(name);
          const isCategory = feature.type === 'category' || feature.type === 'string';
          if (input.type === 'string' && !isCategory) {
            ctx.addIssue({
              code: 'custom',
              path,
              message: `${feature.type} feature "${name}" in a string input`,
            });
          }
          if (input.type !== 'string' && isCategory && !feature.values) {
            ctx.addIssue({
              code: 'custom',
              path,
              message: `category feature "${name}" in a ${input.type} input needs "values" (encoded as their index)`,
            });
          }
        });
      });
      m.features.forEach((f, i) => {
        if (!used.has(f.name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['features', i],
            message: `feature "${f.name}" feeds no input`,
          });
        }
      });
    } else {
      m.features.forEach((f, i) => {
        if ((f.type === 'category' || f.type === 'string') && !f.values) {
          ctx.addIssue({
            code: 'custom',
            path: ['features', i, 'values'],
            message: `category feature "${f.name}" in the float32 input needs "values" (encoded as their index)`,
          });
        }
      });
    }
  });

export type Manifest = z.output<typeof manifestSchema>;
export type FeatureSpec = Manifest['features'][number];
export type InputSpec = z.output<typeof inputSchema>;
export type TensorType = z.output<typeof tensorTypeSchema>;
export type Task = Manifest['task'];
export type ClassLabel = string | number;

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `features.3.min`. */
  readonly field: string;
  readonly message: string;
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.') || '(root)';
}

/** Parses and validates a manifest; throws ManifestError whose details name each bad field. */
export function parseManifest(raw: unknown, source = 'manifest.json'): Manifest {
  const parsed = manifestSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues: FieldIssue[] = parsed.error.issues.map((issue) => ({
    field: formatPath(issue.path),
    message: issue.message,
  }));
  const summary = issues.map((i) => `${i.field}: ${i.message}`).join('; ');
  throw new ManifestError('INVALID_MANIFEST', `${source} is invalid: ${summary}`, { details: issues });
}

/** The ONNX inputs the manifest describes, defaulting to one float32 input holding every feature. */
export function resolveInputs(manifest: Manifest, modelInputNames: readonly string[]): InputSpec[] {
  if (manifest.inputs) return manifest.inputs;
  const [only, ...rest] = modelInputNames;
  if (!only || rest.length > 0) {
    throw new ManifestError(
      'INVALID_MANIFEST',
      `manifest.inputs is required: the model has ${modelInputNames.length} inputs (${modelInputNames.join(', ')})`,
      {
        details: [
          {
            field: 'inputs',
            message: `required when the model does not have exactly one input; it has ${modelInputNames.length} (${modelInputNames.join(', ')})`,
          },
        ],
      },
    );
  }
  return [{ name: only, type: 'float32', features: manifest.features.map((f) => f.name) }];
}
