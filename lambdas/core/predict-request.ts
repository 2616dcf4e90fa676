/** Parses and checks the body of `POST /predict` (shape only; feature values are checked per model). */
import {
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
  type ErrorDetail,
} from './errors.ts';
import { jsonElementFieldSources, jsonValueSource, parseEntityId } from './entity-id.ts';
import { isPackageName } from './names.ts';

export interface RequestLimits {
  /** Largest accepted body in bytes. */
  readonly maxBodyBytes: number;
  /** Most instances in one request. */
  readonly maxInstances: number;
}

export const DEFAULT_LIMITS: RequestLimits = { maxBodyBytes: 1_048_576, maxInstances: 500 };

export interface RequestInstance {
  readonly id: string | undefined;
  readonly features: unknown;
}

export interface PredictRequest {
  /** True for the `{"id", "features"}` form: the response is one result, not a list. */
  readonly single: boolean;
  readonly instances: readonly RequestInstance[];
  readonly model: string | undefined;
  /** Overrides the manifest's cache max age for this request. */
  readonly maxStalenessSeconds: number | undefined;
  readonly bypassCache: boolean;
}

const TOP_LEVEL = new Set(['id', 'features', 'instances', 'model', 'maxStalenessSeconds', 'bypassCache']);
const INSTANCE_KEYS = new Set(['id', 'features']);
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * An id-like field (\`sample_id\`, \`transactionId\`) is most likely a manifest's \`idField\` sent as a
 * request field: that names the dataset column; a request always carries the entity id in \`id\`.
 */
function unknownFieldMessage(key: string): string {
  return /id$/i.test(key)
    ? 'is not a known field: the entity id goes in "id" (a manifest\'s idField names the dataset column, not a request field)'
    : 'is not a known field';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function checkContentType(contentType: string | undefined): void {
  if (contentType === undefined || contentType === '' || JSON_TYPE.test(contentType)) return;
  throw new UnsupportedMediaTypeError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Content-Type "${contentType.slice(0, 100)}" is not supported: send a JSON body with Content-Type: application/json`,
  );
}

/** API Gateway passes request bodies through as sent; a compressed body cannot be read as JSON. */
export function checkContentEncoding(encoding: string | undefined): void {
  if (encoding === undefined || encoding === '' || /^\s*identity\s*$/i.test(encoding)) return;
  throw new UnsupportedMediaTypeError(
    'UNSUPPORTED_MEDIA_TYPE',
    `Content-Encoding "${encoding.slice(0, 100)}" is not supported: send the JSON body uncompressed`,
  );
}

const BLANK = /^\s*$/;

function emptyBody(): ValidationError {
  return new ValidationError('EMPTY_BODY', 'the request body is empty: send a JSON object');
}

export function parseJsonBody(body: string | undefined, limits: RequestLimits): unknown {
  if (body === undefined || body.length === 0) throw emptyBody();
  // A UTF-16 unit is at most 3 UTF-8 bytes: only bodies that could be over the limit are measured.
  if (body.length * 3 > limits.maxBodyBytes) {
    const bytes = Buffer.byteLength(body, 'utf8');
    if (bytes > limits.maxBodyBytes) {
      if (BLANK.test(body)) throw emptyBody();
      throw new PayloadTooLargeError(
        'PAYLOAD_TOO_LARGE',
        `the body is ${bytes} bytes; the limit is ${limits.maxBodyBytes}`,
      );
    }
  }
  try {
    return JSON.parse(body) as unknown;
  } catch (cause) {
    // Whitespace alone is an empty body (checked only now: valid bodies need not be scanned for it).
    if (BLANK.test(body)) throw emptyBody();
    const reason = cause instanceof RangeError ? 'it is nested too deeply' : (cause as Error).message;
    throw new ValidationError('INVALID_JSON', `the body is not valid JSON: ${reason}`);
  }
}

/** The source text of an instance's numeric id, asked for only when the id is a number. */
type IdText = () => string | undefined;

function parseId(raw: unknown, field: string, idText: IdText, issues: ErrorDetail[]): string | undefined {
  const { id, problem } = parseEntityId(raw, typeof raw === 'number' ? idText() : undefined);
  if (problem !== undefined) issues.push({ field, message: problem });
  return id;
}

