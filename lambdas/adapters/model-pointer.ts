import { ModelLoadError } from '../core/errors.ts';
import { isPackageName } from '../core/names.ts';

const utf8 = new TextDecoder();

/** Reads a `current.json` pointer: `{"version": "..."}`. */
export function parsePointer(bytes: Uint8Array, where: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new ModelLoadError('INVALID_POINTER', `${where} is not valid JSON`);
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (!isPackageName(version)) {
    throw new ModelLoadError('INVALID_POINTER', `${where} must be {"version": "<version>"}`);
  }
  return version;
}
