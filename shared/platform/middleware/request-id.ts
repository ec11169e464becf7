import type { MiddlewareHandler } from "hono";

const SAFE_ID = /^[\w.:-]{1,128}$/;

/**
 * Echoes a well-formed `X-Request-Id` from the caller, or makes one, and puts it on every
 * response so logs on both sides can be correlated.
 */
export function requestId(): MiddlewareHandler {
  return async function requestId(c, next) {
    const given = c.req.header("x-request-id");
    const id = given && SAFE_ID.test(given)
      ? given
      : `req_${crypto.randomUUID().replaceAll("-", "")}`;
    c.set("requestId", id);
    // Prepared before the response exists, so error responses carry it too.
    c.header("X-Request-Id", id);
    await next();
  };
}
