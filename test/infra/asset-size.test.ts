/**
 * The packaging, on a real synth (esbuild bundling, the pruned onnxruntime-node copied in): every function
 * is far under Lambda's 250 MB (code plus layers, unzipped, printed), only predict and score carry
 * onnxruntime (one OS/arch, no CUDA), the AWS SDK comes from the runtime, and the bundles run: the predict
 * bundle answers /ready and /predict, and the pruned onnxruntime-node in the score bundle creates a session
 * on the demo model. Built once, for x86_64 and arm64. The size measurement itself is checked on a small
 * stack with a layer.
 */
import { ROLLOUT_NON_RETRYABLE_ERRORS } from '../../lib/rollout-definition.ts';
import { NON_RETRYABLE_ERRORS } from '../../lib/batch-definition.ts';
import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { measureFunctionAssets, predictAssetMb, type FunctionAssetSize } from '../../lib/asset-sizes.ts';
import { stageOnnxRuntime } from '../../lib/onnxruntime-asset.ts';
import { REPO_ROOT, testApp, testStack } from './support.ts';
import { expectWithMessage } from '../support/expect-message.ts';

export { measureFunctionAssets } from '../../lib/asset-sizes.ts';

const BUDGET_MB = 120;
const ORT_FUNCTIONS = /ApiPredictFunction|BatchScoreFunction/;
const MODEL = path.join(REPO_ROOT, 'models', 'fraud-detector', '1.0.0', 'model.onnx');

function listFiles(directory: string, base = directory): string[] {
  return fs.readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(directory, entry.name);
    return entry.isDirectory()
      ? listFiles(full, base)
      : [path.relative(base, full).split(path.sep).join('/')];
  });
}

