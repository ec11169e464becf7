/**
 * What PostgreSQL can store of a JSON value. `text` and `jsonb` refuse the NUL character
 * (U+0000), and `jsonb` input recurses once per nesting level, so a deep enough value ends
 * in "stack depth limit exceeded". Request bodies with either are refused with a 400 that
 * names the field (middleware/json-body.ts); what a third party answers is made storable
 * (workflows' http_request step).
 */

/** Deeper than any real payload needs, and far below PostgreSQL's limit (thousands). */
export const MAX_JSON_DEPTH = 64;

export interface UnstorablePart {
  /** Where in the value: object keys and array indexes. */
  path: (string | number)[];
  problem: "null_character" | "max_depth";
}

/** The first part of `value` PostgreSQL would refuse, or null. */
export function findUnstorable(
  value: unknown,
  path: (string | number)[] = [],
): UnstorablePart | null {
  if (typeof value === "string") {
    return value.includes("\u0000") ? { path, problem: "null_character" } : null;
  }
  if (typeof value !== "object" || value === null) return null;
  // path.length counts the containers above this one.
  if (path.length >= MAX_JSON_DEPTH) return { path, problem: "max_depth" };
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((item, index) => [index, item])
    : Object.entries(value);
  for (const [key, item] of entries) {
    const here = [...path, key];
    if (typeof key === "string" && key.includes("\u0000")) {
      return { path: here, problem: "null_character" };
    }
    const found = findUnstorable(item, here);
    if (found) return found;
  }
  return null;
}

/** Text with its NUL characters replaced by U+FFFD, as undecodable bytes are. */
export const storableText = (text: string) => text.replaceAll("\u0000", "\uFFFD");
