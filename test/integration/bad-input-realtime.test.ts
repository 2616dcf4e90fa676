/**
 * Bad input to the real-time lane, over real HTTP: a catalogue of malformed, oversized, mistyped and
 * hostile requests sent to the real handler behind the API Gateway adapter. Each must get a 4xx with a
 * stable code and a message that tells the caller what to fix; none may get a 500, leak a stack trace,
 * a file path, a storage key or AWS error text, or pollute Object.prototype; and the server must keep
 * serving good requests afterwards.
 */
import { PutItemCommand } from '@aws-sdk/client-dynamodb';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readDemoDataset } from '../../local/demo-dataset.ts';
import { DynamoDbPredictionStore, toItem } from '../../lambdas/adapters/dynamodb-prediction-store.ts';

import { storedPrediction } from '../../lambdas/core/cache-policy.ts';
import { DEMO_MODEL, LOCAL_TABLE, startLocalStack, type LocalStack } from '../../local/stack.ts';
import { expectWithMessage } from '../support/expect-message.ts';

const demo = await readDemoDataset();
const demoRows = demo.rows;
const featuresOf = demo.featuresOf;

const GOOD = featuresOf(demoRows[0]!);
const CACHED_ID = demoRows[0]![0]!;
/** Good features with some values replaced (undefined deletes the feature). */
function withFeatures(changes: Record<string, unknown>): Record<string, unknown> {
  const features: Record<string, unknown> = { ...GOOD };
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) delete features[name];
    else features[name] = value;
  }
  return features;
}
/** The body of a good single-instance request with JSON text spliced in for one feature's value. */
function rawFeature(name: string, jsonText: string): string {
  const marker = '"__MARKER__"';
  return JSON.stringify({ id: 'raw-1', features: withFeatures({ [name]: '__MARKER__' }) }).replace(
    marker,
    jsonText,
  );
}
/** JSON of exactly `bytes` bytes: `{"id":"x","pad":"xxx..."}`. */
function jsonOfSize(bytes: number): string {
  const frame = '{"id":"x","pad":""}';
  return frame.replace('""', `"${'x'.repeat(bytes - frame.length)}"`);
}

/** Precomputed an hour ago by the served version (written in beforeAll): present, but older than 0 s. */
const HOUR_OLD_ID = 'precomputed-an-hour-ago';
/** 257 characters of 2 UTF-16 units each. */
const LONG_EMOJI_ID = '\u{1F600}'.repeat(257);

const JSON_TYPE = { 'content-type': 'application/json' };
const MiB = 1024 * 1024;

interface Case {
  readonly name: string;
  readonly method?: string;
  readonly path?: string;
  readonly headers?: Record<string, string>;
  /** A value sent as JSON, or `{ raw }`: these exact bytes (a string is sent as UTF-8). */
  readonly body?: unknown;
  readonly status: number;
  readonly code: string;
  /** What the message must say: what is wrong and what to do about it. */
  readonly message: RegExp;
  /** Fields the details must name, when the error is about fields. */
  readonly fields?: readonly string[];
}

const raw = (bytes: string | Uint8Array) => ({ raw: bytes });
const tooManyInstances = Array.from({ length: 501 }, (_, i) => ({ id: `many-${i}` }));