/** Runs an ES module script in a fresh Node process (native modules stay out of the test worker). */
function runNode(
  script: string,
  cwd: string,
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd,
    env: {
      PATH: process.env['PATH'] ?? '',
      POWERTOOLS_METRICS_DISABLED: 'true',
      POWERTOOLS_LOG_LEVEL: 'SILENT',
      AWS_REGION: 'us-east-1',
      ...env,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('function packaging', () => {
  let root: string;
  let assembly: CloudAssembly;
  let sizes: FunctionAssetSize[];
  const of = (stack: string, pattern: RegExp): FunctionAssetSize => {
    const found = sizes.filter((s) => s.stack === stack && pattern.test(s.logicalId));
    expectWithMessage(found, `${stack} ${pattern}`).toHaveLength(1);
    return found[0]!;
  };

  beforeAll(() => {
    // The assembly lives beside a node_modules link to the repo's, so a bundle's external
    // `@aws-sdk/client-*` imports resolve the way the Lambda runtime provides them; everything else a bundle
    // needs is inside its own folder.
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-assets-'));
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
    const app = testApp({ bundle: true, outdir: path.join(root, 'cdk.out') });
    testStack(app);
    testStack(app, { architecture: 'arm64' }, 'TandemArm');
    assembly = app.synth();
    sizes = measureFunctionAssets(assembly);
    console.log(
      [
        'function asset sizes (unzipped, code + layers):',
        ...sizes.map(
          (s) => `  ${s.stack.padEnd(10)} ${s.logicalId.padEnd(40)} ${s.totalMb.toFixed(1).padStart(6)} MB`,
        ),
      ].join('\n'),
    );
  }, 240_000);

  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('measures all eight functions of each stack, each well under 250 MB', () => {
    expect(sizes).toHaveLength(16);
    for (const size of sizes) expectWithMessage(size.totalMb, size.logicalId).toBeLessThan(BUDGET_MB);
    expect(predictAssetMb(sizes.filter((s) => s.stack === 'Tandem'))).toBe(
      of('Tandem', /ApiPredictFunction/).totalMb,
    );
  });

  it('states the measured sizes in docs/deploy.md (within 0.5 MB; the failure prints the table to paste)', () => {
    const functions = [
      ['predict', /ApiPredictFunction/],
      ['score', /BatchScoreFunction/],
      ['plan', /BatchPlanFunction/],
      ['trigger', /BatchTriggerFunction/],
      ['finalize', /BatchFinalizeFunction/],
      ['rollout', /RolloutStepFunction/],
      ['refresh', /RefreshFunction/],
      ['monitor', /DriftMonitorFunction/],
    ] as const;
    const measured = functions.map(([name, pattern]) => [
      name,
      of('Tandem', pattern).totalMb,
      of('TandemArm', pattern).totalMb,
    ]) as Array<[string, number, number]>;
    const table = [
      '| Function | x86_64 | arm64 |',
      '| -------- | ------ | ----- |',
      ...measured.map(([name, x64, arm]) => `| ${name} | ${x64.toFixed(1)} MB | ${arm.toFixed(1)} MB |`),
    ].join('\n');
    const guide = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'deploy.md'), 'utf8');
    const section = guide.slice(
      guide.indexOf('## How the functions are packaged'),
      guide.indexOf('## Tear down'),
    );
    const documented = new Map(
      [...section.matchAll(/^\| (\w+)\s+\| ([\d.]+) MB\s+\| ([\d.]+) MB\s+\|$/gm)].map((m) => [
        m[1]!,
        [Number(m[2]), Number(m[3])],
      ]),
    );
    const stale = measured.filter(([name, x64, arm]) => {
      const [docX64, docArm] = documented.get(name) ?? [NaN, NaN];
      return !(Math.abs(docX64! - x64) <= 0.5 && Math.abs(docArm! - arm) <= 0.5);
    });
    expectWithMessage(stale, `docs/deploy.md sizes are out of date; measured:\n${table}`).toEqual([]);
  });

  it('keeps onnxruntime out of the trigger, plan, finalize, rollout, refresh and monitor bundles', () => {
    for (const stack of ['Tandem', 'TandemArm']) {
      for (const size of sizes.filter((s) => s.stack === stack && !ORT_FUNCTIONS.test(s.logicalId))) {
        expectWithMessage(listFiles(size.codeDirectory).sort(), size.logicalId).toEqual([
          'index.mjs',
          'index.mjs.map',
        ]);
        const code = fs.readFileSync(path.join(size.codeDirectory, 'index.mjs'), 'utf8');
        expectWithMessage(code, size.logicalId).not.toMatch(/from\s*["']onnxruntime-node["']/);
        expectWithMessage(size.totalMb, size.logicalId).toBeLessThan(10);
      }
    }
  });

  it('bundles no AWS SDK code: every @aws-sdk/* import is left to the Lambda runtime; bundles are minified', () => {
    for (const size of sizes) {
      const map = JSON.parse(fs.readFileSync(path.join(size.codeDirectory, 'index.mjs.map'), 'utf8')) as {
        sources: string[];
      };
      expectWithMessage(map.sources.length, size.logicalId).toBeGreaterThan(0);
      expectWithMessage(
        map.sources.filter((source) => /node_modules\/@(aws-sdk|smithy)\//.test(source)),
        size.logicalId,
      ).toEqual([]);
      const code = fs.readFileSync(path.join(size.codeDirectory, 'index.mjs'), 'utf8');
      // Imported from the runtime, statically or (the API function: only when its configuration needs it)
      // dynamically.
      expectWithMessage(code, size.logicalId).toMatch(
        /(?:from\s*|import\(\s*)["']@aws-sdk\/client-[a-z0-9-]+["']/,
      );
      // Minified: long lines (esbuild keeps a line break only where a statement needs one). Lines of an
      // embedded base64 blob (a dependency's data, wrapped at 80 characters inside a string) do not count.
      const lines = code.split('\n').filter((line) => !/^[A-Za-z0-9+/=]{60,100}$/.test(line));
      const chars = lines.reduce((total, line) => total + line.length, 0);
      expectWithMessage(chars / lines.length, size.logicalId).toBeGreaterThan(500);
    }
    const imports = (pattern: RegExp): string[] => {
      const code = fs.readFileSync(path.join(of('Tandem', pattern).codeDirectory, 'index.mjs'), 'utf8');
      return [...code.matchAll(/from\s*["'](@aws-sdk\/[a-z0-9-]+)["']/g)].map((m) => m[1]!);
    };
    expect(imports(/BatchScoreFunction/)).toEqual(
      expect.arrayContaining(['@aws-sdk/lib-storage', '@aws-sdk/util-dynamodb', '@aws-sdk/client-s3']),
    );
    expect(imports(/ApiPredictFunction/)).toEqual(expect.arrayContaining(['@aws-sdk/util-dynamodb']));
  });

  it('keeps the error class names Step Functions matches on (minified code would rename them)', () => {
    for (const pattern of [/BatchPlanFunction/, /BatchScoreFunction/]) {
      const code = fs.readFileSync(path.join(of('Tandem', pattern).codeDirectory, 'index.mjs'), 'utf8');
      for (const name of NON_RETRYABLE_ERRORS)
        expectWithMessage(code, String(pattern)).toContain(`"${name}"`);
    }
    const rollout = fs.readFileSync(
      path.join(of('Tandem', /RolloutStepFunction/).codeDirectory, 'index.mjs'),
      'utf8',
    );
    for (const name of ROLLOUT_NON_RETRYABLE_ERRORS) expect(rollout).toContain(`"${name}"`);
  });

  it.each([
    ['Tandem', 'x64'],
    ['TandemArm', 'arm64'],
  ] as const)(
    '%s: predict and score ship exactly the pruned onnxruntime-node for linux/%s',
    (stack, arch) => {
      const expected = [
        'index.mjs',
        'index.mjs.map',
        ...stageOnnxRuntime({ projectRoot: REPO_ROOT, arch }).files,
      ].sort();
      for (const pattern of [/ApiPredictFunction/, /BatchScoreFunction/]) {
        const size = of(stack, pattern);
        const files = listFiles(size.codeDirectory).sort();
        expect(files).toEqual(expected);
        expect(files).toContain(
          `node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/onnxruntime_binding.node`,
        );
        expect(files).toContain(
          `node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/libonnxruntime.so.1`,
        );
        expect(files.filter((f) => /darwin|win32|cuda|tensorrt/i.test(f))).toEqual([]);
        const code = fs.readFileSync(path.join(size.codeDirectory, 'index.mjs'), 'utf8');
        expect(code.startsWith("import { createRequire as __tandemCreateRequire } from 'node:module';")).toBe(
          true,
        );
        expect(code).toMatch(/from\s*["']onnxruntime-node["']/);
      }
    },
  );

  it('runs the predict bundle: ES module, top-level await, onnxruntime from its own node_modules', () => {
    const dir = of('Tandem', /ApiPredictFunction/).codeDirectory;
    const event = (method: string, rawPath: string, body?: unknown) => ({
      version: '2.0',
      routeKey: '$default',
      rawPath,
      rawQueryString: '',
      headers: { 'content-type': 'application/json' },
      requestContext: {
        http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
        requestId: 'r-1',
        stage: '$default',
        timeEpoch: 0,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      isBase64Encoded: false,
    });
    const features = {
      amount: 912.5,
      hour_of_day: 3,
      day_of_week: 6,
      merchant_category: 'electronics',
      channel: 'online',
      card_present: false,
      is_international: true,
      distance_from_home_km: 4200,
      txn_count_1h: 4,
      txn_count_24h: 9,
      amount_to_avg_ratio: 8.4,
      account_age_days: 40,
      customer_age: 23,
      merchant_risk_score: 0.8,
      prior_chargebacks: 1,
    };
    const script = `
      import { createRequire } from 'node:module';
      import { pathToFileURL } from 'node:url';
      const { handler } = await import(pathToFileURL(${JSON.stringify(path.join(dir, 'index.mjs'))}).href);
      const context = { awsRequestId: 'r-1', functionName: 'predict', getRemainingTimeInMillis: () => 10000 };
      const ready = await handler(${JSON.stringify(event('GET', '/ready'))}, context);
      const predicted = await handler(${JSON.stringify(event('POST', '/predict', { id: 'txn-new-1', features }))}, context);
      const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('onnxruntime'));
      console.log(JSON.stringify({ ready, predicted, loaded }));
    `;
    const result = runNode(script, root, {
      MODELS_URI: path.join(REPO_ROOT, 'models'),
      DEFAULT_MODEL: 'fraud-detector',
    });
    expect(result.stderr.split('\n').filter((l) => /Error/.test(l))).toEqual([]);
    expect(result.status).toBe(0);
    const out = JSON.parse(result.stdout.trim().split('\n').pop()!) as {
      ready: { statusCode: number; body: string };
      predicted: { statusCode: number; body: string };
      loaded: string[];
    };
    expect(out.ready.statusCode).toBe(200);
    expect(out.predicted.statusCode).toBe(200);
    expect(JSON.parse(out.predicted.body)).toMatchObject({
      id: 'txn-new-1',
      source: 'model',
      model: { name: 'fraud-detector' },
    });
    expect(out.loaded.length).toBeGreaterThan(0);
    for (const file of out.loaded) expect(file.startsWith(fs.realpathSync(dir))).toBe(true);
  });

  it('creates a session on the demo model with the pruned onnxruntime-node of the score bundle', () => {
    const dir = of('Tandem', /BatchScoreFunction/).codeDirectory;
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(${JSON.stringify(path.join(dir, 'index.mjs'))});
      const resolved = require.resolve('onnxruntime-node');
      const ort = require('onnxruntime-node');
      const session = await ort.InferenceSession.create(${JSON.stringify(MODEL)}, { intraOpNumThreads: 1, interOpNumThreads: 1 });
      console.log(JSON.stringify({ resolved, inputs: session.inputNames, outputs: session.outputNames }));
    `;
    const result = runNode(script, root);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const out = JSON.parse(result.stdout.trim()) as { resolved: string; inputs: string[]; outputs: string[] };
    expect(out.resolved).toBe(
      path.join(fs.realpathSync(dir), 'node_modules', 'onnxruntime-node', 'dist', 'index.js'),
    );
    expect(out.inputs.length).toBeGreaterThan(0);
    expect(out.outputs.length).toBeGreaterThan(0);
  });
});

describe('measureFunctionAssets', () => {
  it("adds a function's layers to its code, unzipped", () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-measure-'));
    try {
      const code = path.join(root, 'code');
      const layer = path.join(root, 'layer', 'nodejs', 'node_modules', 'dep');
      fs.mkdirSync(code, { recursive: true });
      fs.mkdirSync(layer, { recursive: true });
      fs.writeFileSync(path.join(code, 'index.mjs'), Buffer.alloc(1000, 'a'));
      fs.writeFileSync(path.join(code, 'extra.bin'), Buffer.alloc(234, 1));
      fs.writeFileSync(path.join(layer, 'index.js'), Buffer.alloc(5000, 'b'));
      const app = new App({ outdir: path.join(root, 'cdk.out') });
      const stack = new Stack(app, 'Measured');
      const withLayer = new lambda.LayerVersion(stack, 'Layer', {
        code: lambda.Code.fromAsset(path.join(root, 'layer')),
      });
      new lambda.Function(stack, 'WithLayer', {
        runtime: lambda.Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: lambda.Code.fromAsset(code),
        layers: [withLayer],
      });
      new lambda.Function(stack, 'Inline', {
        runtime: lambda.Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => 1;'),
      });
      const measured = measureFunctionAssets(app.synth());
      // The inline function has no asset to measure.
      expect(
        measured.map((m) => [m.logicalId.replace(/[0-9A-F]{8}$/, ''), m.codeBytes, m.layerBytes]),
      ).toEqual([['WithLayer', 1234, 5000]]);
      expect(measured[0]!.totalBytes).toBe(6234);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
