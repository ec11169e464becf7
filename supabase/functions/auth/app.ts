import { createClient } from "@supabase/supabase-js";
import type { Context, Hono } from "hono";
import { z } from "zod";
import { createGroupApp, defineAction } from "../../../shared/app.ts";
import { config } from "../../../shared/config.ts";
import { ApiError } from "../../../shared/errors.ts";
import { jsonBody } from "../../../shared/middleware/json-body.ts";
import { isoTimestamp } from "../../../shared/time.ts";
import { validate } from "../../../shared/validation.ts";

const passwordGrant = z.strictObject({ email: z.email(), password: z.string().min(1).max(1000) });
const refreshGrant = z.strictObject({ refresh_token: z.string().min(1).max(1000) });

/**
 * POST /v1/auth/token?grant_type=password|refresh_token: signs in through Supabase Auth
 * (supabase-js, with the caller's `apikey`) and answers in the spec's shape.
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
  const auth = createClient(config.supabaseUrl, apikey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  }).auth;
  const { data, error } = grantType === "password"
    ? await auth.signInWithPassword(validate(passwordGrant, body, "body"))
    : await auth.refreshSession(validate(refreshGrant, body, "body"));
  if (error || !data.session) {
    const status = (error as { status?: number } | null)?.status;
    if (status === 401 || (status && status >= 500)) {
      throw new ApiError(
        status === 401 ? "AUTH_INVALID_TOKEN" : "INTEGRATION_ERROR",
        error!.message,
      );
    }
    throw new ApiError(
      "AUTH_INVALID_TOKEN",
      grantType === "password" ? "Invalid email or password." : "The refresh token is not valid.",
    );
  }
  const { session } = data;
  return c.json({
    access_token: session.access_token,
    token_type: "bearer",
    expires_in: session.expires_in,
    refresh_token: session.refresh_token,
    user: { id: session.user.id, email: session.user.email },
  });
}

/** POST /v1/auth/me; POST /v1/auth/token is the extra route above. */
export const actions = [
  defineAction({
    name: "me",
    summary: "Who is calling: user or key, organization, scopes, environment",
    scope: "any",
    mutates: false,
    input: z.strictObject({}),
    handler: async ({ tx, principal }) => {
      const [org] = await tx<{ id: string; name: string; plan: string; created_at: Date }[]>`
        select id, name, plan, created_at from public.organizations where id = ${principal.orgId}
      `;
      return {
        type: principal.kind,
        user: principal.kind === "user"
          ? { id: principal.userId, email: principal.email, role: principal.orgRole }
          : null,
        api_key: principal.kind === "api_key"
          ? { id: principal.keyId, name: principal.keyName, type: principal.keyType }
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
