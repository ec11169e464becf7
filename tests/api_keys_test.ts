import assert from "node:assert/strict";
import { parseApiKey } from "../shared/api-keys/format.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, test, type TestOrg } from "./helpers/stack.ts";

negativeCases({
  group: "api-keys",
  action: "list",
  scope: "admin",
  usersOnly: true,
  valid: {},
  invalid: { data: { include_revoked: "yes" }, field: "include_revoked" },
});
negativeCases({
  group: "api-keys",
  action: "create",
  scope: "admin",
  usersOnly: true,
  valid: { name: "CI key" },
  invalid: { data: { name: "x", scopes: ["superuser"] }, field: "scopes.0" },
});
/** A key of `org`, made through the API, as `{ id }`. */
const aKey = async (org: TestOrg) => {
  const created = await api("api-keys/create", { action: "create", data: { name: "Spare" } }, {
    token: await org.signIn(),
  });
  return { id: created.body.data.id as string };
};
negativeCases({
  group: "api-keys",
  action: "rotate",
  scope: "admin",
  usersOnly: true,
  valid: async (org) => ({ ...(await aKey(org)), grace_period_seconds: 60 }),
  invalid: { data: { id: "key_abc", grace_period_seconds: 86_401 }, field: "grace_period_seconds" },
});
negativeCases({
  group: "api-keys",
  action: "revoke",
  scope: "admin",
  usersOnly: true,
  valid: aKey,
  invalid: { data: { id: "ct_abc" }, field: "id" },
});

test("create returns the raw key once; it works, has a valid checksum, and only its hash is stored", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const created = await api("api-keys/create", {
    action: "create",
    data: { name: "Billing sync", scopes: ["read"] },
  }, { token });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const { key, id, display } = created.body.data;
  assert.match(key, /^bv_live_sk_[0-9A-Za-z]{46}$/);
  assert.deepEqual(parseApiKey(key), { environment: "live", type: "secret" });
  assert.equal(display, `bv_live_sk_${key.slice(11, 15)}…${key.slice(-4)}`);
  const rows = await db`select * from public.api_keys where id = ${id}`;
  assert.ok(!JSON.stringify(rows).includes(key), "the raw key is not stored");
  assert.equal(rows[0].key_hash.length, 64);

  const me = await api("auth/me", {}, { key });
  assert.equal(me.body.data.api_key.id, id);
  assert.deepEqual(me.body.data.scopes, ["read"]);
  const write = await api("contacts/create", { action: "create", data: { name: "x" } }, { key });
  expectError(write, 403, "AUTH_INSUFFICIENT_SCOPE");
});

test("list shows prefix, last characters, scopes, dates and status, never the key or its hash", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const created = await api("api-keys/create", {
    action: "create",
    data: {
      name: "Expiring",
      environment: "test",
      expires_at: new Date(Date.now() + 86400_000).toISOString(),
    },
  }, { token });
  await api("auth/me", {}, { key: created.body.data.key });
  const list = await api("api-keys/list", { action: "list" }, { token });
  assert.equal(list.status, 200);
  const [listed] = list.body.data.api_keys;
  assert.equal(listed.id, created.body.data.id);
  assert.equal(listed.environment, "test");
  assert.deepEqual(listed.scopes, ["read", "write"]);
  assert.equal(listed.status, "active");
  assert.ok(listed.last_used_at, "last_used_at is set once the key is used");
  assert.ok(listed.expires_at);
  assert.equal(listed.key, undefined);
  assert.equal(listed.key_hash, undefined);
  assert.ok(!JSON.stringify(list.body).includes(created.body.data.key));
});

test("revoke takes effect immediately", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const created = await api("api-keys/create", { action: "create", data: { name: "Doomed" } }, {
    token,
  });
  const { key, id } = created.body.data;
  assert.equal((await api("auth/me", {}, { key })).status, 200);
  const revoked = await api("api-keys/revoke", { action: "revoke", data: { id } }, { token });
  assert.equal(revoked.body.data.status, "revoked");
  expectError(await api("auth/me", {}, { key }), 401, "AUTH_INVALID_TOKEN");
  const list = await api("api-keys/list", { action: "list" }, { token });
  assert.equal(list.body.data.api_keys.length, 0);
  const all = await api("api-keys/list", { action: "list", data: { include_revoked: true } }, {
    token,
  });
  assert.equal(all.body.data.api_keys[0].status, "revoked");
  expectError(
    await api("api-keys/revoke", { action: "revoke", data: { id } }, { token }),
    400,
    "VALIDATION_ERROR",
  );
});

