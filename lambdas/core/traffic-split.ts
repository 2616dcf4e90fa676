/**
 * Which version answers an instance while a canary runs. Instances with an entity id are assigned by a
 * stable hash of (model, id), so an entity sees one version for the whole canary (and the same one in
 * every execution environment); instances without an id are assigned at random.
 */
import { createHash } from 'node:crypto';

/** A canary as the pointer states it: the candidate version and the share of traffic it takes. */
export interface CanarySplit {
  readonly version: string;
  /** 0 < percent < 100 (percent of instances). */
  readonly percent: number;
}

/** Buckets per 100 %: percentages are honoured to 0.01 %. */
const BUCKETS = 10_000;

/** The bucket (0..9999) of an entity of a model: the first 32 bits of SHA-256("<model>\0<id>"). */
export function canaryBucket(model: string, id: string): number {
  const digest = createHash('sha256').update(model).update('\0').update(id).digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** Whether an instance goes to the candidate: by its id's bucket, or at random without an id. */
export function goesToCanary(
  model: string,
  id: string | undefined,
  percent: number,
  random: () => number = Math.random,
): boolean {
  const threshold = Math.round(percent * (BUCKETS / 100));
  const bucket = id === undefined ? Math.floor(random() * BUCKETS) : canaryBucket(model, id);
  return bucket < threshold;
}

/** A canary percentage as the pointer and the command accept it: a number in [0, 100], 0 meaning none. */
export function isCanaryPercent(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 100;
}

/** A shadow's sample fraction as the pointer and the command accept it: a number in [0, 1], 0 meaning none. */
export function isShadowSample(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 1;
}
