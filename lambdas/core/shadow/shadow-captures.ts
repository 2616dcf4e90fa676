/** Reads the shadow comparisons captured under `capture/<model>/shadow/dt=/hr=/` (gzipped JSON Lines). */
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { CAPTURE_ROOT } from '../capture/capture-record.ts';
import type { ObjectStore } from '../ports.ts';
import type { ShadowRecord } from './shadow-report.ts';

const gunzipAsync = promisify(gunzip);

export interface ShadowCaptures {
  readonly records: ShadowRecord[];
  /** Objects or lines that could not be read, with why (reported, not fatal). */
  readonly unreadable: string[];
}

/** The hour partition of a capture key (`dt=2026-12-06/hr=04`), as a sortable `2026-12-0604`. */
function hourOf(key: string): string | undefined {
  const match = /\/dt=(\d{4}-\d{2}-\d{2})\/hr=(\d{2})\//.exec(key);
  return match ? `${match[1]}${match[2]}` : undefined;
}

/**
 * Every shadow record of a model (optionally of one shadow version, at or after `sinceMs`), oldest
 * partitions first.
 */
export async function readShadowCaptures(
  objects: Pick<ObjectStore, 'list' | 'readBytes'>,
  bucket: string,
  model: string,
  options: { readonly shadowVersion?: string; readonly sinceMs?: number } = {},
): Promise<ShadowCaptures> {
  const prefix = `${CAPTURE_ROOT}${model}/shadow/`;
  const since = options.sinceMs === undefined ? undefined : new Date(options.sinceMs).toISOString();
  const sinceHour = since === undefined ? undefined : `${since.slice(0, 10)}${since.slice(11, 13)}`;
  const keys = (await objects.list(bucket, prefix)).filter((key) => {
    if (!key.endsWith('.jsonl.gz')) return false;
    const hour = hourOf(key);
    return sinceHour === undefined || (hour !== undefined && hour >= sinceHour);
  });
  const records: ShadowRecord[] = [];
  const unreadable: string[] = [];
  for (const key of keys) {
    let text: string;
    try {
      text = (await gunzipAsync(await objects.readBytes(bucket, key))).toString('utf8');
    } catch (error) {
      unreadable.push(`${key}: ${(error as Error).message}`);
      continue;
    }
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let record: ShadowRecord;
      try {
        record = JSON.parse(line) as ShadowRecord;
      } catch (error) {
        unreadable.push(`${key} line ${i + 1}: ${(error as Error).message}`);
        return;
      }
      if (
        record.source !== 'shadow' ||
        typeof record.shadowVersion !== 'string' ||
        typeof record.version !== 'string'
      ) {
        unreadable.push(`${key} line ${i + 1}: not a shadow comparison`);
        return;
      }
      if (options.shadowVersion !== undefined && record.shadowVersion !== options.shadowVersion) return;
      if (since !== undefined && !(typeof record.time === 'string' && record.time >= since)) return;
      records.push(record);
    });
  }
  return { records, unreadable };
}