test("rotate with a grace period: both keys work until it ends, the old one cannot be rotated again; without one the old key stops at once", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const original = await api("api-keys/create", {
    action: "create",
    data: { name: "Rotating", scopes: ["read", "write"] },
  }, { token });
  const graceful = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: original.body.data.id, grace_period_seconds: 3600 },
  }, { token });
  assert.equal(graceful.status, 200, JSON.stringify(graceful.body));
  const replacement = graceful.body.data.api_key;
  assert.notEqual(replacement.key, original.body.data.key);
  assert.equal(replacement.name, "Rotating");
  assert.deepEqual(replacement.scopes, ["read", "write"]);
  const validUntil = Date.parse(graceful.body.data.previous.valid_until);
  assert.ok(Math.abs(validUntil - (Date.now() + 3600_000)) < 60_000);
  assert.equal((await api("auth/me", {}, { key: original.body.data.key })).status, 200);
  assert.equal((await api("auth/me", {}, { key: replacement.key })).status, 200);
  const again = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: original.body.data.id },
  }, { token });
  expectError(again, 400, "VALIDATION_ERROR");
  assert.deepEqual(again.body.error.details, { field: "id", constraint: "not_rotated" });
  assert.match(again.body.error.message, new RegExp(replacement.id));

  const immediate = await api(
    "api-keys/rotate",
    { action: "rotate", data: { id: replacement.id } },
    { token },
  );
  assert.equal(immediate.status, 200);
  expectError(await api("auth/me", {}, { key: replacement.key }), 401, "AUTH_INVALID_TOKEN");
  assert.equal((await api("auth/me", {}, { key: immediate.body.data.api_key.key })).status, 200);

  const tooLong = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: immediate.body.data.api_key.id, grace_period_seconds: 86401 },
  }, { token });
  expectError(tooLong, 400, "VALIDATION_ERROR");
});

test("only owners and admins manage keys: a member gets 403", async () => {
  const org = await createTestOrg({ role: "member" });
  const token = await org.signIn();
  expectError(
    await api("api-keys/list", { action: "list" }, { token }),
    403,
    "AUTH_INSUFFICIENT_SCOPE",
  );
  expectError(
    await api("api-keys/create", { action: "create", data: { name: "nope" } }, { token }),
    403,
    "AUTH_INSUFFICIENT_SCOPE",
  );
  const admin = await createTestOrg({ role: "admin" });
  assert.equal(
    (await api("api-keys/list", { action: "list" }, { token: await admin.signIn() })).status,
    200,
  );
});

test("another organization's key cannot be listed, rotated or revoked", async () => {
  const mine = await createTestOrg();
  const theirs = await createTestOrg();
  const theirKey = await api("api-keys/create", { action: "create", data: { name: "Theirs" } }, {
    token: await theirs.signIn(),
  });
  const token = await mine.signIn();
  const id = theirKey.body.data.id;
  expectError(
    await api("api-keys/revoke", { action: "revoke", data: { id } }, { token }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  expectError(
    await api("api-keys/rotate", { action: "rotate", data: { id } }, { token }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  assert.equal(
    (await api("api-keys/list", { action: "list" }, { token })).body.data.api_keys.length,
    0,
  );
  assert.equal((await api("auth/me", {}, { key: theirKey.body.data.key })).status, 200);
});

test("publishable keys are live and read-only; expiry must be in the future", async () => {
  const token = await (await createTestOrg()).signIn();
  const pk = await api("api-keys/create", {
    action: "create",
    data: { name: "Web", type: "publishable" },
  }, { token });
  assert.match(pk.body.data.key, /^bv_live_pk_/);
  assert.deepEqual(pk.body.data.scopes, ["read"]);
  const bad = [
    [{ name: "x", type: "publishable", environment: "test" }, "type"],
    [{ name: "x", type: "publishable", scopes: ["write"] }, "scopes.0"],
    [{ name: "x", expires_at: "2020-01-01T00:00:00Z" }, "expires_at"],
  ] as const;
  for (const [data, field] of bad) {
    const response = await api("api-keys/create", { action: "create", data }, { token });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, field);
  }
});

test("Idempotency-Key is refused on key creation, so a raw key is never stored for replay", async () => {
  const token = await (await createTestOrg()).signIn();
  const response = await api("api-keys/create", { action: "create", data: { name: "x" } }, {
    token,
    headers: { "idempotency-key": "k1" },
  });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "Idempotency-Key");
});
