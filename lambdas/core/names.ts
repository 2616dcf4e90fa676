/**
 * The one rule for model names and versions: what `models/<name>/<version>/`, `incoming/<model>/`,
 * `current.json` and request fields accept. No "/", no "..", nothing that could address another key or
 * folder than the one it names.
 */
export const PACKAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isPackageName(value: unknown): value is string {
  return typeof value === 'string' && PACKAGE_NAME.test(value);
}
