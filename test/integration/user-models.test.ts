/**
 * `npm start -- --models <dir>` and `npm run batch -- --models <dir>`: a user's folder of packages is
 * served alongside the demo model, and the batch lane scores with it.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DEMO_MODEL, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { listModelFolders } from '../../local/uploader.ts';
import { treeRegressor, type ZooModel } from '../support/model-zoo.ts';

let stack: LocalStack;
let dir: string;
let zoo: ZooModel;

async function writePackage(root: string, model: ZooModel, version: string): Promise<void> {
  const versionDir = path.join(root, model.name, version);
  await mkdir(versionDir, { recursive: true });
  await writeFile(path.join(versionDir, 'manifest.json'), JSON.stringify({ ...model.manifest, version }));
  await writeFile(path.join(versionDir, 'model.onnx'), model.modelBytes);
  await writeFile(path.join(root, model.name, 'current.json'), JSON.stringify({ version }));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'tandem-user-models-'));
  zoo = treeRegressor();
  await writePackage(path.join(dir, 'models'), zoo, '2.0.0');
  stack = await startLocalStack({ apiPort: 0, userModelsDir: path.join(dir, 'models'), seed: false });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("a folder of the user's models", () => {
  it('is served alongside the demo model', async () => {
    const list = (await (await fetch(`${stack.apiUrl}/models`)).json()) as { models: { name: string }[] };
    expect(list.models.map((m) => m.name).sort()).toEqual([DEMO_MODEL, zoo.name].sort());
    const features = zoo.sampleRows[0]!;
    const response = await fetch(`${stack.apiUrl}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: zoo.name, id: 'u-1', features }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { model: { version: string }; prediction: { value: number } };
    expect(body.model.version).toBe('2.0.0');
    const expected = zoo.reference(features) as { value: number };
    expect(Math.abs(body.prediction.value - expected.value)).toBeLessThan(1e-4);
  });

  it('is scored by the batch lane', async () => {
    const names = Object.keys(zoo.sampleRows[0]!);
    const lines = [
      ['id', ...names].join(','),
      ...zoo.sampleRows.map((row, i) => [`r${i}`, ...names.map((n) => String(row[n]))].join(',')),
    ];
    const file = path.join(dir, 'rows.csv');
    await writeFile(file, `${lines.join('\n')}\n`);
    const result = await stack.runDataset(file, zoo.name);
    expect(result.status).toBe('SUCCEEDED');
    expect(result.counts.scored).toBe(zoo.sampleRows.length);
  }, 60_000);
});

describe('listModelFolders', () => {
  it('names each model, its versions and its live version', async () => {
    expect(await listModelFolders(path.join(dir, 'models'))).toEqual([
      { name: zoo.name, versions: ['2.0.0'], live: '2.0.0' },
    ]);
  });

  it('refuses a missing folder and a folder with no package, saying the layout', async () => {
    await expect(listModelFolders(path.join(dir, 'nope'))).rejects.toThrow('no such folder');
    const empty = path.join(dir, 'empty');
    await mkdir(path.join(empty, 'model.onnx-is-not-here'), { recursive: true });
    await expect(listModelFolders(empty)).rejects.toThrow('expected <name>/<version>/manifest.json');
  });
});
