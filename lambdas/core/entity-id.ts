/**
 * The one entity-id rule, for every lane (POST /predict, CSV, JSON Lines, Parquet, and the stream lane):
 * an id is text, and the table key is exactly that text. Nothing is ever rounded or reformatted, so two
 * different ids can never share a key.
 *
 * - A string is the id as it is: 1 to 256 characters (UTF-16 code units, as JavaScript counts them),
 *   any Unicode text, no trimming; an unpaired surrogate (not encodable as UTF-8) is rejected.
 * - A number is accepted only when it is a whole number written in plain digits (`42`, `-7`,
 *   `12345678901234567890`): the id is those digits exactly. A fraction, an exponent or `-0` is rejected
 *   (1.0, 1e21 and -0 have no single decimal text). Where the number's source text is known (JSON), the
 *   digits come from it, never from the parsed double; where it is not (a Parquet DOUBLE or INT32 column),
 *   the value must be a whole number within +-(2^53 - 1), the range in which a double is exact.
 * - A 64-bit integer (Parquet INT64, as a bigint) is its decimal digits.
 * - Anything else (boolean, object, array) is rejected. `undefined` and `null` mean "no id".
 */

export const MAX_ENTITY_ID_LENGTH = 256;

export type EntityIdResult =
  | { readonly id: string; readonly problem?: undefined }
  /** No id at all (undefined or null): a batch row needs one, an API instance may go without. */
  | { readonly id: undefined; readonly problem?: undefined }
  /** Why the value cannot be an id, phrased to follow the field's name. */
  | { readonly id: undefined; readonly problem: string };

/** A UTF-16 surrogate without its pair: such a string cannot be encoded as UTF-8 (a table key). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** JSON's integer syntax without fraction or exponent; `-0` is refused separately. */
const PLAIN_INTEGER = /^-?(?:0|[1-9][0-9]*)$/;
const ABSENT: EntityIdResult = Object.freeze({ id: undefined });
const TYPE_RULE = 'must be a non-empty string (or an integer)';

function problem(message: string): EntityIdResult {
  return { id: undefined, problem: message };
}

function checkText(id: string): EntityIdResult {
  if (id.length > MAX_ENTITY_ID_LENGTH) {
    return problem(
      `must be at most ${MAX_ENTITY_ID_LENGTH} characters, got ${id.length} (counted in UTF-16 code units)`,
    );
  }
  if (LONE_SURROGATE.test(id)) return problem('must be valid Unicode text (it has an unpaired surrogate)');
  return { id };
}

function notAnInteger(text: string): EntityIdResult {
  const shown = text.slice(0, 40);
  return problem(
    `must be a string or an integer in plain digits (no fraction, exponent or -0), got ${shown}: send "${shown}" as a string to use it as an id`,
  );
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

/**
 * The id in a value read from any format. `numberText` is the source text of a JSON number (see
 * jsonValueSource); without it, a number must be exact as a double.
 */
export function parseEntityId(value: unknown, numberText?: string): EntityIdResult {
  if (value === undefined || value === null) return ABSENT;
  if (typeof value === 'string') {
    return value === '' ? problem(`${TYPE_RULE}, got ""`) : checkText(value);
  }
  if (typeof value === 'number') {
    if (numberText !== undefined) {
      return PLAIN_INTEGER.test(numberText) && numberText !== '-0'
        ? checkText(numberText)
        : notAnInteger(numberText);
    }
    const text = Object.is(value, -0) ? '-0' : String(value);
    return Number.isSafeInteger(value) && text !== '-0' ? { id: text } : notAnInteger(text);
  }
  if (typeof value === 'bigint') return checkText(value.toString());
  return problem(`${TYPE_RULE}, got ${describe(value)}`);
}

/** The id of a field in a JSON object parsed from `json` (a number's digits come from the text). */
export function parseJsonEntityId(
  value: unknown,
  json: string | undefined,
  path: readonly (string | number)[],
): EntityIdResult {
  const numberText =
    typeof value === 'number' && json !== undefined ? jsonValueSource(json, path) : undefined;
  return parseEntityId(value, numberText);
}

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function skipSpace(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c !== SPACE && c !== TAB && c !== LF && c !== CR) return i;
    i++;
  }
}

/** The end of the JSON value starting at `i` (a text JSON.parse accepted; bounded by the text otherwise). */
function skipValue(text: string, i: number): number {
  const n = text.length;
  const first = text.charCodeAt(i);
  if (first === QUOTE) {
    for (i++; i < n;) {
      const c = text.charCodeAt(i);
      i += c === BACKSLASH ? 2 : 1;
      if (c === QUOTE) return i;
    }
    return n;
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i = skipValue(text, i);
        continue;
      }
      i++;
      if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) return i;
    }
    return n;
  }
  while (i < n) {
    const c = text.charCodeAt(i);
    if (
      c === COMMA ||
      c === CLOSE_BRACE ||
      c === CLOSE_BRACKET ||
      c === SPACE ||
      c === TAB ||
      c === LF ||
      c === CR
    )
      break;
    i++;
  }
  return i;
}

/**
 * The source text of the value at `path` (object keys and array indexes) in a JSON text that JSON.parse
 * accepted; of duplicate keys the last, as JSON.parse keeps. Undefined when there is no such value.
 */
export function jsonValueSource(json: string, path: readonly (string | number)[]): string | undefined {
  let start = skipSpace(json, 0);
  let end = skipValue(json, start);
  for (const step of path) {
    const open = json.charCodeAt(start);
    let found: [number, number] | undefined;
    if (typeof step === 'string' && open === OPEN_BRACE) {
      let i = skipSpace(json, start + 1);
      while (i < end && json.charCodeAt(i) === QUOTE) {
        const keyEnd = skipValue(json, i);
        let key: unknown;
        try {
          key = JSON.parse(json.slice(i, keyEnd));
        } catch {
          return undefined;
        }
        i = skipSpace(json, skipSpace(json, keyEnd) + 1);
        const valueEnd = skipValue(json, i);
        if (key === step) found = [i, valueEnd];
        i = skipSpace(json, valueEnd);
        if (json.charCodeAt(i) === COMMA) i = skipSpace(json, i + 1);
      }
    } else if (typeof step === 'number' && open === OPEN_BRACKET) {
      let i = skipSpace(json, start + 1);
      for (let index = 0; i < end && json.charCodeAt(i) !== CLOSE_BRACKET; index++) {
        const valueEnd = skipValue(json, i);
        if (index === step) {
          found = [i, valueEnd];
          break;
        }
        i = skipSpace(json, valueEnd);
        if (json.charCodeAt(i) === COMMA) i = skipSpace(json, i + 1);
      }
    }
    if (found === undefined) return undefined;
    [start, end] = found;
  }
  return json.slice(start, end);
}
