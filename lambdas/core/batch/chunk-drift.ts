/**
 * A chunk's drift counts: each scored row's features, read back from its micro-batch's tensors (so the
 * CSV fast path and the general path count alike), and its prediction, binned against the baseline the
 * plan pinned. The values are the validated ones: a missing optional feature counts as its default.
 */
import { DriftAccumulator, type DriftCounts } from '../monitoring/drift.ts';
import type { Baseline } from '../monitoring/baseline.ts';
import type { Prediction } from '../predictions.ts';
import type { BatchModel } from './batch-model.ts';
import type { FeedBatch } from './feed-batch.ts';

interface Location {
  readonly plan: number;
  readonly column: number;
  /** A category packed as its index in a numeric input: the manifest's values. */
  readonly values?: readonly string[];
}

export class ChunkDrift {
  private readonly accumulator: DriftAccumulator;
  private readonly locations = new Map<string, Location>();

  constructor(baseline: Baseline, model: Pick<BatchModel, 'manifest' | 'inputPlans'>) {
    this.accumulator = new DriftAccumulator(baseline);
    model.inputPlans.forEach((plan, p) =>
      plan.columns.forEach((position, column) => {
        const feature = model.manifest.features[position];
        if (!feature) return;
        const values =
          plan.type !== 'string' && (feature.type === 'category' || feature.type === 'string')
            ? feature.values
            : undefined;
        this.locations.set(feature.name, { plan: p, column, ...(values ? { values } : {}) });
      }),
    );
  }

  get counts(): DriftCounts {
    return this.accumulator.counts;
  }

  add(batch: FeedBatch, predictions: readonly Prediction[]): void {
    for (let i = 0; i < batch.count; i++) {
      this.accumulator.addFeatures((name) => {
        const at = this.locations.get(name);
        if (!at) return undefined;
        const value = batch.valueAt(i, at.plan, at.column);
        return at.values ? (typeof value === 'number' ? at.values[value] : undefined) : value;
      });
      const prediction = predictions[i];
      if (prediction) this.accumulator.addPrediction(prediction);
    }
  }
}
