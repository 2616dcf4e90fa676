/**
 * Conditional PUTs for the local S3 (s3rver ignores `If-Match` and `If-None-Match` on PutObject; S3 has
 * honoured both since 2024). Model pointer changes rely on them to be a compare-and-swap, so the local
 * stack answers as S3 does: 412 PreconditionFailed when the object's ETag differs from `If-Match`, or
 * when `If-None-Match: *` finds the object there. Conditional PUTs of one key run one at a time (the check
 * and the write are atomic against each other), which is what makes two racing writers see one winner.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** The part of s3rver's store this needs: an object's metadata, throwing when the object does not exist. */
export interface ObjectMetadataReader {
  getMetadata(bucket: string, key: string): Promise<{ etag: string }>;
}

function unquote(etag: string): string {
  return etag
    .trim()
    .replace(/^W\//, '')
    .replace(/^"(.*)"$/, '$1');
}

/** Bucket and key of a path-style request (`/<bucket>/<key>`), or undefined for anything else. */
function objectOf(url: string | undefined): { bucket: string; key: string } | undefined {
  const parsed = new URL(url ?? '/', 'http://local');
  if (parsed.searchParams.has('uploadId') || parsed.searchParams.has('partNumber')) return undefined;
  const match = /^\/([^/]+)\/(.+)$/.exec(parsed.pathname);
  if (!match) return undefined;
  return { bucket: decodeURIComponent(match[1]!), key: decodeURIComponent(match[2]!) };
}

function preconditionFailed(res: ServerResponse, condition: string): void {
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>' +
    '<Message>At least one of the pre-conditions you specified did not hold</Message>' +
    `<Condition>${condition}</Condition><RequestId>local</RequestId></Error>`;
  res.writeHead(412, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Wraps s3rver's request listener so that conditional PutObject requests behave as on S3. */
export function withConditionalPuts(listener: RequestListener, store: ObjectMetadataReader): RequestListener {
  const queues = new Map<string, Promise<void>>();

  const check = async (
    bucket: string,
    key: string,
    ifMatch: string | undefined,
    ifNoneMatch: string | undefined,
  ): Promise<string | undefined> => {
    const current = await store.getMetadata(bucket, key).then(
      (m) => unquote(m.etag),
      () => undefined,
    );
    if (ifNoneMatch !== undefined) {
      if (current !== undefined && (ifNoneMatch.trim() === '*' || unquote(ifNoneMatch) === current)) {
        return 'If-None-Match';
      }
    }
    if (ifMatch !== undefined) {
      if (current === undefined) return 'If-Match';
      if (ifMatch.trim() !== '*' && unquote(ifMatch) !== current) return 'If-Match';
    }
    return undefined;
  };

  return (req: IncomingMessage, res: ServerResponse) => {
    const ifMatch = req.headers['if-match'];
    const ifNoneMatch = req.headers['if-none-match'];
    const target = req.method === 'PUT' && !req.headers['x-amz-copy-source'] ? objectOf(req.url) : undefined;
    if (!target || (ifMatch === undefined && ifNoneMatch === undefined)) {
      listener(req, res);
      return;
    }
    const id = `${target.bucket}/${target.key}`;
    const previous = queues.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    queues.set(id, tail);
    const done = (): void => {
      release();
      if (queues.get(id) === tail) queues.delete(id);
    };
    res.once('finish', done);
    res.once('close', done);
    void previous.then(async () => {
      const failed = await check(target.bucket, target.key, ifMatch, ifNoneMatch);
      if (failed === undefined) {
        listener(req, res);
        return;
      }
      req.resume();
      preconditionFailed(res, failed);
    });
  };
}
