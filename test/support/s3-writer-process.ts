/**
 * A child process for the crash-safety test of the local S3: runs the embedded emulators on the data
 * folder given as argv[2], prints `endpoint <url>`, then overwrites one large object and one small one
 * with numbered versions as fast as it can, printing `wrote <n>` after each, until it is killed.
 */
import '../../local/node-support.ts';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startEmbeddedAws } from '../../local/embedded-aws.ts';

export const CRASH_BUCKET = 'crash-test';
export const BIG_KEY = 'runs/big.txt';
export const SMALL_KEY = 'runs/small.json';
export const BIG_BYTES = 8 * 1024 * 1024;

/** Version `n` of the large object: `<n>|` repeated to BIG_BYTES (a cut or mixed body is easy to tell). */
export function bigBody(n: number): string {
  const unit = `${n}|`;
  return unit.repeat(Math.ceil(BIG_BYTES / unit.length)).slice(0, BIG_BYTES);
}

if (process.argv[1]?.endsWith('s3-writer-process.ts') && process.argv[2]) {
  const aws = await startEmbeddedAws({
    dataDir: process.argv[2],
    dynamoPort: 0,
    s3Port: 0,
    buckets: [CRASH_BUCKET],
  });
  const s3 = new S3Client(aws.clientConfig('s3'));
  process.stdout.write(`endpoint ${aws.s3Endpoint}\n`);
  for (let n = 1; ; n++) {
    await Promise.all([
      s3.send(
        new PutObjectCommand({
          Bucket: CRASH_BUCKET,
          Key: BIG_KEY,
          Body: bigBody(n),
          ContentType: 'text/plain',
        }),
      ),
      s3.send(
        new PutObjectCommand({
          Bucket: CRASH_BUCKET,
          Key: SMALL_KEY,
          Body: JSON.stringify({ n }),
          ContentType: 'application/json',
        }),
      ),
    ]);
    process.stdout.write(`wrote ${n}\n`);
  }
}