function parseInstance(
  raw: unknown,
  prefix: string,
  idText: IdText,
  issues: ErrorDetail[],
  allowed: ReadonlySet<string>,
): RequestInstance {
  if (!isObject(raw)) {
    issues.push({
      field: prefix.replace(/\.$/, '') || '(root)',
      message: 'must be an object with "id" and/or "features"',
    });
    return { id: undefined, features: undefined };
  }
  for (const key of Object.keys(raw)) {
    if (!allowed.has(key)) issues.push({ field: `${prefix}${key}`, message: unknownFieldMessage(key) });
  }
  const id = parseId(raw['id'], `${prefix}id`, idText, issues);
  const features = raw['features'];
  if (features !== undefined && !isObject(features)) {
    issues.push({ field: `${prefix}features`, message: 'must be an object of feature values' });
  }
  if (id === undefined && features === undefined && !issues.some((i) => i.field === `${prefix}id`)) {
    issues.push({
      field: prefix ? prefix.slice(0, -1) : 'id',
      message: 'needs an "id", "features", or both',
    });
  }
  return { id, features };
}

/**
 * Checks the parsed body's shape; throws ValidationError whose details name each bad field. `text` is the
 * body as received: numeric ids are taken from it (entity-id.ts).
 */
export function parsePredictRequest(
  body: unknown,
  limits: RequestLimits = DEFAULT_LIMITS,
  text?: string,
): PredictRequest {
  if (!isObject(body)) {
    throw new ValidationError('INVALID_REQUEST', 'the body must be a JSON object', {
      details: [{ field: '(root)', message: 'must be an object' }],
    });
  }
  const issues: ErrorDetail[] = [];
  const model = body['model'];
  if (model !== undefined && !isPackageName(model)) {
    issues.push({
      field: 'model',
      message:
        'must be a model name (1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit)',
    });
  }
  const staleness = body['maxStalenessSeconds'];
  if (
    staleness !== undefined &&
    (typeof staleness !== 'number' || !Number.isFinite(staleness) || staleness < 0)
  ) {
    issues.push({ field: 'maxStalenessSeconds', message: 'must be a number of seconds >= 0' });
  }
  const bypass = body['bypassCache'];
  if (bypass !== undefined && typeof bypass !== 'boolean') {
    issues.push({ field: 'bypassCache', message: 'must be true or false' });
  }

  let single = false;
  let instances: RequestInstance[] = [];
  // Numeric ids are read from the body's text, all of them in one pass when the first is met.
  let instanceIdTexts: (string | undefined)[] | undefined;
  const instanceIdText = (i: number) =>
    (instanceIdTexts ??= text === undefined ? [] : jsonElementFieldSources(text, ['instances'], 'id'))[i];
  const list = body['instances'];
  if (list !== undefined) {
    if (body['id'] !== undefined || body['features'] !== undefined) {
      issues.push({
        field: 'instances',
        message: 'send either "instances" or a single "id"/"features", not both',
      });
    }
    if (!Array.isArray(list) || list.length === 0) {
      issues.push({ field: 'instances', message: 'must be a non-empty array' });
    } else if (list.length > limits.maxInstances) {
      throw new ValidationError(
        'TOO_MANY_INSTANCES',
        `too many instances: ${list.length}; the limit is ${limits.maxInstances} per request`,
        { details: [{ field: 'instances', message: `at most ${limits.maxInstances} instances` }] },
      );
    } else {
      instances = list.map((item, i) =>
        parseInstance(item, `instances.${i}.`, () => instanceIdText(i), issues, INSTANCE_KEYS),
      );
    }
  } else {
    single = true;
    instances = [parseInstance(body, '', () => text && jsonValueSource(text, ['id']), issues, TOP_LEVEL)];
  }
  if (list !== undefined) {
    for (const key of Object.keys(body)) {
      if (!TOP_LEVEL.has(key)) issues.push({ field: key, message: unknownFieldMessage(key) });
    }
  }
  if (bypass === true) {
    instances.forEach((instance, i) => {
      if (instance.id !== undefined && instance.features === undefined) {
        issues.push({
          field: single ? 'features' : `instances.${i}.features`,
          message: 'is required with "bypassCache": true (with the cache bypassed only the model can answer)',
        });
      }
    });
  }
  if (issues.length > 0) {
    const shown = issues.slice(0, 3).map((i) => `${i.field} ${i.message}`);
    throw new ValidationError(
      'INVALID_REQUEST',
      `invalid request: ${shown.join('; ')}${issues.length > 3 ? '; …' : ''}`,
      { details: issues },
    );
  }
  return {
    single,
    instances,
    model: model as string | undefined,
    maxStalenessSeconds: staleness as number | undefined,
    bypassCache: bypass === true,
  };
}
