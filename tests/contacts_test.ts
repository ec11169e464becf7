import assert from "node:assert/strict";
import { idempotencyRequestHash } from "../shared/platform/middleware/idempotency.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import {
  api,
  createTestOrg,
  db,
  duringTransaction,
  stack,
  test,
  type TestOrg,
} from "./helpers/stack.ts";

// The demo organization holds the ids the spec's examples use (ct_abc123, ct_def456).
const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;

negativeCases({
  group: "contacts",
  action: "list",
  scope: "read",
  valid: { per_page: 5 },
  invalid: { data: { per_page: 101 }, field: "per_page" },
});
negativeCases({
  group: "contacts",
  action: "create",
  scope: "write",
  valid: { name: "Negative Case Person" },
  invalid: { data: { name: "x", email: "not-an-email" }, field: "email" },
});
negativeCases({
  group: "contacts",
  action: "update",
  scope: "write",
  valid: async (org) => {
    const created = await api(
      "contacts/create",
      { action: "create", data: { name: "To Update" } },
      {
        key: await org.key(),
      },
    );
    return { id: created.body.data.id, tags: ["x"] };
  },
  invalid: { data: { id: "ct_abc123", tags: "x" }, field: "tags" },
});

/** A contact of `org`, made through the API, as `{ id }`. */
const aContact = async (org: TestOrg) => {
  const created = await api("contacts/create", { action: "create", data: { name: "Someone" } }, {
    key: await org.key(),
  });
  return { id: created.body.data.id as string };
};
negativeCases({
  group: "contacts",
  action: "get",
  scope: "read",
  valid: aContact,
  invalid: { data: { id: "wf_abc123" }, field: "id" },
});
negativeCases({
  group: "contacts",
  action: "delete",
  scope: "write",
  valid: aContact,
  invalid: { data: {}, field: "id" },
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

test("spec example: list contacts, sent verbatim, answers in the spec's shape", async () => {
  const response = await api("contacts", {
    action: "list",
    data: {
      search: "Company ABC",
      type: "company",
      tags: ["client", "active"],
      page: 1,
      per_page: 25,
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200);
  assert.equal(response.body.success, true);
  const { contacts, pagination } = response.body.data;
  assert.deepEqual(pagination, { page: 1, per_page: 25, total: 1, total_pages: 1 });
  const [contact] = contacts;
  assert.equal(contact.id, "ct_abc123");
  assert.equal(contact.type, "company");
  assert.equal(contact.name, "Company ABC S.L.");
  assert.deepEqual(contact.tags, ["client", "active", "pro"]);
  assert.deepEqual(contact.custom_fields, { sector: "technology", tax_id: "B12345678" });
  assert.match(contact.created_at, ISO);
  assert.match(contact.updated_at, ISO);
});

test("spec example: create contact, sent verbatim, answers in the spec's shape", async () => {
  const request = {
    action: "create",
    data: {
      type: "person",
      name: "Maria Garcia",
      email: "maria@example.com",
      phone: "+34 600 111 222",
      company_id: "ct_abc123",
      tags: ["lead", "inbound"],
      custom_fields: { source: "website", interest: "plan_enterprise" },
    },
  };
  const response = await api("contacts/create", request, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const created = response.body.data;
  assert.match(created.id, /^ct_[0-9a-f]{32}$/);
  for (const [field, value] of Object.entries(request.data)) {
    assert.deepEqual(created[field], value);
  }
  assert.match(created.created_at, ISO);
});

test("spec example: update contact, sent verbatim, changes only the included fields", async () => {
  const response = await api("contacts/update", {
    action: "update",
    data: {
      id: "ct_def456",
      tags: ["client", "active"],
      custom_fields: { source: "website", interest: "plan_enterprise", converted: true },
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const updated = response.body.data;
  assert.equal(updated.id, "ct_def456");
  assert.equal(updated.name, "Maria Garcia");
  assert.equal(updated.email, "maria@example.com");
  assert.deepEqual(updated.tags, ["client", "active"]);
  assert.deepEqual(updated.custom_fields, {
    source: "website",
    interest: "plan_enterprise",
    converted: true,
  });
  assert.match(updated.updated_at, ISO);
});

test("the path suffix is optional: /v1/contacts with action create equals /v1/contacts/create", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const response = await api("contacts", { action: "create", data: { name: "No Suffix" } }, {
    key,
  });
  assert.equal(response.status, 200);
  const viaFunctionsPath = await fetch(`${stack.api_url}/functions/v1/contacts/get`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ action: "get", data: { id: response.body.data.id } }),
  });
  assert.equal(viaFunctionsPath.status, 200);
  assert.equal((await viaFunctionsPath.json()).data.name, "No Suffix");
});

test("linking to a company deleted or made a person meanwhile is 400 on company_id, never a 500 or a person linked", async () => {
  const key = await (await createTestOrg()).key();
  const changes = {
    deleted: (tx: typeof db, id: string) => tx`delete from public.contacts where id = ${id}`,
    "made a person": (tx: typeof db, id: string) =>
      tx`update public.contacts set type = 'person' where id = ${id}`,
  };
  for (const [what, change] of Object.entries(changes)) {
    const company = await api("contacts/create", {
      action: "create",
      data: { type: "company", name: `Co ${what}` },
    }, { key });
    const id = company.body.data.id;
    const response = await duringTransaction(
      (tx) => change(tx, id),
      () =>
        api("contacts/create", { action: "create", data: { name: "Linked", company_id: id } }, {
          key,
        }),
    );
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "company_id", what);
  }
});

test("making a company a person while a contact is being linked to it is 400, never a person linked", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const company = await api("contacts/create", {
    action: "create",
    data: { type: "company", name: "Soon a person" },
  }, { key });
  const id = company.body.data.id;
  const response = await duringTransaction(
    (tx) =>
      tx`insert into public.contacts (org_id, environment, type, name, company_id)
         values (${org.orgId}, 'live', 'person', 'Linked meanwhile', ${id})`,
    () => api("contacts/update", { action: "update", data: { id, type: "person" } }, { key }),
  );
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.constraint, "company_in_use");
  const [row] = await db`select type from public.contacts where id = ${id}`;
  assert.equal(row.type, "company");
});

test("update merges custom_fields key by key, a null removes a key, other fields stay", async () => {
  const key = await (await createTestOrg()).key();
  const created = await api("contacts/create", {
    action: "create",
    data: {
      name: "Merge Me",
      phone: "+1 555 0100",
      tags: ["a"],
      custom_fields: { keep: 1, drop: "x", nested: { a: null } },
    },
  }, { key });
  const { id } = created.body.data;
  const updated = await api("contacts/update", {
    action: "update",
    data: { id, custom_fields: { drop: null, added: [1, 2] } },
  }, { key });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.deepEqual(updated.body.data.custom_fields, {
    keep: 1,
    nested: { a: null },
    added: [1, 2],
  });
  assert.equal(updated.body.data.phone, "+1 555 0100");
  assert.deepEqual(updated.body.data.tags, ["a"]);
  const cleared = await api("contacts/update", { action: "update", data: { id, phone: null } }, {
    key,
  });
  assert.equal(cleared.body.data.phone, null);
  assert.equal(cleared.body.data.name, "Merge Me");
});

test("each change writes contact.created / contact.updated to the outbox in its transaction", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await api("contacts/create", { action: "create", data: { name: "Evented" } }, {
    key,
  });
  const { id } = created.body.data;
  await api("contacts/update", { action: "update", data: { id, name: "Evented 2" } }, { key });
  const failed = await api("contacts/create", {
    action: "create",
    data: { name: "Bad", company_id: "ct_nothere" },
  }, { key });
  assert.equal(failed.status, 400);
  const events = await db<
    { type: string; data: { id: string; name: string }; environment: string }[]
  >`
    select type, data, environment from public.events where org_id = ${org.orgId} order by seq
  `;
  assert.deepEqual(events.map((e) => [e.type, e.data.id, e.data.name, e.environment]), [
    ["contact.created", id, "Evented", "live"],
    ["contact.updated", id, "Evented 2", "live"],
  ]);
});

