/**
 * The one entity-id rule, for every lane (POST /predict, CSV, JSON Lines, Parquet, and the stream lane):
 * an id is text, and the table key is exactly that text. Nothing is ever rounded or reformatted, so two
 * different ids can never share a key.
 *
 * - A string is the id as it is: 1 to 256 characters (Unicode code points: an emoji is one), any
 *   Unicode text, no trimming; an unpaired surrogate (not encodable as UTF-8) is rejected.
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
  // Characters are code points; only a string longer in UTF-16 units can be longer in code points.
  const characters = id.length > MAX_ENTITY_ID_LENGTH ? [...id].length : id.length;
  if (characters > MAX_ENTITY_ID_LENGTH) {
    return problem(`must be at most ${MAX_ENTITY_ID_LENGTH} characters, got ${characters}`);
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

/** The end of the JSON string whose opening quote is at `i`. */
function skipString(text: string, i: number): number {
  for (let from = i + 1; ;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return text.length;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** The end of the JSON value starting at `i` (a text JSON.parse accepted; bounded by the text otherwise). */
function skipValue(text: string, i: number): number {
  const n = text.length;
  const first = text.charCodeAt(i);
  if (first === QUOTE) return skipString(text, i);
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i = skipString(text, i);
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
 * The span of the value of `key` in the object starting at `start` (of duplicate keys the last, as
 * JSON.parse keeps), and where the object ends.
 */
function scanObject(json: string, start: number, key: string): { found?: [number, number]; end: number } {
  let found: [number, number] | undefined;
  let i = skipSpace(json, start + 1);
  while (i < json.length && json.charCodeAt(i) === QUOTE) {
    const keyEnd = skipValue(json, i);
    const raw = json.slice(i + 1, keyEnd - 1);
    let name: unknown = raw;
    if (raw.includes('\\')) {
      try {
        name = JSON.parse(json.slice(i, keyEnd));
      } catch {
        break;
      }
    }
    i = skipSpace(json, skipSpace(json, keyEnd) + 1);
    const valueEnd = skipValue(json, i);
    if (name === key) found = [i, valueEnd];
    i = skipSpace(json, valueEnd);
    if (json.charCodeAt(i) === COMMA) i = skipSpace(json, i + 1);
  }
  return found ? { found, end: i + 1 } : { end: i + 1 };
}

/** The span of element `index` of the array starting at `start`. */
function arrayElement(json: string, start: number, index: number): [number, number] | undefined {
  let i = skipSpace(json, start + 1);
  for (let k = 0; i < json.length && json.charCodeAt(i) !== CLOSE_BRACKET; k++) {
    const valueEnd = skipValue(json, i);
    if (k === index) return [i, valueEnd];
    i = skipSpace(json, valueEnd);
    if (json.charCodeAt(i) === COMMA) i = skipSpace(json, i + 1);
  }
  return undefined;
}

/** Where the value at `path` starts and ends in a JSON text, or undefined. */
function locate(json: string, path: readonly (string | number)[]): [number, number] | undefined {
  let start = skipSpace(json, 0);
  let span: [number, number] | undefined;
  for (const step of path) {
    const open = json.charCodeAt(start);
    if (typeof step === 'string' && open === OPEN_BRACE) span = scanObject(json, start, step).found;
    else if (typeof step === 'number' && open === OPEN_BRACKET) span = arrayElement(json, start, step);
    else return undefined;
    if (span === undefined) return undefined;
    start = span[0];
  }
  return span ?? [start, skipValue(json, start)];
}

/**
 * The source text of the value at `path` (object keys and array indexes) in a JSON text that JSON.parse
 * accepted; of duplicate keys the last, as JSON.parse keeps. Undefined when there is no such value.
 */
export function jsonValueSource(json: string, path: readonly (string | number)[]): string | undefined {
  const span = locate(json, path);
  return span && json.slice(span[0], span[1]);
}

/**
 * The source text of `field` in each element of the array at `arrayPath`, in one pass over the text
 * (undefined for an element without it). A request of many instances needs each of their ids.
 */
export function jsonElementFieldSources(
  json: string,
  arrayPath: readonly (string | number)[],
  field: string,
): (string | undefined)[] {
  const sources: (string | undefined)[] = [];
  const array = locate(json, arrayPath);
  if (array === undefined || json.charCodeAt(array[0]) !== OPEN_BRACKET) return sources;
  let i = skipSpace(json, array[0] + 1);
  while (i < array[1] && json.charCodeAt(i) !== CLOSE_BRACKET) {
    let elementEnd: number;
    if (json.charCodeAt(i) === OPEN_BRACE) {
      const { found, end } = scanObject(json, i, field);
      sources.push(found && json.slice(found[0], found[1]));
      elementEnd = end;
    } else {
      sources.push(undefined);
      elementEnd = skipValue(json, i);
    }
    i = skipSpace(json, elementEnd);
    if (json.charCodeAt(i) === COMMA) i = skipSpace(json, i + 1);
  }
  return sources;
}
