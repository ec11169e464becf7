/**
 * Cases (files): a title, a status, a contact, an assignee, tags and links to documents,
 * invoices and messages, with case.created / case.updated in the outbox.
 */
import assert from "node:assert/strict";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, test, type TestOrg } from "./helpers/stack.ts";

async function call(key: string, action: string, data: Record<string, unknown>) {
  const response = await api(`cases/${action}`, { action, data }, { key });
  return response;
}

async function ok(key: string, action: string, data: Record<string, unknown>) {
  const response = await call(key, action, data);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}

async function contactOf(key: string, name = "Maria Garcia") {
  const response = await api("contacts/create", { action: "create", data: { name } }, { key });
  return response.body.data.id as string;
}

async function documentOf(key: string) {
  const response = await api("documents/upload", {
    action: "upload",
    data: { filename: "notes.txt", content_base64: btoa("case notes") },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data.document_id as string;
}

const eventsOf = (org: TestOrg, type: string) =>
  db<{ data: Record<string, unknown> }[]>`
    select data from public.events where org_id = ${org.orgId} and type = ${type}
    order by created_at, id
  `;

test("a case is opened with its contact, assignee, tags and links, and written to the outbox", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const contactId = await contactOf(key);
  const documentId = await documentOf(key);
  const created = await ok(key, "create", {
    title: "Deed review",
    contact_id: contactId,
    assignee_id: org.user.id,
    tags: ["legal", "urgent", "legal"],
    links: { documents: [documentId] },
  });
  assert.match(created.id, /^case_/);
  assert.equal(created.status, "open");
  assert.deepEqual(created.tags, ["legal", "urgent"]);
  assert.deepEqual(created.links, { documents: [documentId], invoices: [], messages: [] });
  assert.equal(created.closed_at, null);
  assert.deepEqual(await ok(key, "get", { id: created.id }), created);

  const [event] = await eventsOf(org, "case.created");
  assert.equal(event.data.id, created.id);

  const listed = await ok(key, "list", { tags: ["urgent"], status: "open" });
  assert.deepEqual(listed.cases.map((c: { id: string }) => c.id), [created.id]);
  assert.equal((await ok(key, "list", { status: "closed" })).pagination.total, 0);
});

test("what a case points to must be the caller's: another organization's contact or document, a non-member", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const other = await createTestOrg();
  const otherKey = await other.key();
  const refused = async (data: Record<string, unknown>, field: string) => {
    const response = await call(key, "create", { title: "x", ...data });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, field);
  };
  await refused({ contact_id: await contactOf(otherKey) }, "contact_id");
  await refused({ assignee_id: other.user.id }, "assignee_id");
  await refused({ links: { documents: [await documentOf(otherKey)] } }, "links.documents.0");
  await refused({ links: { invoices: ["inv_doesnotexist"] } }, "links.invoices.0");
  // A sandbox document is not the live case's either.
  const sandboxDoc = await documentOf(await org.key({ environment: "test" }));
  await refused({ links: { documents: [sandboxDoc] } }, "links.documents.0");
});

test("update changes what is sent, links and unlinks, and says what changed; close is idempotent; open reopens", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const documentId = await documentOf(key);
  const created = await ok(key, "create", {
    title: "Onboarding",
    links: { documents: [documentId] },
  });

  const updated = await ok(key, "update", {
    id: created.id,
    status: "in_progress",
    description: "Waiting for the signed contract",
    unlink: { documents: [documentId] },
  });
  assert.equal(updated.status, "in_progress");
  assert.equal(updated.title, "Onboarding", "fields not sent are kept");
  assert.deepEqual(updated.links.documents, []);
  const updates = await eventsOf(org, "case.updated");
  assert.deepEqual(updates.at(-1)!.data.changes, ["description", "status", "links"]);

  const closed = await ok(key, "close", { id: created.id });
  assert.equal(closed.status, "closed");
  assert.ok(closed.closed_at);
  const afterClose = (await eventsOf(org, "case.updated")).length;
  const again = await ok(key, "close", { id: created.id });
  assert.equal(again.closed_at, closed.closed_at, "closing a closed case changes nothing");
  assert.equal((await eventsOf(org, "case.updated")).length, afterClose, "and writes no event");

  const reopened = await ok(key, "update", { id: created.id, status: "open" });
  assert.equal(reopened.status, "open");
  assert.equal(reopened.closed_at, null);
});

test("another organization's case, or the live case from the sandbox, is 404 for every action", async () => {
  const org = await createTestOrg();
  const created = await ok(await org.key(), "create", { title: "Private" });
  for (const key of [await (await createTestOrg()).key(), await org.key({ environment: "test" })]) {
    for (const action of ["get", "close"]) {
      expectError(await call(key, action, { id: created.id }), 404, "RESOURCE_NOT_FOUND");
    }
    expectError(
      await call(key, "update", { id: created.id, title: "Mine now" }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    assert.equal((await ok(key, "list", {})).pagination.total, 0);
  }
});

negativeCases({
  group: "cases",
  action: "create",
  scope: "write",
  valid: { title: "A case" },
  invalid: { data: { title: "" }, field: "title" },
});
negativeCases({
  group: "cases",
  action: "list",
  scope: "read",
  valid: {},
  invalid: { data: { status: "archived" }, field: "status" },
});
const caseOf = async (org: TestOrg) => ({
  id: (await ok(await org.key(), "create", { title: "A case" })).id,
});
negativeCases({
  group: "cases",
  action: "get",
  scope: "read",
  valid: caseOf,
  invalid: { data: { id: "ct_notacase" }, field: "id" },
});
negativeCases({
  group: "cases",
  action: "update",
  scope: "write",
  valid: async (org) => ({ ...(await caseOf(org)), tags: ["x"] }),
  invalid: { data: { id: "case_x", status: "closed" }, field: "status" },
});
negativeCases({
  group: "cases",
  action: "close",
  scope: "write",
  valid: caseOf,
  invalid: { data: { id: 42 }, field: "id" },
});
