/**
 * `expect(actual)` whose failure message starts with `message`: jest's `expect` takes one argument, and a
 * loop over cases needs to say which case failed. Works through `.not`, `.resolves` and `.rejects`.
 *
 *   expectWithMessage(row.reason, `row ${row.row}`).toMatch(/not a number/);
 */
import { expect } from '@jest/globals';

type Matchers<T> = ReturnType<typeof expect<T>>;

export function expectWithMessage<T>(actual: T, message: string): Matchers<T> {
  return withMessage(expect(actual), message);
}

function prefixed(error: unknown, message: string): unknown {
  if (error instanceof Error) error.message = `${message}\n\n${error.message}`;
  return error;
}

function withMessage<M extends object>(matchers: M, message: string): M {
  return new Proxy(matchers, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value === 'function') {
        return (...args: unknown[]) => {
          let result: unknown;
          try {
            result = (value as (...a: unknown[]) => unknown).apply(target, args);
          } catch (error) {
            throw prefixed(error, message);
          }
          if (result instanceof Promise)
            return result.catch((error: unknown) => Promise.reject(prefixed(error, message)));
          return result;
        };
      }
      if (value !== null && typeof value === 'object') return withMessage(value, message);
      return value;
    },
  });
}
