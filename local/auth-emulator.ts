/**
 * LOCAL DEVELOPMENT ONLY — never deployed. In production Supabase Auth (GoTrue) serves
 * /auth/v1; this module only stands in for it in the local stack and the tests.
 *
 * An emulator of the small part of GoTrue the API relies on, faithful enough that the real
 * `@supabase/supabase-js` client works against it: password sign-in, refresh-token
 * rotation, fetching the user and signing out. It reads and writes the same auth.users,
 * auth.sessions and auth.refresh_tokens tables GoTrue uses, and passes every access token's
 * claims through our real `public.custom_access_token_hook`, so the tokens carry the same
 * org_id / org_role as in production.
 */
import postgres from "postgres";
import { type JWTPayload, jwtVerify, SignJWT } from "jose";
import bcrypt from "bcryptjs";
import { findUnstorable } from "../shared/platform/storable-json.ts";

export interface AuthEmulatorOptions {
  /** A postgres.js pool connected as the superuser `postgres`. */
  sql: postgres.Sql;
  /** HS256 secret (the stack's JWT secret). */
  jwtSecret: string;
  /** Valid `apikey` header values: anonKey or serviceRoleKey. */
  anonKey: string;
  serviceRoleKey: string;
  /** e.g. "http://127.0.0.1:54321/auth/v1" */
  issuer: string;
  /** Default 3600. */
  accessTokenTtlSeconds?: number;
}

const VERSION = "v2-bivelio-local";
const API_VERSION = "2024-01-01";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// The expiry of the Supabase CLI's demo keys, so one secret always yields the same keys.
const API_KEY_EXPIRY = 1983812996;

interface UserRow {
  id: string;
  aud: string | null;
  role: string | null;
  email: string | null;
  encrypted_password: string | null;
  email_confirmed_at: Date | null;
  last_sign_in_at: Date | null;
  raw_app_meta_data: Record<string, unknown> | null;
  raw_user_meta_data: Record<string, unknown> | null;
  is_anonymous: boolean;
  created_at: Date | null;
  updated_at: Date | null;
}
type Tx = postgres.TransactionSql;
type SessionRow = { id: string; created_at: Date };
type AuthMethod = "password" | "token_refresh";
type HookEvent = { user_id: string; claims: JWTPayload; authentication_method: AuthMethod };

const USER_COLUMNS = ("id aud role email encrypted_password email_confirmed_at last_sign_in_at " +
  "raw_app_meta_data raw_user_meta_data is_anonymous created_at updated_at").split(" ");

/** An error GoTrue would answer with: HTTP status, error_code and message. */
class AuthError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

const invalidCredentials = () =>
  new AuthError(400, "invalid_credentials", "Invalid login credentials");
const badRefreshToken = (code: string, why: string) =>
  new AuthError(400, code, `Invalid Refresh Token: ${why}`);

const hmacKey = (secret: string) => new TextEncoder().encode(secret);

async function signHs256(claims: JWTPayload, secret: string): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(hmacKey(secret));
}

/** Signs the Supabase-style API role key (anon / service_role) JWT with the secret. */
export function signApiRoleKey(jwtSecret: string, role: "anon" | "service_role"): Promise<string> {
  return signHs256({ iss: "supabase-demo", role, exp: API_KEY_EXPIRY }, jwtSecret);
}

/** A random URL-safe refresh token (192 bits). */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

const iso = (d: Date | null) => d?.toISOString(); // undefined is omitted, like GoTrue's omitempty

/** GoTrue's user object. */
function userJson(u: UserRow) {
  return {
    id: u.id,
    aud: u.aud ?? "authenticated",
    role: u.role ?? "authenticated",
    email: u.email ?? "",
    email_confirmed_at: iso(u.email_confirmed_at),
    phone: "",
    confirmed_at: iso(u.email_confirmed_at),
    last_sign_in_at: iso(u.last_sign_in_at),
    app_metadata: u.raw_app_meta_data ?? {},
    user_metadata: u.raw_user_meta_data ?? {},
    identities: [],
    created_at: iso(u.created_at),
    updated_at: iso(u.updated_at),
    is_anonymous: u.is_anonymous,
  };
}

