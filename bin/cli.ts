/** `npm run tandem -- <command>` (and the `tandem` bin): operate models; see local/cli/tandem-cli.ts. */
import '../local/node-support.ts'; // first: before any AWS SDK client is made
import { runCli } from '../local/cli/tandem-cli.ts';

process.exitCode = await runCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  // npm run starts scripts in the package root; relative paths are the caller's.
  cwd: process.env['INIT_CWD'] ?? process.cwd(),
});
