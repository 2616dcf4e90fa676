/**
 * The OpenAPI document: valid OpenAPI 3.1 by an independent validator, in step with the committed copy,
 * the route table, the deployed routes and the error codes the code answers with; generated from the
 * schemas the code validates with, which are proved to accept and reject what the hand-written parsers
 * do, and to describe the bodies the handler actually returns.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Validator } from '@seriousme/openapi-schema-validator';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { STREAM_API_ROUTE } from '../../lib/stream-lane.ts';
import { API_ROUTES } from '../../lib/realtime-api.ts';
import { FsModelSource } from '../../lambdas/adapters/fs-model-source.ts';
import { FeatureValidator } from '../../lambdas/core/features.ts';
import { parseManifest } from '../../lambdas/core/manifest.ts';
import { ModelRegistry } from '../../lambdas/core/model-registry.ts';
import { DEFAULT_LIMITS, parsePredictRequest } from '../../lambdas/core/predict-request.ts';
import { PredictionService } from '../../lambdas/core/prediction-service.ts';
import {
  ERROR_CODES,
  errorSchema,
  featuresSchemaOf,
  healthSchema,
  modelDocumentSchema,
  modelListSchema,
  predictRequestSchema,
  predictResponseSchema,
  MODEL_STATUS_CODES,
  readySchema,
} from '../../lambdas/core/protocols/api-schemas.ts';
import { SERVER_VERSION } from '../../lambdas/core/protocols/oip.ts';
import { documentedRoutes, openApiDocument } from '../../lambdas/core/protocols/openapi.ts';
import { createApiHandler, ROUTES, type ApiHandler } from '../../lambdas/handlers/api/api-handler.ts';
import { ApiMetrics, PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { COMMITTED_DOCUMENT, documentForFolder, documentText } from '../../scripts/openapi.ts';
import { apiEvent, lambdaContext } from '../support/api-events.ts';
import { tinyManifest, tinyModelBytes } from '../support/tiny-model.ts';
import { expectWithMessage } from '../support/expect-message.ts';

let committed: Record<string, unknown>;
let root: string;
let registry: ModelRegistry;
let handler: ApiHandler;

beforeAll(async () => {
  committed = JSON.parse(await readFile(COMMITTED_DOCUMENT, 'utf8')) as Record<string, unknown>;
  root = await mkdtemp(path.join(tmpdir(), 'tandem-openapi-'));
  await mkdir(path.join(root, 'tiny', '1'), { recursive: true });
  await writeFile(path.join(root, 'tiny', '1', 'manifest.json'), JSON.stringify(tinyManifest('1')));
  await writeFile(path.join(root, 'tiny', '1', 'model.onnx'), tinyModelBytes());
  await writeFile(path.join(root, 'tiny', 'current.json'), '{"version":"1"}');
  // A package whose manifest does not read: listed by GET /models, absent from the document.
  await mkdir(path.join(root, 'unreadable', '1'), { recursive: true });
  await writeFile(path.join(root, 'unreadable', '1', 'manifest.json'), '{"name": "unreadable"}');
  await writeFile(path.join(root, 'unreadable', 'current.json'), '{"version":"1"}');
  registry = new ModelRegistry(new FsModelSource(root), {
    defaultModel: 'tiny',
    refreshSeconds: 60,
    retryFailedSeconds: 10,
  });
  handler = createApiHandler({
    registry,
    service: new PredictionService(undefined, { cacheBudgetMs: 100, writeThrough: false }),
    limits: DEFAULT_LIMITS,
    logger: new Logger({ serviceName: 'test', logLevel: 'ERROR' }),
    metrics: new ApiMetrics(new PowertoolsMetrics({ namespace: 'Test', serviceName: 'test' }), 0),
    logPayloads: false,
  });
}, 60_000);
afterAll(async () => {
  await registry.close();
  await rm(root, { recursive: true, force: true });
}, 60_000);

async function call(method: string, route: string, body?: unknown) {
  const result = await handler(apiEvent(method, route, body), lambdaContext());
  return { status: result.statusCode, body: JSON.parse(result.body) as unknown };
}

describe('the document', () => {
  it('docs/openapi.json is what `npm run openapi` writes for the models/ folder', async () => {
    const fresh = await documentText(await documentForFolder());
    const onDisk = await readFile(COMMITTED_DOCUMENT, 'utf8');
    expectWithMessage(
      onDisk === fresh,
      'docs/openapi.json is out of date: run `npm run openapi` and commit it',
    ).toBe(true);
  });

  it('is valid OpenAPI 3.1 by @seriousme/openapi-schema-validator', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(committed));
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('the validator does reject a broken document (a response without its description)', async () => {
    const broken = structuredClone(committed) as {
      paths: Record<string, { get?: { responses: Record<string, object> } }>;
    };
    delete (broken.paths['/health']!.get!.responses['200'] as { description?: string }).description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('documents every route of the route table, and only those', () => {
    const documented = documentedRoutes(committed);
    expect(documented).toHaveLength(ROUTES.length);
    for (const route of documented) {
      const [method, template] = route.split(' ') as [string, string];
      const sample = template.replace('{name}', 'tiny').replace('{version}', '1');
      const matches = ROUTES.filter((r) => r.method === method && r.path.test(sample));
      expectWithMessage(matches, route).toHaveLength(1);
    }
  });

  it('documents exactly the routes API Gateway sends to the function', () => {
    // The stream lane adds its route when it is on (lib/stream-lane.ts).
    const deployed = [...API_ROUTES, STREAM_API_ROUTE].map((r) => `${r.method} ${r.path}`).sort();
    expect(documentedRoutes(committed).sort()).toEqual(deployed);
  });

  it('lists both security schemes: SigV4 (IAM) and JWT bearer', () => {
    const components = committed['components'] as { securitySchemes: Record<string, Record<string, string>> };
    expect(components.securitySchemes['sigv4']).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'Authorization',
    });
    expect(components.securitySchemes['jwt']).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    expect(committed['security']).toEqual([{ sigv4: [] }, { jwt: [] }]);
  });

  it('has a request schema per model, from its manifest (the demo model: 17 features, categories as enums)', () => {
    const schemas = (committed['components'] as { schemas: Record<string, unknown> }).schemas;
    const text = JSON.stringify(schemas['PredictRequest.fraud-detector']);
    const manifest = JSON.parse(readFileSyncText('models/fraud-detector/1.0.0/manifest.json')) as {
      features: { name: string }[];
    };
    for (const feature of manifest.features) expect(text).toContain(`"${feature.name}"`);
    expect(text).toContain(
      '"enum":["grocery","restaurants","fuel","travel","electronics","online_retail","jewelry","gambling","other"]',
    );
  });
});

function readFileSyncText(file: string): string {
  return readFileSync(path.resolve(file), 'utf8');
}

describe('error codes', () => {
  /** Codes that exist in the code but are not answers of the API (the API maps them to MODEL_UNAVAILABLE). */
  // A model's status codes are documented by the model status schemas (MODEL_STATUS_CODES); the store's
  // error kinds never reach a caller (the cache block gives the reason in plain words).
  const NOT_API_CODES = new Set<string>([
    ...MODEL_STATUS_CODES,
    'STORE_THROTTLED',
    'STORE_UNREACHABLE',
    'STORE_TABLE_MISSING',
    'STORE_FORBIDDEN',
    'STORE_SERVER_ERROR',
    'STORE_TIMEOUT',
    'STORE_FAILED',
    // A per-event code inside a 202 of POST /events (documented in the EventsAccepted schema).
    'STREAM_THROTTLED',
  ]);

  it('every error code the API code can answer with is in the document, with its status', async () => {
    const files = [
      'lambdas/core/errors.ts',
      'lambdas/core/predict-request.ts',
      'local/api-server.ts',
      ...(await readdir('lambdas/handlers/api')).map((f) => `lambdas/handlers/api/${f}`),
      ...(await readdir('lambdas/core/protocols')).map((f) => `lambdas/core/protocols/${f}`),
    ].filter((f) => !f.endsWith('api-schemas.ts'));
    const found = new Set<string>();
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      for (const match of text.matchAll(/'([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)'/g)) found.add(match[1]!);
    }
    const undocumented = [...found].filter((code) => !(code in ERROR_CODES) && !NOT_API_CODES.has(code));
    expect(undocumented).toEqual([]);
    const description = String((committed['info'] as { description: string }).description);
    for (const [code, statuses] of Object.entries(ERROR_CODES))
      expect(description).toContain(`${code} ${statuses.join('/')}`);
  });

  it('each status a route documents carries the codes the handler answers with', async () => {
    const paths = committed['paths'] as Record<
      string,
      Record<string, { responses: Record<string, { description: string }> }>
    >;
    const predict = paths['/predict']!['post']!.responses;
    const bad = await call('POST', '/predict', { id: 'x', features: { x1: 'not a number' } });
    expect(bad.status).toBe(400);
    const code = (bad.body as { error: { code: string } }).error.code;
    expect(predict['400']!.description).toContain(code);
    const unknown = await call('POST', '/predict', { model: 'nope', id: 'x', features: { x1: 1 } });
    expect(unknown.status).toBe(404);
    expect(predict['404']!.description).toContain((unknown.body as { error: { code: string } }).error.code);
  });
});

