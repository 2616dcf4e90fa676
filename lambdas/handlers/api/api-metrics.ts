/**
 * The API's CloudWatch metrics, aggregated per execution environment and published by Powertools Metrics
 * as EMF records.
 *
 * Publishing a record costs more than the model run of a small model (serializing, plus one write to
 * stdout that wakes the log reader), so a request only adds its values to a buffer here, and the buffer
 * is published at the end of a request when the last publication is at least `flushIntervalMs` old, or as
 * soon as a metric holds EMF's limit of values. A function that serves fewer requests than one per interval
 * therefore publishes after every request, as before; a busy one publishes about once per interval.
 * Distributions (request size, model latency, served-entry age) keep every value; counts are summed per
 * record, so their `Sum` is exact (their `SampleCount` counts records, not requests). Each record carries
 * the time of its first value. What a burst leaves in the buffer is published by the next request, before
 * it adds its own values; if Lambda shuts the environment down first, those last values (at most one
 * interval's worth) are lost. `flushIntervalMs` 0 publishes after every request.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

type Unit = (typeof MetricUnit)[keyof typeof MetricUnit];

/**
 * Values per metric in one record. EMF takes 100; Powertools publishes by itself when a metric reaches
 * 100, in the middle of adding a record, so a record is cut one short of that.
 */
export const MAX_VALUES_PER_RECORD = 99;

/** Powertools Metrics, saying whether it publishes at all (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV). */
export class PowertoolsMetrics extends Metrics {
  publishes(): boolean {
    return !this.isDisabled();
  }
}

export type MetricsSink = Pick<
  PowertoolsMetrics,
  'addMetric' | 'publishStoredMetrics' | 'setTimestamp' | 'publishes' | 'addDimensions'
>;

interface Distribution {
  readonly unit: Unit;
  readonly values: number[];
}

/** The dimensions of a version's metrics: which model and version answered. */
export interface VersionDimensions {
  /** Published as the `model` dimension. */
  readonly name: string;
  readonly version: string;
  /** Shadow comparisons: the shadow version compared with `version` (published as `shadowVersion`). */
  readonly shadowVersion?: string;
}

/** The values buffered for one set of dimensions (none: the service-level metrics). */
interface Group {
  readonly dimensions: VersionDimensions | undefined;
  readonly counts: Map<string, number>;
  readonly distributions: Map<string, Distribution>;
}

const newGroup = (dimensions: VersionDimensions | undefined): Group => ({
  dimensions,
  counts: new Map(),
  distributions: new Map(),
});

/**
 * Sees every per-version value as it is added, whether Powertools publishes or not: the local stack keeps
 * per-version windows with it for the automatic rollout's checks (local/version-metrics.ts).
 */
export type VersionMetricsTap = (name: string, value: number, version: VersionDimensions) => void;

export class ApiMetrics {
  /** Whether Powertools publishes (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV turn it off). */
  private readonly publishes: boolean;
  private readonly taps: VersionMetricsTap[] = [];
  private readonly service = newGroup(undefined);
  /** Per `<model>\0<version>`: metrics with the model and version as dimensions (a record each). */
  private readonly versions = new Map<string, Group>();
  private firstAt: number | undefined;
  private lastPublishedAt = Number.NEGATIVE_INFINITY;
  private full = false;

  constructor(
    private readonly metrics: MetricsSink,
    private readonly flushIntervalMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.publishes = metrics.publishes();
  }

  /** False when nothing is kept: Powertools publishes nothing and no tap listens. */
  get enabled(): boolean {
    return this.publishes || this.taps.length > 0;
  }

  /** Adds a listener of the per-version values. */
  tap(listener: VersionMetricsTap): void {
    this.taps.push(listener);
  }

  /** Called when a request starts: publishes what an earlier burst left, stamped with its own time. */
  begin(): void {
    if (this.firstAt !== undefined && this.now() - this.firstAt >= this.flushIntervalMs) this.publish();
  }

  /** Adds to a count (summed per record); zero adds nothing. With `version`, to that version's record. */
  count(name: string, value: number, version?: VersionDimensions): void {
    if (version) for (const tap of this.taps) tap(name, value, version);
    if (!this.publishes || value === 0) return;
    this.firstAt ??= this.now();
    const { counts } = this.group(version);
    counts.set(name, (counts.get(name) ?? 0) + value);
  }

  /** Adds one value of a distribution. With `version`, to that version's record. */
  value(name: string, unit: Unit, value: number, version?: VersionDimensions): void {
    if (version) for (const tap of this.taps) tap(name, value, version);
    if (!this.publishes) return;
    this.firstAt ??= this.now();
    const { distributions } = this.group(version);
    let distribution = distributions.get(name);
    if (!distribution) {
      distribution = { unit, values: [] };
      distributions.set(name, distribution);
    }
    distribution.values.push(value);
    if (distribution.values.length >= MAX_VALUES_PER_RECORD) this.full = true;
  }

  /** Called when a request ends: publishes the buffer when it is due. */
  end(): void {
    if (this.firstAt === undefined) return;
    if (this.full || this.now() - this.lastPublishedAt >= this.flushIntervalMs) {
      this.publish();
      this.lastPublishedAt = this.now();
    }
  }

  /** Publishes whatever is buffered now (a process about to stop). */
  flush(): void {
    if (this.firstAt !== undefined) this.publish();
  }

  private group(version: VersionDimensions | undefined): Group {
    if (!version) return this.service;
    const key = `${version.name}\0${version.version}\0${version.shadowVersion ?? ''}`;
    let group = this.versions.get(key);
    if (!group) {
      group = newGroup({
        name: version.name,
        version: version.version,
        ...(version.shadowVersion !== undefined ? { shadowVersion: version.shadowVersion } : {}),
      });
      this.versions.set(key, group);
    }
    return group;
  }

  private publish(): void {
    const firstAt = this.firstAt!;
    this.firstAt = undefined;
    this.full = false;
    this.publishGroup(this.service, firstAt);
    for (const group of this.versions.values()) this.publishGroup(group, firstAt);
    // A version that stops answering (ended canary) stops having a record.
    this.versions.clear();
  }

  /** One record per group (dimensions are cleared by each publication, so they are added to each). */
  private publishGroup({ dimensions, counts, distributions }: Group, firstAt: number): void {
    if (counts.size === 0 && distributions.size === 0) return;
    const open = (): void => {
      this.metrics.setTimestamp(firstAt);
      if (dimensions)
        this.metrics.addDimensions({
          model: dimensions.name,
          version: dimensions.version,
          ...(dimensions.shadowVersion !== undefined ? { shadowVersion: dimensions.shadowVersion } : {}),
        });
    };
    open();
    for (const [name, total] of counts) this.metrics.addMetric(name, MetricUnit.Count, total);
    for (const [name, { unit, values }] of distributions) {
      // A distribution over the record's limit (one request with many cache hits) goes out in slices.
      for (let start = 0; start < values.length; start += MAX_VALUES_PER_RECORD) {
        if (start > 0) {
          this.metrics.publishStoredMetrics();
          open();
        }
        const end = Math.min(values.length, start + MAX_VALUES_PER_RECORD);
        for (let i = start; i < end; i++) this.metrics.addMetric(name, unit, values[i]!);
      }
    }
    counts.clear();
    distributions.clear();
    this.metrics.publishStoredMetrics();
  }
}
