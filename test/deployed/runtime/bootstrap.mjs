/**
 * The stand-in for the Lambda Node.js runtime's /var/runtime/index.mjs, for one invocation: it loads the
 * function's handler the way the runtime interface client does (`_HANDLER` "index.handler": the module is
 * tried as `index`, `index.js`, `index.mjs`, `index.cjs` under LAMBDA_TASK_ROOT, imported by path), calls
 * it with the event read from stdin and a Lambda context, and writes the outcome as JSON to file
 * descriptor 3: `{ ok: true, result }` or `{ ok: false, phase: 'init' | 'invoke', error }` where `error` is
 * what the runtime reports to Lambda (`errorType` is the error's `name`, which Step Functions matches
 * Retry and Catch on). stdout and stderr are the function's logs.
 *
 * Plain JavaScript on purpose: it runs on the Node binary under test, without tsx or the repository.
 */
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import process from 'node:process';

// The nodejs18.x and later runtimes search the NODE_PATH folders when loading ES modules (plain Node
// does not): that is how a bundle's `import '@aws-sdk/client-s3'` finds the SDK the runtime ships.
register('./node-path-hooks.mjs', import.meta.url);

const RESULT_FD = 3;

function formatError(error) {
  if (error instanceof Error) {
    return { errorType: error.name, errorMessage: error.message, trace: error.stack?.split('\n') ?? [] };
  }
  return { errorType: typeof error, errorMessage: String(error), trace: [] };
}

function report(outcome) {
  writeSync(RESULT_FD, JSON.stringify(outcome));
}

async function loadHandler() {
  const taskRoot = process.env.LAMBDA_TASK_ROOT;
  const handlerString = process.env._HANDLER;
  const base = path.basename(handlerString);
  const moduleRoot = handlerString.slice(0, handlerString.length - base.length).replace(/\/$/, '');
  const match = /^([^.]*)\.(.*)$/.exec(base);
  if (!match)
    throw Object.assign(new Error(`Bad handler ${handlerString}`), { name: 'Runtime.MalformedHandlerName' });
  const [, moduleName, handlerName] = match;
  const withoutExtension = path.resolve(taskRoot, moduleRoot, moduleName);
  for (const extension of ['', '.js', '.mjs', '.cjs']) {
    const file = `${withoutExtension}${extension}`;
    if (!existsSync(file)) continue;
    const module = await import(file);
    const handler = handlerName.split('.').reduce((value, key) => value?.[key], module);
    if (typeof handler !== 'function') {
      throw Object.assign(new Error(`${handlerString} is undefined or not exported`), {
        name: 'Runtime.HandlerNotFound',
      });
    }
    return handler;
  }
  throw Object.assign(new Error(`Cannot find module '${moduleName}'`), { name: 'Runtime.ImportModuleError' });
}

const request = JSON.parse(readFileSync(0, 'utf8'));
let handler;
try {
  handler = await loadHandler();
} catch (error) {
  report({ ok: false, phase: 'init', error: formatError(error) });
  process.exit(1);
}

const deadline = Date.now() + request.timeoutMs;
const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME;
const context = {
  awsRequestId: request.requestId,
  functionName,
  functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
  invokedFunctionArn: request.invokedFunctionArn,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};
try {
  const result = await handler(request.event, context);
  report({ ok: true, result: result === undefined ? null : result });
} catch (error) {
  report({ ok: false, phase: 'invoke', error: formatError(error) });
}
// Lambda freezes the environment here; this stand-in serves one invocation, so it ends the process (the
// function may hold keep-alive sockets or worker threads that would keep it running).
process.exit(0);
