import { ModelLoadError } from '../core/errors.ts';
import { isPackageName } from '../core/names.ts';
import type { ServingPointer } from '../core/ports.ts';
import { isCanaryPercent, isShadowSample } from '../core/traffic-split.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Reads a `current.json` pointer: `{"version": "..."}`; anything else is INVALID_POINTER, saying what. */
export function parsePointer(bytes: Uint8Array, where: string): string {
  return parseServingPointer(bytes, where).version;
}

/**
 * The live version and the canary (`"canary": {"version", "percent"}`, 0 < percent <= 100, a version other
 * than the live one) and the shadow (`"shadow": {"version", "sample"}`, 0 < sample <= 1, a version other than
 * the live one). A canary or shadow field that cannot be read is ignored: all traffic goes to the live
 * version, and no shadow runs.
 */
export function parseServingPointer(bytes: Uint8Array, where: string): ServingPointer {
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
  const canary = (parsed as { canary?: { version?: unknown; percent?: unknown } | null }).canary;
  const validCanary =
    canary !== null &&
    typeof canary === 'object' &&
    isPackageName(canary.version) &&
    canary.version !== version &&
    isCanaryPercent(canary.percent) &&
    canary.percent > 0;
  const shadow = (parsed as { shadow?: { version?: unknown; sample?: unknown } | null }).shadow;
  const validShadow =
    shadow !== null &&
    typeof shadow === 'object' &&
    isPackageName(shadow.version) &&
    shadow.version !== version &&
    isShadowSample(shadow.sample) &&
    shadow.sample > 0;
  return {
    version,
    ...(validCanary
      ? { canary: { version: canary.version as string, percent: canary.percent as number } }
      : {}),
    ...(validShadow
      ? { shadow: { version: shadow.version as string, sample: shadow.sample as number } }
      : {}),
  };
}
