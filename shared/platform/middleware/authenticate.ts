import type { Environment } from "../environment.ts";
import type { Context, MiddlewareHandler } from "hono";
import * as jose from "jose";
import { hashApiKey, looksLikeApiKey, parseApiKey } from "../../api-keys/format.ts";
import { config } from "../config.ts";
import { serviceSql } from "../db.ts";
import { ApiError } from "../errors.ts";
import { levelOf, type Principal, type Scope, scopesForRole } from "../principal.ts";
import type { RateLimitState } from "./rate-limit.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const invalid = (message: string) => new ApiError("AUTH_INVALID_TOKEN", message);

/** The credential of a request: `X-API-Key`, or `Authorization: Bearer` (a key or a JWT). */
function credentialOf(c: Context): { kind: "api_key" | "jwt"; value: string } | null {
  const apiKey = c.req.header("x-api-key")?.trim();
  if (apiKey) return { kind: "api_key", value: apiKey };
  const authorization = c.req.header("authorization")?.trim();
  if (!authorization) return null;
  const match = /^Bearer\s+(\S+)$/i.exec(authorization);
  if (!match) throw invalid("The Authorization header must be 'Bearer <token>'.");
  return { kind: looksLikeApiKey(match[1]) ? "api_key" : "jwt", value: match[1] };
}

interface KeyLookup {
  status: "ok" | "unknown" | "revoked" | "expired";
  key_id: string;
  key_name: string;
  org_id: string;
  environment: Environment;
  key_type: "secret" | "publishable";
  scopes: Scope[];
  limit_per_minute: number | null;
  limit_per_second: number | null;
  remaining: number | null;
  reset_at: string | null;
  exceeded: RateLimitState["exceeded"];
  retry_after: number | null;
}

async function authenticateApiKey(key: string): Promise<[Principal, RateLimitState]> {
  if (!parseApiKey(key)) throw invalid("The API key is malformed.");
  // One round trip: lookup, rate-limit count and last-used stamp (see the migration).
  const [row] = await serviceSql()<KeyLookup[]>`
    select * from private.authenticate_api_key(${hashApiKey(key)})
  `;
  if (row.status === "unknown") throw invalid("The API key is not valid.");
  if (row.status === "revoked") throw invalid("The API key has been revoked.");
  if (row.status === "expired") {
    throw new ApiError("AUTH_EXPIRED_TOKEN", "The API key has expired.");
  }
  // As granted (`contacts:read`…). A publishable key holds read scopes only (a check
  // constraint says so); the filter keeps that true should a row ever slip past it.
  const scopes = row.key_type === "publishable"
    ? row.scopes.filter((scope) => levelOf(scope) === "read")
    : row.scopes;
  const principal: Principal = {
    kind: "api_key",
    orgId: row.org_id,
    environment: row.environment,
    scopes,
    keyId: row.key_id,
    keyName: row.key_name,
    keyType: row.key_type,
    claims: {
      role: "authenticated",
      org_id: row.org_id,
      environment: row.environment,
      key_id: row.key_id,
      scopes,
    },
  };
  return [principal, rateLimitStateOf(row)];
}

function rateLimitStateOf(row: Omit<RateLimitState, "reset_at"> & { reset_at: string | null }) {
  return { ...row, reset_at: row.reset_at === null ? null : Number(row.reset_at) };
}

let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined;

/**
 * Supabase signs with the project's HS256 secret, or with asymmetric keys published as JWKS.
 * Either way the token must be a user access token Auth issued for this project: it expires
 * (`exp`), is meant for signed-in users (`aud` "authenticated") and names the project's Auth
 * as its issuer. A token the secret signed for anything else (no expiry, another audience
 * or issuer) is refused.
 */
async function verifyJwt(token: string) {
  const claims: jose.JWTVerifyOptions = {
    audience: "authenticated",
    issuer: config.jwtIssuer,
    requiredClaims: ["exp"],
  };
  const { alg } = jose.decodeProtectedHeader(token);
  if (alg === "HS256") {
    const secret = new TextEncoder().encode(config.jwtSecret);
    return await jose.jwtVerify(token, secret, { ...claims, algorithms: ["HS256"] });
  }
  jwks ??= jose.createRemoteJWKSet(new URL(`${config.supabaseUrl}/auth/v1/.well-known/jwks.json`));
  return await jose.jwtVerify(token, jwks, claims);
}

async function authenticateUser(token: string): Promise<[Principal, RateLimitState]> {
  let payload: jose.JWTPayload;
  try {
    payload = (await verifyJwt(token)).payload;
  } catch (error) {
    if (error instanceof jose.errors.JWTExpired) {
      throw new ApiError(
        "AUTH_EXPIRED_TOKEN",
        "The token has expired. Refresh it with /v1/auth/token.",
      );
    }
    throw invalid("The token is not valid.");
  }
  if (
    payload.role !== "authenticated" || typeof payload.sub !== "string" || !UUID.test(payload.sub)
  ) {
    throw invalid("The token does not belong to a signed-in user.");
  }
  const orgId = payload.org_id;
  if (typeof orgId !== "string" || !orgId) {
    throw new ApiError("AUTH_INSUFFICIENT_SCOPE", "The user is not a member of any organization.");
  }
  // One round trip: membership is checked now (not at token issue) and the request counted.
  const [row] = await serviceSql()<
    (Omit<RateLimitState, "reset_at"> & { reset_at: string; org_role: Principal["orgRole"] })[]
  >`
    select * from private.authenticate_user(${payload.sub}, ${orgId})
  `;
  if (!row) {
    throw new ApiError(
      "AUTH_INSUFFICIENT_SCOPE",
      "The user is no longer a member of this organization.",
    );
  }
  const orgRole = row.org_role;
  const principal: Principal = {
    kind: "user",
    orgId,
    environment: "live",
    scopes: scopesForRole(orgRole),
    userId: payload.sub,
    email: typeof payload.email === "string" ? payload.email : undefined,
    orgRole,
    claims: {
      ...payload,
      role: "authenticated",
      org_id: orgId,
      org_role: orgRole,
      environment: "live",
    },
  };
  return [principal, rateLimitStateOf(row)];
}

/**
 * Identifies the caller (API key or Supabase Auth user JWT) into `c.var.principal`, and
 * records the organization's rate-limit state for the next middleware.
 */
export function authenticate(): MiddlewareHandler {
  return async function authenticate(c, next) {
    const credential = credentialOf(c);
    if (!credential) {
      throw invalid(
        "Missing credentials: send an X-API-Key header or 'Authorization: Bearer <token>'.",
      );
    }
    const [principal, rateLimit] = credential.kind === "api_key"
      ? await authenticateApiKey(credential.value)
      : await authenticateUser(credential.value);
    c.set("principal", principal);
    c.set("rateLimit", rateLimit);
    await next();
  };
}
