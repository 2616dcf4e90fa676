/**
 * `npm run openapi`: writes docs/openapi.json, the OpenAPI document the API serves at GET /openapi.json,
 * for the models of the repository's models/ folder (the demo model the default). A test fails when the
 * committed copy differs from what this writes.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as prettier from 'prettier';
import { FsModelSource } from '../lambdas/adapters/fs-model-source.ts';
import { ModelRegistry } from '../lambdas/core/model-registry.ts';
import { openApiDocument, type OpenApiModel } from '../lambdas/core/protocols/openapi.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const COMMITTED_DOCUMENT = path.join(REPO_ROOT, 'docs', 'openapi.json');

/** The document for the models in a folder, as the API would serve it with `defaultModel` the default. */
export async function documentForFolder(
  modelsDir = path.join(REPO_ROOT, 'models'),
  defaultModel = 'fraud-detector',
): Promise<Record<string, unknown>> {
  const registry = new ModelRegistry(new FsModelSource(modelsDir), {
    defaultModel,
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
  const models: OpenApiModel[] = [];
  for (const name of await registry.list()) {
    models.push({ manifest: await registry.manifest(name), isDefault: name === defaultModel });
  }
  return openApiDocument(models);
}

/** The file's text, formatted as `npm run lint` checks it. */
export async function documentText(document: Record<string, unknown>): Promise<string> {
  const options = await prettier.resolveConfig(COMMITTED_DOCUMENT);
  return prettier.format(JSON.stringify(document), { ...options, filepath: COMMITTED_DOCUMENT });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const text = await documentText(await documentForFolder());
  await writeFile(COMMITTED_DOCUMENT, text);
  console.log(`wrote ${path.relative(process.cwd(), COMMITTED_DOCUMENT)} (${text.length} bytes)`);
}
