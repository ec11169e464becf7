import assert from "node:assert/strict";
import * as jose from "jose";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, signJwt, stack, test } from "./helpers/stack.ts";

negativeCases({
  group: "auth",
  action: "me",
  scope: "any",
  otherSuffix: null,
  valid: {},
  invalid: { data: { org_id: "org_other" }, field: "org_id" },
});

async function token(
  grant: string,
  body: unknown,
  headers: Record<string, string> = { apikey: stack.anon_key },
) {
  return await api(`auth/token?grant_type=${grant}`, body, { headers });
}

test("spec: POST /v1/auth/token?grant_type=password answers in the spec's shape", async () => {
  const org = await createTestOrg();
  const response = await token("password", { email: org.user.email, password: org.user.password });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const body = response.body;
  assert.deepEqual(Object.keys(body).sort(), [
    "access_token",
    "expires_in",
    "refresh_token",
    "token_type",
    "user",
  ]);
  assert.equal(body.token_type, "bearer");
  assert.equal(body.expires_in, 3600);
  assert.deepEqual(body.user, { id: org.user.id, email: org.user.email });
  // The JWT is Supabase-shaped and carries the org claims from the access token hook.
  const { payload } = await jose.jwtVerify(
    body.access_token,
    new TextEncoder().encode(stack.jwt_secret),
  );
  assert.equal(payload.sub, org.user.id);
  assert.equal(payload.role, "authenticated");
  assert.equal(payload.aud, "authenticated");
  assert.equal(payload.org_id, org.orgId);
  assert.equal(payload.org_role, "owner");
  assert.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600);
});

test("refresh_token grant issues a new access token; the used refresh token cannot be reused", async () => {
  const org = await createTestOrg();
  const first = await token("password", { email: org.user.email, password: org.user.password });
  const refreshed = await token("refresh_token", { refresh_token: first.body.refresh_token });
  assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
  assert.notEqual(refreshed.body.refresh_token, first.body.refresh_token);
  const me = await api("auth/me", {}, { token: refreshed.body.access_token });
  assert.equal(me.body.data.user.id, org.user.id);
  expectError(
    await token("refresh_token", { refresh_token: first.body.refresh_token }),
    401,
    "AUTH_INVALID_TOKEN",
  );
});

test("token: wrong password is 401; missing apikey is 401; bad grant_type and fields are 400", async () => {
  const org = await createTestOrg();
  expectError(
    await token("password", { email: org.user.email, password: "wrong" }),
    401,
    "AUTH_INVALID_TOKEN",
  );
  expectError(
    await token("password", { email: org.user.email, password: org.user.password }, {}),
    401,
    "AUTH_INVALID_TOKEN",
  );
  expectError(await token("magic", { email: org.user.email }), 400, "VALIDATION_ERROR");
  const missing = await token("password", { email: org.user.email });
  expectError(missing, 400, "VALIDATION_ERROR");
  assert.deepEqual(missing.body.error.details, { field: "password", constraint: "required" });
});

