/**
 * Preloaded (`--import`) into processes measured by peak-rss.ts: at exit, writes this process's peak
 * resident set size (getrusage ru_maxrss, in KiB) to the file named by BENCH_RSS_FILE.
 */
import { writeFileSync } from 'node:fs';

const file = process.env['BENCH_RSS_FILE'];
if (file) {
  process.on('exit', () => {
    writeFileSync(file, String(process.resourceUsage().maxRSS));
  });
}
