/**
 * EventBridge event pattern matching, for the operators a rule of this stack may use: exact values,
 * prefix, suffix, equals-ignore-case, wildcard, anything-but (values, prefix or suffix), exists and
 * numeric comparisons. Any other operator fails loudly rather than matching by accident.
 */
type Pattern = Record<string, unknown>;

export function matchesPattern(event: unknown, pattern: Pattern): boolean {
  return Object.entries(pattern).every(([field, condition]) => {
    if (field === '$or')
      return (condition as Pattern[]).some((alternative) => matchesPattern(event, alternative));
    const value = (event as Record<string, unknown> | undefined)?.[field];
    if (Array.isArray(condition)) return condition.some((c) => matchesValue(value, c));
    return matchesPattern(value, condition as Pattern);
  });
}

function matchesValue(value: unknown, condition: unknown): boolean {
  const values = Array.isArray(value) ? value : [value];
  if (condition === null || typeof condition !== 'object') {
    return values.some((v) => v === condition);
  }
  const [operator, argument] = Object.entries(condition as Pattern)[0]!;
  const strings = values.filter((v): v is string => typeof v === 'string');
  switch (operator) {
    case 'prefix':
      return strings.some((v) => v.startsWith(argument as string));
    case 'suffix':
      return strings.some((v) => v.endsWith(argument as string));
    case 'equals-ignore-case':
      return strings.some((v) => v.toLowerCase() === (argument as string).toLowerCase());
    case 'wildcard': {
      const regex = new RegExp(`^${(argument as string).split('*').map(escape).join('.*')}$`);
      return strings.some((v) => regex.test(v));
    }
    case 'exists':
      return (value !== undefined) === argument;
    case 'anything-but': {
      if (value === undefined) return false;
      if (Array.isArray(argument) || typeof argument !== 'object' || argument === null) {
        const excluded = Array.isArray(argument) ? argument : [argument];
        return values.every((v) => !excluded.includes(v));
      }
      return values.every((v) => !matchesValue(v, argument));
    }
    case 'numeric': {
      const terms = argument as (string | number)[];
      return values.some((v) => {
        if (typeof v !== 'number') return false;
        for (let i = 0; i < terms.length; i += 2) {
          const limit = terms[i + 1] as number;
          const ok = { '<': v < limit, '<=': v <= limit, '=': v === limit, '>': v > limit, '>=': v >= limit }[
            terms[i] as '<'
          ];
          if (!ok) return false;
        }
        return true;
      });
    }
    default:
      throw new Error(`event pattern operator ${operator} is not supported by this matcher`);
  }
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
