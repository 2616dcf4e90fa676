import { describe, expect, it } from '@jest/globals';
import { ConfigError, readApiConfig } from '../../lambdas/handlers/config.ts';

const base = { MODELS_URI: 's3://bucket/models/', DEFAULT_MODEL: 'fraud-detector' };

describe('readApiConfig', () => {
  it('defaults: metrics published at most once a second, no debug sampling', () => {
    const config = readApiConfig({ ...base });
    expect(config.metricsFlushMs).toBe(1000);
    expect(config.sampleDebugLogs).toBe(false);
    expect(config.logPayloads).toBe(false);
  });

  it('takes METRICS_FLUSH_MS from 0 (every request) to 60000 and rejects anything else by name', () => {
    expect(readApiConfig({ ...base, METRICS_FLUSH_MS: '0' }).metricsFlushMs).toBe(0);
    expect(readApiConfig({ ...base, METRICS_FLUSH_MS: '60000' }).metricsFlushMs).toBe(60_000);
    for (const bad of ['-1', '60001', '1.5', 'soon']) {
      expect(() => readApiConfig({ ...base, METRICS_FLUSH_MS: bad })).toThrow(ConfigError);
      expect(() => readApiConfig({ ...base, METRICS_FLUSH_MS: bad })).toThrow(/METRICS_FLUSH_MS/);
    }
  });

  it('re-draws debug sampling per request only when Powertools has a sample rate', () => {
    expect(readApiConfig({ ...base, POWERTOOLS_LOGGER_SAMPLE_RATE: '0.01' }).sampleDebugLogs).toBe(true);
    expect(readApiConfig({ ...base, POWERTOOLS_LOGGER_SAMPLE_RATE: '0' }).sampleDebugLogs).toBe(false);
  });
});