/**
 * GoTrue answers in the error shape of the API version the client asked for
 * (X-Supabase-Api-Version, which supabase-js always sends) and echoes that version back;
 * auth-js reads the header to pick `code` (2024-01-01) or `error_code` (legacy) as the code.
 */
function requestedApiVersion(req: Request): string | null {
  const asked = req.headers.get("x-supabase-api-version") ?? "";
  return /^\d{4}-\d{2}-\d{2}$/.test(asked) && asked >= API_VERSION ? API_VERSION : null;
}

export function createAuthEmulator(opts: AuthEmulatorOptions): (req: Request) => Promise<Response> {
  const { sql, jwtSecret, issuer } = opts;
  const ttl = opts.accessTokenTtlSeconds ?? 3600;

  /**
   * Whether `password` matches the stored bcrypt hash. Without a user (or a password) it
   * compares against a dummy hash of the same cost, so an unknown email takes as long as a
   * wrong password and response times do not tell which emails have accounts. "The same
   * cost" is that of the last real hash checked (GoTrue's 10 before any).
   */
  let lastCost = 10;
  const dummyHashes = new Map<number, Promise<string>>();
  async function passwordMatches(password: string, hash: string | null): Promise<boolean> {
    const cost = hash === null ? null : Number(/^\$2[abxy]?\$(\d{2})\$/.exec(hash)?.[1]);
    if (hash !== null && cost) {
      lastCost = cost;
      return await bcrypt.compare(password, hash);
    }
    if (!dummyHashes.has(lastCost)) {
      dummyHashes.set(lastCost, bcrypt.hash(randomToken(), lastCost));
    }
    await bcrypt.compare(password, await dummyHashes.get(lastCost)!);
    return false;
  }

  /** Builds Supabase's access token claims, passes them through the hook, signs them. */
  async function accessToken(tx: Tx, user: UserRow, session: SessionRow, method: AuthMethod) {
    const iat = Math.floor(Date.now() / 1000);
    const claims: JWTPayload = {
      iss: issuer,
      sub: user.id,
      aud: user.aud ?? "authenticated",
      exp: iat + ttl,
      iat,
      email: user.email ?? "",
      phone: "",
      app_metadata: user.raw_app_meta_data ?? {},
      user_metadata: user.raw_user_meta_data ?? {},
      role: user.role ?? "authenticated",
      aal: "aal1",
      // GoTrue keeps the session's original sign-in method across refreshes.
      amr: [{ method: "password", timestamp: Math.floor(session.created_at.getTime() / 1000) }],
      session_id: session.id,
      is_anonymous: user.is_anonymous,
    };
    const final = await runAccessTokenHook(tx, {
      user_id: user.id,
      claims,
      authentication_method: method,
    });
    return { token: await signHs256(final, jwtSecret), exp: Number(final.exp ?? claims.exp) };
  }

  /**
   * Calls public.custom_access_token_hook as GoTrue does: as supabase_auth_admin, with
   * {user_id, claims, authentication_method}, using the returned claims. Runs last in the
   * transaction because `set local role` lasts until its end.
   */
  async function runAccessTokenHook(tx: Tx, event: HookEvent): Promise<JWTPayload> {
    const [{ present }] = await tx`
      select to_regprocedure('public.custom_access_token_hook(jsonb)') is not null as present
    `;
    if (!present) return event.claims;
    await tx`set local role supabase_auth_admin`;
    const [{ result }] = await tx`
      select public.custom_access_token_hook(${tx.json(event as postgres.JSONValue)}) as result
    `;
    if (result?.error) {
      const { http_code = 500, message = "Hook error" } = result.error;
      throw new AuthError(http_code, "unexpected_failure", message);
    }
    if (typeof result?.claims !== "object" || result.claims === null) {
      throw new Error("custom_access_token_hook returned no claims");
    }
    return result.claims;
  }

  async function passwordGrant(body: Record<string, unknown>) {
    const email = typeof body.email === "string" ? body.email.trim() : "";
    const password = typeof body.password === "string" ? body.password : "";
    if (!email || !password) {
      throw new AuthError(400, "validation_failed", "An email and a password are required");
    }
    const [found] = await sql<UserRow[]>`
      select ${sql(USER_COLUMNS)} from auth.users where lower(email) = lower(${email})
    `;
    if (!(await passwordMatches(password, found?.encrypted_password ?? null))) {
      throw invalidCredentials();
    }

    return await sql.begin(async (tx) => {
      const [session] = await tx<SessionRow[]>`
        insert into auth.sessions (user_id) values (${found.id}) returning id, created_at
      `;
      const refreshToken = randomToken();
      await tx`
        insert into auth.refresh_tokens (token, user_id, session_id)
        values (${refreshToken}, ${found.id}, ${session.id})
      `;
      const [user] = await tx<UserRow[]>`
        update auth.users set last_sign_in_at = now() where id = ${found.id}
        returning ${tx(USER_COLUMNS)}
      `;
      const access = await accessToken(tx, user, session, "password");
      return sessionJson(access, refreshToken, user);
    });
  }

  async function refreshTokenGrant(body: Record<string, unknown>) {
    const token = typeof body.refresh_token === "string" ? body.refresh_token : "";
    if (!token) throw new AuthError(400, "validation_failed", "refresh_token required");
    const rotated = await sql.begin(async (tx) => {
      // Revoking with a condition is the lock: of two concurrent refreshes one wins.
      const [old] = await tx<{ user_id: string; session_id: string }[]>`
        update auth.refresh_tokens set revoked = true, updated_at = now()
        where token = ${token} and not revoked
        returning user_id, session_id
      `;
      if (!old) return null;
      const [session] = await tx<SessionRow[]>`
        update auth.sessions set updated_at = now() where id = ${old.session_id}
        returning id, created_at
      `;
      const [user] = await tx<UserRow[]>`
        select ${tx(USER_COLUMNS)} from auth.users where id::text = ${old.user_id}
      `;
      if (!session || !user) return null;
      const next = randomToken();
      await tx`
        insert into auth.refresh_tokens (token, user_id, session_id, parent)
        values (${next}, ${user.id}, ${session.id}, ${token})
      `;
      return sessionJson(await accessToken(tx, user, session, "token_refresh"), next, user);
    });
    if (rotated) return rotated;

    const [known] = await sql<{ session_id: string | null }[]>`
      select session_id from auth.refresh_tokens where token = ${token}
    `;
    if (!known) throw badRefreshToken("refresh_token_not_found", "Refresh Token Not Found");
    // A revoked token presented again may have been stolen: like GoTrue (without its short
    // reuse grace period), end the whole session.
    await sql`
      update auth.refresh_tokens set revoked = true, updated_at = now()
      where session_id = ${known.session_id} and not revoked
    `;
    throw badRefreshToken("refresh_token_already_used", "Already Used");
  }

  function sessionJson(access: { token: string; exp: number }, refreshToken: string, u: UserRow) {
    return {
      access_token: access.token,
      token_type: "bearer",
      expires_in: ttl,
      expires_at: access.exp,
      refresh_token: refreshToken,
      user: userJson(u),
    };
  }

  /** The verified claims of the request's Bearer access token. */
  async function bearerClaims(req: Request): Promise<JWTPayload & { sub: string }> {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
    if (!match) {
      throw new AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    const claims = await jwtVerify(match[1], hmacKey(jwtSecret), { algorithms: ["HS256"] })
      .then((verified) => verified.payload)
      .catch(() => {
        throw new AuthError(403, "bad_jwt", "invalid JWT: unable to verify signature or expired");
      });
    if (typeof claims.sub !== "string" || !UUID.test(claims.sub)) {
      throw new AuthError(403, "bad_jwt", "invalid claim: sub claim must be a UUID");
    }
    return claims as JWTPayload & { sub: string };
  }

  async function getUser(req: Request) {
    const claims = await bearerClaims(req);
    const [user] = await sql<UserRow[]>`
      select ${sql(USER_COLUMNS)} from auth.users where id = ${claims.sub}
    `;
    if (!user) {
      throw new AuthError(403, "user_not_found", "User from sub claim in JWT does not exist");
    }
    // Signed-out sessions keep their row here (tokens are revoked, not deleted), so a session
    // counts as existing while it has a live refresh token.
    if (claims.session_id !== undefined) {
      const sid = String(claims.session_id);
      const [live] = UUID.test(sid)
        ? await sql`select from auth.refresh_tokens where session_id = ${sid} and not revoked limit 1`
        : [];
      if (!live) throw new AuthError(403, "session_not_found", "Session in JWT does not exist");
    }
    return userJson(user);
  }

  async function logout(req: Request, scope: string) {
    const claims = await bearerClaims(req);
    const sid = typeof claims.session_id === "string" && UUID.test(claims.session_id)
      ? claims.session_id
      : null;
    if (scope === "global") {
      await sql`update auth.refresh_tokens set revoked = true, updated_at = now()
        where user_id = ${claims.sub} and not revoked`;
    } else if (scope === "local" || scope === "others") {
      if (sid === null) return;
      await sql`update auth.refresh_tokens set revoked = true, updated_at = now()
        where user_id = ${claims.sub} and not revoked
          and (session_id = ${sid}) = ${scope === "local"}`;
    } else {
      throw new AuthError(400, "validation_failed", "Unsupported logout scope");
    }
  }

  return async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/auth\/v1/, "").replace(/\/+$/, "");
    const version = requestedApiVersion(req);
    const headers = new Headers({ "content-type": "application/json" });
    if (version) headers.set("x-supabase-api-version", version);
    const reply = (status: number, body?: unknown) =>
      new Response(body === undefined ? null : JSON.stringify(body), { status, headers });

    if (req.method === "GET" && path === "/health") {
      return reply(200, { name: "GoTrue (BiVelio local emulator)", version: VERSION });
    }
    // What Supabase's API gateway (Kong) answers before a request reaches GoTrue.
    const apiKey = req.headers.get("apikey") ?? url.searchParams.get("apikey");
    if (!apiKey) return reply(401, { message: "No API key found in request" });
    if (apiKey !== opts.anonKey && apiKey !== opts.serviceRoleKey) {
      return reply(401, { message: "Invalid API key" });
    }

    try {
      if (req.method === "POST" && path === "/token") {
        let body: unknown;
        try {
          body = await req.json();
        } catch {
          throw new AuthError(400, "bad_json", "Could not parse request body as JSON");
        }
        if (typeof body !== "object" || body === null) {
          throw new AuthError(400, "bad_json", "The request body must be a JSON object");
        }
        // What PostgreSQL would refuse (a NUL character) cannot match any user or token.
        if (findUnstorable(body)) {
          throw new AuthError(400, "validation_failed", "The request body cannot be stored");
        }
        const grant = url.searchParams.get("grant_type");
        const record = body as Record<string, unknown>;
        if (grant === "password") return reply(200, await passwordGrant(record));
        if (grant === "refresh_token") return reply(200, await refreshTokenGrant(record));
        throw new AuthError(400, "validation_failed", "unsupported_grant_type");
      }
      if (req.method === "GET" && path === "/user") return reply(200, await getUser(req));
      if (req.method === "POST" && path === "/logout") {
        await logout(req, url.searchParams.get("scope") ?? "global");
        headers.delete("content-type");
        return reply(204);
      }
      throw new AuthError(404, "not_found", "Not Found");
    } catch (err) {
      if (!(err instanceof AuthError)) {
        // The message only: query parameters (passwords, tokens) stay out of the log.
        console.error(`auth emulator: ${err instanceof Error ? err.message : String(err)}`);
      }
      const e = err instanceof AuthError ? err : new AuthError(500, "unexpected_failure", "Error");
      headers.set("x-sb-error-code", e.code);
      return reply(
        e.status,
        version
          ? { code: e.code, message: e.message }
          : { code: e.status, error_code: e.code, msg: e.message },
      );
    }
  };
}
