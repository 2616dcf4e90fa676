/**
 * Live quality in the drift monitor's run: the model's quality per version (quality-inputs.ts
 * `measureQuality`) over the outcomes observed in the week before the run, with the task and classes of the
 * live version's manifest (read as JSON: the monitor loads no ONNX session) and every version present
 * under models/<name>/. The monitor job, `npm start` and `tandem monitor run` build it the same way; the
 * report carries it beside `drift`.
 */
import { parseManifest } from '../manifest.ts';
import type { ObjectStore, PredictionStore } from '../ports.ts';
import { measureQuality, type QualityWindow } from './quality-inputs.ts';
import type { QualityMetric, QualityReport } from './quality.ts';

export type MonitorQuality = QualityReport & { readonly unreadableObjects: number };

/** What the monitor needs to measure quality: the bucket, and the table when there is one. */
export interface MonitorQualitySources {
  readonly objects: ObjectStore;
  readonly bucket: string;
  /** Where model packages are in the bucket (`models/`). */
  readonly modelsPrefix: string;
  /** The prediction table; absent: captured predictions only. */
  readonly predictions?: PredictionStore;
  readonly publish?: (metrics: readonly QualityMetric[]) => void;
}

/** The quality of `model` per version, as of `toMs`, with the live version's task (one week of outcomes). */
export async function monitorQuality(
  sources: MonitorQualitySources,
  model: string,
  live: string,
  toMs: number,
): Promise<MonitorQuality> {
  const root = `${sources.modelsPrefix}${model}/`;
  const manifestKey = `${root}${live}/manifest.json`;
  const manifest = parseManifest(
    JSON.parse(new TextDecoder().decode(await sources.objects.readBytes(sources.bucket, manifestKey))),
    manifestKey,
  );
  const versions = [
    ...new Set(
      (await sources.objects.list(sources.bucket, root))
        .map((key) => key.slice(root.length).split('/'))
        .filter((parts) => parts.length === 2 && parts[1] === 'manifest.json')
        .map((parts) => parts[0]!),
    ),
  ].sort();
  const window: QualityWindow = { toMs };
  return measureQuality(
    {
      objects: sources.objects,
      bucket: sources.bucket,
      ...(sources.predictions ? { predictions: sources.predictions } : {}),
      ...(sources.publish ? { publish: sources.publish } : {}),
      now: () => toMs,
    },
    {
      name: model,
      task: manifest.task,
      ...(manifest.outputs.classes ? { classes: manifest.outputs.classes } : {}),
      versions,
    },
    window,
  );
}
