/**
 * The "ours" HTTP server of the http section: the local stack (embedded dynalite + s3rver, the demo
 * model uploaded, the real handler behind the API Gateway adapter) on a free loopback port. Not seeded:
 * the load is `bypassCache` requests. Sends {kind: 'ready', data: {url}}; stops on {kind: 'stop'}.
 */
import { startLocalStack } from '../local/stack.ts';
import { NPM_START_HANDLER_ENV, runChild, sendToParent, stopRequested } from './child.ts';
import { serveProfilingRequests } from './inspector-profile.ts';

runChild(async () => {
  const stopping = stopRequested();
  serveProfilingRequests(); // idle unless bench/profile.ts asks
  // As `npm start` configures the handler (its logs go to this process's stdout, a pipe to the runner).
  const stack = await startLocalStack({ apiPort: 0, seed: false, handlerEnv: { ...NPM_START_HANDLER_ENV } });
  try {
    await sendToParent({ kind: 'ready', data: { url: stack.apiUrl } });
    await stopping;
  } finally {
    await stack.stop();
  }
});