describe('served at GET /openapi.json', () => {
  it('is the document for the models served now (an unreadable manifest left out)', async () => {
    const response = await call('GET', '/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body).toEqual(
      openApiDocument([{ manifest: parseManifest(tinyManifest('1')), isDefault: true }]),
    );
    const schemas = (response.body as { components: { schemas: Record<string, unknown> } }).components
      .schemas;
    expect(Object.keys(schemas).filter((k) => k.startsWith('PredictRequest.'))).toEqual([
      'PredictRequest.tiny',
    ]);
    expect((await new Validator().validate(response.body as Record<string, unknown>)).valid).toBe(true);
  });

  it('reports the package version', async () => {
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    expect(SERVER_VERSION).toBe(pkg.version);
    expect((committed['info'] as { version: string }).version).toBe(pkg.version);
  });
});

describe('the schemas describe what the handler returns', () => {
  it.each([
    ['POST', '/predict', { id: 't-1', features: { x1: 1, x2: 2 } }, 200, predictResponseSchema],
    [
      'POST',
      '/predict',
      { instances: [{ features: { x1: 1 } }, { features: { x1: -1 } }] },
      200,
      predictResponseSchema,
    ],
    ['GET', '/models', undefined, 200, modelListSchema],
    ['GET', '/models/tiny', undefined, 200, modelDocumentSchema.strict()],
    ['GET', '/health', undefined, 200, healthSchema.strict()],
    ['GET', '/ready', undefined, 200, readySchema],
    ['POST', '/predict', { id: 'x', features: { x1: 1000 } }, 400, errorSchema.strict()],
    ['GET', '/nowhere', undefined, 404, errorSchema.strict()],
  ] as const)('%s %s', async (method, route, body, status, schema) => {
    const response = await call(method, route, body);
    expect(response.status).toBe(status);
    const parsed = schema.safeParse(response.body);
    expect(parsed.error?.issues).toBeUndefined();
  });
});

