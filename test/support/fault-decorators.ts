/**
 * Fault-injecting decorators for the core's ports (lambdas/core/ports.ts): each wraps a real adapter
 * and, before the named method runs, asks `fault(...args)` whether to throw instead. Everything else
 * passes straight through to the wrapped object.
 */
type Method<T, K extends keyof T> = T[K] extends (...args: infer A) => Promise<unknown> ? A : never;

export function withFault<T extends object, K extends keyof T>(
  inner: T,
  method: K,
  fault: (...args: Method<T, K>) => Error | undefined,
): T {
  return new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      const bound = (value as (...args: unknown[]) => unknown).bind(target);
      if (property !== method) return bound;
      return async (...args: Method<T, K>) => {
        const error = fault(...args);
        if (error) throw error;
        return bound(...args);
      };
    },
  });
}

/** Fails the first `times` calls that `match` selects, then lets every call through. */
export function failTimes<A extends unknown[]>(
  times: number,
  error: () => Error,
  match: (...args: A) => boolean = () => true,
): (...args: A) => Error | undefined {
  let left = times;
  return (...args: A) => {
    if (left <= 0 || !match(...args)) return undefined;
    left--;
    return error();
  };
}