test("company_id must name a company contact of the same organization", async () => {
  const mine = await createTestOrg();
  const other = await createTestOrg();
  const key = await mine.key();
  const otherKey = await other.key();
  const foreignCompany = await api("contacts/create", {
    action: "create",
    data: { type: "company", name: "Theirs" },
  }, { key: otherKey });
  const person = await api("contacts/create", { action: "create", data: { name: "A Person" } }, {
    key,
  });

  for (
    const [companyId, constraint] of [
      [foreignCompany.body.data.id, "exists"],
      ["ct_doesnotexist", "exists"],
      [person.body.data.id, "company"],
    ]
  ) {
    const response = await api("contacts/create", {
      action: "create",
      data: { name: "Linked", company_id: companyId },
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(response.body.error.details, { field: "company_id", constraint });
  }
  const company = await api("contacts/create", {
    action: "create",
    data: { type: "company", name: "Ours" },
  }, { key });
  const linked = await api("contacts/create", {
    action: "create",
    data: { name: "Linked", company_id: company.body.data.id },
  }, { key });
  assert.equal(linked.status, 200);
  assert.equal(linked.body.data.company_id, company.body.data.id);
});

test("another organization's contact is 404 on get, update and delete, and absent from lists", async () => {
  const mine = await createTestOrg();
  const theirs = await createTestOrg();
  const theirKey = await theirs.key();
  const secret = await api("contacts/create", {
    action: "create",
    data: { name: "Their Secret Contact" },
  }, { key: theirKey });
  const id = secret.body.data.id;
  const key = await mine.key();
  for (
    const [action, data] of [["get", { id }], ["update", { id, name: "Hijacked" }], ["delete", {
      id,
    }]] as const
  ) {
    expectError(
      await api(`contacts/${action}`, { action, data }, { key }),
      404,
      "RESOURCE_NOT_FOUND",
    );
  }
  const list = await api("contacts", { action: "list", data: { search: "Their Secret" } }, { key });
  assert.equal(list.body.data.pagination.total, 0);
  const still = await api("contacts/get", { action: "get", data: { id } }, { key: theirKey });
  assert.equal(still.body.data.name, "Their Secret Contact");
});

test("sandbox isolation: a test key never sees live data and a live key never sees test data", async () => {
  const org = await createTestOrg();
  const live = await org.key({ environment: "live" });
  const sandbox = await org.key({ environment: "test" });
  const liveContact = await api(
    "contacts/create",
    { action: "create", data: { name: "Live One" } },
    { key: live },
  );
  const testContact = await api(
    "contacts/create",
    { action: "create", data: { name: "Test One" } },
    { key: sandbox },
  );
  const liveList = await api("contacts", { action: "list" }, { key: live });
  const testList = await api("contacts", { action: "list" }, { key: sandbox });
  assert.deepEqual(liveList.body.data.contacts.map((c: { name: string }) => c.name), ["Live One"]);
  assert.deepEqual(testList.body.data.contacts.map((c: { name: string }) => c.name), ["Test One"]);
  expectError(
    await api("contacts/get", { action: "get", data: { id: liveContact.body.data.id } }, {
      key: sandbox,
    }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  expectError(
    await api("contacts/get", { action: "get", data: { id: testContact.body.data.id } }, {
      key: live,
    }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  const [{ environment }] =
    await db`select environment from public.contacts where id = ${testContact.body.data.id}`;
  assert.equal(environment, "test");
});

test("list filters by search, type and tags (all given tags), pages in a stable order", async () => {
  const key = await (await createTestOrg()).key();
  for (let i = 1; i <= 7; i++) {
    await api("contacts/create", {
      action: "create",
      data: {
        name: `Person ${i}`,
        type: i % 2 ? "person" : "company",
        tags: i <= 3 ? ["vip", "eu"] : ["eu"],
        email: `p${i}@ex.example`,
      },
    }, { key });
  }
  const page1 = await api("contacts", { action: "list", data: { per_page: 3 } }, { key });
  const page3 = await api("contacts", { action: "list", data: { per_page: 3, page: 3 } }, { key });
  assert.deepEqual(page1.body.data.pagination, { page: 1, per_page: 3, total: 7, total_pages: 3 });
  assert.deepEqual(page1.body.data.contacts.map((c: { name: string }) => c.name), [
    "Person 7",
    "Person 6",
    "Person 5",
  ]);
  assert.deepEqual(page3.body.data.contacts.map((c: { name: string }) => c.name), ["Person 1"]);
  const beyond = await api("contacts", { action: "list", data: { per_page: 3, page: 9 } }, { key });
  assert.deepEqual(beyond.body.data.contacts, []);
  assert.equal(beyond.body.data.pagination.total, 7);

  const vip = await api("contacts", { action: "list", data: { tags: ["vip", "eu"] } }, { key });
  assert.deepEqual(vip.body.data.contacts.map((c: { name: string }) => c.name).sort(), [
    "Person 1",
    "Person 2",
    "Person 3",
  ]);
  const companies = await api("contacts", { action: "list", data: { type: "company" } }, { key });
  assert.equal(companies.body.data.pagination.total, 3);
  const search = await api("contacts", { action: "list", data: { search: "P5@EX" } }, { key });
  assert.deepEqual(search.body.data.contacts.map((c: { name: string }) => c.name), ["Person 5"]);
  const wildcard = await api("contacts", { action: "list", data: { search: "%" } }, { key });
  assert.equal(wildcard.body.data.pagination.total, 0, "LIKE wildcards in search are literal");
});

test("delete removes the contact and unlinks people from a deleted company", async () => {
  const key = await (await createTestOrg()).key();
  const company = await api("contacts/create", {
    action: "create",
    data: { type: "company", name: "Gone Co" },
  }, { key });
  const person = await api("contacts/create", {
    action: "create",
    data: { name: "Staff", company_id: company.body.data.id },
  }, { key });
  const deleted = await api("contacts/delete", {
    action: "delete",
    data: { id: company.body.data.id },
  }, { key });
  assert.deepEqual(deleted.body.data, { id: company.body.data.id, deleted: true });
  expectError(
    await api("contacts/get", { action: "get", data: { id: company.body.data.id } }, { key }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  const staff = await api("contacts/get", { action: "get", data: { id: person.body.data.id } }, {
    key,
  });
  assert.equal(staff.body.data.company_id, null);
});

test("Idempotency-Key: same key and body replays the stored response without a second contact", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const request = { action: "create", data: { name: "Once Only" } };
  const headers = { "idempotency-key": "create-once-1" };
  const first = await api("contacts/create", request, { key, headers });
  const second = await api("contacts/create", request, { key, headers });
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  assert.deepEqual(second.body, first.body);
  assert.equal(second.headers.get("idempotent-replayed"), "true");
  assert.equal(first.headers.get("idempotent-replayed"), null);
  const [{ count }] =
    await db`select count(*)::int from public.contacts where org_id = ${org.orgId}`;
  assert.equal(count, 1);
});

test("Idempotency-Key: same key with a different body is 422 IDEMPOTENCY_KEY_REUSED", async () => {
  const key = await (await createTestOrg()).key();
  const headers = { "idempotency-key": "reuse-me" };
  await api("contacts/create", { action: "create", data: { name: "First" } }, { key, headers });
  const second = await api("contacts/create", { action: "create", data: { name: "Second" } }, {
    key,
    headers,
  });
  expectError(second, 422, "IDEMPOTENCY_KEY_REUSED");
});

test("Idempotency-Key: same key while the first request is in flight is 409 IDEMPOTENCY_KEY_IN_USE", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const data = { name: "In Flight" };
  // The state a first request leaves while its handler runs: claimed, no response yet.
  const hash = idempotencyRequestHash({ group: "contacts", action: "create", data });
  await db`
    insert into private.idempotency_keys (org_id, environment, idempotency_key, request_hash)
    values (${org.orgId}, 'live', 'in-flight-key', ${hash})
  `;
  const response = await api("contacts/create", { action: "create", data }, {
    key,
    headers: { "idempotency-key": "in-flight-key" },
  });
  expectError(response, 409, "IDEMPOTENCY_KEY_IN_USE");
  const [{ count }] =
    await db`select count(*)::int from public.contacts where org_id = ${org.orgId}`;
  assert.equal(count, 0);
});

test("Idempotency-Key: a failed request releases the key so a corrected retry can use it", async () => {
  const key = await (await createTestOrg()).key();
  const headers = { "idempotency-key": "retry-after-fix" };
  const bad = await api("contacts/create", { action: "create", data: { name: "" } }, {
    key,
    headers,
  });
  expectError(bad, 400, "VALIDATION_ERROR");
  const again = await api("contacts/create", { action: "create", data: { name: "" } }, {
    key,
    headers,
  });
  expectError(again, 400, "VALIDATION_ERROR");
  const fixed = await api("contacts/create", { action: "create", data: { name: "Fixed" } }, {
    key,
    headers,
  });
  // A different body after failures is not "reuse": nothing was stored for the key.
  assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
});

test("keys are scoped per organization: the same Idempotency-Key in two orgs are independent", async () => {
  const a = await (await createTestOrg()).key();
  const b = await (await createTestOrg()).key();
  const headers = { "idempotency-key": "shared-name" };
  const first = await api("contacts/create", { action: "create", data: { name: "A" } }, {
    key: a,
    headers,
  });
  const second = await api("contacts/create", { action: "create", data: { name: "B" } }, {
    key: b,
    headers,
  });
  assert.equal(second.status, 200);
  assert.notEqual(second.body.data.id, first.body.data.id);
});
