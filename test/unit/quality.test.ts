/**
 * Live quality maths against hand-computed values, and the join rule (latest prediction at or before
 * the outcome, per version; one outcome per id).
 */
import { describe, expect, it } from '@jest/globals';
import {
  classifierFigures,
  logLoss,
  qualityMetrics,
  qualityReport,
  regressorFigures,
  rocAuc,
  type PredictionInput,
} from '../../lambdas/core/monitoring/quality.ts';

const p = (fraud: number) => ({
  label: fraud >= 0.5 ? 'fraud' : 'legit',
  probabilities: { legit: 1 - fraud, fraud },
});

describe('ROC AUC', () => {
  it('is 1 for a perfect ranking and 0 for a reversed one', () => {
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], [false, false, true, true])).toBe(1);
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], [false, false, true, true])).toBe(0);
  });

  it('counts a tie between a positive and a negative as one half', () => {
    // Pairs (positive, negative): (0.5,0.5) tie = 0.5, (0.5,0.1) = 1, (0.9,0.5) = 1, (0.9,0.1) = 1 -> 3.5 / 4.
    expect(rocAuc([0.1, 0.5, 0.5, 0.9], [false, false, true, true])).toBeCloseTo(0.875, 12);
    // All scores equal: every pair is a tie.
    expect(rocAuc([0.3, 0.3, 0.3], [true, false, false])).toBeCloseTo(0.5, 12);
  });

  it('matches the pair count on an unordered sample with ties', () => {
    const scores = [0.8, 0.4, 0.4, 0.7, 0.1, 0.4];
    const truth = [true, true, false, false, false, true];
    // Positives 0.8, 0.4, 0.4 vs negatives 0.4, 0.7, 0.1:
    // 0.8: 1 + 1 + 1 = 3; 0.4: 0.5 + 0 + 1 = 1.5 (twice) -> 6 / 9.
    expect(rocAuc(scores, truth)).toBeCloseTo(6 / 9, 12);
  });

  it('is null when only one class is present', () => {
    expect(rocAuc([0.1, 0.9], [true, true])).toBeNull();
    expect(rocAuc([], [])).toBeNull();
  });
});

describe('log loss', () => {
  it('is the mean of -ln(p of the observed class)', () => {
    expect(logLoss([0.9, 0.6])).toBeCloseTo(-(Math.log(0.9) + Math.log(0.6)) / 2, 12);
  });

  it('clips probabilities of 0 and 1 to [1e-15, 1 - 1e-15] instead of returning Infinity or 0', () => {
    expect(logLoss([0])).toBeCloseTo(-Math.log(1e-15), 9);
    expect(logLoss([0])).toBeCloseTo(34.538776394910684, 9);
    expect(logLoss([1])).toBeCloseTo(-Math.log(1 - 1e-15), 20);
    expect(logLoss([1])).toBeGreaterThan(0);
    expect(logLoss([])).toBeNull();
  });
});

describe('classifier figures', () => {
  it('binary: accuracy, AUC of the second class, log loss of the observed class', () => {
    const figures = classifierFigures(
      [
        { truth: 'fraud', prediction: p(0.9) },
        { truth: 'legit', prediction: p(0.2) },
        { truth: 'fraud', prediction: p(0.4) },
        { truth: 'legit', prediction: p(0.6) },
      ],
      ['legit', 'fraud'],
    );
    expect(figures.accuracy).toBe(0.5);
    // Positives 0.9, 0.4 vs negatives 0.2, 0.6: 0.9 beats both (2), 0.4 beats 0.2 (1) -> 3 / 4.
    expect(figures.rocAuc).toBeCloseTo(0.75, 12);
    expect(figures.logLoss).toBeCloseTo(
      -(Math.log(0.9) + Math.log(0.8) + Math.log(0.4) + Math.log(0.4)) / 4,
      12,
    );
    expect(figures.count).toBe(4);
    expect(figures.withProbabilities).toBe(4);
  });

  it('multi-class: one-vs-rest AUC averaged over the classes with both outcomes', () => {
    const q = (a: number, b: number, c: number) => ({
      label: a >= b && a >= c ? 'a' : b >= c ? 'b' : 'c',
      probabilities: { a, b, c },
    });
    const figures = classifierFigures(
      [
        { truth: 'a', prediction: q(0.7, 0.2, 0.1) },
        { truth: 'b', prediction: q(0.3, 0.4, 0.3) },
        { truth: 'c', prediction: q(0.5, 0.1, 0.4) },
        { truth: 'a', prediction: q(0.2, 0.5, 0.3) },
      ],
      ['a', 'b', 'c'],
    );
    // a: positives 0.7, 0.2 vs negatives 0.3, 0.5 -> 0.7 beats both (2), 0.2 none -> 2/4 = 0.5
    // b: positive 0.4 vs 0.2, 0.1, 0.5 -> 2/3
    // c: positive 0.4 vs 0.1, 0.3, 0.3 -> 3/3 = 1
    expect(figures.rocAuc).toBeCloseTo((0.5 + 2 / 3 + 1) / 3, 12);
    expect(figures.accuracy).toBe(0.5);
    expect(figures.logLoss).toBeCloseTo(
      -(Math.log(0.7) + Math.log(0.4) + Math.log(0.4) + Math.log(0.2)) / 4,
      12,
    );
  });

  it('labels without probabilities count for accuracy only', () => {
    const figures = classifierFigures(
      [
        { truth: 1, prediction: { label: 1 } },
        { truth: 0, prediction: { label: 1 } },
      ],
      [0, 1],
    );
    expect(figures).toMatchObject({ accuracy: 0.5, withProbabilities: 0, rocAuc: null, logLoss: null });
  });
});