describe('the /predict schema and the hand-written parser agree', () => {
  const long = '\u{1F600}'.repeat(257);
  const CATALOGUE: readonly unknown[] = [
    { id: 't-1' },
    { features: { a: 1 } },
    { id: 't-1', features: { a: 1 } },
    { id: 7, features: {} },
    { id: -3 },
    { id: null, features: {} },
    { id: 't-1', model: 'fraud-detector', maxStalenessSeconds: 0, bypassCache: false },
    { instances: [{ id: 'a' }, { features: {} }, { id: 'b', features: { x: 'y' } }] },
    { instances: [{ id: 'a' }], model: 'm', maxStalenessSeconds: 3600 },
    { instances: [{ features: {} }], bypassCache: true },
    { id: '\u{1F600}'.repeat(256) },
    // rejected
    null,
    [],
    'text',
    42,
    {},
    { id: '' },
    { id: 1.5 },
    { id: true },
    { id: {} },
    { id: long },
    { id: 'a\uD800b' },
    { id: 'x'.repeat(257) },
    { features: null },
    { features: [] },
    { features: 'a=1' },
    { id: null },
    { id: 't', extra: 1 },
    { id: 't', model: '' },
    { id: 't', model: '../etc' },
    { id: 't', model: null },
    { id: 't', maxStalenessSeconds: -1 },
    { id: 't', maxStalenessSeconds: '60' },
    { id: 't', bypassCache: 'yes' },
    { id: 't', bypassCache: true },
    { instances: [] },
    { instances: {} },
    { instances: null },
    { instances: [null] },
    { instances: [{}] },
    { instances: [{ id: 'a', extra: 1 }] },
    { instances: [{ id: 'a' }], id: 'b' },
    { instances: [{ id: 'a' }], features: {} },
    { instances: [{ id: 'a' }], extra: true },
    { instances: [{ id: 'a' }], bypassCache: true },
    { instances: Array.from({ length: 501 }, (_, i) => ({ id: `i${i}` })) },
    { instances: Array.from({ length: 500 }, (_, i) => ({ id: `i${i}` })) },
  ];

  function parserAccepts(body: unknown): boolean {
    try {
      parsePredictRequest(body, DEFAULT_LIMITS);
      return true;
    } catch {
      return false;
    }
  }

  it.each(CATALOGUE.map((body) => [JSON.stringify(body).slice(0, 80), body]))('%s', (_name, body) => {
    expect(predictRequestSchema.safeParse(body).success).toBe(parserAccepts(body));
  });

  it('on generated bodies', () => {
    const value = fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -5, max: 5 }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.constantFrom('', 'a', 'fraud-detector', '../x', 'x'.repeat(300)),
      fc.constant({}),
      fc.constant([]),
    );
    const instance = fc.record({ id: value, features: value, extra: value }, { requiredKeys: [] });
    const body = fc.record(
      {
        id: value,
        features: value,
        model: value,
        maxStalenessSeconds: value,
        bypassCache: value,
        instances: fc.oneof(value, fc.array(fc.oneof(instance, value), { maxLength: 4 })),
        extra: value,
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(body, (generated) => {
        // JSON has no undefined: the body as the parser receives it.
        const parsed = JSON.parse(JSON.stringify(generated)) as unknown;
        expect(predictRequestSchema.safeParse(parsed).success).toBe(parserAccepts(parsed));
      }),
      { numRuns: 2000 },
    );
  });
});

