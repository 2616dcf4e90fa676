import { describe, expect, it } from '@jest/globals';
import {
  PayloadTooLargeError,
  UnsupportedMediaTypeError,
  ValidationError,
} from '../../lambdas/core/errors.ts';
import {
  checkContentType,
  DEFAULT_LIMITS,
  parseJsonBody,
  parsePredictRequest,
} from '../../lambdas/core/predict-request.ts';

function failure(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('expected a ValidationError');
}

describe('parsePredictRequest', () => {
  it('reads the single form', () => {
    const request = parsePredictRequest({
      id: 't-1',
      features: { a: 1 },
      bypassCache: true,
      maxStalenessSeconds: 60,
    });
    expect(request).toEqual({
      single: true,
      instances: [{ id: 't-1', features: { a: 1 } }],
      model: undefined,
      maxStalenessSeconds: 60,
      bypassCache: true,
    });
  });

  it('reads the instances form and accepts integer ids', () => {
    const request = parsePredictRequest({ model: 'm', instances: [{ id: 7 }, { features: {} }] });
    expect(request.single).toBe(false);
    expect(request.model).toBe('m');
    expect(request.instances).toEqual([
      { id: '7', features: undefined },
      { id: undefined, features: {} },
    ]);
  });

  it('names every bad field', () => {
    const error = failure(() =>
      parsePredictRequest({
        instances: [{}, { id: '' }, { id: 'x', features: [1] }, 5, { id: 'y', extra: 1 }],
        bypassCache: 'yes',
        maxStalenessSeconds: -1,
        other: 1,
      }),
    );
    expect(error.code).toBe('INVALID_REQUEST');
    expect(error.details?.map((d) => d.field)).toEqual([
      'maxStalenessSeconds',
      'bypassCache',
      'instances.0',
      'instances.1.id',
      'instances.2.features',
      'instances.3',
      'instances.4.extra',
      'other',
    ]);
  });

  it('enforces the instance limit with its own code', () => {
    const error = failure(() =>
      parsePredictRequest(
        { instances: Array.from({ length: 3 }, () => ({ id: 'a' })) },
        { ...DEFAULT_LIMITS, maxInstances: 2 },
      ),
    );
    expect(error.code).toBe('TOO_MANY_INSTANCES');
  });

  it('rejects mixing the two forms, empty instance lists, and long ids', () => {
    expect(
      failure(() => parsePredictRequest({ id: 'a', instances: [{ id: 'b' }] })).details?.[0]?.field,
    ).toBe('instances');
    expect(failure(() => parsePredictRequest({ instances: [] })).details?.[0]?.field).toBe('instances');
    expect(failure(() => parsePredictRequest({ id: 'x'.repeat(257) })).details?.[0]?.message).toMatch(
      /at most 256/,
    );
    expect(failure(() => parsePredictRequest([1])).details?.[0]?.field).toBe('(root)');
  });
});

describe('parsePredictRequest: entity ids (lambdas/core/entity-id.ts)', () => {
  /** The request as the API reads it: parsed, with its text for numeric ids. */
  const parseText = (text: string) => parsePredictRequest(JSON.parse(text), DEFAULT_LIMITS, text);

  it('takes numeric ids from the body text, exactly, in the single and the many form', () => {
    expect(parseText('{"id": 12345678901234567890}').instances[0]!.id).toBe('12345678901234567890');
    const many = parseText(
      '{"instances": [{"id": 12345678901234567890}, {"features": {}}, {"id": "b"}, {"id": 12345678901234567891}]}',
    );
    expect(many.instances.map((i) => i.id)).toEqual([
      '12345678901234567890',
      undefined,
      'b',
      '12345678901234567891',
    ]);
  });

  it('names each instance whose numeric id is not plain digits', () => {
    const error = failure(() => parseText('{"instances": [{"id": 1}, {"id": 1.0}, {"id": -0}]}'));
    expect(error.details?.map((d) => d.field)).toEqual(['instances.1.id', 'instances.2.id']);
    expect(error.details?.[1]?.message).toMatch(/got -0: send "-0" as a string/);
  });

  it('without the body text, takes a number only when a double holds it exactly', () => {
    expect(parsePredictRequest({ id: 42 }).instances[0]!.id).toBe('42');
    expect(failure(() => parsePredictRequest({ id: 2 ** 53 })).details?.[0]?.field).toBe('id');
  });
});

describe('parseJsonBody', () => {
  it('rejects empty, malformed and oversized bodies with distinct errors', () => {
    expect(failure(() => parseJsonBody('', DEFAULT_LIMITS)).code).toBe('EMPTY_BODY');
    expect(failure(() => parseJsonBody('{"a":', DEFAULT_LIMITS)).code).toBe('INVALID_JSON');
    expect(() => parseJsonBody('"x"'.padEnd(2000, ' '), { ...DEFAULT_LIMITS, maxBodyBytes: 1024 })).toThrow(
      PayloadTooLargeError,
    );
  });

  it('measures the limit in UTF-8 bytes and calls a blank body empty whatever its size', () => {
    const limits = { ...DEFAULT_LIMITS, maxBodyBytes: 1024 };
    const justUnder = JSON.stringify({ id: 'x'.repeat(1024 - 10) });
    expect(Buffer.byteLength(justUnder)).toBe(1023);
    expect(parseJsonBody(justUnder, limits)).toEqual({ id: 'x'.repeat(1014) });
    // 400 characters, 1,200 bytes.
    expect(() => parseJsonBody(JSON.stringify('€'.repeat(398)), limits)).toThrow(PayloadTooLargeError);
    expect(failure(() => parseJsonBody(' \n\t ', limits)).code).toBe('EMPTY_BODY');
    expect(failure(() => parseJsonBody(' '.repeat(5000), limits)).code).toBe('EMPTY_BODY');
  });

  it('survives very deep nesting', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    const outcome = (() => {
      try {
        return parseJsonBody(deep, { ...DEFAULT_LIMITS, maxBodyBytes: 1e6 });
      } catch (error) {
        return error;
      }
    })();
    // Either V8 parses it (then the shape check rejects it) or it fails as invalid JSON; never a crash.
    if (outcome instanceof Error) expect((outcome as ValidationError).code).toBe('INVALID_JSON');
    else expect(() => parsePredictRequest(outcome)).toThrow(ValidationError);
  });
});

describe('checkContentType', () => {
  it('accepts JSON types and no type, rejects others', () => {
    for (const ok of [
      undefined,
      '',
      'application/json',
      'application/json; charset=utf-8',
      'application/vnd.api+json',
    ]) {
      expect(() => checkContentType(ok)).not.toThrow();
    }
    for (const bad of ['text/plain', 'multipart/form-data; boundary=x', 'application/jsonx']) {
      expect(() => checkContentType(bad)).toThrow(UnsupportedMediaTypeError);
    }
  });
});

describe('parsePredictRequest: the idField sent as a request field (issue 17 item 6)', () => {
  it.each([
    [{ sample_id: 's-1', features: { a: 1 } }, 'sample_id'],
    [{ instances: [{ transactionId: 't-1', features: { a: 1 } }] }, 'instances.0.transactionId'],
  ])('says the id goes in "id": %j', (body, field) => {
    const error = failure(() => parsePredictRequest(body));
    expect(error.details).toContainEqual({
      field,
      message: expect.stringContaining('the entity id goes in "id"'),
    });
  });

  it('keeps the plain message for other unknown fields', () => {
    const error = failure(() => parsePredictRequest({ id: 'a', features: { a: 1 }, colour: 'red' }));
    expect(error.details).toContainEqual({ field: 'colour', message: 'is not a known field' });
  });
});
