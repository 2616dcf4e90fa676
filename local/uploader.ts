/**
 * Publishes model packages from a local folder laid out like the bucket's `models/` prefix
 * (`<name>/current.json`, `<name>/<version>/{model.onnx,manifest.json}`), ignoring whatever else
 * lives there (training scripts, demo datasets).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';

/** The files a model package consists of (ARCHITECTURE.md, "Model package"). */
const PACKAGE_FILES = ['manifest.json', 'model.onnx'] as const;
const POINTER_FILE = 'current.json';
/** Uploaded with its package when present: the version's drift baseline (docs/monitoring.md). */
const OPTIONAL_FILES = ['baseline.json'] as const;

/**
 * Uploads every package (a `<name>/<version>/` folder holding manifest.json) and every
 * `<name>/current.json` to `<prefix><name>/...` (prefix `models/` by default). Returns the keys
 * written, in upload order.
 */
export async function uploadModelPackages(
  s3: S3Client,
  bucket: string,
  modelsDir: string,
  opts: { prefix?: string } = {},
): Promise<string[]> {
  const prefix = opts.prefix ?? 'models/';
  const keys: string[] = [];
  for (const name of await subfolders(modelsDir)) {
    const modelDir = path.join(modelsDir, name);
    for (const version of await subfolders(modelDir)) {
      const versionDir = path.join(modelDir, version);
      if (!(await isFile(path.join(versionDir, 'manifest.json')))) continue;
      for (const file of PACKAGE_FILES) {
        const local = path.join(versionDir, file);
        // A manifest without its model is a broken package: say so rather than publish half of it.
        if (!(await isFile(local)))
          throw new Error(`model package ${versionDir} has manifest.json but no ${file}`);
        keys.push((await put(s3, bucket, `${prefix}${name}/${version}/${file}`, local))!);
      }
      for (const file of OPTIONAL_FILES) {
        const local = path.join(versionDir, file);
        if (await isFile(local))
          keys.push((await put(s3, bucket, `${prefix}${name}/${version}/${file}`, local))!);
      }
    }
    // The pointer goes last so that anything reacting to it finds the version it names already there,
    // and only where there is none: a data folder kept across restarts keeps what was promoted in it.
    const pointer = path.join(modelDir, POINTER_FILE);
    if (await isFile(pointer)) {
      const key = `${prefix}${name}/${POINTER_FILE}`;
      if (await put(s3, bucket, key, pointer, { ifAbsent: true })) keys.push(key);
    }
  }
  return keys;
}

/** A model folder found in a packages folder: its versions (folders holding manifest.json) and pointer. */
export interface LocalModelFolder {
  readonly name: string;
  readonly versions: readonly string[];
  /** The version its current.json names; undefined when there is none (or it is unreadable). */
  readonly live: string | undefined;
}

/**
 * The model packages in a folder laid out like `models/`, for a user's `--models <dir>`: throws a
 * message saying the layout expected when the folder is missing or holds no package.
 */
export async function listModelFolders(modelsDir: string): Promise<LocalModelFolder[]> {
  let names: string[];
  try {
    names = await subfolders(modelsDir);
  } catch (error) {
    if (
      (error as NodeJS.ErrnoException).code === 'ENOENT' ||
      (error as NodeJS.ErrnoException).code === 'ENOTDIR'
    )
      throw new Error(`--models ${modelsDir}: no such folder`);
    throw error;
  }
  const found: LocalModelFolder[] = [];
  for (const name of names) {
    const modelDir = path.join(modelsDir, name);
    const versions: string[] = [];
    for (const version of await subfolders(modelDir))
      if (await isFile(path.join(modelDir, version, 'manifest.json'))) versions.push(version);
    if (versions.length === 0) continue;
    let live: string | undefined;
    try {
      const pointer = JSON.parse(await readFile(path.join(modelDir, POINTER_FILE), 'utf8')) as {
        version?: unknown;
      };
      live = typeof pointer.version === 'string' ? pointer.version : undefined;
    } catch {
      live = undefined;
    }
    found.push({ name, versions, live });
  }
  if (found.length === 0)
    throw new Error(
      `--models ${modelsDir}: no model package found (expected <name>/<version>/manifest.json and model.onnx, and <name>/current.json naming the live version)`,
    );
  return found;
}

async function put(
  s3: S3Client,
  bucket: string,
  key: string,
  file: string,
  opts: { ifAbsent?: boolean } = {},
): Promise<string | undefined> {
  // Whole-file buffers, not streams: a known length keeps the SDK from aws-chunked uploads.
  const body = await readFile(file);
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: file.endsWith('.json') ? 'application/json' : 'application/octet-stream',
        ...(opts.ifAbsent ? { IfNoneMatch: '*' } : {}),
      }),
    );
  } catch (error) {
    if (
      opts.ifAbsent &&
      (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 412
    ) {
      return undefined;
    }
    throw error;
  }
  return key;
}

/** Visible subfolder names, sorted so uploads (and the returned keys) are deterministic. */
async function subfolders(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  const flags = await Promise.all(names.map(async (n) => (await stat(path.join(dir, n))).isDirectory()));
  return names.filter((_, i) => flags[i] === true);
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
