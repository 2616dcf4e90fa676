/**
 * Parse-only pass of the batch section: papaparse in fast mode over a file stream, counting data rows,
 * nothing else. argv: <file> <timed passes> <warm-up passes>. Prints one JSON line:
 * {rows, seconds: [...], cpuSeconds: [...]} (one entry per timed pass). Run under runWithPeakRss for its peak RSS.
 */
import { createReadStream } from 'node:fs';
import Papa from 'papaparse';

function parsePass(file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let rows = 0;
    let lastEmpty = false;
    Papa.parse<string[]>(createReadStream(file, { encoding: 'utf8' }), {
      fastMode: true,
      chunk: (results) => {
        const data = results.data;
        rows += data.length;
        const last = data[data.length - 1];
        lastEmpty = last !== undefined && last.length === 1 && last[0] === '';
      },
      complete: () => resolve(rows - 1 - (lastEmpty ? 1 : 0)), // minus the header (and a final empty line)
      error: (error) => reject(error),
    });
  });
}

const [file, passesText = '3', warmupText = '1'] = process.argv.slice(2);
if (!file) throw new Error('usage: parse-only-child.ts <file.csv> [passes] [warm-up passes]');
for (let i = 0; i < Number(warmupText); i++) await parsePass(file);
const seconds: number[] = [];
const cpuSeconds: number[] = [];
let rows = 0;
for (let i = 0; i < Number(passesText); i++) {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  rows = await parsePass(file);
  seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  const used = process.cpuUsage(cpu);
  cpuSeconds.push((used.user + used.system) / 1e6);
}
process.stdout.write(`${JSON.stringify({ rows, seconds, cpuSeconds })}\n`);