describe("a model's feature schema and its feature validator agree", () => {
  it('on generated feature objects for the demo model', () => {
    const manifest = parseManifest(JSON.parse(readFileSyncText('models/fraud-detector/1.0.0/manifest.json')));
    const schema = featuresSchemaOf(manifest);
    const validator = new FeatureValidator(manifest);
    const anyValue = fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.integer({ min: -10, max: 30_000 }),
      fc.double({ min: -1, max: 200_000, noNaN: true }),
      fc.constantFrom('grocery', 'chip', 'online', 'nope', '', '1'),
    );
    // A valid row (the first demo transaction) with up to two features changed, dropped or added.
    const base: Record<string, unknown> = {
      amount: 23.34,
      hour_of_day: 18,
      day_of_week: 1,
      merchant_category: 'gambling',
      channel: 'swipe',
      card_present: true,
      is_international: false,
      distance_from_home_km: 18.36,
      txn_count_1h: 1,
      txn_count_24h: 3,
      amount_to_avg_ratio: 0.7732,
      account_age_days: 234,
      customer_age: 44,
      failed_pin_24h: 0,
      new_device: false,
      merchant_risk_score: 0.651,
      prior_chargebacks: 0,
    };
    const names = [...manifest.features.map((f) => f.name), 'not_a_feature'];
    const change = fc.tuple(fc.constantFrom(...names), fc.option(anyValue, { nil: undefined }));
    const objects = fc.array(change, { maxLength: 2 }).map((changes) => {
      const features = { ...base };
      for (const [name, value] of changes) {
        if (value === undefined) delete features[name];
        else features[name] = value;
      }
      return features;
    });
    fc.assert(
      fc.property(objects, (features) => {
        const issues: { field: string; message: string }[] = [];
        const accepted = validator.fromObject(features, issues) !== undefined;
        expect(schema.safeParse(features).success).toBe(accepted);
      }),
      { numRuns: 3000 },
    );
  });
});
