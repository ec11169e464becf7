import { createClient } from "@supabase/supabase-js";
import type { Context, Hono } from "hono";
import { z } from "zod";
import { createGroupApp, defineAction } from "../platform/app.ts";
import { config } from "../platform/config.ts";
import { ApiError } from "../platform/errors.ts";
import { jsonBody } from "../platform/middleware/json-body.ts";
import { beginSignInAttempt, clientAddress } from "./sign-in-limits.ts";
import { isoTimestamp } from "../platform/time.ts";
import { validate } from "../platform/validation.ts";
import {
  caller,
  type organizationPlan,
  passwordGrant,
  refreshGrant,
  tokenResponse,
} from "./schemas.ts";

/** When Supabase Auth answers 429 without saying how long to wait. */
const AUTH_DEFAULT_RETRY_AFTER_SECONDS = 60;

/**
 * A Supabase Auth client for one token request. With the project's secret key configured,
 * it calls Auth with that key and the caller's address in `Sb-Forwarded-For` (what Supabase
 * documents for server-side callers: Auth then rate-limits per client, not per function
 * instance); the caller's `apikey` is then checked here, since Auth no longer sees it.
 * Otherwise it calls with the caller's key, and Auth sees the function's address.
 * `retryAfter()` is the Retry-After of Auth's last answer (supabase-js drops headers).
 */
function authClientFor(callerKey: string, address: string | null) {
  const secretKey = config.authSecretKey;
  const clientKeys = config.authClientKeys;
  const forwarding = address !== null && secretKey !== null && clientKeys.length > 0;
  if (forwarding && !clientKeys.includes(callerKey)) {
    throw new ApiError("AUTH_INVALID_TOKEN", "The 'apikey' header is not a key of this project.");
  }
  let retryAfter: string | null = null;
  const client = createClient(config.supabaseUrl, forwarding ? secretKey : callerKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    global: {
      headers: forwarding ? { "Sb-Forwarded-For": address } : {},
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        retryAfter = response.headers.get("retry-after");
        return response;
      },
    },
  });
  return { auth: client.auth, retryAfter: () => retryAfter };
}

/** Seconds from a Retry-After value (seconds or an HTTP date); the default when absent. */
function retryAfterSeconds(value: string | null): number {
  if (value !== null && /^\d+$/.test(value.trim())) return Math.max(1, Number(value));
  const date = value === null ? NaN : Date.parse(value);
  if (!Number.isNaN(date)) return Math.max(1, Math.ceil((date - Date.now()) / 1000));
  return AUTH_DEFAULT_RETRY_AFTER_SECONDS;
}

/**
 * POST /v1/auth/token?grant_type=password|refresh_token: signs in through Supabase Auth
 * (supabase-js) and answers in the spec's shape. Failed attempts are limited per email and
 * per client address (shared/auth/sign-in-limits.ts) before Auth is asked.
 */
async function issueToken(c: Context) {
  const apikey = c.req.header("apikey");
  if (!apikey) {
    throw new ApiError("AUTH_INVALID_TOKEN", "The 'apikey' header is required.");
  }
  const grantType = c.req.query("grant_type");
  if (grantType !== "password" && grantType !== "refresh_token") {
    throw new ApiError("VALIDATION_ERROR", "grant_type must be 'password' or 'refresh_token'.", {
      details: { field: "grant_type", constraint: "enum" },
    });
  }
  const body = c.get("body");
  const password = grantType === "password" ? validate(passwordGrant, body, "body") : null;
  const refresh = grantType === "refresh_token" ? validate(refreshGrant, body, "body") : null;
  const address = clientAddress(c.req.raw.headers);
  const { auth, retryAfter } = authClientFor(apikey, address);

  const attempt = await beginSignInAttempt(password?.email ?? null, address);
  const { data, error } =
    await (password ? auth.signInWithPassword(password) : auth.refreshSession(refresh!)).catch(
      async (thrown) => {
        await attempt.end(); // supabase-js threw: nothing the caller did
        throw thrown;
      },
    );
  if (!error && data.session) {
    await attempt.end(password?.email);
    const { session } = data;
    const answer: z.input<typeof tokenResponse> = {
      access_token: session.access_token,
      token_type: "bearer",
      expires_in: session.expires_in,
      refresh_token: session.refresh_token,
      user: { id: session.user.id, email: session.user.email ?? null },
    };
    return c.json(answer);
  }
  const status = (error as { status?: number } | null)?.status ?? 0;
  if (status === 429) {
    // Auth's own limit (per address, or the function's when not forwarding): kept a 429.
    await attempt.end();
    const seconds = retryAfterSeconds(retryAfter());
    throw new ApiError(
      "RATE_LIMIT_EXCEEDED",
      `Supabase Auth's rate limit was reached. Try again in ${seconds} seconds.`,
      { extra: { retry_after: seconds }, headers: { "Retry-After": String(seconds) } },
    );
  }
  if (status < 400 || status >= 500) {
    // Auth failed or could not be reached: not the caller's failure, so it does not count.
    await attempt.end();
    throw new ApiError("INTEGRATION_ERROR", "Supabase Auth could not be reached. Retry shortly.");
  }
  // Refused credentials (or the caller's apikey): the attempt keeps counting.
  if (status === 401) throw new ApiError("AUTH_INVALID_TOKEN", error!.message);
  throw new ApiError(
    "AUTH_INVALID_TOKEN",
    password ? "Invalid email or password." : "The refresh token is not valid.",
  );
}

/** POST /v1/auth/me; POST /v1/auth/token is the extra route above. */
export const actions = [
  defineAction({
    name: "me",
    summary: "Who is calling: user or key, organization, scopes, environment",
    scope: "any",
    mutates: false,
    input: z.strictObject({}),
    output: caller,
    handler: async ({ tx, principal }) => {
      const [org] = await tx<
        { id: string; name: string; plan: z.output<typeof organizationPlan>; created_at: Date }[]
      >`
        select id, name, plan, created_at from public.organizations where id = ${principal.orgId}
      `;
      return {
        type: principal.kind,
        user: principal.kind === "user"
          ? { id: principal.userId!, email: principal.email ?? null, role: principal.orgRole! }
          : null,
        api_key: principal.kind === "api_key"
          ? { id: principal.keyId!, name: principal.keyName!, type: principal.keyType! }
          : null,
        organization: {
          id: org.id,
          name: org.name,
          plan: org.plan,
          created_at: isoTimestamp(org.created_at),
        },
        scopes: principal.scopes,
        environment: principal.environment,
      };
    },
  }),
];

export default createGroupApp("auth", actions, {
  extraRoutes: (app: Hono) => app.post("/token", jsonBody(), issueToken),
});
