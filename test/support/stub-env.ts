/**
 * Sets an environment variable for a test and puts every stubbed one back with `unstubAllEnvs()` (in an
 * `afterEach`): jest has no stubEnv, and `jest.replaceProperty` refuses a variable that is not set.
 */
const saved = new Map<string, string | undefined>();

export function stubEnv(name: string, value: string | undefined): void {
  if (!saved.has(name)) saved.set(name, process.env[name]);
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

export function unstubAllEnvs(): void {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  saved.clear();
}
