/**
 * `tandem models inspect <model.onnx>`: the graph's inputs and outputs, and a manifest skeleton that
 * `models check` accepts for every zoo graph (exporter layouts of skl2onnx, onnxmltools, pipelines).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { runCli } from '../../local/cli/tandem-cli.ts';
import { checkPackage } from '../../lambdas/core/lifecycle/package-check.ts';
import { allZooModels, type ZooModel } from '../support/model-zoo.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tandem-inspect-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), cwd: dir });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

interface Inspected {
  graph: { inputs: { name: string }[]; outputs: { name: string }[] };
  skeleton: { task: string; inputs: { name: string; features: string[] }[]; outputs: Record<string, string> };
  notes: string[];
}

describe.each(allZooModels().map((m) => [m.name, m] as [string, ZooModel]))(
  'models inspect %s',
  (name, zoo) => {
    it('lists the graph inputs and outputs and suggests a manifest that models check loads', async () => {
      const file = path.join(dir, `${name}.onnx`);
      await writeFile(file, zoo.modelBytes);
      const human = await run('models', 'inspect', `${name}.onnx`);
      expect(human.code).toBe(0);
      const graphNames = zoo.manifest.inputs?.map((i) => i.name) ?? [];
      for (const input of graphNames) expect(human.out).toContain(`  ${input} `);
      for (const output of Object.values(zoo.manifest.outputs).filter((v) => typeof v === 'string'))
        expect(human.out).toContain(`  ${output as string} `);

      const machine = await run('models', 'inspect', `${name}.onnx`, '--json');
      const inspected = JSON.parse(machine.out) as Inspected;
      expect(inspected.skeleton.task).toBe(zoo.manifest.task);
      const { classes: _classes, ...outputs } = zoo.manifest.outputs;
      expect(inspected.skeleton.outputs).toEqual(outputs);
      if (zoo.manifest.inputs) expect(inspected.skeleton.inputs.map((i) => i.name)).toEqual(graphNames);

      const skeleton = await run('models', 'inspect', `${name}.onnx`, '--skeleton');
      expect(JSON.parse(skeleton.out)).toEqual(inspected.skeleton);

      const checked = await checkPackage(
        { manifest: new TextEncoder().encode(JSON.stringify(inspected.skeleton)), model: zoo.modelBytes },
        name,
      );
      expectWithMessage(checked.problems, JSON.stringify(checked.problems)).toEqual([]);
      await checked.model?.close();
    });
  },
);

describe('models inspect, bad input', () => {
  it('says the file is not an ONNX model', async () => {
    await mkdir(path.join(dir, 'x'), { recursive: true });
    await writeFile(path.join(dir, 'x', 'model.onnx'), 'not a model');
    const result = await run('models', 'inspect', 'x/model.onnx');
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/MODEL_CORRUPT/);
  });

  it('is a usage error without a file', async () => {
    const result = await run('models', 'inspect');
    expect(result.code).toBe(2);
    expect(result.err).toContain('missing the model file');
  });
});
