/**
 * What the auth routes answer: `me`'s `data`, and POST /v1/auth/token's bodies and the
 * spec's token response (not in the envelope). OpenAPI documents them and the tests check
 * every answer against them.
 */
import { z } from "zod";
import { ENVIRONMENTS } from "../platform/environment.ts";
import { prefixedId } from "../platform/ids.ts";
import { keyId, scope } from "../api-keys/schemas.ts";
import { timestamp } from "../platform/time.ts";

export const organizationPlan = z.enum(["starter", "pro", "enterprise"]);

export const caller = z.strictObject({
  type: z.enum(["user", "api_key"]),
  /** A signed-in user, or null for an API key. */
  user: z.strictObject({
    id: z.uuid(),
    email: z.string().nullable(),
    role: z.enum(["owner", "admin", "member"]),
  }).nullable(),
  /** The API key, or null for a user. */
  api_key: z.strictObject({
    id: keyId,
    name: z.string(),
    type: z.enum(["secret", "publishable"]),
  }).nullable(),
  organization: z.strictObject({
    id: prefixedId("org", "an organization"),
    name: z.string(),
    plan: organizationPlan,
    created_at: timestamp,
  }),
  scopes: z.array(scope),
  environment: z.enum(ENVIRONMENTS),
}).meta({ id: "Caller" });

/** POST /v1/auth/token?grant_type=password's body. */
export const passwordGrant = z.strictObject({
  email: z.email(),
  password: z.string().min(1).max(1000),
});
/** POST /v1/auth/token?grant_type=refresh_token's body. */
export const refreshGrant = z.strictObject({ refresh_token: z.string().min(1).max(1000) });

/** POST /v1/auth/token's answer, as the spec gives it (no envelope). */
export const tokenResponse = z.strictObject({
  access_token: z.string(),
  token_type: z.literal("bearer"),
  /** Seconds until access_token expires. */
  expires_in: z.int().positive(),
  refresh_token: z.string(),
  user: z.strictObject({ id: z.uuid(), email: z.string().nullable() }),
}).meta({ id: "TokenResponse" });
