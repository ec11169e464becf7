import type { MiddlewareHandler } from "hono";

/** Request headers a browser may send: supabase-js `functions.invoke` and our own. */
const ALLOW_HEADERS = [
  "authorization",
  "apikey",
  "x-client-info",
  "content-type",
  "x-api-key",
  "idempotency-key",
  "x-request-id",
].join(",");

/** Response headers a browser script may read. */
const EXPOSE_HEADERS = [
  "X-Request-Id",
  "X-RateLimit-Limit",
  "X-RateLimit-Remaining",
  "X-RateLimit-Reset",
  "Retry-After",
  "Idempotent-Replayed",
].join(",");

/**
 * CORS for browser calls (the dashboard uses supabase-js `functions.invoke`): any origin,
 * since every call carries its own credentials and no cookies. Preflights are answered
 * here. The headers are prepared before the response exists (c.header), which spares the
 * placeholder response and header copy hono/cors makes on every request.
 */
export function cors(): MiddlewareHandler {
  return async function cors(c, next) {
    if (c.req.method === "OPTIONS") {
      // c.body keeps the headers prepared so far (the request id).
      return c.body(null, 204, {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": "POST,GET,OPTIONS",
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
        "Access-Control-Max-Age": "86400",
      });
    }
    c.header("Access-Control-Allow-Origin", "*");
    c.header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    await next();
  };
}
