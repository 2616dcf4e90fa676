/**
 * `tandem models check <dir>`: a package loaded as the server would load it. The six plausible manifest
 * mistakes of issue 17 (each of which only failed once served) are caught, each naming the field that is
 * wrong and what the graph has instead; a good package passes, and sample rows are scored or rejected.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runCli } from '../../local/cli/tandem-cli.ts';
import {
  pipelineStringInputs,
  treeClassifierBinaryXgboostStyle,
  treeClassifierMulticlass,
  treeRegressor,
  type ZooManifest,
  type ZooModel,
} from '../support/model-zoo.ts';

let scratch: string;

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'tandem-check-'));
}, 60_000);
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

let folders = 0;
async function packageFolder(
  model: ZooModel,
  edit: (m: ZooManifest) => ZooManifest = (m) => m,
): Promise<string> {
  const dir = path.join(scratch, `pkg-${++folders}`);
  await mkdir(dir);
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(edit(structuredClone(model.manifest))));
  await writeFile(path.join(dir, 'model.onnx'), model.modelBytes);
  return dir;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON output, asserted field by field
async function check(...argv: string[]): Promise<{ code: number; out: string; json: any }> {
  const out: string[] = [];
  const code = await runCli(['models', 'check', ...argv], {
    out: (t) => out.push(t),
    err: (t) => out.push(t),
    cwd: scratch,
  });
  const text = out.join('\n');
  return { code, out: text, json: argv.includes('--json') ? JSON.parse(text) : undefined };
}

type Inputs = NonNullable<ZooManifest['inputs']>;

describe('models check: the six mistakes that only failed once served', () => {
  it.each([
    {
      mistake: 'no inputs for a multi-input graph',
      model: pipelineStringInputs,
      edit: (m: ZooManifest) => {
        delete m.inputs;
        return m;
      },
      field: 'inputs',
      says: /required when the model does not have exactly one input; it has 3 \(numeric, color, size\)/,
    },
    {
      mistake: '3 features listed for a 4-column input',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => {
        m.features = m.features.filter((f) => f.name !== 'humidity');
        (m.inputs as Inputs)[0]!.features = (m.inputs as Inputs)[0]!.features.filter((f) => f !== 'humidity');
        return m;
      },
      field: 'inputs.0.features',
      says: /input "float_input" takes 4 columns but the manifest lists 3 features/,
    },
    {
      mistake: 'skl2onnx output names on an onnxmltools model',
      model: treeClassifierBinaryXgboostStyle,
      edit: (m: ZooManifest) => ({
        ...m,
        outputs: { label: 'output_label', probabilities: 'output_probability' },
      }),
      field: 'outputs.label',
      says: /the model has no output "output_label" \(it has: label, probabilities\)/,
    },
    {
      mistake: 'a binary task on a 3-class model',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => ({ ...m, task: 'binary-classification' as const }),
      field: 'task',
      says: /binary-classification but the model has 3 classes/,
    },
    {
      mistake: 'float64 for a float32 input',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => {
        (m.inputs as Inputs)[0]!.type = 'float64';
        return m;
      },
      field: 'inputs.0.type',
      says: /input "float_input" is float32 in the model, not float64/,
    },
    {
      mistake: 'a regression output name that does not exist',
      model: treeRegressor,
      edit: (m: ZooManifest) => ({ ...m, outputs: { value: 'predictions' } }),
      field: 'outputs.value',
      says: /the model has no output "predictions" \(it has: variable\)/,
    },
  ])(
    'catches $mistake, naming $field',
    async ({ model, edit, field, says }) => {
      const dir = await packageFolder(model(), edit);
      const result = await check(dir, '--json');
      expect(result.code).toBe(1);
      expect(result.json.ok).toBe(false);
      expect(result.json.problems).toContainEqual({
        field,
        code: 'INVALID_MANIFEST',
        message: expect.stringMatching(says),
      });
      const human = await check(dir);
      expect(human.out).toContain(`  ${field}: `);
    },
    20_000,
  );

  it('passes each of these packages as they were exported', async () => {
    for (const model of [
      pipelineStringInputs,
      treeClassifierMulticlass,
      treeClassifierBinaryXgboostStyle,
      treeRegressor,
    ]) {
      const result = await check(await packageFolder(model()));
      expect(result.out).toMatch(/loads as .*@/);
      expect(result.code).toBe(0);
    }
  }, 20_000);

  it('reports a wrong input and a wrong output together', async () => {
    const dir = await packageFolder(treeClassifierMulticlass(), (m) => {
      (m.inputs as Inputs)[0]!.type = 'float64';
      return { ...m, outputs: { label: 'output_label', probabilities: 'probabilities' } };
    });
    const result = await check(dir, '--json');
    expect(result.json.problems.map((p: { field: string }) => p.field)).toEqual([
      'inputs.0.type',
      'outputs.label',
    ]);
  });

  it('reports a schema error with its field, a missing file and a corrupt model', async () => {
    const schema = await check(
      await packageFolder(treeRegressor(), (m) => ({ ...m, task: 'ranking' as never })),
      '--json',
    );
    expect(schema.code).toBe(1);
    expect(schema.json.problems).toEqual([
      expect.objectContaining({ field: 'task', code: 'INVALID_MANIFEST' }),
    ]);

    const dir = await packageFolder(treeRegressor());
    await rm(path.join(dir, 'model.onnx'));
    const missing = await check(dir);
    expect(missing.code).toBe(1);
    expect(missing.out).toMatch(/has no model.onnx \(MODEL_FILE_MISSING\)/);

    await writeFile(path.join(dir, 'model.onnx'), 'definitely not protobuf');
    const corrupt = await check(dir, '--json');
    expect(corrupt.code).toBe(1);
    expect(corrupt.json.problems[0].code).toMatch(/MODEL_CORRUPT|INVALID_MODEL/);
  });

  it('scores sample rows (CSV and JSON Lines) and rejects bad ones with their field', async () => {
    const model = treeRegressor();
    const dir = await packageFolder(model);
    const [good] = model.sampleRows;
    const names = Object.keys(good!);
    await writeFile(
      path.join(scratch, 'sample.csv'),
      `id,${names.join(',')}\nr1,${names.map((n) => String(good![n])).join(',')}\nr2,${names.map((n) => (n === 'rooms' ? 'many' : String(good![n]))).join(',')}\n`,
    );
    const csv = await check(dir, '--sample', 'sample.csv', '--json');
    expect(csv.code).toBe(1);
    expect(csv.json.sample.scored).toEqual([
      {
        row: 1,
        prediction: { value: expect.closeTo((model.reference(good!) as { value: number }).value, 5) },
      },
    ]);
    expect(csv.json.sample.rejected).toEqual([
      { row: 2, problems: [expect.objectContaining({ field: 'rooms', code: 'INVALID_FEATURES' })] },
    ]);

    await writeFile(
      path.join(scratch, 'sample.jsonl'),
      `${JSON.stringify({ id: 'x', ...good })}\n${JSON.stringify({ features: good })}\n`,
    );
    const jsonl = await check(dir, '--sample', 'sample.jsonl');
    expect(jsonl.code).toBe(0);
    expect(jsonl.out).toMatch(/sample: 2 row\(s\) scored, 0 rejected/);
  });

  it('answers a folder that is not a package, and --help', async () => {
    const empty = path.join(scratch, 'empty');
    await mkdir(empty);
    const result = await check(empty);
    expect(result.code).toBe(2);
    expect(result.out).toMatch(/holds neither manifest.json nor model.onnx/);
    const help = await check('--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: npm run tandem -- models check <dir>/);
  });
});

describe('models check: output types against the task (issue 17 item 6)', () => {
  it.each([
    {
      mistake: "a classifier's integer label output declared as a regression value",
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => ({ ...m, task: 'regression' as const, outputs: { value: 'label' } }),
      field: 'outputs.value',
      says: /output "label" holds a classifier's class labels \(int64\), not a regression value/,
    },
    {
      mistake: 'the probability tensor named as the label',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => ({ ...m, outputs: { label: 'probabilities' } }),
      field: 'outputs.label',
      says: /output "probabilities" holds probabilities \(float32\), not labels/,
    },
    {
      mistake: 'the label output named as the probabilities',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => ({ ...m, outputs: { probabilities: 'label' } }),
      field: 'outputs.probabilities',
      says: /output "label" is int64; probabilities are float32 or float64/,
    },
    {
      mistake: 'two class names for a 3-class model',
      model: treeClassifierMulticlass,
      edit: (m: ZooManifest) => ({ ...m, outputs: { ...m.outputs, classes: ['low', 'high'] } }),
      field: 'outputs.classes',
      says: /lists 2 classes but the model has 3 \(\[0,1,2\]\)/,
    },
  ])(
    'catches $mistake, naming $field',
    async ({ model, edit, field, says }) => {
      const result = await check(await packageFolder(model(), edit), '--json');
      expect(result.code).toBe(1);
      expect(result.json.problems).toContainEqual({
        field,
        code: 'INVALID_MANIFEST',
        message: expect.stringMatching(says),
      });
    },
    20_000,
  );

  it('accepts class names for an integer-label model, mapped by position', async () => {
    const dir = await packageFolder(treeClassifierMulticlass(), (m) => ({
      ...m,
      outputs: { ...m.outputs, classes: ['cold', 'mild', 'hot'] },
    }));
    const result = await check(dir, '--json');
    expect(result.json.problems).toEqual([]);
    expect(result.code).toBe(0);
  });
});
