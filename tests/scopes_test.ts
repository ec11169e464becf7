/**
 * Granular API key scopes (`contacts:read`, `workflows:write`, `webhooks:admin`) beside the
 * broad `read` / `write` / `admin`; key creation and rotation with them; OpenAPI's scopes;
 * and Idempotency-Key applying only to actions that change state.
 */
import assert from "node:assert/strict";
import { SCOPE_GROUPS } from "../shared/platform/principal.ts";
import { expectError } from "./helpers/negative-cases.ts";
import { api, type ApiResponse, createTestOrg, stack, test } from "./helpers/stack.ts";
import { createWorkflow } from "./helpers/workflows.ts";

const setStep = { id: "a", type: "set", config: { values: { x: 1 } } };
const call = (path: string, data: Record<string, unknown>, key: string) =>
  api(path, { action: path.split("/")[1], data }, { key });

/** 403 AUTH_INSUFFICIENT_SCOPE naming the group's scope, and saying the broad one works too. */
function expectMissingScope(response: ApiResponse, required: string) {
  expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(response.body.error.details.required_scope, required);
  const broad = required.split(":")[1];
  assert.equal(response.body.error.details.accepted_scopes[0], required);
  assert.ok(response.body.error.details.accepted_scopes.includes(broad));
  assert.match(response.body.error.message, new RegExp(`'${required}'.*'${broad}'`));
}

test("a key with contacts:read lists contacts, but is 403 on workflows list and on contacts create", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["contacts:read"] });
  const listed = await call("contacts/list", {}, key);
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  expectMissingScope(await call("workflows/list", {}, key), "workflows:read");
  expectMissingScope(await call("contacts/create", { name: "No" }, key), "contacts:write");
  expectMissingScope(await call("webhooks/list", {}, key), "webhooks:admin");
  const me = await api("auth/me", {}, { key });
  assert.deepEqual(me.body.data.scopes, ["contacts:read"], "auth/me shows the scopes as granted");
});

test("a key with workflows:write creates, executes and reads workflows, but cannot touch contacts", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["workflows:write"] });
  const workflowId = await createWorkflow(key, { steps: [setStep] });
  const run = await call("workflows/execute", { workflow_id: workflowId, async: false }, key);
  assert.equal(run.status, 200, JSON.stringify(run.body));
  assert.equal(run.body.data.status, "completed");
  assert.deepEqual(run.body.data.output, { x: 1 });
  assert.equal((await call("workflows/list", {}, key)).status, 200, "write includes read");
  assert.equal(
    (await call("workflows/get_instance", { instance_id: run.body.data.instance_id }, key)).status,
    200,
  );
  expectMissingScope(await call("contacts/list", {}, key), "contacts:read");
  expectMissingScope(await call("contacts/create", { name: "No" }, key), "contacts:write");
});

test("webhooks:admin administers webhooks (row-level security agrees) and nothing else", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["webhooks:admin"] });
  const created = await call("webhooks/create", {
    url: "http://127.0.0.1:9/scopes",
    events: ["contact.created"],
  }, key);
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.data.webhook_id;
  const rotated = await call("webhooks/rotate_secret", { webhook_id: id }, key);
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  assert.equal((await call("webhooks/delete", { webhook_id: id }, key)).status, 200);
  expectMissingScope(await call("contacts/list", {}, key), "contacts:read");
  // workflows:admin is another group's admin: no webhooks.
  const other = await org.key({ scopes: ["workflows:admin", "contacts:admin"] });
  expectMissingScope(await call("webhooks/list", {}, other), "webhooks:admin");
});

test("broad scopes work as before: read reads every group, write also reads, admin does all", async () => {
  const org = await createTestOrg();
  const read = await org.key({ scopes: ["read"] });
  assert.equal((await call("contacts/list", {}, read)).status, 200);
  assert.equal((await call("workflows/list", {}, read)).status, 200);
  expectMissingScope(await call("contacts/create", { name: "No" }, read), "contacts:write");
  expectMissingScope(await call("webhooks/list", {}, read), "webhooks:admin");

  const write = await org.key({ scopes: ["write"] });
  assert.equal((await call("contacts/create", { name: "Yes" }, write)).status, 200);
  assert.equal((await call("contacts/list", {}, write)).status, 200, "write includes read");
  expectMissingScope(await call("webhooks/list", {}, write), "webhooks:admin");

  const admin = await org.key({ scopes: ["admin"] });
  for (const path of ["contacts/list", "workflows/list", "webhooks/list"]) {
    assert.equal((await call(path, {}, admin)).status, 200, path);
  }
  assert.equal((await call("contacts/create", { name: "Admin" }, admin)).status, 200);
});

