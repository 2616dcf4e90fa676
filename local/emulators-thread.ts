/**
 * Worker-thread entry that runs the emulators (emulators.ts) and talks to embedded-aws.ts by message:
 * in `{type: 'stop'}`; out `{type: 'ready', ...endpoints}`, `{type: 'failed', message}`,
 * `{type: 's3-event', event}` and `{type: 'stopped'}`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { startEmulators, type EmulatorOptions } from './emulators.ts';

export type FromEmulators =
  | {
      readonly type: 'ready';
      readonly dynamoEndpoint: string;
      readonly s3Endpoint: string;
      readonly kinesisEndpoint: string | undefined;
    }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 's3-event'; readonly event: unknown }
  | { readonly type: 'stopped' };
export type ToEmulators = { readonly type: 'stop' };

const port = parentPort;
if (!port) throw new Error('emulators-thread.ts runs as a worker thread (see embedded-aws.ts)');
const send = (message: FromEmulators) => port.postMessage(message);

try {
  const emulators = await startEmulators(workerData as EmulatorOptions);
  emulators.onS3Event((event) => send({ type: 's3-event', event }));
  port.on('message', (message: ToEmulators) => {
    if (message.type !== 'stop') return;
    // A table write still running when dynalite closes its database (a batch run abandoned on Ctrl+C
    // keeps writing until the process exits) throws this from a callback; the store is closed cleanly
    // and nothing is lost, so it is not a failure of the thread. Anything else still is.
    process.on('uncaughtException', (error) => {
      if (error.message === 'Database is closed') return;
      process.stderr.write(
        `[embedded-aws] the emulator thread failed while stopping: ${error.stack ?? error.message}\n`,
      );
    });
    void emulators.stop().then(() => {
      send({ type: 'stopped' });
      port.close();
    });
  });
  send({
    type: 'ready',
    dynamoEndpoint: emulators.dynamoEndpoint,
    s3Endpoint: emulators.s3Endpoint,
    kinesisEndpoint: emulators.kinesisEndpoint,
  });
} catch (error) {
  send({ type: 'failed', message: (error as Error).message });
  port.close();
}
