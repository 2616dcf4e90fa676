/** The model source a `MODELS_URI` names: `s3://bucket/prefix/` or a local folder. */
import type { S3Client } from '@aws-sdk/client-s3';
import type { ModelSource } from '../core/ports.ts';
import { s3Client } from './clients/s3.ts';
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

/** The S3 client is asked for only when the URI names a bucket. */
export function modelSourceFor(uri: string, client: () => S3Client = s3Client): ModelSource {
  const location = parseModelsUri(uri);
  if (location.kind === 'folder') return new FsModelSource(location.path);
  return new S3ModelSource(client(), location.bucket, location.prefix);
}
