/** The `tandem` command's usage: help per command, and usage errors (exit 2) before anything is touched. */
import { describe, expect, it } from '@jest/globals';
import { runCli } from '../../local/cli/tandem-cli.ts';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), cwd: '/nonexistent' });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('tandem usage', () => {
  it.each(['baseline', 'run', 'report'])('prints the help of monitor %s', async (command) => {
    const help = await run('monitor', command, '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(new RegExp(`^Usage: npm run tandem -- monitor ${command}`));
  });

  it.each([
    'list',
    'show',
    'history',
    'check',
    'push',
    'promote',
    'rollback',
    'canary',
    'rollout',
    'rollout-status',
  ])('prints the help of models %s', async (command) => {
    const help = await run('models', command, '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(new RegExp(`^Usage: npm run tandem -- models ${command}`));
  });

  it('prints the list of commands without arguments or with --help', async () => {
    for (const argv of [[], ['--help'], ['models', '--help']]) {
      const help = await run(...argv);
      expect(help.code).toBe(0);
      expect(help.out).toMatch(/models promote <name> <version>/);
    }
  });

  it.each([
    [['nope'], /unknown command "nope"/],
    [['models', 'deploy'], /unknown command "models deploy"/],
    [['models', 'promote', 'fraud-detector'], /missing the version/],
    [['models', 'show', '../etc'], /"..\/etc" is not a valid model name/],
    [['models', 'push', './pkg'], /--version is required/],
    [['models', 'list', 'extra'], /unexpected argument "extra"/],
    [['models', 'list', '--colour'], /Unknown option '--colour'/],
    [['models', 'canary', 'fraud-detector', '2.0.0'], /--percent is required/],
    [['models', 'canary', 'fraud-detector', '2.0.0', '--percent', '150'], /from 0 to 100, not "150"/],
    [['models', 'canary', 'fraud-detector', '2.0.0', '--percent', 'ten'], /from 0 to 100, not "ten"/],
    [['monitor', 'baseline', 'fraud-detector'], /missing --dataset <file\|folder\|prefix>/],
    [
      ['monitor', 'baseline', 'fraud-detector', '--dataset', 'x.csv', '--version', '../1'],
      /"..\/1" is not a valid version/,
    ],
    [['monitor', 'run'], /missing the model name/],
    [['monitor', 'report', 'a', 'b'], /unexpected argument "b"/],
    [['monitor', 'watch', 'fraud-detector'], /unknown command "monitor watch"/],
    [['models', 'canary', 'fraud-detector', '--percent', '10'], /missing the version/],
    [['models', 'rollout', 'fraud-detector'], /missing the version/],
    [
      ['models', 'rollout', 'fraud-detector', '2.0.0', '--steps', '50,10'],
      /--steps 50,10: the percentages must go up/,
    ],
    [['models', 'rollout', 'fraud-detector', '2.0.0', '--steps', '0,100'], /above 0 and at most 100/],
    [
      ['models', 'rollout', 'fraud-detector', '2.0.0', '--bake', 'soon'],
      /--bake soon: expected a duration from 1s to 24h/,
    ],
    [['models', 'rollout-status'], /missing the model name/],
  ])('answers %j with a usage error (exit 2) and the help', async (argv, message) => {
    const result = await run(...argv);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(message);
    expect(result.err).toMatch(/Usage: npm run tandem/);
  });
});
