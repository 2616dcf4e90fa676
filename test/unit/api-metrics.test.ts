import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import {
  ApiMetrics,
  MAX_VALUES_PER_RECORD,
  PowertoolsMetrics,
  type MetricsSink,
} from '../../lambdas/handlers/api/api-metrics.ts';
import { stubEnv, unstubAllEnvs } from '../support/stub-env.ts';

/** A sink that keeps what would be published: one entry per record. */
function recordingSink(publishes = true) {
  type Record_ = {
    timestamp: number | undefined;
    metrics: Record<string, number[]>;
    dimensions?: Record<string, string>;
  };
  const records: Record_[] = [];
  let current: Record_ = { timestamp: undefined, metrics: {} };
  const sink: MetricsSink = {
    publishes: () => publishes,
    setTimestamp(timestamp) {
      current.timestamp = timestamp as number;
      return sink as never;
    },
    addDimensions(dimensions) {
      current.dimensions = { ...current.dimensions, ...dimensions };
      return sink as never;
    },
    addMetric(name, _unit, value) {
      (current.metrics[name] ??= []).push(value);
      return sink as never;
    },
    publishStoredMetrics() {
      if (Object.keys(current.metrics).length > 0) records.push(current);
      current = { timestamp: undefined, metrics: {} };
      return sink as never;
    },
  };
  return { sink, records };
}

function request(metrics: ApiMetrics, latency: number): void {
  metrics.begin();
  metrics.value('ModelLatency', MetricUnit.Milliseconds, latency);
  metrics.count('CacheHit', 1);
  metrics.count('CacheMiss', 0);
  metrics.end();
}

describe('ApiMetrics', () => {
  afterEach(() => {
    unstubAllEnvs();
    jest.restoreAllMocks();
  }, 60_000);

  it('publishes after every request when requests are further apart than the interval', () => {
    let now = 10_000;
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 1000, () => now);
    request(metrics, 1.5);
    now += 5000;
    request(metrics, 2.5);
    expect(records).toEqual([
      { timestamp: 10_000, metrics: { CacheHit: [1], ModelLatency: [1.5] } },
      { timestamp: 15_000, metrics: { CacheHit: [1], ModelLatency: [2.5] } },
    ]);
  });

  it('aggregates a burst into one record: every latency kept, counts summed, zero counts left out', () => {
    let now = 10_000;
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 1000, () => now);
    request(metrics, 1); // first request: published at once
    for (let i = 1; i <= 9; i++) {
      now += 100;
      request(metrics, 10 + i);
    }
    expect(records).toHaveLength(1);
    now += 100; // 1,000 ms after the last publication
    request(metrics, 99);
    expect(records[1]).toEqual({
      timestamp: 10_100,
      metrics: { CacheHit: [10], ModelLatency: [11, 12, 13, 14, 15, 16, 17, 18, 19, 99] },
    });
  });

  it('publishes a burst left in the buffer with its own time before the next request adds to it', () => {
    let now = 0;
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 1000, () => now);
    request(metrics, 1);
    now = 200;
    request(metrics, 2); // buffered
    now = 600_000;
    request(metrics, 3);
    expect(records.map((r) => [r.timestamp, r.metrics['ModelLatency']])).toEqual([
      [0, [1]],
      [200, [2]],
      [600_000, [3]],
    ]);
  });

  it('publishes when a metric reaches the values one record may hold', () => {
    let now = 0;
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 60_000, () => now);
    for (let i = 0; i < 1 + MAX_VALUES_PER_RECORD; i++) {
      now++;
      request(metrics, i);
    }
    expect(records.map((r) => r.metrics['ModelLatency']!.length)).toEqual([1, MAX_VALUES_PER_RECORD]);
    expect(records[1]!.metrics['CacheHit']).toEqual([MAX_VALUES_PER_RECORD]);
  });

  it('splits one request with more values than a record holds into several records', () => {
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 0, () => 5);
    metrics.begin();
    for (let i = 0; i < 250; i++) metrics.value('CacheEntryAgeSeconds', MetricUnit.Seconds, i);
    metrics.end();
    expect(records.map((r) => r.metrics['CacheEntryAgeSeconds']!.length)).toEqual([99, 99, 52]);
    expect(records.flatMap((r) => r.metrics['CacheEntryAgeSeconds'])).toEqual(
      Array.from({ length: 250 }, (_, i) => i),
    );
    expect(records.every((r) => r.timestamp === 5)).toBe(true);
  });

  it('with interval 0 publishes after every request', () => {
    let now = 0;
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 0, () => now);
    for (let i = 0; i < 3; i++) {
      now += 1;
      request(metrics, i);
    }
    expect(records).toHaveLength(3);
  });

  it('keeps nothing when Powertools metrics are disabled', () => {
    const { sink, records } = recordingSink(false);
    const metrics = new ApiMetrics(sink, 0);
    request(metrics, 1);
    metrics.flush();
    expect(records).toEqual([]);
  });

  it('writes one EMF record through Powertools Metrics', () => {
    stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
    const lines: string[] = [];
    jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    let now = Date.now();
    const metrics = new ApiMetrics(
      new PowertoolsMetrics({ namespace: 'Test', serviceName: 'svc' }),
      1000,
      () => now,
    );
    const start = now;
    request(metrics, 4); // published at once
    now += 10;
    request(metrics, 5);
    now += 10;
    request(metrics, 6);
    metrics.flush();
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toHaveLength(2);
    expect(records[1]).toMatchObject({
      _aws: {
        Timestamp: start + 10,
        CloudWatchMetrics: [
          {
            Namespace: 'Test',
            Dimensions: [['service']],
            Metrics: [
              { Name: 'CacheHit', Unit: 'Count' },
              { Name: 'ModelLatency', Unit: 'Milliseconds' },
            ],
          },
        ],
      },
      service: 'svc',
      CacheHit: 2,
      ModelLatency: [5, 6],
    });
  });

  it('publishes the metrics of each version in a record of its own with model and version as dimensions', () => {
    const { sink, records } = recordingSink();
    const metrics = new ApiMetrics(sink, 0, () => 5000);
    metrics.begin();
    metrics.count('CacheHit', 2);
    metrics.count('Instances', 3, { name: 'fraud', version: '1' });
    metrics.count('Label.yes', 1, { name: 'fraud', version: '1' });
    metrics.count('Instances', 1, { name: 'fraud', version: '2' });
    metrics.count('ProbabilitySum.yes', 0.25, { name: 'fraud', version: '2' });
    metrics.value('ModelLatency', MetricUnit.Milliseconds, 4, { name: 'fraud', version: '2' });
    metrics.end();
    expect(records).toEqual([
      { timestamp: 5000, metrics: { CacheHit: [2] } },
      {
        timestamp: 5000,
        dimensions: { model: 'fraud', version: '1' },
        metrics: { Instances: [3], 'Label.yes': [1] },
      },
      {
        timestamp: 5000,
        dimensions: { model: 'fraud', version: '2' },
        metrics: { Instances: [1], 'ProbabilitySum.yes': [0.25], ModelLatency: [4] },
      },
    ]);
  });
});
