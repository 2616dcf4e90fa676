/**
 * What the API writes when a promotion fails or recovers: one log line per change with its code, and the
 * ModelPointerErrors metric as an EMF record with a per-model and a per-service dimension set.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { PowertoolsMetrics } from '../../lambdas/handlers/api/api-metrics.ts';
import { servingReporter } from '../../lambdas/handlers/api/serving-reporter.ts';
import { stubEnv, unstubAllEnvs } from '../support/stub-env.ts';

let lines: string[];

beforeEach(() => {
  lines = [];
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  jest.spyOn(process.stdout, 'write').mockImplementation(capture);
  jest.spyOn(process.stderr, 'write').mockImplementation(capture);
}, 60_000);
afterEach(() => {
  jest.restoreAllMocks();
}, 60_000);

function records(): Record<string, unknown>[] {
  return lines
    .join('')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function reporter() {
  return servingReporter(
    new Logger({ serviceName: 'tandem-api', logLevel: 'INFO' }),
    new PowertoolsMetrics({ namespace: 'Tandem', serviceName: 'tandem-api' }),
  );
}

describe('serving reporter', () => {
  it('logs a failed promotion as an error with its code, the pointer and the serving version', () => {
    reporter().changed!({
      kind: 'failed',
      name: 'fraud-detector',
      servingVersion: '1.0.0',
      pointerVersion: '2.0.0',
      problem: { code: 'MODEL_CORRUPT', message: 'model.onnx is not a valid ONNX protobuf', since: 0 },
    });
    expect(records()).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message:
          "model fraud-detector: the pointer's version is not serving (MODEL_CORRUPT); 1.0.0 keeps serving",
        model: 'fraud-detector',
        code: 'MODEL_CORRUPT',
        reason: 'model.onnx is not a valid ONNX protobuf',
        pointerVersion: '2.0.0',
        servingVersion: '1.0.0',
      }),
    ]);
  });

  it('logs a recovery and a first load at INFO', () => {
    const events = reporter();
    events.changed!({
      kind: 'serving',
      name: 'm',
      version: '1',
      previousVersion: undefined,
      recovered: undefined,
    });
    events.changed!({
      kind: 'serving',
      name: 'm',
      version: '1',
      previousVersion: '1',
      recovered: { code: 'POINTER_MISSING', message: 'm has no current.json', since: 0 },
    });
    expect(records().map((r) => [r['level'], r['message'], r['recovered']])).toEqual([
      ['INFO', 'model m: 1 serves', undefined],
      [
        'INFO',
        'model m: 1 serves, as the pointer says (recovered from POINTER_MISSING)',
        { code: 'POINTER_MISSING', reason: 'm has no current.json' },
      ],
    ]);
  });

  it('publishes ModelPointerErrors per model and per service: 1 failing, 0 serving', () => {
    stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
    stubEnv('POWERTOOLS_DEV', '');
    const events = reporter();
    events.checked!('fraud-detector', true);
    events.checked!('fraud-detector', false);
    unstubAllEnvs();
    const emf = records().filter((r) => r['_aws']);
    expect(emf.map((r) => r['ModelPointerErrors'])).toEqual([1, 0]);
    expect(emf[0]).toMatchObject({
      service: 'tandem-api',
      model: 'fraud-detector',
      _aws: {
        CloudWatchMetrics: [
          {
            Namespace: 'Tandem',
            Dimensions: [['service', 'model'], ['service']],
            Metrics: [{ Name: 'ModelPointerErrors', Unit: 'Count' }],
          },
        ],
      },
    });
  });

  it('publishes nothing when metrics are off', () => {
    stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
    reporter().checked!('fraud-detector', true);
    unstubAllEnvs();
    expect(records()).toEqual([]);
  });
});
