import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";
import { findUnstorable, MAX_JSON_DEPTH } from "../storable-json.ts";

export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** Invalid UTF-8 is refused rather than silently replaced. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

async function readLimited(body: ReadableStream<Uint8Array> | null, limit: number) {
  if (!body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

const tooLarge = (limit: number) =>
  new ApiError("PAYLOAD_TOO_LARGE", `The request body exceeds the limit of ${limit} bytes.`, {
    details: { limit_bytes: limit },
  });

/**
 * A body PostgreSQL could not store (a NUL character, or nesting too deep) is a 400 naming
 * the field as validation errors do: inside `data` relative to it (`custom_fields.note`).
 */
function refuseUnstorable(body: unknown) {
  const found = findUnstorable(body);
  if (!found) return;
  const inData = found.path[0] === "data" && found.path.length > 1;
  const field = (inData ? found.path.slice(1) : found.path).join(".") || "body";
  throw found.problem === "null_character"
    ? new ApiError(
      "VALIDATION_ERROR",
      `The '${field}' field contains a NUL character (\\u0000), which cannot be stored.`,
      { details: { field, constraint: "no_null_character" } },
    )
    : new ApiError(
      "VALIDATION_ERROR",
      `The '${field}' field is nested more than ${MAX_JSON_DEPTH} levels deep.`,
      { details: { field, constraint: "max_depth", max_depth: MAX_JSON_DEPTH } },
    );
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
      ? await readLimited(c.req.raw.body, limit)
      : new Uint8Array(await c.req.raw.arrayBuffer());
    if (bytes.byteLength > limit) throw tooLarge(limit);
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
      body = JSON.parse(strictUtf8.decode(bytes));
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
