/**
 * What tests know about the running stack (started by tests/run.ts), and helpers to make
 * isolated organizations, users, keys and tokens so tests never share rate-limit windows
 * or data.
 */
import postgres from "postgres";
import * as jose from "jose";
import { mintApiKey, type MintKey } from "../../shared/api-keys/keys.ts";
import type { StackInfo } from "../../local/stack.ts";
import { checkAnswer } from "./contracts.ts";

const infoPath = Deno.env.get("BIVELIO_TEST_STACK");
if (!infoPath) throw new Error("Run the tests with `deno task test` (it starts the stack).");
export const stack: StackInfo = JSON.parse(Deno.readTextFileSync(infoPath));

/** A service connection (bypasses RLS): for setting up and inspecting, never for asserting RLS. */
export const db = postgres(stack.db_url, { max: 4, onnotice: () => {} });

// Tests read JSON bodies field by field, so the default body type is `any`.
// deno-lint-ignore no-explicit-any
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface CallOptions {
  key?: string;
  token?: string;
  headers?: Record<string, string>;
  /** A raw body string (for malformed JSON tests). */
  raw?: string;
  method?: string;
}

function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * POSTs `body` as JSON to `/v1/<path>` and returns status, headers and parsed body. Every
 * answer is checked against its response contract first (tests/helpers/contracts.ts): a
 * 2xx against its action's output schema, an error against the error envelope.
 */
// deno-lint-ignore no-explicit-any
export async function api<T = any>(
  path: string,
  body?: unknown,
  options: CallOptions = {},
): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...options.headers,
  };
  if (options.key) headers["x-api-key"] = options.key;
  if (options.token) headers["authorization"] = `Bearer ${options.token}`;
  const response = await fetch(`${stack.api_url}/v1/${path}`, {
    method: options.method ?? "POST",
    headers,
    body: options.raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const parsed = jsonOrText(await response.text());
  const method = options.method ?? "POST";
  checkAnswer({
    method,
    path,
    requestBody: options.raw === undefined ? body : jsonOrText(options.raw),
    status: response.status,
    headers: response.headers,
    body: parsed,
  });
  return { status: response.status, headers: response.headers, body: parsed as T };
}

export interface TestOrg {
  orgId: string;
  user: { id: string; email: string; password: string };
  /** Mints an API key for this org through the same code the API uses. */
  key(options?: Partial<MintKey>): Promise<string>;
  /** A real Supabase-shaped session token from the local Auth emulator. */
  signIn(): Promise<string>;
}

let counter = 0;

/** A fresh organization with an owner (or the given role) and nothing else. */
export async function createTestOrg(
  options: { plan?: "starter" | "pro" | "enterprise"; role?: "owner" | "admin" | "member" } = {},
): Promise<TestOrg> {
  const suffix = `${Date.now().toString(36)}${(counter++).toString(36)}${
    crypto.randomUUID().slice(0, 6)
  }`;
  const email = `user-${suffix}@test.example`;
  const password = `pw-${suffix}`;
  const [org] = await db<{ id: string }[]>`
    insert into public.organizations (name, plan) values (${`Test org ${suffix}`}, ${
    options.plan ?? "enterprise"
  })
    returning id
  `;
  const [user] = await db<{ id: string }[]>`
    insert into auth.users (email, encrypted_password, email_confirmed_at)
    values (${email}, extensions.crypt(${password}, extensions.gen_salt('bf', 4)), now())
    returning id
  `;
  await db`
    insert into public.organization_members (org_id, user_id, role)
    values (${org.id}, ${user.id}, ${options.role ?? "owner"})
  `;
  return {
    orgId: org.id,
    user: { id: user.id, email, password },
    async key(keyOptions = {}) {
      const minted = await mintApiKey(db, {
        name: "test key",
        environment: "live",
        type: "secret",
        scopes: ["read", "write", "admin"],
        ...keyOptions,
      }, org.id);
      return minted.key;
    },
    async signIn() {
      const response = await fetch(`${stack.api_url}/v1/auth/token?grant_type=password`, {
        method: "POST",
        headers: { apikey: stack.anon_key, "content-type": "application/json" },
        body: JSON.stringify({ email, password }),
      });
      const body = await response.json();
      if (response.status !== 200) throw new Error(`sign-in failed: ${JSON.stringify(body)}`);
      return body.access_token;
    },
  };
}

/**
 * A JWT signed with the stack's secret: for tokens the emulator would not issue (expired).
 * `iss` and `aud` are those of the stack's Auth unless `claims` sets them (`undefined`
 * leaves one out); `expiresIn` null leaves out `exp`.
 */
export async function signJwt(
  claims: jose.JWTPayload,
  expiresIn: string | number | null = "1h",
) {
  const token = new jose.SignJWT({
    iss: `${stack.api_url}/auth/v1`,
    aud: "authenticated",
    ...claims,
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt();
  if (expiresIn !== null) token.setExpirationTime(expiresIn);
  return await token.sign(new TextEncoder().encode(stack.jwt_secret));
}

/**
 * Runs `change` in a service transaction and sends `request` while that transaction still
 * holds its row locks; commits after `holdMs`. Returns the API's answer.
 */
export async function duringTransaction(
  change: (tx: typeof db) => Promise<unknown>,
  request: () => Promise<ApiResponse>,
  holdMs = 300,
): Promise<ApiResponse> {
  let answer: Promise<ApiResponse> | undefined;
  await db.begin(async (tx) => {
    await change(tx as unknown as typeof db);
    answer = request();
    await new Promise((resolve) => setTimeout(resolve, holdMs));
  });
  return await answer!;
}

/**
 * Deno.test for integration tests: the shared connection pool and keep-alive sockets live
 * across tests, so the per-test resource sanitizers are off.
 */
export function test(name: string, fn: () => Promise<void>) {
  Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false });
}
