import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";
import { readCapped } from "../read-capped.ts";
import {
  findUnstorable,
  MAX_JSON_DEPTH,
  parseJsonExactly,
  type UnstorablePart,
} from "../storable-json.ts";

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Invalid UTF-8 is refused rather than silently replaced. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

const tooLarge = (limit: number) =>
  new ApiError("PAYLOAD_TOO_LARGE", `The request body exceeds the limit of ${limit} bytes.`, {
    details: { limit_bytes: limit },
  });

/** The 400 for each kind of unstorable part: message and `details.constraint`. */
const UNSTORABLE_ERRORS: Record<
  UnstorablePart["problem"],
  (field: string) => { message: string; details: Record<string, unknown> }
> = {
  null_character: (field) => ({
    message: `The '${field}' field contains a NUL character (\\u0000), which cannot be stored.`,
    details: { constraint: "no_null_character" },
  }),
  lone_surrogate: (field) => ({
    message: `The '${field}' field contains a lone UTF-16 surrogate (such as \\ud800), ` +
      "which is not a character and cannot be stored.",
    details: { constraint: "no_lone_surrogate" },
  }),
  max_depth: (field) => ({
    message: `The '${field}' field is nested more than ${MAX_JSON_DEPTH} levels deep.`,
    details: { constraint: "max_depth", max_depth: MAX_JSON_DEPTH },
  }),
  inexact_number: (field) => ({
    message: `The '${field}' field is a number that cannot be kept exactly (beyond the ` +
      "range or the ~15-17 significant digits of a double); send it as a string.",
    details: { constraint: "exact_number" },
  }),
};

/**
 * A body PostgreSQL could not store (a NUL character, a lone surrogate, nesting too deep)
 * or whose numbers would change (`1e309`, `12345678901234567890`) is a 400 naming the field
 * as validation errors do: inside `data` relative to it (`custom_fields.note`).
 */
function refuseUnstorable(body: unknown) {
  const found = findUnstorable(body);
  if (!found) return;
  const inData = found.path[0] === "data" && found.path.length > 1;
  const field = (inData ? found.path.slice(1) : found.path).join(".") || "body";
  const { message, details } = UNSTORABLE_ERRORS[found.problem](field);
  throw new ApiError("VALIDATION_ERROR", message, { details: { field, ...details } });
}

/**
 * Reads the body (refusing more than `limit` bytes, even when chunked) and parses it as
 * JSON into `c.var.body`. An empty body is `undefined`; a non-JSON body is a clear 400.
 */
export function jsonBody(limit = DEFAULT_BODY_LIMIT): MiddlewareHandler {
  return async function jsonBody(c, next) {
    const length = c.req.header("content-length");
    if (Number(length) > limit) throw tooLarge(limit);
    // With a declared length (the usual case) one read is cheapest; a chunked body is read
    // piece by piece so it can be cut off at the limit.
    const bytes = length === undefined
      ? await readCapped(c.req.raw.body, limit)
      : new Uint8Array(await c.req.raw.arrayBuffer());
    if (bytes === null || bytes.byteLength > limit) throw tooLarge(limit);
    if (bytes.byteLength === 0) {
      c.set("body", undefined);
      return await next();
    }
    const type = c.req.header("content-type") ?? "";
    if (!/^application\/(.+\+)?json\b/i.test(type)) {
      throw new ApiError("VALIDATION_ERROR", "The Content-Type header must be application/json.", {
        details: { field: "Content-Type", constraint: "application/json" },
      });
    }
    let body: unknown;
    try {
      body = parseJsonExactly(strictUtf8.decode(bytes));
    } catch {
      throw new ApiError("VALIDATION_ERROR", "The request body is not valid JSON.", {
        details: { field: "body", constraint: "json" },
      });
    }
    refuseUnstorable(body);
    c.set("body", body);
    await next();
  };
}
