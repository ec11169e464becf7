import assert from "node:assert/strict";
import { createClient } from "@supabase/supabase-js";
import { migrationFiles } from "../local/migrate.ts";
import { REQUIRED_MIGRATION } from "../shared/platform/schema-version.ts";
import { expectError } from "./helpers/negative-cases.ts";
import { api, createTestOrg, stack, test } from "./helpers/stack.ts";

test("GET /v1/health answers without credentials", async () => {
  const response = await fetch(`${stack.api_url}/v1/health`);
  const body = await response.json();
  assert.equal(response.status, 200);
  assert.equal(body.data.status, "ok");
  assert.ok(response.headers.get("x-request-id"));
});

test("GET /v1/ready checks the database, the migrations and pg_cron", async () => {
  const response = await fetch(`${stack.api_url}/v1/ready`);
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.data.status, "ready");
  assert.equal(body.data.checks.database.ok, true);
  assert.equal(body.data.checks.migrations.latest, REQUIRED_MIGRATION);
  assert.deepEqual(body.data.checks.pg_cron, {
    ok: true,
    job_scheduled: true,
    scheduler_running: true,
  });
});

test("the migration /v1/ready requires is the newest file in supabase/migrations", () => {
  return Promise.resolve(assert.equal(migrationFiles().at(-1)?.version, REQUIRED_MIGRATION));
});

test("CORS: every response, errors included, lets a browser script read our headers", async () => {
  const key = await (await createTestOrg()).key();
  const headers = { origin: "https://dashboard.example" };
  for (
    const response of [
      await api("contacts", { action: "list" }, { key, headers }),
      await api("contacts", { action: "nope" }, { key, headers }),
      await api("contacts", { action: "list" }, { headers }),
    ]
  ) {
    assert.equal(response.headers.get("access-control-allow-origin"), "*", String(response.status));
    const exposed = response.headers.get("access-control-expose-headers")!.split(",");
    assert.ok(exposed.includes("X-Request-Id") && exposed.includes("X-RateLimit-Remaining"));
    assert.ok(response.headers.get("x-request-id"));
  }
});

test("rate-limit headers are on error responses of authenticated calls too", async () => {
  const key = await (await createTestOrg({ plan: "pro" })).key();
  const invalid = await api("contacts", { action: "create", data: {} }, { key });
  assert.equal(invalid.status, 400);
  assert.ok(Number(invalid.headers.get("x-ratelimit-limit")) > 0);
  assert.ok(invalid.headers.get("x-ratelimit-remaining") !== null);
  assert.ok(invalid.headers.get("x-request-id"));
});

test("X-Request-Id is echoed when well-formed and made up otherwise", async () => {
  const echoed = await api("contacts", {}, { headers: { "x-request-id": "trace-123" } });
  assert.equal(echoed.headers.get("x-request-id"), "trace-123");
  const made = await api("contacts", {}, { headers: { "x-request-id": "bad id with spaces" } });
  assert.match(made.headers.get("x-request-id")!, /^req_[0-9a-f]{32}$/);
});

test("CORS preflight from a browser is answered for the headers supabase-js sends", async () => {
  const response = await fetch(`${stack.api_url}/functions/v1/contacts`, {
    method: "OPTIONS",
    headers: {
      origin: "https://app.bivelio.com",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, x-client-info, apikey, content-type",
    },
  });
  await response.body?.cancel();
  assert.equal(response.status, 204);
  assert.equal(response.headers.get("access-control-allow-origin"), "*");
  assert.match(response.headers.get("x-request-id")!, /^req_[0-9a-f]{32}$/);
  const allowed = response.headers.get("access-control-allow-headers") ?? "";
  for (
    const header of ["authorization", "x-client-info", "apikey", "content-type", "idempotency-key"]
  ) {
    assert.ok(allowed.includes(header), `${header} allowed`);
  }
});

test("bodies over the limit are 413 PAYLOAD_TOO_LARGE, non-JSON content types are 400", async () => {
  const key = await (await createTestOrg()).key();
  const big = JSON.stringify({ action: "create", data: { name: "x".repeat(1024 * 1024 + 1) } });
  expectError(await api("contacts", undefined, { key, raw: big }), 413, "PAYLOAD_TOO_LARGE");
  const text = await api("contacts", undefined, {
    key,
    raw: "action=list",
    headers: { "content-type": "text/plain" },
  });
  expectError(text, 400, "VALIDATION_ERROR");
});

test("unknown functions and paths are 404 in the envelope", async () => {
  expectError(await api("nothing-here", { action: "list" }), 404, "RESOURCE_NOT_FOUND");
  const key = await (await createTestOrg()).key();
  expectError(
    await api("contacts/no-such-suffix", { action: "list" }, { key }),
    404,
    "RESOURCE_NOT_FOUND",
  );
});

test("supabase-js: sign in and functions.invoke('contacts') with the user's JWT, as the dashboard does", async () => {
  const org = await createTestOrg();
  const supabase = createClient(stack.api_url, stack.anon_key, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const { error: signInError } = await supabase.auth.signInWithPassword({
    email: org.user.email,
    password: org.user.password,
  });
  assert.equal(signInError, null);
  const created = await supabase.functions.invoke("contacts", {
    body: { action: "create", data: { name: "From the dashboard" } },
  });
  assert.equal(created.error, null);
  assert.equal(created.data.data.name, "From the dashboard");
  const listed = await supabase.functions.invoke("contacts/list", { body: { action: "list" } });
  assert.deepEqual(listed.data.data.contacts.map((c: { name: string }) => c.name), [
    "From the dashboard",
  ]);
  await supabase.auth.signOut();
});

test("GET /v1/openapi documents every action with its scope and the error table's statuses", async () => {
  const response = await fetch(`${stack.api_url}/v1/openapi`);
  const doc = await response.json();
  assert.equal(response.status, 200);
  assert.equal(doc.openapi, "3.1.0");
  for (
    const path of [
      "/contacts/list",
      "/contacts/create",
      "/api-keys/rotate",
      "/auth/me",
      "/workflows/execute",
      "/workflows/instances",
    ]
  ) {
    assert.ok(doc.paths[path]?.post, `${path} documented`);
  }
  const create = doc.paths["/contacts/create"].post;
  assert.match(create.description, /Required scope: `contacts:write` or the broad `write`/);
  assert.deepEqual(create.requestBody.content["application/json"].schema.properties.action.enum, [
    "create",
  ]);
  assert.deepEqual(
    create.responses["429"].content["application/json"].schema.properties.error.properties.code
      .enum,
    [
      "RATE_LIMIT_EXCEEDED",
    ],
  );
  assert.deepEqual(doc.paths["/api-keys/create"].post.security, [{ Bearer: ["admin"] }]);
});

test("GET /v1/openapi documents a streamed answer: agents/invoke's text/event-stream and its events", async () => {
  const doc = await (await fetch(`${stack.api_url}/v1/openapi`)).json();
  const ok = doc.paths["/agents/invoke"].post.responses["200"];
  assert.ok(ok.content["application/json"], "the JSON answer stays documented");
  const stream = ok.content["text/event-stream"]?.schema;
  assert.ok(stream, "the stream is documented");
  const events = (stream.anyOf ?? stream.oneOf).map(
    (item: { properties: { event: { const?: string; enum?: string[] } } }) =>
      item.properties.event.const ?? item.properties.event.enum?.[0],
  );
  assert.deepEqual(events, ["execution", "partial", "result", "error"]);
  // Actions that do not stream have no such alternative.
  assert.equal(
    doc.paths["/contacts/list"].post.responses["200"].content["text/event-stream"],
    undefined,
  );
});
