/** A ModelStoreWriter in memory: pointers with tags (conditional writes), history records, versions. */
import { PointerConflictError, VersionExistsError } from '../../lambdas/core/lifecycle/errors.ts';
import type {
  ModelStoreWriter,
  PointerCondition,
  StoredPointer,
} from '../../lambdas/core/lifecycle/ports.ts';
import type { ModelFile } from '../../lambdas/core/ports.ts';

const utf8 = new TextEncoder();

export class MemoryModelStore implements ModelStoreWriter {
  readonly description = 'memory://models/';
  readonly pointers = new Map<string, { body: string; tag: string }>();
  readonly history = new Map<string, { file: string; body: string }[]>();
  readonly versions = new Map<string, Set<string>>();
  pointerWrites = 0;
  private tags = 0;

  /** Sets a pointer as an operator (or anything outside the code under test) would. */
  setPointer(name: string, pointer: unknown): void {
    this.pointers.set(name, { body: JSON.stringify(pointer), tag: `t${++this.tags}` });
  }

  pointer(name: string): Record<string, unknown> | undefined {
    const stored = this.pointers.get(name);
    return stored ? (JSON.parse(stored.body) as Record<string, unknown>) : undefined;
  }

  records(name: string): Record<string, unknown>[] {
    return (this.history.get(name) ?? []).map((r) => JSON.parse(r.body) as Record<string, unknown>);
  }

  async readPointer(name: string): Promise<StoredPointer | undefined> {
    const stored = this.pointers.get(name);
    return stored ? { body: utf8.encode(stored.body), tag: stored.tag } : undefined;
  }

  async writePointer(name: string, body: string, condition: PointerCondition): Promise<void> {
    const stored = this.pointers.get(name);
    const matches = condition === 'absent' ? stored === undefined : stored?.tag === condition.tag;
    if (!matches) throw new PointerConflictError('POINTER_CONFLICT', `current.json of ${name} changed`);
    this.pointerWrites++;
    this.pointers.set(name, { body, tag: `t${++this.tags}` });
  }

  async writeHistory(name: string, file: string, body: string): Promise<void> {
    const records = this.history.get(name) ?? [];
    if (records.some((r) => r.file === file)) throw new Error(`${file} exists`);
    records.push({ file, body });
    this.history.set(name, records);
  }

  async readHistory(name: string): Promise<{ readonly file: string; readonly body: Uint8Array }[]> {
    return [...(this.history.get(name) ?? [])]
      .sort((a, b) => a.file.localeCompare(b.file))
      .map((r) => ({ file: r.file, body: utf8.encode(r.body) }));
  }

  async listModels(): Promise<string[]> {
    return [...new Set([...this.pointers.keys(), ...this.versions.keys()])];
  }

  async listVersions(name: string): Promise<string[]> {
    return [...(this.versions.get(name) ?? [])];
  }

  async createPackageFile(name: string, version: string, _file: ModelFile, _body: Uint8Array): Promise<void> {
    const versions = this.versions.get(name) ?? new Set();
    if (versions.has(version)) throw new VersionExistsError('VERSION_EXISTS', `${name}@${version} exists`);
    versions.add(version);
    this.versions.set(name, versions);
  }
}
