import type { MiddlewareHandler } from "hono";
import { ApiError } from "../errors.ts";

/** An organization's rate-limit state after counting this request (null limit: unlimited). */
export interface RateLimitState {
  limit_per_minute: number | null;
  limit_per_second: number | null;
  remaining: number | null;
  reset_at: number | null;
  /** null when the request may proceed, else which window it went over. */
  exceeded: "minute" | "second" | null;
  retry_after: number | null;
}

function headersOf(state: RateLimitState): Record<string, string> {
  if (state.limit_per_minute === null) return {};
  return {
    "X-RateLimit-Limit": String(state.limit_per_minute),
    "X-RateLimit-Remaining": String(state.remaining),
    "X-RateLimit-Reset": String(state.reset_at),
  };
}

/**
 * Puts `X-RateLimit-*` on every authenticated response and refuses a request over the
 * plan's limit with the spec's 429 body plus `Retry-After`. Counting happened during
 * authentication, in the same database round trip.
 */
export function rateLimit(): MiddlewareHandler {
  return async function rateLimit(c, next) {
    const state = c.get("rateLimit");
    const headers = headersOf(state);
    if (state.exceeded) {
      const message = state.exceeded === "minute"
        ? `You have exceeded the limit of ${state.limit_per_minute} requests per minute.`
        : `You have exceeded the burst limit of ${state.limit_per_second} requests per second.`;
      throw new ApiError("RATE_LIMIT_EXCEEDED", message, {
        extra: { retry_after: state.retry_after },
        headers: { ...headers, "Retry-After": String(state.retry_after) },
      });
    }
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    await next();
  };
}
