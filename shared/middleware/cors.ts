import { cors as honoCors } from "hono/cors";

/**
 * CORS for browser calls (the dashboard uses supabase-js `functions.invoke`, which sends
 * `authorization`, `apikey`, `x-client-info` and `content-type`).
 */
export const cors = () =>
  honoCors({
    origin: "*",
    allowMethods: ["POST", "GET", "OPTIONS"],
    allowHeaders: [
      "authorization",
      "apikey",
      "x-client-info",
      "content-type",
      "x-api-key",
      "idempotency-key",
      "x-request-id",
    ],
    exposeHeaders: [
      "X-Request-Id",
      "X-RateLimit-Limit",
      "X-RateLimit-Remaining",
      "X-RateLimit-Reset",
      "Retry-After",
      "Idempotent-Replayed",
    ],
    maxAge: 86400,
  });
