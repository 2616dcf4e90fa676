/** Model packages in a local folder laid out like the bucket's `models/` prefix. */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ModelLoadError, ModelNotFoundError } from '../core/errors.ts';
import type { ModelFile, ModelSource, ServingPointer } from '../core/ports.ts';
import { parseServingPointer } from './model-pointer.ts';

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A file that exists but cannot be read (permissions, a folder in its place): the store's fault. */
function unreadable(error: unknown): ModelLoadError {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).name;
  return new ModelLoadError('MODEL_STORE_UNAVAILABLE', `the model store is unavailable (${code})`, {
    cause: error,
  });
}

export class FsModelSource implements ModelSource {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = root;
  }

  async currentVersion(name: string): Promise<string> {
    return (await this.currentPointer(name)).version;
  }

  async currentPointer(name: string): Promise<ServingPointer> {
    const file = path.join(this.root, name, 'current.json');
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (error) {
      if (isMissing(error))
        throw new ModelNotFoundError('MODEL_NOT_FOUND', `no model named "${name}" (no ${name}/current.json)`);
      throw unreadable(error);
    }
    return parseServingPointer(bytes, `${name}/current.json`);
  }

  async read(name: string, version: string, file: ModelFile): Promise<Uint8Array> {
    try {
      return await readFile(path.join(this.root, name, version, file));
    } catch (error) {
      if (isMissing(error)) {
        throw new ModelLoadError('MODEL_FILE_MISSING', `${file} of ${name}@${version} is missing`);
      }
      throw unreadable(error);
    }
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.root).catch(() => []);
    const withPointer = await Promise.all(
      names.map(async (n) =>
        (await stat(path.join(this.root, n, 'current.json')).catch(() => null)) ? n : null,
      ),
    );
    return withPointer.filter((n): n is string => n !== null);
  }
}
