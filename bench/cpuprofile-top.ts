/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): top functions by self time, and self time by
 * package / area. Usage: tsx bench/cpuprofile-top.ts <file.cpuprofile> [top N]
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber: number;
  };
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface TopEntry {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly selfPct: number;
}

const REPO = path.resolve(import.meta.dirname, '..');

/** Where a script lives: a package under node_modules, a repo folder, node: internals, or native. */
export function areaOf(url: string): string {
  if (url === '') return '(native / VM)';
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = file.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  if (file.startsWith(REPO)) return path.relative(REPO, file).split('/').slice(0, 2).join('/');
  return file;
}

function shortWhere(url: string, line: number): string {
  if (url === '') return '';
  const file = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = file.lastIndexOf('/node_modules/');
  const shown =
    nm >= 0
      ? file.slice(nm + '/node_modules/'.length)
      : file.startsWith(REPO)
        ? path.relative(REPO, file)
        : file;
  return `${shown}:${line + 1}`;
}

export function summarizeProfile(
  profile: CpuProfile,
  top = 25,
): { totalMs: number; functions: TopEntry[]; areas: TopEntry[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totalUs = profile.endTime - profile.startTime;
  const functions = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const name = frame.functionName || '(anonymous)';
    const where = shortWhere(frame.url, frame.lineNumber);
    const key = `${name}@${where}`;
    const entry = functions.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    functions.set(key, entry);
    const area = frame.url === '' && name.startsWith('(') ? name : areaOf(frame.url);
    areas.set(area, (areas.get(area) ?? 0) + us);
  }
  const toEntry = (name: string, where: string, us: number): TopEntry => ({
    name,
    where,
    selfMs: us / 1000,
    selfPct: (100 * us) / totalUs,
  });
  return {
    totalMs: totalUs / 1000,
    functions: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => toEntry(f.name, f.where, f.us)),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => toEntry(area, '', us)),
  };
}

/**
 * Inclusive (self + callees) time by function, and for functions named in `callersOf`, their self
 * time split by calling function (one level up, two levels for anonymous callers).
 */
export function inclusiveAndCallers(
  profile: CpuProfile,
  top = 25,
  callersOf: readonly string[] = [],
): { inclusive: TopEntry[]; callers: Map<string, TopEntry[]> } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totalUs = profile.endTime - profile.startTime;
  const keyOf = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'}  ${shortWhere(n.callFrame.url, n.callFrame.lineNumber)}`;
  // Inclusive: each sample counts once for every distinct function on its stack.
  const inclusive = new Map<string, number>();
  const callers = new Map<string, Map<string, number>>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    const leaf = byId.get(id)!;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const key = keyOf(byId.get(cur)!);
      if (!seen.has(key)) {
        seen.add(key);
        inclusive.set(key, (inclusive.get(key) ?? 0) + us);
      }
    }
    const name = leaf.callFrame.functionName;
    if (callersOf.includes(name)) {
      const p1 = parent.get(id);
      const caller = p1 === undefined ? undefined : byId.get(p1);
      let label = caller ? keyOf(caller) : '(root)';
      if (caller && !caller.callFrame.functionName) {
        const p2 = parent.get(caller.id);
        if (p2 !== undefined) label += ` <- ${keyOf(byId.get(p2)!)}`;
      }
      const split = callers.get(name) ?? new Map<string, number>();
      split.set(label, (split.get(label) ?? 0) + us);
      callers.set(name, split);
    }
  }
  const entries = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, where: '', selfMs: us / 1000, selfPct: (100 * us) / totalUs }));
  return {
    inclusive: entries(inclusive).filter((e) => !e.name.startsWith('(root)')),
    callers: new Map([...callers.entries()].map(([k, m]) => [k, entries(m)])),
  };
}

/** One line: share, milliseconds and, with `perCount`, microseconds per call / request. */
function entryLine(e: TopEntry, perCount: number | undefined, label: string): string {
  const per = perCount ? `  ${((1000 * e.selfMs) / perCount).toFixed(1).padStart(7)} µs/op` : '';
  return `  ${e.selfPct.toFixed(1).padStart(5)}%  ${e.selfMs.toFixed(1).padStart(8)} ms${per}  ${label}`;
}

/** Top self-time functions and areas; `perCount` (calls or requests in the window) adds µs per op. */
export function formatSummary(summary: ReturnType<typeof summarizeProfile>, perCount?: number): string {
  const lines = [
    `total ${summary.totalMs.toFixed(0)} ms sampled${perCount ? `, ${perCount} ops` : ''}`,
    '',
    'self time by function:',
  ];
  for (const f of summary.functions) lines.push(entryLine(f, perCount, `${f.name}  ${f.where}`));
  lines.push('', 'self time by area:');
  for (const a of summary.areas) lines.push(entryLine(a, perCount, a.name));
  return lines.join('\n');
}

export function formatInclusive(result: ReturnType<typeof inclusiveAndCallers>, perCount?: number): string {
  const lines = ['inclusive time (self + callees) by function:'];
  for (const f of result.inclusive) lines.push(entryLine(f, perCount, f.name));
  for (const [name, split] of result.callers) {
    lines.push('', `self time of ${name} by caller:`);
    for (const f of split) lines.push(entryLine(f, perCount, f.name));
  }
  return lines.join('\n');
}

export async function readProfile(file: string): Promise<CpuProfile> {
  return JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, top = '25', ...callersOf] = process.argv.slice(2);
  if (!file) {
    process.stderr.write(
      'usage: tsx bench/cpuprofile-top.ts <file.cpuprofile> [top N] [function names to split by caller...]\n',
    );
    process.exit(2);
  }
  const profile = await readProfile(file);
  process.stdout.write(`${formatSummary(summarizeProfile(profile, Number(top)))}\n\n`);
  process.stdout.write(`${formatInclusive(inclusiveAndCallers(profile, Number(top), callersOf))}\n`);
}
