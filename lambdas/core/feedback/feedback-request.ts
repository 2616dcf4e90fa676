/**
 * `POST /feedback`: outcomes observed for entities that were predicted, `{"model"?, "id", "label" |
 * "value", "observedAt"?}` or many in `{"model"?, "items": [...]}`. Each item is checked against the
 * model it names: a classifier's outcome is one of its classes (`label`), a regressor's a finite number
 * (`value`); the id follows the one entity-id rule (entity-id.ts); `observedAt` is an ISO-8601 time with
 * a zone, not in the future. Every problem is named by item (`instance`) and field; one bad item rejects
 * the request whole, so that a caller never has to find out which half was stored.
 */
import { ValidationError, type ErrorDetail } from '../errors.ts';
import { jsonElementFieldSources, jsonValueSource, parseEntityId } from '../entity-id.ts';
import type { ClassLabel, Task } from '../manifest.ts';
import { isPackageName } from '../names.ts';
import { ISO_TIME } from '../stream/stream-event.ts';

export const MAX_FEEDBACK_ITEMS = 500;

/** How far ahead of the server's clock an `observedAt` may be (clock skew of the caller). */
export const OBSERVED_AT_SKEW_MS = 5 * 60_000;

/** One outcome, as the body gave it (before the model's checks). */
interface RawItem {
  readonly index: number;
  readonly raw: Record<string, unknown>;
  readonly id: string | undefined;
}

export interface FeedbackRequest {
  readonly model: string | undefined;
  /** `items` was used (errors name `items.<i>.<field>`), or the single form. */
  readonly many: boolean;
  readonly items: readonly RawItem[];
}

/** An outcome checked against its model: `label` for a classifier, `value` for a regressor. */
export type FeedbackOutcome =
  | { readonly id: string; readonly label: ClassLabel; readonly observedAt: string }
  | { readonly id: string; readonly value: number; readonly observedAt: string };

/** What the outcomes are checked against: the model's task and (classifiers) its classes. */
export interface FeedbackModel {
  readonly name: string;
  readonly task: Task;
  /** Undefined for a classifier whose classes are not known (label output only): any label is taken. */
  readonly classes: readonly ClassLabel[] | undefined;
}

const ITEM_KEYS = new Set(['id', 'label', 'value', 'observedAt']);
const SINGLE_KEYS = new Set(['model', ...ITEM_KEYS]);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function invalidFeedback(
  issues: readonly ErrorDetail[],
  code: 'INVALID_FEEDBACK' | 'UNKNOWN_ID' = 'INVALID_FEEDBACK',
): ValidationError {
  const shown = issues.slice(0, 3).map((i) => `${i.field} ${i.message}`);
  return new ValidationError(
    code,
    `${code === 'UNKNOWN_ID' ? 'feedback for ids never predicted' : 'invalid feedback'}: ${shown.join('; ')}${issues.length > 3 ? '; …' : ''}`,
    { details: issues },
  );
}