describe('regressor figures', () => {
  it('MAE and RMSE', () => {
    const figures = regressorFigures([
      { truth: 10, prediction: { value: 12 } },
      { truth: 5, prediction: { value: 4 } },
      { truth: 0, prediction: { value: -2 } },
    ]);
    expect(figures.mae).toBeCloseTo(5 / 3, 12);
    expect(figures.rmse).toBeCloseTo(Math.sqrt(9 / 3), 12);
    expect(regressorFigures([])).toMatchObject({ count: 0, mae: null, rmse: null });
  });
});

describe('the join of outcomes and predictions', () => {
  const t = (minute: number) => Date.UTC(2026, 11, 6, 12, minute);
  const prediction = (
    id: string,
    version: string,
    minute: number,
    fraud: number,
    origin = 'realtime',
  ): PredictionInput => ({
    id,
    version,
    prediction: p(fraud),
    timeMs: t(minute),
    origin,
  });
  const window = { fromMs: t(0), toMs: t(59) };

  it('takes, per version, the latest prediction made at or before the outcome was observed', () => {
    const report = qualityReport({
      model: 'm',
      task: 'binary-classification',
      classes: ['legit', 'fraud'],
      window,
      outcomes: [{ id: 'a', label: 'fraud', observedAtMs: t(30) }],
      predictions: [
        prediction('a', '1', 10, 0.2),
        prediction('a', '1', 20, 0.9, 'table'), // the latest before t(30): this one
        prediction('a', '1', 40, 0.1), // after the outcome: not a forecast of it
        prediction('a', '2', 45, 0.1), // version 2 only predicted after: no match for it
      ],
    });
    expect(report.versions.map((v) => v.version)).toEqual(['1']);
    expect(report.versions[0]!.matchedBy).toEqual({ table: 1 });
    expect(report.versions[0]!.figures).toMatchObject({ accuracy: 1, count: 1 });
    expect(report.unmatched).toBe(0);
  });

  it('keeps one outcome per id (the latest observed) and counts outcomes with no prediction', () => {
    const report = qualityReport({
      model: 'm',
      task: 'binary-classification',
      classes: ['legit', 'fraud'],
      window,
      outcomes: [
        { id: 'a', label: 'legit', observedAtMs: t(30) },
        { id: 'a', label: 'fraud', observedAtMs: t(31) },
        { id: 'b', label: 'fraud', observedAtMs: t(31) },
        { id: 'late', label: 'fraud', observedAtMs: t(0) - 1 }, // before the window
      ],
      predictions: [prediction('a', '1', 10, 0.9)],
    });
    expect(report.outcomes).toBe(2);
    expect(report.unmatched).toBe(1);
    expect(report.versions[0]!.figures).toMatchObject({ count: 1, accuracy: 1 });
  });

  it('reports "no data" when nothing matches, and publishes no figure then', () => {
    const report = qualityReport({
      model: 'm',
      task: 'regression',
      window,
      outcomes: [],
      predictions: [],
    });
    expect(report.status).toBe('no data');
    expect(qualityMetrics(report)).toEqual([]);
  });

  it('publishes each version figure with the model and version', () => {
    const report = qualityReport({
      model: 'm',
      task: 'regression',
      window,
      outcomes: [{ id: 'a', value: 3, observedAtMs: t(30) }],
      predictions: [{ id: 'a', version: '2', prediction: { value: 5 }, timeMs: t(1), origin: 'batch' }],
    });
    expect(qualityMetrics(report)).toEqual([
      { name: 'QualityMatched', value: 1, model: 'm', version: '2' },
      { name: 'Mae', value: 2, model: 'm', version: '2' },
      { name: 'Rmse', value: 2, model: 'm', version: '2' },
    ]);
  });
});
