import type { ModelSource } from '../core/ports.ts';
import { s3Client } from './clients/s3.ts';
import { FsModelSource } from './fs-model-source.ts';
import { parseModelsUri } from './open-model-source.ts';
import { S3ModelSource } from './s3-model-source.ts';

/** The model source a `MODELS_URI` names: `s3://bucket/prefix/` or a local folder (see openModelSource). */
export function modelSourceFor(uri: string): ModelSource {
  const location = parseModelsUri(uri);
  if (location.kind === 'folder') return new FsModelSource(location.path);
  return new S3ModelSource(s3Client(), location.bucket, location.prefix);
}
