/**
 * The stream lane's settings, read from the one settings definition (lambdas/core/settings.ts): the
 * consumer function, the API's POST /events and the local poller read them with readStreamSettings.
 */
export {
  DEFAULT_STREAM_SETTINGS,
  readStreamSettings,
  STREAM_SETTING_NAMES,
  streamSettingsEnvironment,
  type StreamSettings,
} from '../core/settings.ts';