test("a publishable key limited to workflows:read reads workflows, never contacts", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const created = await api("api-keys/create", {
    action: "create",
    data: { name: "Status page", type: "publishable", scopes: ["workflows:read"] },
  }, { token });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.deepEqual(created.body.data.scopes, ["workflows:read"]);
  const { key } = created.body.data;
  assert.match(key, /^bv_live_pk_/);
  assert.equal((await call("workflows/list", {}, key)).status, 200);
  expectMissingScope(await call("contacts/list", {}, key), "contacts:read");
  expectMissingScope(await call("contacts/get", { id: "ct_abc123" }, key), "contacts:read");
  expectMissingScope(
    await call("workflows/create", { name: "x", steps: [setStep] }, key),
    "workflows:write",
  );
  assert.deepEqual((await api("auth/me", {}, { key })).body.data.scopes, ["workflows:read"]);
});

test("create and rotate accept only real groups and levels (400 naming scopes.N); publishable keys only read", async () => {
  const org = await createTestOrg();
  const token = await org.signIn();
  const create = (data: Record<string, unknown>) =>
    api("api-keys/create", { action: "create", data: { name: "k", ...data } }, { token });
  const refused = [
    [{ scopes: ["contacts:delete"] }, "scopes.0", "enum"],
    [{ scopes: ["read", "billing:read"] }, "scopes.1", "enum"],
    [{ scopes: ["contacts"] }, "scopes.0", "enum"],
    [{ scopes: ["auth:read"] }, "scopes.0", "enum"],
    [{ scopes: ["Contacts:read"] }, "scopes.0", "enum"],
    [{ scopes: [] }, "scopes", "min"],
    [
      { type: "publishable", scopes: ["workflows:read", "contacts:write"] },
      "scopes.1",
      "read_only",
    ],
    [{ type: "publishable", scopes: ["admin"] }, "scopes.0", "read_only"],
  ] as const;
  for (const [data, field, constraint] of refused) {
    const response = await create(data);
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(response.body.error.details, { field, constraint }, JSON.stringify(data));
  }

  const granular = await create({ scopes: ["contacts:read", "workflows:write", "contacts:read"] });
  assert.equal(granular.status, 200, JSON.stringify(granular.body));
  assert.deepEqual(granular.body.data.scopes, ["contacts:read", "workflows:write"], "deduplicated");

  // Rotation keeps the old key's scopes unless new ones are given.
  const kept = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: granular.body.data.id, grace_period_seconds: 60 },
  }, { token });
  assert.equal(kept.status, 200, JSON.stringify(kept.body));
  assert.deepEqual(kept.body.data.api_key.scopes, ["contacts:read", "workflows:write"]);
  const keptKey = kept.body.data.api_key.key;
  expectMissingScope(await call("contacts/create", { name: "No" }, keptKey), "contacts:write");

  const narrowed = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: kept.body.data.api_key.id, scopes: ["contacts:read"] },
  }, { token });
  assert.equal(narrowed.status, 200, JSON.stringify(narrowed.body));
  assert.deepEqual(narrowed.body.data.api_key.scopes, ["contacts:read"]);
  expectMissingScope(
    await call("workflows/list", {}, narrowed.body.data.api_key.key),
    "workflows:read",
  );

  const badRotate = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: narrowed.body.data.api_key.id, scopes: ["contacts:read", "contacts:own"] },
  }, { token });
  expectError(badRotate, 400, "VALIDATION_ERROR");
  assert.deepEqual(badRotate.body.error.details, { field: "scopes.1", constraint: "enum" });

  const publishable = await create({ type: "publishable", scopes: ["workflows:read"] });
  const widened = await api("api-keys/rotate", {
    action: "rotate",
    data: { id: publishable.body.data.id, scopes: ["workflows:read", "workflows:write"] },
  }, { token });
  expectError(widened, 400, "VALIDATION_ERROR");
  assert.deepEqual(widened.body.error.details, { field: "scopes.1", constraint: "read_only" });
  const stillWorks = await call("workflows/list", {}, publishable.body.data.key);
  assert.equal(stillWorks.status, 200, "a refused rotation leaves the key as it was");
});