const CATALOGUE: readonly Case[] = [
  // --- the body is not JSON, or not readable ---
  {
    name: 'malformed JSON (cut short)',
    body: raw('{"id": '),
    status: 400,
    code: 'INVALID_JSON',
    message: /the body is not valid JSON/,
  },
  {
    name: 'malformed JSON (trailing comma)',
    body: raw('{"id": "a",}'),
    status: 400,
    code: 'INVALID_JSON',
    message: /not valid JSON/,
  },
  {
    name: 'malformed JSON (single quotes)',
    body: raw("{'id': 'a'}"),
    status: 400,
    code: 'INVALID_JSON',
    message: /not valid JSON/,
  },
  {
    name: 'NaN as text',
    body: raw(rawFeature('amount', 'NaN')),
    status: 400,
    code: 'INVALID_JSON',
    message: /not valid JSON/,
  },
  {
    name: 'Infinity as text',
    body: raw(rawFeature('amount', 'Infinity')),
    status: 400,
    code: 'INVALID_JSON',
    message: /not valid JSON/,
  },
  {
    name: 'two JSON documents',
    body: raw('{"id":"a"}{"id":"b"}'),
    status: 400,
    code: 'INVALID_JSON',
    message: /not valid JSON/,
  },
  {
    name: 'empty body',
    body: raw(''),
    status: 400,
    code: 'EMPTY_BODY',
    message: /body is empty: send a JSON object/,
  },
  {
    name: 'whitespace-only body',
    body: raw(' \r\n\t '),
    status: 400,
    code: 'EMPTY_BODY',
    message: /body is empty/,
  },
  { name: 'no body at all', status: 400, code: 'EMPTY_BODY', message: /body is empty/ },
  {
    name: 'non-UTF-8 bytes as application/json',
    body: raw(Uint8Array.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])),
    status: 400,
    code: 'INVALID_ENCODING',
    message: /not valid UTF-8/,
  },
  {
    name: 'Latin-1 text as application/json',
    body: raw(Buffer.from('{"id":"caf\u00e9"}', 'latin1')),
    status: 400,
    code: 'INVALID_ENCODING',
    message: /UTF-8/,
  },
  {
    name: 'gzip-compressed body',
    headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
    body: raw(gzipSync(JSON.stringify({ id: CACHED_ID }))),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: /Content-Encoding "gzip" is not supported: send the JSON body uncompressed/,
  },
  // --- content type ---
  {
    name: 'text/plain content type',
    headers: { 'content-type': 'text/plain' },
    body: { id: CACHED_ID },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: /Content-Type: application\/json/,
  },
  {
    name: 'form content type',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: raw('id=a'),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: /not supported: send a JSON body/,
  },
  {
    name: 'XML content type',
    headers: { 'content-type': 'application/xml' },
    body: raw('<id>a</id>'),
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: /application\/json/,
  },
  // --- size and nesting ---
  {
    name: 'body over the 1 MiB handler limit',
    body: { id: 'big', features: GOOD, pad: 'x'.repeat(MiB) },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: /the limit is 1048576/,
  },
  {
    name: 'body over the limit in bytes, not characters (2-byte characters)',
    body: { id: '\u00e9'.repeat(600_000) },
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: /the body is \d+ bytes; the limit is 1048576/,
  },
  {
    name: 'body at exactly 1 MiB is read (and its unknown field rejected)',
    body: raw(jsonOfSize(MiB)),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /pad is not a known field/,
    fields: ['pad'],
  },
  {
    name: 'body over the 10 MiB gateway limit',
    body: raw('x'.repeat(10 * MiB + 1)),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: /exceeds 10485760 bytes/,
  },
  {
    name: 'deeply nested arrays as a feature value',
    body: raw(rawFeature('amount', `${'['.repeat(100_000)}${']'.repeat(100_000)}`)),
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be a number, got an array/,
    fields: ['features.amount'],
  },
  {
    name: 'deeply nested objects in an unknown field',
    body: raw(`{"id":"a","x":${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /x is not a known field/,
    fields: ['x'],
  },
  // --- the body's shape ---
  {
    name: 'null body',
    body: raw('null'),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /the body must be a JSON object/,
  },
  {
    name: 'array body',
    body: [{ id: CACHED_ID }],
    status: 400,
    code: 'INVALID_REQUEST',
    message: /must be a JSON object/,
  },
  {
    name: 'string body',
    body: 'txn-000001',
    status: 400,
    code: 'INVALID_REQUEST',
    message: /must be a JSON object/,
  },
  {
    name: 'number body',
    body: raw('42'),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /must be a JSON object/,
  },
  {
    name: 'missing id and features',
    body: {},
    status: 400,
    code: 'INVALID_REQUEST',
    message: /needs an "id", "features", or both/,
    fields: ['id'],
  },
  {
    name: 'unknown top-level field',
    body: { id: CACHED_ID, maxAge: 5 },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /maxAge is not a known field/,
    fields: ['maxAge'],
  },
  {
    name: 'both instances and a single id',
    body: { id: 'a', instances: [{ id: 'b' }] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /send either "instances" or a single "id"\/"features", not both/,
    fields: ['instances'],
  },
  {
    name: 'instances not an array',
    body: { instances: { id: CACHED_ID } },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances must be a non-empty array/,
    fields: ['instances'],
  },
  {
    name: 'instances empty',
    body: { instances: [] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances must be a non-empty array/,
    fields: ['instances'],
  },
  {
    name: 'instance not an object',
    body: { instances: [{ id: CACHED_ID }, 'txn-000002'] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.1 must be an object with "id" and\/or "features"/,
    fields: ['instances.1'],
  },
  {
    name: 'instance with an unknown field',
    body: { instances: [{ id: 'a', features: GOOD, score: 1 }] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.0\.score is not a known field/,
    fields: ['instances.0.score'],
  },
  {
    name: 'too many instances',
    body: { instances: tooManyInstances },
    status: 400,
    code: 'TOO_MANY_INSTANCES',
    message: /too many instances: 501; the limit is 500 per request/,
    fields: ['instances'],
  },
  {
    name: 'features not an object',
    body: { id: 'a', features: [1, 2, 3] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /features must be an object of feature values/,
    fields: ['features'],
  },
  // --- ids ---
  {
    name: 'id of the wrong type (boolean)',
    body: { id: true, features: GOOD },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be a non-empty string \(or an integer\)/,
    fields: ['id'],
  },
  {
    name: 'id of the wrong type (object)',
    body: { instances: [{ id: { S: 'a' }, features: GOOD }] },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.0\.id must be a non-empty string/,
    fields: ['instances.0.id'],
  },
  // The entity-id rule (lambdas/core/entity-id.ts, docs/api.md "Entity ids"): a number is an id only
  // as plain integer digits; anything a double would round or reformat is refused, never rewritten.
  {
    name: 'id a fraction',
    body: { id: 1.5, features: GOOD },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be a string or an integer in plain digits .*got 1\.5: send "1\.5" as a string/,
    fields: ['id'],
  },
  {
    name: 'id a whole number written with a fraction (1.0)',
    body: raw(`{"id": 1.0, "features": ${JSON.stringify(GOOD)}}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be a string or an integer in plain digits .*got 1\.0/,
    fields: ['id'],
  },
  {
    name: 'id negative zero',
    body: raw(`{"id": -0, "features": ${JSON.stringify(GOOD)}}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be a string or an integer in plain digits .*got -0: send "-0" as a string/,
    fields: ['id'],
  },
  {
    name: 'id with an exponent (1e21)',
    body: raw(`{"instances": [{"id": "ok"}, {"id": 1e21, "features": ${JSON.stringify(GOOD)}}]}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.1\.id must be a string or an integer in plain digits .*got 1e21/,
    fields: ['instances.1.id'],
  },
  {
    name: 'id empty',
    body: { id: '', features: GOOD },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be a non-empty string/,
    fields: ['id'],
  },
  {
    name: 'id longer than 256 characters',
    body: { id: 't'.repeat(257), features: GOOD },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be at most 256 characters, got 257/,
    fields: ['id'],
  },
  {
    name: 'id an integer of more than 256 digits',
    body: raw(`{"id": ${'9'.repeat(257)}, "features": ${JSON.stringify(GOOD)}}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be at most 256 characters, got 257/,
    fields: ['id'],
  },
  {
    name: 'id with a lone surrogate (not encodable as UTF-8)',
    body: raw('{"id": "txn-\\ud800"}'),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be valid Unicode text/,
    fields: ['id'],
  },
  {
    name: 'id alone, nothing precomputed for it',
    body: { id: 'never-scored-1' },
    status: 404,
    code: 'NOT_PRECOMPUTED',
    message: /send "features" to have the model score it/,
    fields: ['id'],
  },
  {
    name: 'id alone, injection-looking, nothing precomputed',
    body: { id: "x' OR '1'='1" },
    status: 404,
    code: 'NOT_PRECOMPUTED',
    message: /send "features"/,
    fields: ['id'],
  },
  {
    name: 'id of 257 characters outside the BMP (counted as characters, not UTF-16 units)',
    body: { id: LONG_EMOJI_ID, features: GOOD },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /id must be at most 256 characters, got 257/,
    fields: ['id'],
  },
  {
    name: 'id alone, precomputed but older than maxStalenessSeconds 0',
    body: { id: HOUR_OLD_ID, maxStalenessSeconds: 0 },
    status: 404,
    code: 'PRECOMPUTED_TOO_OLD',
    message: /too old to serve: send "features" to have the model score it, or allow older predictions/,
    fields: ['id'],
  },
  {
    name: 'ids alone, one too old and one never precomputed',
    body: { instances: [{ id: HOUR_OLD_ID }, { id: 'never-scored-2' }], maxStalenessSeconds: 0 },
    status: 404,
    code: 'NOT_PRECOMPUTED',
    message: /no usable precomputed prediction for 2 instances without features \(see details\)/,
    fields: ['instances.0.id', 'instances.1.id'],
  },
  {
    name: 'id alone with bypassCache true (nothing could answer it)',
    body: { id: CACHED_ID, bypassCache: true },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /features is required with "bypassCache": true/,
    fields: ['features'],
  },
  {
    name: 'instances with bypassCache true, one without features',
    body: { instances: [{ id: CACHED_ID }, { id: 'x-2', features: GOOD }], bypassCache: true },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.0\.features is required with "bypassCache": true/,
    fields: ['instances.0.features'],
  },
  // --- request controls ---
  {
    name: 'maxStalenessSeconds negative',
    body: { id: CACHED_ID, maxStalenessSeconds: -1 },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /maxStalenessSeconds must be a number of seconds >= 0/,
    fields: ['maxStalenessSeconds'],
  },
  {
    name: 'maxStalenessSeconds a string',
    body: { id: CACHED_ID, maxStalenessSeconds: '60' },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /maxStalenessSeconds must be a number of seconds >= 0/,
    fields: ['maxStalenessSeconds'],
  },
  {
    name: 'maxStalenessSeconds 1e999 (non-finite)',
    body: raw(`{"id": "${CACHED_ID}", "maxStalenessSeconds": 1e999}`),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /maxStalenessSeconds must be a number/,
    fields: ['maxStalenessSeconds'],
  },
  {
    name: 'bypassCache not a boolean',
    body: { id: CACHED_ID, bypassCache: 'true' },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /bypassCache must be true or false/,
    fields: ['bypassCache'],
  },
  // --- models ---
  {
    name: 'unknown model',
    body: { id: 'a', features: GOOD, model: 'no-such-model' },
    status: 404,
    code: 'MODEL_NOT_FOUND',
    message: /no model named "no-such-model"; GET \/models lists the models served/,
  },
  {
    name: 'model name with path traversal',
    body: { id: 'a', features: GOOD, model: `../${DEMO_MODEL}` },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /model must be a model name/,
    fields: ['model'],
  },
  {
    name: 'model name with a slash',
    body: { id: 'a', features: GOOD, model: `${DEMO_MODEL}/../${DEMO_MODEL}` },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /letters, digits/,
    fields: ['model'],
  },
  {
    name: 'model name __proto__',
    body: { id: 'a', features: GOOD, model: '__proto__' },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /model must be a model name/,
    fields: ['model'],
  },
  {
    name: 'model name not a string',
    body: { id: 'a', features: GOOD, model: 7 },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /model must be a model name/,
    fields: ['model'],
  },
  {
    name: 'model name empty',
    body: { id: 'a', features: GOOD, model: '' },
    status: 400,
    code: 'INVALID_REQUEST',
    message: /model must be a model name/,
    fields: ['model'],
  },
  // --- feature values (validation policy: README) ---
  {
    name: 'number given as a string',
    body: { id: 'a', features: withFeatures({ amount: '12.5' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be a number, got a string "12\.5"/,
    fields: ['features.amount'],
  },
  {
    name: 'integer given as a string',
    body: { id: 'a', features: withFeatures({ hour_of_day: '3' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.hour_of_day must be an integer, got a string/,
    fields: ['features.hour_of_day'],
  },
  {
    name: '1e999 (parses as Infinity)',
    body: raw(rawFeature('amount', '1e999')),
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be a finite number, got Infinity/,
    fields: ['features.amount'],
  },
  {
    name: '-1e999 (parses as -Infinity)',
    body: raw(rawFeature('distance_from_home_km', '-1e999')),
    status: 400,
    code: 'INVALID_FEATURES',
    message: /must be a finite number, got -Infinity/,
    fields: ['features.distance_from_home_km'],
  },
  {
    name: 'huge number',
    body: { id: 'a', features: withFeatures({ amount: 1e300 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be <= 100000, got 1e\+300/,
    fields: ['features.amount'],
  },
  {
    name: 'huge integer',
    body: raw(rawFeature('txn_count_1h', '123456789012345678901234567890')),
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.txn_count_1h must be <= 500/,
    fields: ['features.txn_count_1h'],
  },
  {
    name: 'negative where the schema forbids it',
    body: { id: 'a', features: withFeatures({ amount: -0.01 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be >= 0, got -0\.01/,
    fields: ['features.amount'],
  },
  {
    name: 'below the minimum (customer_age 17)',
    body: { id: 'a', features: withFeatures({ customer_age: 17 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.customer_age must be >= 18, got 17/,
    fields: ['features.customer_age'],
  },
  {
    name: 'unknown category',
    body: { id: 'a', features: withFeatures({ merchant_category: 'casino' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /unknown category "casino"; expected one of: grocery, restaurants/,
    fields: ['features.merchant_category'],
  },
  {
    name: 'category of the wrong case',
    body: { id: 'a', features: withFeatures({ channel: 'Online' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /unknown category "Online"; expected one of: chip, contactless, swipe, online, manual/,
    fields: ['features.channel'],
  },
  {
    name: 'category given a number',
    body: { id: 'a', features: withFeatures({ channel: 3 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.channel must be a string, got 3/,
    fields: ['features.channel'],
  },
  {
    name: 'string over maxLength',
    body: { id: 'a', features: withFeatures({ merchant_category: 'g'.repeat(300) }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /must be at most 256 characters, got 300/,
    fields: ['features.merchant_category'],
  },
  {
    name: 'boolean feature given 1',
    body: { id: 'a', features: withFeatures({ card_present: 1 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.card_present must be a boolean \(true or false\), got 1/,
    fields: ['features.card_present'],
  },
  {
    name: 'boolean feature given "true"',
    body: { id: 'a', features: withFeatures({ is_international: 'true' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /must be a boolean \(true or false\), got "true"/,
    fields: ['features.is_international'],
  },
  {
    name: 'integer feature given 1.5',
    body: { id: 'a', features: withFeatures({ txn_count_1h: 1.5 }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.txn_count_1h must be an integer, got 1\.5/,
    fields: ['features.txn_count_1h'],
  },
  {
    name: 'operator object as a value (NoSQL-injection shape)',
    body: { id: 'a', features: withFeatures({ amount: { $gt: 0 } }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount must be a number, got an object/,
    fields: ['features.amount'],
  },
  {
    name: 'missing required feature',
    body: { id: 'a', features: withFeatures({ amount: undefined }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.amount is required/,
    fields: ['features.amount'],
  },
  {
    name: 'required feature null (null means missing)',
    body: { id: 'a', features: withFeatures({ channel: null }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.channel is required/,
    fields: ['features.channel'],
  },
  {
    name: 'missing features (empty object)',
    body: { id: 'a', features: {} },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /15 invalid feature values: features\.amount is required/,
  },
  {
    name: 'extra feature (policy: rejected)',
    body: { id: 'a', features: withFeatures({ ip_address: '10.0.0.1' }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.ip_address is not a feature of this model/,
    fields: ['features.ip_address'],
  },
  {
    name: 'misspelt optional feature (policy: rejected, not defaulted)',
    body: { id: 'a', features: withFeatures({ new_devise: true }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.new_devise is not a feature of this model/,
    fields: ['features.new_devise'],
  },
  {
    name: 'one bad instance rejects the whole request, naming it',
    body: {
      instances: [
        { id: 'ok', features: GOOD },
        { id: 'bad', features: withFeatures({ day_of_week: 7 }) },
      ],
    },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /instances\.1\.features\.day_of_week must be <= 6, got 7/,
    fields: ['instances.1.features.day_of_week'],
  },
  // --- prototype pollution attempts ---
  {
    name: '__proto__ at the top level',
    body: raw('{"__proto__": {"polluted": "yes"}, "id": "a"}'),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /__proto__ is not a known field/,
    fields: ['__proto__'],
  },
  {
    name: '__proto__ in features',
    body: raw(`{"id": "a", "features": {"__proto__": {"polluted": "yes"}, "amount": 1}}`),
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.__proto__ is not a feature of this model/,
  },
  {
    name: 'constructor.prototype in features',
    body: { id: 'a', features: withFeatures({ constructor: { prototype: { polluted: 'yes' } } }) },
    status: 400,
    code: 'INVALID_FEATURES',
    message: /features\.constructor is not a feature of this model/,
    fields: ['features.constructor'],
  },
  {
    name: 'prototype in an instance',
    body: raw(
      '{"instances": [{"id": "a", "prototype": {"polluted": "yes"}, "__proto__": {"polluted": "yes"}}]}',
    ),
    status: 400,
    code: 'INVALID_REQUEST',
    message: /instances\.0\.prototype is not a known field/,
    fields: ['instances.0.prototype', 'instances.0.__proto__'],
  },
  // --- routes and methods ---
  {
    name: 'unknown route',
    method: 'GET',
    path: '/predictions',
    status: 404,
    code: 'ROUTE_NOT_FOUND',
    message: /no route GET \/predictions; routes: POST \/predict/,
  },
  {
    name: 'unknown route, very long path',
    method: 'GET',
    path: `/${'p'.repeat(8000)}`,
    status: 404,
    code: 'ROUTE_NOT_FOUND',
    message: /no route GET \/p+; routes:/,
  },
  {
    name: 'wrong method on /predict (GET)',
    method: 'GET',
    path: '/predict',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
    message: /GET is not allowed on \/predict; use POST/,
  },
  {
    name: 'wrong method on /predict (PUT)',
    method: 'PUT',
    path: '/predict',
    body: { id: CACHED_ID },
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
    message: /use POST/,
  },
  {
    name: 'wrong method on /models/{name} (DELETE)',
    method: 'DELETE',
    path: `/models/${DEMO_MODEL}`,
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
    message: /DELETE is not allowed on \/models\/fraud-detector; use GET/,
  },
  {
    name: 'unknown model by path',
    method: 'GET',
    path: '/models/no-such-model',
    status: 404,
    code: 'MODEL_NOT_FOUND',
    message: /no model named "no-such-model"; GET \/models lists/,
  },
  {
    name: 'model path with encoded traversal',
    method: 'GET',
    path: '/models/..%2F..%2Fetc',
    status: 404,
    code: 'MODEL_NOT_FOUND',
    message: /GET \/models lists the models served/,
  },
  {
    name: 'model path with malformed percent-encoding',
    method: 'GET',
    path: '/models/%E0%A4%A',
    status: 404,
    code: 'MODEL_NOT_FOUND',
    message: /GET \/models lists the models served/,
  },
];

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({ apiPort: 0, handlerEnv: { CACHE_BUDGET_MS: '2000' } });
  const cached = await send('POST', '/predict', { id: CACHED_ID });
  await new DynamoDbPredictionStore(stack.dynamo, LOCAL_TABLE).putMany([
    storedPrediction(
      {
        model: DEMO_MODEL,
        entityId: HOUR_OLD_ID,
        prediction: cached.body.prediction,
        modelVersion: cached.body.model.version,
        computedAt: Date.now() - 3_600_000,
        source: 'batch',
      },
      86_400,
    ),
  ]);
}, 120_000);
afterAll(async () => {
  await stack?.stop();
}, 60_000);

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- read field by field in assertions
  readonly body: any;
}

async function send(
  method: string,
  route: string,
  body: unknown,
  headers: Record<string, string> = JSON_TYPE,
): Promise<Reply> {
  let payload: string | Uint8Array | undefined;
  if (body !== undefined) {
    const bytes = (body as { raw?: unknown }).raw;
    payload =
      bytes !== undefined && (typeof bytes === 'string' || bytes instanceof Uint8Array)
        ? bytes
        : JSON.stringify(body);
  }
  const response = await fetch(`${stack.apiUrl}${route}`, { method, headers, body: payload });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, headers: response.headers, text, body: parsed };
}

/** What must never reach a caller: stack frames, file paths, storage layout, AWS error text. */
const LEAKS: readonly RegExp[] = [
  /\bat\s+(?:async\s+)?\S*\s*\(?[^\s()]*:\d+:\d+\)?/, // a stack frame
  /node_modules|node:internal/,
  /(?:^|[\s"'(])\/(?:work|tmp|home|var|opt|usr|Users|private)\//, // an absolute path
  /[A-Za-z]:\\/, // a Windows path
  /\.(?:ts|js|mjs|cjs):\d+/,
  /file:\/\//,
  /current\.json|manifest\.json|model\.onnx|s3:\/\//, // the model store's layout
  /\w+Exception\b|AccessDenied|NoSuchKey|NoSuchBucket|ThrottlingException|\$metadata/, // AWS errors
  /amazonaws\.com|arn:aws:/,
];

function expectNoLeak(text: string): void {
  for (const leak of LEAKS) expectWithMessage(text, `leaks ${leak}`).not.toMatch(leak);
}

function expectNoPollution(): void {
  const probe: Record<string, unknown> = {};
  expect(probe['polluted']).toBeUndefined();
  expect(Object.prototype).not.toHaveProperty('polluted');
  expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('polluted');
}

describe('bad input, real-time lane', () => {
  it('has a catalogue of at least 40 distinct cases', () => {
    expect(CATALOGUE.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CATALOGUE.map((c) => c.name)).size).toBe(CATALOGUE.length);
  });

  it.each(CATALOGUE)('$name -> $status $code', async (c) => {
    const method = c.method ?? 'POST';
    const reply = await send(method, c.path ?? '/predict', c.body, c.headers ?? JSON_TYPE);
    expectWithMessage(reply.status, reply.text.slice(0, 500)).toBe(c.status);
    expect(reply.headers.get('content-type')).toMatch(/^application\/json/);
    expectWithMessage(reply.body?.error?.code, reply.text.slice(0, 500)).toBe(c.code);
    expect(reply.body.error.message).toMatch(c.message);
    // The request id ties the answer to the logs.
    expect(reply.body.error.requestId).toEqual(expect.any(String));
    expect(reply.headers.get('x-request-id')).toBe(reply.body.error.requestId);
    if (c.fields) {
      const named = (reply.body.error.details as { field: string }[]).map((d) => d.field);
      for (const field of c.fields) expect(named).toContain(field);
    }
    if (c.status === 405) expect(reply.headers.get('allow')).toMatch(/^(GET|POST)$/);
    expectNoLeak(reply.text);
    expectNoPollution();
  });

  it('allows duplicate ids and answers each, in request order', async () => {
    const other = demoRows[1]!;
    const instances = [
      { id: CACHED_ID },
      { id: other[0]!, features: featuresOf(other) },
      { id: CACHED_ID },
      { id: other[0]!, features: featuresOf(other) },
      { id: CACHED_ID, features: GOOD },
    ];
    const reply = await send('POST', '/predict', { instances, bypassCache: false });
    expect(reply.status).toBe(200);
    const predictions = reply.body.predictions as { id: string; source: string; prediction: unknown }[];
    expect(predictions.map((p) => p.id)).toEqual(instances.map((i) => i.id));
    expect(predictions.map((p) => p.source)).toEqual(['cache', 'cache', 'cache', 'cache', 'cache']);
    expect(predictions[2]!.prediction).toEqual(predictions[0]!.prediction);
    expect(predictions[3]!.prediction).toEqual(predictions[1]!.prediction);
    // Bypassing the cache, every instance needs features; the duplicates are scored in one run.
    const withFeatures = instances.map((i) => ({
      id: i.id,
      features: i.id === CACHED_ID ? GOOD : featuresOf(other),
    }));
    const scored = await send('POST', '/predict', { instances: withFeatures, bypassCache: true });
    const modelAnswers = scored.body.predictions as { id: string; source: string; prediction: unknown }[];
    expect(modelAnswers.map((p) => [p.id, p.source])).toEqual([
      [CACHED_ID, 'model'],
      [other[0], 'model'],
      [CACHED_ID, 'model'],
      [other[0], 'model'],
      [CACHED_ID, 'model'],
    ]);
    expect(modelAnswers.map((p) => p.prediction)).toEqual(predictions.map((p) => p.prediction));
  });

  it('counts an id length in characters: 256 characters of 2 UTF-16 units each are accepted', async () => {
    const id = '\u{1F600}'.repeat(256);
    const reply = await send('POST', '/predict', { id, features: GOOD });
    expectWithMessage(reply.status, reply.text.slice(0, 300)).toBe(200);
    expect(reply.body.id).toBe(id);
  });

  it('the precomputed prediction that is too old for maxStalenessSeconds 0 is served without it', async () => {
    const reply = await send('POST', '/predict', { id: HOUR_OLD_ID });
    expectWithMessage(reply.status, reply.text.slice(0, 300)).toBe(200);
    expect(reply.body).toMatchObject({ id: HOUR_OLD_ID, source: 'cache', ageSeconds: expect.any(Number) });
    expect(reply.body.ageSeconds).toBeGreaterThanOrEqual(3600);
  });

  it('duplicate keys in a JSON object: the last one wins (documented in docs/api.md)', async () => {
    const body = `{"id":"dup-first","features":${JSON.stringify(GOOD)},"id":"dup-last"}`;
    const reply = await send('POST', '/predict', { raw: body });
    expectWithMessage(reply.status, reply.text.slice(0, 300)).toBe(200);
    expect(reply.body).toMatchObject({ id: 'dup-last', source: 'model' });
  });

  it('keeps integer ids beyond 2^53 exact: 12345678901234567890 and ...891 never share a key', async () => {
    const cached = await send('POST', '/predict', { id: CACHED_ID });
    expect(cached.status).toBe(200);
    const big = '12345678901234567890';
    // A precomputed prediction for the entity "12345678901234567890" only, unlike the model's answer.
    const planted = { label: 'planted', probabilities: { planted: 1 } };
    await stack.dynamo.send(
      new PutItemCommand({
        TableName: LOCAL_TABLE,
        Item: toItem(
          storedPrediction(
            {
              model: DEMO_MODEL,
              entityId: big,
              prediction: planted,
              modelVersion: cached.body.model.version,
              computedAt: Date.now(),
              source: 'batch',
            },
            3600,
          ),
        ),
      }),
    );
    const features = JSON.stringify(GOOD);
    const reply = await send(
      'POST',
      '/predict',
      raw(
        `{"instances": [{"id": ${big}}, {"id": 12345678901234567891, "features": ${features}}, {"id": "${big}"}]}`,
      ),
    );
    expectWithMessage(reply.status, reply.text.slice(0, 500)).toBe(200);
    const predictions = reply.body.predictions as { id: string; source: string; prediction: unknown }[];
    expect(predictions.map((p) => [p.id, p.source])).toEqual([
      [big, 'cache'],
      ['12345678901234567891', 'model'],
      [big, 'cache'],
    ]);
    expect(predictions[0]!.prediction).toEqual(planted);
    expect(predictions[1]!.prediction).not.toEqual(planted);
  });

  it('takes non-ASCII ids as they are', async () => {
    const id = 'kundé-東京-😀';
    const reply = await send('POST', '/predict', { id, features: GOOD });
    expect(reply.status).toBe(200);
    expect(reply.body.id).toBe(id);
  });

  it('an instance without id is answered too, with id null', async () => {
    const reply = await send('POST', '/predict', { instances: [{ features: GOOD }, { id: CACHED_ID }] });
    expect(reply.status).toBe(200);
    expect(reply.body.predictions.map((p: { id: string | null }) => p.id)).toEqual([null, CACHED_ID]);
  });

  it('still serves good requests after the whole catalogue', async () => {
    expectNoPollution();
    expect((await send('GET', '/health', undefined)).status).toBe(200);
    const ready = await send('GET', '/ready', undefined);
    expect(ready.body).toMatchObject({ status: 'ready' });
    const cached = await send('POST', '/predict', { id: CACHED_ID });
    expect(cached.status).toBe(200);
    expect(cached.body).toMatchObject({ id: CACHED_ID, source: 'cache', cacheStatus: 'hit' });
    const scored = await send('POST', '/predict', { id: 'after-the-catalogue', features: GOOD });
    expect(scored.status).toBe(200);
    expect(scored.body).toMatchObject({ source: 'model', prediction: cached.body.prediction });
  });
});
