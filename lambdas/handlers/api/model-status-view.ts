/**
 * What `/ready` and `/models/{name}` say about a model's serving state: the version that serves, what its
 * pointer (`current.json`) says, and why the pointer's version is not serving when it is not.
 */
import type { ModelStatus } from '../../core/model-registry.ts';

export interface PointerView {
  /** The version `current.json` names; absent when it could not be read (missing, not JSON, store down). */
  readonly version?: string;
  /** The pointer's version is the one serving. */
  readonly serving: boolean;
  readonly checkedAt?: string;
  readonly error?: ModelFailure & { readonly since?: string };
  /** The pointer's canary: its candidate, percentage, and whether it serves (and if not why). */
  readonly canary?: ModelStatus['canary'];
  /** The pointer's shadow: its version, sample, and whether it runs (and if not why). */
  readonly shadow?: ModelStatus['shadow'];
}

/** Why a model does not load, in one shape for every kind of failure (`/models`, `/models/{name}`, `/ready`). */
export interface ModelFailure {
  readonly code: string;
  readonly message: string;
  /** One per manifest field that is wrong. */
  readonly details?: readonly { readonly field?: string; readonly message: string }[];
}

/** The failure of a status's error (code, full message, the fields). */
export function failureView(error: NonNullable<ModelStatus['error']>): ModelFailure {
  return {
    code: error.code,
    message: error.message,
    ...(error.details && error.details.length > 0 ? { details: error.details } : {}),
  };
}

const iso = (ms: number | undefined): string | undefined =>
  ms === undefined || ms === 0 ? undefined : new Date(ms).toISOString();

export function pointerView(status: ModelStatus): PointerView {
  const error = status.error;
  return {
    ...(status.pointerVersion !== undefined ? { version: status.pointerVersion } : {}),
    serving: status.ready && error === undefined,
    ...(iso(status.checkedAt) ? { checkedAt: iso(status.checkedAt) } : {}),
    ...(error
      ? {
          error: {
            ...failureView(error),
            ...(iso(error.since) ? { since: iso(error.since) } : {}),
          },
        }
      : {}),
    ...(status.canary ? { canary: status.canary } : {}),
    ...(status.shadow ? { shadow: status.shadow } : {}),
  };
}

/** The body and status of `GET /ready` for the default model. */
export function readyView(status: ModelStatus): { statusCode: number; body: Record<string, unknown> } {
  const pointer = pointerView(status);
  if (status.ready) {
    return {
      statusCode: 200,
      body: {
        status: 'ready',
        model: { name: status.name, version: status.version, since: iso(status.servingSince) },
        pointer,
      },
    };
  }
  return {
    statusCode: 503,
    body: {
      status: 'not-ready',
      model: { name: status.name },
      pointer,
      error: { code: status.error?.code ?? 'MODEL_LOADING', message: status.error?.message ?? '' },
    },
  };
}

/** The fields `/models/{name}` adds to a model's description: the serving version's time and its pointer. */
export function servingView(status: ModelStatus): Record<string, unknown> {
  return {
    ...(status.ready ? { servingSince: iso(status.servingSince) } : {}),
    pointer: pointerView(status),
    ...(status.ready || !status.error ? {} : { error: failureView(status.error) }),
  };
}
