/**
 * coldStart.predictAssetMb: the predict function's deployed size (code bundle plus the pruned
 * onnxruntime-node it ships with), unzipped, in MB, as the CDK stack packages it (a real synth with the
 * local esbuild). Target: <= 60.
 */
import { measureTandemAssets, predictAssetMb } from '../lib/asset-sizes.ts';

export async function measurePredictAssetMb(): Promise<number | null> {
  return predictAssetMb(await measureTandemAssets()) ?? null;
}