test("webhooks.list with a reused Idempotency-Key after a create answers fresh data, not a replay", async () => {
  const key = await (await createTestOrg()).key({ scopes: ["admin"] });
  const headers = { "idempotency-key": `list-${crypto.randomUUID()}` };
  const list = () => api("webhooks/list", { action: "list", data: {} }, { key, headers });
  const before = await list();
  assert.equal(before.status, 200);
  assert.equal(before.body.data.webhooks.length, 0);
  const created = await call("webhooks/create", {
    url: "http://127.0.0.1:9/fresh",
    events: ["contact.created"],
  }, key);
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const after = await list();
  assert.equal(after.status, 200);
  assert.equal(after.headers.get("idempotent-replayed"), null);
  assert.deepEqual(
    after.body.data.webhooks.map((w: { webhook_id: string }) => w.webhook_id),
    [created.body.data.webhook_id],
  );
  // A change still honours the header.
  const change = () =>
    api("contacts/create", { action: "create", data: { name: "Once" } }, { key, headers });
  const first = await change();
  const replayed = await change();
  assert.equal(replayed.headers.get("idempotent-replayed"), "true");
  assert.equal(replayed.body.data.id, first.body.data.id);
});

// deno-lint-ignore no-explicit-any
const openApi = async (): Promise<{ paths: Record<string, { post: any }> }> =>
  await (await fetch(`${stack.api_url}/v1/openapi`)).json();

test("OpenAPI shows each action's scopes, its security, and Idempotency-Key only where it changes state", async () => {
  const { paths } = await openApi();
  const list = paths["/contacts/list"].post;
  assert.deepEqual(list["x-required-scopes"], ["contacts:read", "read"]);
  assert.match(list.description, /Required scope: `contacts:read` or the broad `read`/);
  assert.deepEqual(list.security.slice(0, 2), [{ ApiKey: ["contacts:read"] }, {
    ApiKey: ["read"],
  }]);
  assert.ok(list.security.some((s: object) => JSON.stringify(s) === '{"Bearer":["admin"]}'));
  assert.equal(list["x-mutates"], false);

  const create = paths["/contacts/create"].post;
  assert.deepEqual(create["x-required-scopes"], ["contacts:write", "write"]);
  assert.equal(create["x-mutates"], true);
  assert.ok(
    create.parameters.some((p: { name: string }) => p.name.toLowerCase() === "idempotency-key"),
  );
  assert.ok(create.responses["409"] && create.responses["422"]);

  const webhooksList = paths["/webhooks/list"].post;
  assert.deepEqual(webhooksList["x-required-scopes"], ["webhooks:admin", "admin"]);
  assert.equal(webhooksList["x-mutates"], false);
  assert.ok(
    !(webhooksList.parameters ?? []).some((p: { name: string }) =>
      p.name.toLowerCase() === "idempotency-key"
    ),
  );
  assert.doesNotMatch(webhooksList.description, /Idempotency-Key/);
  assert.equal(webhooksList.responses["409"], undefined);
  assert.equal(webhooksList.responses["422"], undefined);

  // Its answer holds a secret: no replay, so no header either.
  const webhooksCreate = paths["/webhooks/create"].post;
  assert.equal(webhooksCreate["x-mutates"], true);
  assert.ok(
    !(webhooksCreate.parameters ?? []).some((p: { name: string }) =>
      p.name.toLowerCase() === "idempotency-key"
    ),
  );

  const keys = paths["/api-keys/create"].post;
  assert.deepEqual(keys.security, [{ Bearer: ["admin"] }]);
  const scopeEnum = keys.requestBody.content["application/json"].schema.properties.data
    .properties.scopes.items.enum;
  assert.ok(scopeEnum.includes("contacts:read") && scopeEnum.includes("read"));
  assert.equal(paths["/auth/me"].post["x-required-scopes"], undefined);
});

test("the groups keys can be limited to are exactly the groups whose actions keys may call", async () => {
  const { paths } = await openApi();
  const scoped = new Set<string>();
  for (const { post } of Object.values(paths)) {
    for (const scope of post?.["x-required-scopes"] ?? []) {
      if (scope.includes(":")) scoped.add(scope.split(":")[0]);
    }
  }
  assert.deepEqual([...scoped].sort(), [...SCOPE_GROUPS].sort());
});
