/** History record file names (`models/<name>/history/<file>`): they sort by time. */

/** `20261206T013500123Z-<change>.json`. */
export function historyFile(at: string, change: string): string {
  return `${at.replace(/[-:.]/g, '')}-${change}.json`;
}
