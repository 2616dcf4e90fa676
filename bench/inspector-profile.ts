/**
 * In-process CPU profiling through node:inspector, so a profile can cover exactly the measured window
 * (after start-up and warm-up) instead of the whole process as `node --cpu-prof` does.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { sendToParent } from './child.ts';

/** Starts the V8 sampling profiler; the returned function stops it and writes the .cpuprofile file. */
export async function startProfiling(samplingIntervalUs = 250): Promise<(file: string) => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  await session.post('Profiler.start');
  return async (file) => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    await writeFile(file, JSON.stringify(profile));
  };
}

/**
 * For benchmark servers: {kind: 'profile-start'} starts the profiler, {kind: 'profile-stop', file}
 * stops it, writes `file` and answers {kind: 'result', data: {file}}. Idle unless asked.
 */
export function serveProfilingRequests(): void {
  let stop: ((file: string) => Promise<void>) | undefined;
  process.on('message', (raw: unknown) => {
    const message = raw as { kind?: string; file?: string };
    if (message.kind === 'profile-start' && !stop) {
      void startProfiling().then((s) => {
        stop = s;
        return sendToParent({ kind: 'ready', data: { profiling: true } });
      });
    } else if (message.kind === 'profile-stop' && stop && message.file) {
      const file = message.file;
      void stop(file).then(() => sendToParent({ kind: 'result', data: { file } }));
      stop = undefined;
    }
  });
}
