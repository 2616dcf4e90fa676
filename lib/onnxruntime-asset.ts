/**
 * onnxruntime-node, pruned for one Lambda architecture.
 *
 * The npm package is ~290 MB: native builds for darwin, win32 and two Linux arches (the installer would add
 * CUDA on top). At run time `dist/binding.js` loads exactly
 * `bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node`, whose RUNPATH is `$ORIGIN/`, so
 * it finds `libonnxruntime.so.1` beside it; `dist/*.js` require `onnxruntime-common`, whose `exports.require`
 * is `dist/cjs/` (with its own `{"type": "commonjs"}` package.json). Nothing else is read: the install-time
 * dependencies (adm-zip, global-agent) and `script/` are not needed. So the staged copy holds:
 *
 *   node_modules/onnxruntime-node/{package.json, dist/*.js, bin/napi-v6/linux/<arch>/*}
 *   node_modules/onnxruntime-common/{package.json, dist/cjs/*.js, dist/cjs/package.json}
 *
 * It is staged once per process (plain file copies, no Docker, no shell) and copied into each function's
 * bundle, beside `index.mjs`, so that the bundle's `import 'onnxruntime-node'` resolves it the way Node's
 * ES module resolver resolves any package: `/var/task/node_modules/`.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Node's `process.arch` names for the Lambda architectures. */
export type OnnxRuntimeArch = 'x64' | 'arm64';

export interface StageOnnxRuntimeOptions {
  /** The folder whose `node_modules/` holds the installed onnxruntime-node. */
  readonly projectRoot: string;
  readonly arch: OnnxRuntimeArch;
  /**
   * Where to stage.
   * @default - a folder under the OS temp dir named by the package versions and arch (reused across runs)
   */
  readonly stagingRoot?: string;
}

export interface StagedOnnxRuntime {
  /** Holds `node_modules/onnxruntime-node` and `node_modules/onnxruntime-common`. */
  readonly directory: string;
  readonly version: string;
  readonly arch: OnnxRuntimeArch;
  /** Every staged file, relative to `directory`, sorted. */
  readonly files: readonly string[];
  readonly bytes: number;
}

const PACKAGE = 'onnxruntime-node';
const COMMON = 'onnxruntime-common';

function packageDir(projectRoot: string, name: string): string {
  const dir = path.join(projectRoot, 'node_modules', name);
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    throw new Error(`${name} is not installed under ${path.join(projectRoot, 'node_modules')} (run npm ci)`);
  }
  return dir;
}

function readVersion(dir: string): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
    version?: unknown;
  };
  if (typeof manifest.version !== 'string') throw new Error(`${dir}/package.json has no version`);
  return manifest.version;
}

/** The files to ship, as [source, destination relative to the staged folder]. */
function selectFiles(projectRoot: string, arch: OnnxRuntimeArch): Array<[string, string]> {
  const ortDir = packageDir(projectRoot, PACKAGE);
  const commonDir = packageDir(projectRoot, COMMON);
  const selected: Array<[string, string]> = [];
  const add = (root: string, name: string, relative: string): void => {
    selected.push([path.join(root, relative), path.posix.join('node_modules', name, relative)]);
  };
  const jsFiles = (root: string, relativeDir: string): string[] =>
    fs
      .readdirSync(path.join(root, relativeDir))
      .filter((file) => file.endsWith('.js'))
      .map((file) => path.posix.join(relativeDir, file));

  add(ortDir, PACKAGE, 'package.json');
  for (const file of jsFiles(ortDir, 'dist')) add(ortDir, PACKAGE, file);
  const nativeDir = path.posix.join('bin', 'napi-v6', 'linux', arch);
  if (!fs.existsSync(path.join(ortDir, nativeDir))) {
    throw new Error(
      `${PACKAGE} has no ${nativeDir} build; is the installed version one that ships linux/${arch}?`,
    );
  }
  for (const file of fs.readdirSync(path.join(ortDir, nativeDir))) {
    add(ortDir, PACKAGE, path.posix.join(nativeDir, file));
  }
  const binding = path.posix.join(nativeDir, 'onnxruntime_binding.node');
  if (!selected.some(([, to]) => to.endsWith(binding))) {
    throw new Error(`${PACKAGE}/${binding} is missing`);
  }

  add(commonDir, COMMON, 'package.json');
  add(commonDir, COMMON, 'dist/cjs/package.json');
  for (const file of jsFiles(commonDir, 'dist/cjs')) add(commonDir, COMMON, file);
  return selected.sort((a, b) => a[1].localeCompare(b[1]));
}

const staged = new Map<string, StagedOnnxRuntime>();

/**
 * Copies the runtime files of onnxruntime-node (and onnxruntime-common) for linux/<arch> into a folder.
 * Idempotent and safe to call from parallel processes: a complete copy is renamed into place.
 */
export function stageOnnxRuntime(options: StageOnnxRuntimeOptions): StagedOnnxRuntime {
  const { projectRoot, arch } = options;
  if (arch !== 'x64' && arch !== 'arm64') throw new Error(`arch must be x64 or arm64, got "${String(arch)}"`);
  const files = selectFiles(projectRoot, arch);
  const version = readVersion(packageDir(projectRoot, PACKAGE));
  const fingerprint = createHash('sha256');
  let bytes = 0;
  for (const [from, to] of files) {
    const stat = fs.statSync(from);
    bytes += stat.size;
    fingerprint.update(`${to}\0${stat.size}\0${stat.mtimeMs}\0`);
  }
  const id = `${version}-linux-${arch}-${fingerprint.digest('hex').slice(0, 12)}`;
  const root = options.stagingRoot ?? path.join(os.tmpdir(), 'tandem-onnxruntime');
  const directory = path.join(root, id);
  const cached = staged.get(directory);
  if (cached) return cached;

  const marker = path.join(directory, '.complete');
  if (!fs.existsSync(marker)) {
    fs.mkdirSync(root, { recursive: true });
    const scratch = fs.mkdtempSync(path.join(root, `.${id}-`));
    for (const [from, to] of files) {
      const target = path.join(scratch, to);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(from, target);
    }
    fs.writeFileSync(path.join(scratch, '.complete'), `${files.length} files, ${bytes} bytes\n`);
    try {
      fs.renameSync(scratch, directory);
    } catch (error) {
      // Another process staged the same content first: use its copy.
      fs.rmSync(scratch, { recursive: true, force: true });
      if (!fs.existsSync(marker)) throw error;
    }
  }
  const result: StagedOnnxRuntime = {
    directory,
    version,
    arch,
    files: files.map(([, to]) => to),
    bytes,
  };
  staged.set(directory, result);
  return result;
}
