import { describe, expect, it } from '@jest/globals';
import {
  chunkView,
  folderDatasetName,
  folderFiles,
  type BatchPlan,
} from '../../lambdas/core/batch/contracts.ts';
import { startFolderRun } from '../../lambdas/core/batch/trigger.ts';
import type { RunStarter } from '../../lambdas/core/ports.ts';

describe('folder runs', () => {
  it('tells part files from markers, checksums and names without a format', () => {
    const listing = folderFiles([
      'exports/d/',
      'exports/d/_SUCCESS',
      'exports/d/_committed_123',
      'exports/d/.part-00000.csv.crc',
      'exports/d/part-00000-abc.c000.csv',
      'exports/d/part-00001-abc.c000.csv.gz',
      'exports/d/part-00002.json',
      'exports/d/part-00003.snappy.parquet',
      'exports/d/part-00004.parquet.gz',
      'exports/d/20261206_0001_00000_xyz',
    ]);
    expect(listing.files).toEqual([
      { key: 'exports/d/part-00000-abc.c000.csv', format: 'csv', gzip: false },
      { key: 'exports/d/part-00001-abc.c000.csv.gz', format: 'csv', gzip: true },
      { key: 'exports/d/part-00002.json', format: 'jsonl', gzip: false },
      { key: 'exports/d/part-00003.snappy.parquet', format: 'parquet', gzip: false },
    ]);
    expect(listing.skipped).toHaveLength(4);
    expect(listing.unknown).toEqual(['exports/d/part-00004.parquet.gz', 'exports/d/20261206_0001_00000_xyz']);
    expect(folderDatasetName('exports/2026-12-06/')).toBe('2026-12-06');
    expect(folderDatasetName('a/../')).toBe('__');
  });

  it('gives each chunk of a folder run its own file, and a plain run the plan itself', () => {
    const file = (key: string, header: string[]) => ({
      key,
      etag: 'e',
      size: 10,
      gzip: key.endsWith('.gz'),
      source: { bucket: 'b', key: key.endsWith('.gz') ? `runs/r/staging/${key}` : key, size: 10 },
      header,
      rows: 1,
    });
    const chunk = (index: number, fileIndex?: number) => ({
      kind: 'bytes' as const,
      index,
      start: 0,
      end: 10,
      firstRow: 1,
      firstLine: 2,
      rows: 1,
      ...(fileIndex === undefined ? {} : { file: fileIndex }),
    });
    const plan = {
      source: { bucket: 'b', key: 'a.csv', size: 10 },
      gzip: false,
      header: ['id', 'x'],
      files: [file('a.csv', ['id', 'x']), file('b.csv.gz', ['x', 'id'])],
      chunks: [chunk(0, 0), chunk(1, 1)],
    } as unknown as BatchPlan;
    expect(chunkView(plan, plan.chunks[1]!)).toMatchObject({
      source: { key: 'runs/r/staging/b.csv.gz' },
      gzip: true,
      header: ['x', 'id'],
    });
    expect(chunkView(plan, chunk(2))).toBe(plan);
    expect(() => chunkView(plan, chunk(3, 7))).toThrow(/file 7/);
  });

  it('starts a folder run under a new name each time, with the prefix as a folder', async () => {
    const started: { name: string; input: unknown }[] = [];
    const starter: RunStarter = {
      start: async (name, input) => {
        started.push({ name, input });
        return 'started';
      },
    };
    const a = await startFolderRun(
      { bucket: 'b', model: 'fraud-detector', prefix: 'exports/d', now: 1 },
      starter,
    );
    const b = await startFolderRun(
      { bucket: 'b', model: 'fraud-detector', prefix: 'exports/d/', now: 2 },
      starter,
    );
    expect(a.runId).not.toBe(b.runId);
    expect(a.runId).toMatch(/^fraud-detector-folder-[0-9a-z]+-[0-9a-f]{12}$/);
    expect(a.runId.length).toBeLessThanOrEqual(80);
    expect(started[0]!.input).toEqual({
      runId: a.runId,
      bucket: 'b',
      key: 'exports/d/',
      model: 'fraud-detector',
      folder: true,
    });
  });
});
