/**
 * The prefixes of a model's schedules, which are refresh sources as much as its manifest's: read from the
 * `schedules` setting (SCHEDULES, checked at synth and again here) with the schedules module's
 * `scheduledPrefixes`.
 */
import { parseSchedules, scheduledPrefixes } from '../core/batch/schedules.ts';
import { readEnv, SettingError, SETTINGS } from '../core/settings.ts';

export function scheduledPrefixesOf(env: NodeJS.ProcessEnv): (model: string) => readonly string[] {
  const parsed = parseSchedules(readEnv(SETTINGS.schedules, env));
  if (!parsed.ok) throw new SettingError('INVALID_SETTING', `SCHEDULES: ${parsed.problems.join('; ')}`);
  const { schedules } = parsed;
  return (model) => scheduledPrefixes(schedules, model);
}
