import { ModelLoadError } from '../core/errors.ts';
import { isPackageName } from '../core/names.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a `current.json` pointer: `{"version": "..."}`; anything else is INVALID_POINTER, saying what. */
export function parsePointer(bytes: Uint8Array, where: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    const reason = cause instanceof SyntaxError ? cause.message : 'it is not UTF-8';
    throw new ModelLoadError('INVALID_POINTER', `${where} is not valid JSON (${reason})`, { cause });
  }
  const version = (parsed as { version?: unknown } | null)?.version;
  if (!isPackageName(version)) {
    const got =
      version === undefined ? 'no "version" field' : `"version": ${JSON.stringify(version).slice(0, 80)}`;
    throw new ModelLoadError(
      'INVALID_POINTER',
      `${where} must be {"version": "<version>"} with a version of letters, digits, ".", "_" or "-"; it has ${got}`,
    );
  }
  return version;
}
