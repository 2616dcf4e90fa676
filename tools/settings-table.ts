/**
 * Prints the table of settings of docs/configuration.md, derived from lambdas/core/settings.ts (paste it
 * between the markers, then `npx prettier --write docs/configuration.md`; test/infra/settings.test.ts checks it).
 */
import { settingsTableMarkdown } from '../lib/settings.ts';

process.stdout.write(`${settingsTableMarkdown()}\n`);
