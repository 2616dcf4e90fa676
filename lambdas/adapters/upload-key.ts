/**
 * Object keys as each upload event source spells them, decoded in this one place. S3 event
 * notifications (to Lambda, SQS or SNS) form-encode the key: `+` is a space and `%XX` a UTF-8 byte, so
 * `p+q.csv` arrives as `p%2Bq.csv`. EventBridge "Object Created" events carry the key as it is.
 * Decoding a raw key as if it were encoded reads `p+q.csv` as `p q.csv` (another object) and throws on
 * `100%.csv`, so whoever reads an event's key passes it through here with the event's source.
 */
export type UploadEventSource = 's3-notification' | 'eventbridge';

/** The object key, or undefined when `raw` is not valid in its source's encoding (a malformed `%` escape). */
export function decodeUploadKey(raw: string, source: UploadEventSource): string | undefined {
  if (source === 'eventbridge') return raw;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return undefined;
  }
}
