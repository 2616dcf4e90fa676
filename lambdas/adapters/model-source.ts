import type { ModelSource } from '../core/ports.ts';
import { s3Client } from './aws-clients.ts';
import { FsModelSource } from './fs-model-source.ts';
import { S3ModelSource } from './s3-model-source.ts';

/** The model source a `MODELS_URI` names: `s3://bucket/prefix/` or a local folder. */
export function modelSourceFor(uri: string): ModelSource {
  const s3 = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!s3) return new FsModelSource(uri.replace(/^file:\/\//, ''));
  const prefix = s3[2] ? s3[2].replace(/\/?$/, '/') : '';
  return new S3ModelSource(s3Client(), s3[1]!, prefix);
}
