/**
 * The pointer `models/<name>/current.json`. Readers (the API, the batch lane) need only `version`; the
 * lifecycle commands add what a history check and a rollback need. The pointer is the truth: every
 * change's record in the history carries the pointer's `change` id, so a pointer whose change has no
 * record (a crash between the two writes, or a hand edit) is found and flagged.
 */
import { isPackageName } from '../names.ts';
import { isCanaryPercent, isShadowSample } from '../traffic-split.ts';

export interface PointerDocument {
  /** The live version. */
  readonly version: string;
  /** The version live before this one (what `models rollback` returns to). */
  readonly previous?: string;
  /** The id of the change that wrote this pointer (its history record carries the same id). */
  readonly change?: string;
  /** ISO-8601 time of the change. */
  readonly changedAt?: string;
  /** Who made the change (the caller's identity where known). */
  readonly changedBy?: string;
  /**
   * A candidate taking `percent` % of the instances (by a stable hash of their id); absent: none.
   * `rollout`: the id of the automatic rollout stepping this canary (absent for a manual canary).
   */
  readonly canary?: { readonly version: string; readonly percent: number; readonly rollout?: string };
  /** A version scoring a `sample` share (0 < sample <= 1) of the instances next to the live one, unseen by callers. */
  readonly shadow?: { readonly version: string; readonly sample: number };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The pointer's fields, or a message saying why it cannot be read. */
export function readPointerDocument(bytes: Uint8Array): PointerDocument | { readonly invalid: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(bytes));
  } catch (cause) {
    return { invalid: `not valid JSON (${cause instanceof SyntaxError ? cause.message : 'not UTF-8'})` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { invalid: 'not a JSON object' };
  }
  const record = parsed as Record<string, unknown>;
  if (!isPackageName(record['version'])) return { invalid: 'no valid "version" field' };
  const text = (key: string): string | undefined =>
    typeof record[key] === 'string' ? (record[key] as string) : undefined;
  const previous = text('previous');
  const canary = record['canary'] as
    { version?: unknown; percent?: unknown; rollout?: unknown } | null | undefined;
  const validCanary =
    canary !== null &&
    typeof canary === 'object' &&
    isPackageName(canary.version) &&
    isCanaryPercent(canary.percent) &&
    canary.percent > 0;
  const shadow = record['shadow'] as { version?: unknown; sample?: unknown } | null | undefined;
  const validShadow =
    shadow !== null &&
    typeof shadow === 'object' &&
    isPackageName(shadow.version) &&
    isShadowSample(shadow.sample) &&
    shadow.sample > 0;
  return {
    version: record['version'],
    ...(previous !== undefined && isPackageName(previous) ? { previous } : {}),
    ...(text('change') !== undefined ? { change: text('change') } : {}),
    ...(text('changedAt') !== undefined ? { changedAt: text('changedAt') } : {}),
    ...(text('changedBy') !== undefined ? { changedBy: text('changedBy') } : {}),
    ...(validCanary
      ? {
          canary: {
            version: canary.version as string,
            percent: canary.percent as number,
            ...(typeof canary.rollout === 'string' ? { rollout: canary.rollout } : {}),
          },
        }
      : {}),
    ...(validShadow
      ? { shadow: { version: shadow.version as string, sample: shadow.sample as number } }
      : {}),
  };
}

export function isInvalidPointer(
  pointer: PointerDocument | { readonly invalid: string },
): pointer is { readonly invalid: string } {
  return 'invalid' in pointer;
}

export function writePointerDocument(pointer: PointerDocument): string {
  return `${JSON.stringify(pointer, null, 2)}\n`;
}
