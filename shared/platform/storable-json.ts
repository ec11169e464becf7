/**
 * What PostgreSQL can store of a JSON value, and what the API keeps exactly.
 * - `text` and `jsonb` refuse the NUL character (U+0000);
 * - `jsonb` refuses a lone UTF-16 surrogate (`"\ud800"` in JSON: "invalid input syntax for
 *   type json"), and `text` silently turns one into U+FFFD;
 * - `jsonb` input recurses once per nesting level, so a deep enough value ends in "stack
 *   depth limit exceeded";
 * - JSON numbers are parsed as doubles: `1e309` would become `null` and
 *   `12345678901234567890` would become `12345678901234567000` (see `parseJsonExactly`).
 * Request bodies with any of these are refused with a 400 that names the field
 * (middleware/json-body.ts); what a third party answers is made storable (workflows'
 * http_request step).
 */

/** Deeper than any real payload needs, and far below PostgreSQL's limit (thousands). */
export const MAX_JSON_DEPTH = 64;

export interface UnstorablePart {
  /** Where in the value: object keys and array indexes. */
  path: (string | number)[];
  problem: "null_character" | "lone_surrogate" | "max_depth" | "inexact_number";
}

/**
 * A number in the source text that a double cannot hold exactly, left in the parsed value
 * by `parseJsonExactly` in place of the number it would have silently become.
 */
export class InexactNumber {
  constructor(readonly source: string) {}
}

const textProblem = (text: string): UnstorablePart["problem"] | null =>
  text.includes("\u0000") ? "null_character" : text.isWellFormed() ? null : "lone_surrogate";

/** The first part of `value` PostgreSQL would refuse or the API would change, or null. */
export function findUnstorable(
  value: unknown,
  path: (string | number)[] = [],
): UnstorablePart | null {
  if (typeof value === "string") {
    const problem = textProblem(value);
    return problem ? { path, problem } : null;
  }
  if (value instanceof InexactNumber) return { path, problem: "inexact_number" };
  if (typeof value !== "object" || value === null) return null;
  // path.length counts the containers above this one.
  if (path.length >= MAX_JSON_DEPTH) return { path, problem: "max_depth" };
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((item, index) => [index, item])
    : Object.entries(value);
  for (const [key, item] of entries) {
    const here = [...path, key];
    const keyProblem = typeof key === "string" ? textProblem(key) : null;
    if (keyProblem) return { path: here, problem: keyProblem };
    const found = findUnstorable(item, here);
    if (found) return found;
  }
  return null;
}

/**
 * Text with its NUL characters and lone surrogates replaced by U+FFFD, as undecodable
 * bytes are.
 */
export const storableText = (text: string) => text.replaceAll("\u0000", "\uFFFD").toWellFormed();

/**
 * A JSON number's decimal value, written one way: sign, significant digits without leading
 * or trailing zeros, and exponent (`-1.50e3` and `-1500` are both `-15e2`); zero, of either
 * sign, is `0`.
 */
function canonicalDecimal(number: string): string {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(number);
  if (!match) return number; // Infinity, NaN: no decimal equals them
  const [, sign, whole, fraction = "", exponentText = "0"] = match;
  let digits = (whole + fraction).replace(/^0+/, "");
  if (digits === "") return "0";
  const trailingZeros = digits.length - digits.replace(/0+$/, "").length;
  digits = digits.slice(0, digits.length - trailingZeros);
  const exponent = Number(exponentText) - fraction.length + trailingZeros;
  return `${sign}${digits}e${exponent}`;
}

/** Whether the double `value` parsed from `source` has exactly the decimal value written. */
export const keepsExactly = (value: number, source: string) =>
  Number.isFinite(value) && canonicalDecimal(String(value)) === canonicalDecimal(source);

/**
 * A number that a double may not hold exactly has 16 or more significant digits (doubles
 * keep any 15) or an exponent (overflow to Infinity, underflow to 0). The check below is
 * looser than that (any 16 digits or dots in a row, anywhere, strings included) and only
 * decides whether the slower, exact parse is needed.
 */
const MAY_BE_INEXACT = /[\d.]{16}|\d[eE]/;

/**
 * JSON.parse, except that a number whose decimal value a double cannot hold exactly
 * (not finite, or rounded: `1e309`, `12345678901234567890`, `0.10000000000000001`) is
 * left as an `InexactNumber` for `findUnstorable` to report, instead of silently changing.
 * `-0` counts as `0`. The reviver that sees each number's source text costs time, so it
 * runs only when the text has a number-like run that could need it.
 */
export function parseJsonExactly(text: string): unknown {
  if (!MAY_BE_INEXACT.test(text)) return JSON.parse(text);
  return JSON.parse(
    text,
    (_key: string, value: unknown, context?: { source?: string }) =>
      typeof value === "number" && context?.source !== undefined &&
        !keepsExactly(value, context.source)
        ? new InexactNumber(context.source)
        : value,
  );
}
