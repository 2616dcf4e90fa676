/**
 * coldStart.predictAssetMb: the size of the predict function's deployment asset (code bundle plus the
 * onnxruntime layer / asset it ships with), in MB. Target: <= 60.
 */

/**
 * TODO(cdk): synthesize the CDK app (lib/tandem-stack.ts; e.g. `npx cdk synth` into a temp cdk.out, or
 * the assembly from aws-cdk-lib's App.synth()), find the asset(s) of the predict function in the cloud
 * assembly manifest, and return their total unzipped size in MB (1 MB = 1,048,576 bytes). Until then:
 * null (reported as "n/a").
 */
export async function measurePredictAssetMb(): Promise<number | null> {
  return null;
}
