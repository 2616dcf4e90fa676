/**
 * One comparison of a shadow version's answer with the live version's, on the same input: whether the
 * labels agree (classifiers), and the absolute difference of the probability the two give the live label
 * (classifiers), or of the value (regressors; the largest over the outputs of a multi-output regressor).
 */
import type { Prediction } from '../predictions.ts';

export interface Comparison {
  /** Classifiers: the two labels are equal; undefined for regressors. */
  readonly agreement: boolean | undefined;
  /** Null when it cannot be computed (a classifier without probabilities, different output shapes). */
  readonly absDifference: number | null;
}

export function comparePredictions(live: Prediction, shadow: Prediction): Comparison {
  if ('label' in live) {
    if (!('label' in shadow)) return { agreement: false, absDifference: null };
    const key = String(live.label);
    const p = live.probabilities?.[key];
    const q = shadow.probabilities?.[key];
    return {
      agreement: String(live.label) === String(shadow.label),
      absDifference: p === undefined || q === undefined ? null : Math.abs(p - q),
    };
  }
  if ('value' in live) {
    return {
      agreement: undefined,
      absDifference: 'value' in shadow ? Math.abs(live.value - shadow.value) : null,
    };
  }
  if (!('values' in shadow) || shadow.values.length !== live.values.length) {
    return { agreement: undefined, absDifference: null };
  }
  let largest = 0;
  live.values.forEach((v, i) => (largest = Math.max(largest, Math.abs(v - shadow.values[i]!))));
  return { agreement: undefined, absDifference: largest };
}