/** Checks the body's shape and the ids; `text` is the body as received (numeric ids are taken from it). */
export function parseFeedbackRequest(body: unknown, text: string | undefined): FeedbackRequest {
  if (!isObject(body)) {
    throw new ValidationError('INVALID_REQUEST', 'the body must be a JSON object with "id" or "items"', {
      details: [{ field: '(root)', message: 'must be an object' }],
    });
  }
  const issues: ErrorDetail[] = [];
  const many = 'items' in body;
  const model = body['model'];
  if (model !== undefined && !isPackageName(model)) {
    issues.push({
      field: 'model',
      message:
        'must be a model name (1 to 128 letters, digits, ".", "_" or "-", starting with a letter or digit)',
    });
  }
  let rawItems: unknown[];
  if (many) {
    for (const key of Object.keys(body)) {
      if (key !== 'model' && key !== 'items') {
        const hint = ITEM_KEYS.has(key) ? ' (with "items", each item carries its own)' : '';
        issues.push({ field: key, message: `is not a known field${hint}` });
      }
    }
    const list = body['items'];
    if (!Array.isArray(list) || list.length === 0) {
      issues.push({ field: 'items', message: 'must be a non-empty array of outcomes' });
      throw invalidFeedback(issues);
    }
    if (list.length > MAX_FEEDBACK_ITEMS) {
      throw new ValidationError(
        'TOO_MANY_INSTANCES',
        `too many items: ${list.length}; the limit is ${MAX_FEEDBACK_ITEMS} per request`,
        { details: [{ field: 'items', message: `at most ${MAX_FEEDBACK_ITEMS} items` }] },
      );
    }
    rawItems = list;
  } else {
    for (const key of Object.keys(body)) {
      if (!SINGLE_KEYS.has(key)) issues.push({ field: key, message: 'is not a known field' });
    }
    const { model: _model, ...item } = body;
    rawItems = [item];
  }

  let idTexts: (string | undefined)[] | undefined;
  const items: RawItem[] = [];
  rawItems.forEach((raw, i) => {
    const prefix = many ? `items.${i}.` : '';
    const at = (field: string): ErrorDetail =>
      many ? { instance: i, field: `${prefix}${field}`, message: '' } : { field, message: '' };
    if (!isObject(raw)) {
      issues.push({
        instance: i,
        field: `items.${i}`,
        message: 'must be an object with "id" and "label" or "value"',
      });
      return;
    }
    if (many) {
      for (const key of Object.keys(raw)) {
        if (!ITEM_KEYS.has(key)) issues.push({ ...at(key), message: 'is not a known field' });
      }
    }
    const rawId = raw['id'];
    let numberText: string | undefined;
    if (typeof rawId === 'number' && text !== undefined) {
      numberText = many
        ? (idTexts ??= jsonElementFieldSources(text, ['items'], 'id'))[i]
        : jsonValueSource(text, ['id']);
    }
    const { id, problem } = parseEntityId(rawId, numberText);
    if (problem !== undefined) issues.push({ ...at('id'), message: problem });
    else if (id === undefined)
      issues.push({ ...at('id'), message: 'is required (the entity whose outcome this is)' });
    const hasLabel = raw['label'] !== undefined;
    const hasValue = raw['value'] !== undefined;
    if (hasLabel && hasValue)
      issues.push({
        ...at('value'),
        message: 'give "label" (a classifier) or "value" (a regressor), not both',
      });
    else if (!hasLabel && !hasValue)
      issues.push({
        ...at('label'),
        message: 'is required: "label" for a classifier, "value" for a regressor',
      });
    const observedAt = raw['observedAt'];
    if (observedAt !== undefined) {
      const ms = typeof observedAt === 'string' && ISO_TIME.test(observedAt) ? Date.parse(observedAt) : NaN;
      if (Number.isNaN(ms))
        issues.push({
          ...at('observedAt'),
          message: 'must be an ISO-8601 time with a zone, e.g. 2026-01-31T12:00:00Z',
        });
    }
    items.push({ index: i, raw, id });
  });
  if (issues.length > 0) throw invalidFeedback(issues);
  return { model: typeof model === 'string' ? model : undefined, many, items };
}

/** The outcomes checked against the model (classes or number), with `observedAt` (default: now) normalized. */
export function checkOutcomes(
  request: FeedbackRequest,
  model: FeedbackModel,
  nowMs: number,
): FeedbackOutcome[] {
  const issues: ErrorDetail[] = [];
  const classifier = model.task !== 'regression';
  const byText = new Map((model.classes ?? []).map((c) => [String(c), c]));
  const outcomes: FeedbackOutcome[] = [];
  for (const { index, raw, id } of request.items) {
    const field = (name: string) => (request.many ? `items.${index}.${name}` : name);
    const detail = (name: string, message: string): ErrorDetail =>
      request.many ? { instance: index, field: field(name), message } : { field: field(name), message };
    const observedText = raw['observedAt'] as string | undefined;
    const observedMs = observedText === undefined ? nowMs : Date.parse(observedText);
    if (observedMs > nowMs + OBSERVED_AT_SKEW_MS) {
      issues.push(
        detail('observedAt', `is in the future (${observedText}); an outcome is observed, not forecast`),
      );
      continue;
    }
    const observedAt = new Date(observedMs).toISOString();
    if (classifier) {
      const label = raw['label'];
      if (label === undefined) {
        issues.push(
          detail(
            'value',
            `is for regressors: model "${model.name}" is a classifier, send "label" (one of its classes)`,
          ),
        );
        continue;
      }
      if (typeof label !== 'string' && typeof label !== 'number') {
        issues.push(
          detail('label', `must be a string or number class, got ${JSON.stringify(label).slice(0, 60)}`),
        );
        continue;
      }
      const known = model.classes === undefined ? label : byText.get(String(label));
      if (known === undefined) {
        const classes = model.classes!.map((c) => JSON.stringify(c)).join(', ');
        issues.push(
          detail(
            'label',
            `is not a class of model "${model.name}" (${classes}), got ${JSON.stringify(label).slice(0, 60)}`,
          ),
        );
        continue;
      }
      outcomes.push({ id: id!, label: known, observedAt });
    } else {
      const value = raw['value'];
      if (value === undefined) {
        issues.push(
          detail(
            'label',
            `is for classifiers: model "${model.name}" is a regressor, send "value" (a number)`,
          ),
        );
        continue;
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) {
        const shown = typeof value === 'number' ? String(value) : JSON.stringify(value).slice(0, 60);
        issues.push(detail('value', `must be a finite number, got ${shown}`));
        continue;
      }
      outcomes.push({ id: id!, value, observedAt });
    }
  }
  if (issues.length > 0) throw invalidFeedback(issues);
  return outcomes;
}
