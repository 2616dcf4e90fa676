/**
 * The prefixes of a model's schedules, which are refresh sources as much as its manifest's. The schedules
 * (the `schedules` setting and its pure `scheduledPrefixes(schedules, model)`) are this function's one
 * source: read them here, once, when they exist in the stack; until then a model's refresh sources are
 * the ones its manifest lists.
 */
export function scheduledPrefixesOf(_env: NodeJS.ProcessEnv): (model: string) => readonly string[] {
  return () => [];
}
