/** Timestamps as the spec writes them: ISO 8601 UTC to the second, `2026-04-07T12:00:00Z`. */
export function isoTimestamp(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return new Date(value).toISOString().replace(/\.\d{3}Z$/, "Z");
}
