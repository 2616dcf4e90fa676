/**
 * Jest's node environment, closer to plain node (one realm, as the code runs in Lambda and under `npm start`):
 * - the typed-array constructors are the process's own, not the test context's. Jest already does this for
 *   Uint8Array and ArrayBuffer (Buffer needs them); without the rest, a Float32Array built in a test is not
 *   `instanceof Float32Array` where onnxruntime checks a tensor's data.
 * - an error made by node itself (a socket's ECONNRESET, made outside the test context) is `instanceof
 *   Error` (and TypeError, ...) in the test context too: the AWS SDK's retry code wraps anything that is not
 *   into "AWS SDK error wrapper for ...", losing the error's code.
 */
import { TestEnvironment } from 'jest-environment-node';

const TYPED_ARRAYS = [
  Int8Array,
  Uint8ClampedArray,
  Int16Array,
  Uint16Array,
  Int32Array,
  Uint32Array,
  Float32Array,
  Float64Array,
  BigInt64Array,
  BigUint64Array,
  DataView,
  SharedArrayBuffer,
];

const ERRORS = ['Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError'];

export default class TandemEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const type of TYPED_ARRAYS) this.global[type.name] = type;
    for (const name of ERRORS) {
      const inner = this.global[name];
      const outer = globalThis[name];
      Object.defineProperty(inner, Symbol.hasInstance, {
        value(value) {
          if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
          // Only for the built-in error classes themselves; a subclass keeps the ordinary check.
          return (this === inner && value instanceof outer) || false;
        },
      });
    }
  }
}