test("token: a NUL character is 400 naming the field, from the API and from Auth itself", async () => {
  const org = await createTestOrg();
  for (
    const [grant, body, field] of [
      ["password", { email: org.user.email, password: "a\u0000b" }, "password"],
      ["refresh_token", { refresh_token: "a\u0000b" }, "refresh_token"],
    ] as const
  ) {
    const response = await token(grant, body);
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(response.body.error.details, { field, constraint: "no_null_character" });
    // The dashboard talks to Supabase Auth (here its emulator) directly, with supabase-js.
    const direct = await fetch(`${stack.api_url}/auth/v1/token?grant_type=${grant}`, {
      method: "POST",
      headers: { apikey: stack.anon_key, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(direct.status, 400, await direct.text());
  }
});

test("me: a user sees itself, its org, role-based scopes and the live environment", async () => {
  const org = await createTestOrg({ role: "member" });
  const me = await api("auth/me", undefined, { token: await org.signIn() });
  assert.equal(me.status, 200, JSON.stringify(me.body));
  assert.equal(me.body.data.type, "user");
  assert.deepEqual(me.body.data.user, { id: org.user.id, email: org.user.email, role: "member" });
  assert.equal(me.body.data.organization.id, org.orgId);
  assert.deepEqual(me.body.data.scopes, ["read", "write"]);
  assert.equal(me.body.data.environment, "live");
});

test("me: an API key sees itself, its org, its scopes and environment, never the key", async () => {
  const org = await createTestOrg();
  const key = await org.key({ environment: "test", scopes: ["read"] });
  const me = await api("auth/me", { action: "me" }, { key });
  assert.equal(me.status, 200);
  assert.equal(me.body.data.type, "api_key");
  assert.equal(me.body.data.user, null);
  assert.match(me.body.data.api_key.id, /^key_/);
  assert.deepEqual(me.body.data.scopes, ["read"]);
  assert.equal(me.body.data.environment, "test");
  assert.equal(me.body.data.organization.id, org.orgId);
  assert.ok(!JSON.stringify(me.body).includes(key));
});

test("a user token without an organization is refused; the anon key is not a user token", async () => {
  const [user] = await db<
    { id: string }[]
  >`insert into auth.users (email) values (${`lonely-${crypto.randomUUID()}@test.example`}) returning id`;
  const orphan = await signJwt({ sub: user.id, role: "authenticated", aud: "authenticated" });
  expectError(await api("auth/me", {}, { token: orphan }), 403, "AUTH_INSUFFICIENT_SCOPE");
  expectError(await api("auth/me", {}, { token: stack.anon_key }), 401, "AUTH_INVALID_TOKEN");
});

test("Authorization: Bearer accepts an API key as well as a JWT", async () => {
  const key = await (await createTestOrg()).key();
  const response = await api("auth/me", {}, { headers: { authorization: `Bearer ${key}` } });
  assert.equal(response.status, 200);
  assert.equal(response.body.data.type, "api_key");
});

test("a user removed from the organization loses access at once, not when the token expires", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  assert.equal((await api("auth/me", {}, { token })).status, 200);
  await db`delete from public.organization_members where user_id = ${org.user.id}`;
  expectError(await api("auth/me", {}, { token }), 403, "AUTH_INSUFFICIENT_SCOPE");
});

test("a demoted admin loses admin scope at once", async () => {
  const org = await createTestOrg({ role: "admin" });
  const token = await org.signIn();
  assert.equal((await api("api-keys/list", { action: "list" }, { token })).status, 200);
  await db`update public.organization_members set role = 'member' where user_id = ${org.user.id}`;
  expectError(
    await api("api-keys/list", { action: "list" }, { token }),
    403,
    "AUTH_INSUFFICIENT_SCOPE",
  );
  const me = await api("auth/me", {}, { token });
  assert.deepEqual(me.body.data.scopes, ["read", "write"]);
});

test("user JWTs must expire, be for 'authenticated' and come from the project's Auth", async () => {
  const org = await createTestOrg();
  const claims = { sub: org.user.id, role: "authenticated", org_id: org.orgId, org_role: "owner" };
  // What the stack's Auth issues, and what signJwt signs by default, works.
  assert.equal((await api("auth/me", {}, { token: await org.signIn() })).status, 200);
  assert.equal((await api("auth/me", {}, { token: await signJwt(claims) })).status, 200);
  const refused = {
    "no exp": await signJwt(claims, null),
    "aud anon": await signJwt({ ...claims, aud: "anon" }),
    "aud other": await signJwt({ ...claims, aud: "other-project" }),
    "no aud": await signJwt({ ...claims, aud: undefined }),
    "foreign iss": await signJwt({ ...claims, iss: "https://other.supabase.co/auth/v1" }),
    "iss of the bare URL": await signJwt({ ...claims, iss: stack.api_url }),
    "no iss": await signJwt({ ...claims, iss: undefined }),
  };
  for (const [why, token] of Object.entries(refused)) {
    const response = await api("auth/me", {}, { token });
    assert.equal(response.status, 401, `${why}: ${JSON.stringify(response.body)}`);
    assert.equal(response.body.error.code, "AUTH_INVALID_TOKEN", why);
  }
});
