/**
 * The model source a `MODELS_URI` names, `s3://bucket/prefix/` or a local folder, loading the S3 client
 * only for an S3 URI (a function serving models from a folder starts without the S3 SDK).
 */
import type { ModelSource } from '../core/ports.ts';
import { loadS3Client } from './clients/lazy.ts';
import { FsModelSource } from './fs-model-source.ts';
import { S3ModelSource } from './s3-model-source.ts';

export type ModelsLocation =
  | { readonly kind: 's3'; readonly bucket: string; readonly prefix: string }
  | { readonly kind: 'folder'; readonly path: string };

export function parseModelsUri(uri: string): ModelsLocation {
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!s3) return { kind: 'folder', path: uri.replace(/^file:\/\//, '') };
  return { kind: 's3', bucket: s3[1]!, prefix: s3[2] ? s3[2].replace(/\/?$/, '/') : '' };
}

export async function openModelSource(uri: string): Promise<ModelSource> {
  const location = parseModelsUri(uri);
  if (location.kind === 'folder') return new FsModelSource(location.path);
  return new S3ModelSource(await loadS3Client(), location.bucket, location.prefix);
}
