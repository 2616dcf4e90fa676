/**
 * Reading a model package from its source: the manifest (as JSON) and the ONNX bytes, and the check that
 * the package's path and its manifest name the same model and version. No onnxruntime here, so that the
 * batch planner (whose function ships without it) can check a package before a run reads its upload.
 */
import { ModelLoadError } from './errors.ts';
import type { Manifest } from './manifest.ts';
import type { ModelPackage } from './model-loader.ts';
import type { ModelSource } from './ports.ts';

const utf8 = new TextDecoder();

export function parseJsonFile(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(utf8.decode(bytes)) as unknown;
  } catch (cause) {
    throw new ModelLoadError('INVALID_MANIFEST', `${where} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}

/** Reads one version of a model package: its manifest (parsed JSON, not yet validated) and ONNX bytes. */
export async function readModelPackage(
  source: ModelSource,
  name: string,
  version: string,
): Promise<ModelPackage> {
  const [manifest, model] = await Promise.allSettled([
    source.read(name, version, 'manifest.json'),
    source.read(name, version, 'model.onnx'),
  ]);
  if (manifest.status === 'rejected' && model.status === 'rejected') {
    // Neither file: the version itself does not exist (a pointer naming a version never uploaded).
    if (isFileMissing(manifest.reason) && isFileMissing(model.reason)) {
      throw new ModelLoadError(
        'VERSION_NOT_FOUND',
        `version ${version} of ${name} does not exist (no manifest.json or model.onnx under ${name}/${version}/)`,
      );
    }
  }
  if (manifest.status === 'rejected') throw manifest.reason;
  if (model.status === 'rejected') throw model.reason;
  return {
    manifest: parseJsonFile(manifest.value, `${name}/${version}/manifest.json`),
    modelBytes: model.value,
  };
}

function isFileMissing(error: unknown): boolean {
  return error instanceof ModelLoadError && error.code === 'MODEL_FILE_MISSING';
}

/** A package's manifest must name the model and version its path does. */
export function checkPackagePath(
  manifest: Pick<Manifest, 'name' | 'version'>,
  name: string,
  version: string,
): void {
  if (manifest.name !== name || manifest.version !== version) {
    throw new ModelLoadError(
      'INVALID_MANIFEST',
      `${name}/${version}/manifest.json says ${manifest.name}@${manifest.version}; the package path says ${name}@${version}`,
    );
  }
}
