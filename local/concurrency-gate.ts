/**
 * At most `limit` invocations of a handler in flight; the rest wait their turn, first come first
 * served. In Lambda each execution environment takes one request at a time, so the handler's own
 * time budgets (the cache read's, above all) measure the store, never a queue of other requests.
 * One local process serving every request at once would count its own backlog against those
 * budgets; with the gate, the backlog is waited out before the handler starts, as requests wait for
 * a free instance.
 */
export function limitConcurrency<A extends unknown[], R>(
  handler: (...args: A) => Promise<R>,
  limit: number,
): (...args: A) => Promise<R> {
  if (!Number.isInteger(limit) || limit < 1)
    throw new Error(`limit must be a positive integer, got ${limit}`);
  let running = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else running--;
  };
  return async (...args: A) => {
    if (running < limit) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await handler(...args);
    } finally {
      release();
    }
  };
}
