import { ModelLoadError } from '../core/errors.ts';
import { isPackageName } from '../core/names.ts';

const utf8 = new TextDecoder();

/** Reads a `current.json` pointer: `{"version": "..."}`. */
export function parsePointer(bytes: Uint8Array, where: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch {
    throw new ModelLoadError(`${where} is not valid JSON`, 'INVALID_POINTER');
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (!isPackageName(version)) {
    throw new ModelLoadError(`${where} must be {"version": "<version>"}`, 'INVALID_POINTER');
  }
  return version;
}
