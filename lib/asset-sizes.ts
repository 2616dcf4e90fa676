/**
 * What each Lambda function deploys, measured on a synthesized cloud assembly: its code asset folder and
 * its layers' folders, unzipped (Lambda's 250 MB limit applies to that sum). For tests and benchmarks.
 */
import { App } from 'aws-cdk-lib';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AssetManifestArtifact, CloudFormationStackArtifact } from 'aws-cdk-lib/cx-api';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSettings } from './settings.ts';
import { PROJECT_ROOT } from './tandem-function.ts';
import { TandemStack, type TandemStackProps } from './tandem-stack.ts';

/** Lambda's limit on a function's unzipped code plus layers. */
export const LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024;

export interface FunctionAssetSize {
  readonly stack: string;
  readonly logicalId: string;
  readonly description: string | undefined;
  /** The function's code folder in the assembly. */
  readonly codeDirectory: string;
  readonly codeBytes: number;
  readonly layerBytes: number;
  readonly totalBytes: number;
  readonly totalMb: number;
}

/** Bytes of every regular file under a folder (symlinks are not followed: Lambda zips do not hold them). */
export function directoryBytes(directory: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    if (entry.isDirectory()) total += directoryBytes(full);
    else if (entry.isFile()) total += fs.statSync(full).size;
  }
  return total;
}

const mb = (bytes: number): number => Math.round((bytes / (1024 * 1024)) * 10) / 10;

/** The asset folders of an assembly, by the S3 object key the templates reference. */
function assetFolders(assembly: CloudAssembly): Map<string, string> {
  const folders = new Map<string, string>();
  for (const artifact of assembly.artifacts) {
    if (!AssetManifestArtifact.isAssetManifestArtifact(artifact)) continue;
    const manifestDir = path.dirname(artifact.file);
    for (const file of Object.values(artifact.contents.files ?? {})) {
      if (file.source.packaging !== 'zip' || !file.source.path) continue;
      for (const destination of Object.values(file.destinations)) {
        folders.set(destination.objectKey, path.resolve(manifestDir, file.source.path));
      }
    }
  }
  return folders;
}

type CfnResource = { Type: string; Properties?: Record<string, unknown> };

function s3Key(code: unknown): string | undefined {
  const key = (code as { S3Key?: unknown } | undefined)?.S3Key;
  return typeof key === 'string' ? key : undefined;
}

/**
 * The unzipped size of every function of every stack in the assembly (code asset + layer assets).
 * Functions whose code is not a local asset (inline code, a placeholder when bundling was skipped) are left out.
 */
export function measureFunctionAssets(assembly: CloudAssembly): FunctionAssetSize[] {
  const folders = assetFolders(assembly);
  const sizes: FunctionAssetSize[] = [];
  const cache = new Map<string, number>();
  const sizeOf = (dir: string): number => {
    let bytes = cache.get(dir);
    if (bytes === undefined) cache.set(dir, (bytes = directoryBytes(dir)));
    return bytes;
  };
  for (const artifact of assembly.artifacts) {
    if (!(artifact instanceof CloudFormationStackArtifact)) continue;
    const resources = (artifact.template as { Resources?: Record<string, CfnResource> }).Resources ?? {};
    for (const [logicalId, resource] of Object.entries(resources)) {
      if (resource.Type !== 'AWS::Lambda::Function') continue;
      const key = s3Key(resource.Properties?.['Code']);
      const codeDirectory = key ? folders.get(key) : undefined;
      if (!codeDirectory || !fs.existsSync(codeDirectory)) continue;
      const layers = (resource.Properties?.['Layers'] as Array<{ Ref?: string }> | undefined) ?? [];
      let layerBytes = 0;
      for (const layer of layers) {
        const layerResource = layer.Ref ? resources[layer.Ref] : undefined;
        const layerKey = s3Key(layerResource?.Properties?.['Content']);
        const layerDir = layerKey ? folders.get(layerKey) : undefined;
        if (layerDir) layerBytes += sizeOf(layerDir);
      }
      const codeBytes = sizeOf(codeDirectory);
      sizes.push({
        stack: artifact.stackName,
        logicalId,
        description: resource.Properties?.['Description'] as string | undefined,
        codeDirectory,
        codeBytes,
        layerBytes,
        totalBytes: codeBytes + layerBytes,
        totalMb: mb(codeBytes + layerBytes),
      });
    }
  }
  return sizes.sort((a, b) => a.stack.localeCompare(b.stack) || a.logicalId.localeCompare(b.logicalId));
}

/** The predict function's deployed size in MB (for `npm run bench`'s `predictAssetMb`). */
export function predictAssetMb(sizes: readonly FunctionAssetSize[]): number | undefined {
  return sizes.find((s) => /ApiPredictFunction/.test(s.logicalId))?.totalMb;
}

export interface MeasureTandemOptions {
  /** Where to write the cloud assembly. @default - a new folder under the OS temp dir, removed afterwards */
  readonly outdir?: string;
  /** @default - the settings of cdk.json */
  readonly props?: TandemStackProps;
}

/**
 * Synthesizes a TandemStack the way `cdk synth` does (cdk.json context, esbuild bundling, onnxruntime
 * copied in) and measures its functions: `predictAssetMb(await measureTandemAssets())` for the benchmark.
 */
export async function measureTandemAssets(options: MeasureTandemOptions = {}): Promise<FunctionAssetSize[]> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as {
    context?: Record<string, unknown>;
  };
  const context = cdkJson.context ?? {};
  const outdir = options.outdir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-assembly-'));
  try {
    const app = new App({ outdir, context });
    const settings = readSettings((key) => context[key]);
    new TandemStack(app, settings.stackName, options.props ?? settings.props);
    return measureFunctionAssets(app.synth());
  } finally {
    if (!options.outdir) fs.rmSync(outdir, { recursive: true, force: true });
  }
}
