/**
 * The response-contract check every `api()` call runs (tests/helpers/contracts.ts), fed
 * answers by hand: it must refuse what an action does not document, so a green suite means
 * every answer the tests saw matched its schema. And the OpenAPI document names the schemas.
 */
import assert from "node:assert/strict";
import { GROUPS, ROUTES } from "../shared/domains.ts";
import { BinaryOutput } from "../shared/platform/app.ts";
import { buildOpenApiDocument } from "../shared/platform/openapi.ts";
import { type Answer, checkAnswer, ContractViolation } from "./helpers/contracts.ts";

const contact = {
  id: "ct_abc123",
  type: "person",
  name: "Maria Garcia",
  email: "maria@example.com",
  phone: null,
  company_id: null,
  tags: ["lead"],
  custom_fields: { source: "website" },
  created_at: "2026-04-07T12:10:00Z",
  updated_at: "2026-04-07T12:10:00Z",
};

const json = new Headers({ "content-type": "application/json" });
const answer = (fields: Partial<Answer>): Answer => ({
  method: "POST",
  path: "contacts/get",
  requestBody: { action: "get", data: { id: "ct_abc123" } },
  status: 200,
  headers: json,
  body: { success: true, data: contact },
  ...fields,
});

const refused = (fields: Partial<Answer>, mentions: RegExp) =>
  assert.throws(() => checkAnswer(answer(fields)), (error: unknown) => {
    assert.ok(error instanceof ContractViolation, String(error));
    assert.match(error.message, mentions);
    return true;
  });

Deno.test("contracts: a documented answer passes", () => {
  checkAnswer(answer({}));
  checkAnswer(answer({ path: "contacts", requestBody: { action: "create", data: {} } }));
  checkAnswer(answer({
    status: 429,
    body: {
      success: false,
      error: { code: "RATE_LIMIT_EXCEEDED", message: "Slow down.", retry_after: 23 },
    },
  }));
});

Deno.test("contracts: an undocumented field, a wrong type or a missing field fails", () => {
  refused(
    { body: { success: true, data: { ...contact, secret: "x" } } },
    /contacts\.get[\s\S]*secret/,
  );
  refused(
    { body: { success: true, data: { ...contact, created_at: "2026-04-07T12:10:00.123Z" } } },
    /created_at/,
  );
  refused({ body: { success: true, data: { ...contact, id: "wf_abc" } } }, /id/);
  const { email: _, ...withoutEmail } = contact;
  refused({ body: { success: true, data: withoutEmail } }, /email/);
  refused({ body: { success: true, data: contact, extra: true } }, /extra/);
});

Deno.test("contracts: the action comes from the body's action, else the path suffix", () => {
  // /workflows/instances names list_instances: a contact is not its answer.
  refused({ path: "workflows/instances", requestBody: undefined }, /workflows\.list_instances/);
  // The body's action wins over an absent suffix.
  refused({ path: "contacts", requestBody: { action: "list" } }, /contacts\.list/);
  // A 2xx that no action documents.
  refused({ path: "contacts/nothing", requestBody: undefined }, /no documented action/);
});

Deno.test("contracts: every error answer must be the error envelope", () => {
  refused(
    { status: 404, body: { success: false, error: { code: "NOT_A_CODE", message: "x" } } },
    /code/,
  );
  refused({ status: 400, body: { success: false, error: { message: "no code" } } }, /code/);
  refused({ status: 500, body: "Internal Server Error" }, /error answer \(500\)/);
});

Deno.test("contracts: routes outside the dispatch are checked against their schemas", () => {
  const token = {
    access_token: "eyJ…",
    token_type: "bearer",
    expires_in: 3600,
    refresh_token: "v1.MR",
    user: { id: crypto.randomUUID(), email: "a@example.com" },
  };
  const route = { path: "auth/token?grant_type=password", requestBody: {} };
  checkAnswer(answer({ ...route, body: token }));
  const { refresh_token: _, ...withoutRefresh } = token;
  refused({ ...route, body: withoutRefresh }, /refresh_token/);
  refused(
    { method: "GET", path: "health", body: { success: true, data: { status: "ok" } } },
    /version/,
  );
});

Deno.test("contracts: every action declares its output", () => {
  for (const { group, actions } of GROUPS) {
    for (const action of actions) {
      assert.ok(
        action.output instanceof BinaryOutput || typeof action.output?.safeParse === "function",
        `${group}.${action.name} has no output schema`,
      );
    }
  }
});

Deno.test("OpenAPI: 200 answers reference named schemas SDK generators can use", () => {
  // deno-lint-ignore no-explicit-any
  const document = buildOpenApiDocument(GROUPS, ROUTES, "http://localhost/v1") as any;
  const names = Object.keys(document.components.schemas);
  for (
    const name of [
      "Contact",
      "ContactList",
      "Pagination",
      "Workflow",
      "WorkflowInstance",
      "WorkflowInstanceDetail",
      "Webhook",
      "WebhookDelivery",
      "ApiKey",
      "Caller",
      "TokenResponse",
    ]
  ) {
    assert.ok(names.includes(name), `components.schemas has no ${name}: ${names.join(", ")}`);
  }
  const dataOf = (path: string, method = "post") =>
    document.paths[path][method].responses["200"].content["application/json"].schema.properties
      .data;
  assert.deepEqual(dataOf("/contacts/get"), { $ref: "#/components/schemas/Contact" });
  assert.deepEqual(dataOf("/webhooks/test"), { $ref: "#/components/schemas/WebhookDelivery" });
  assert.deepEqual(dataOf("/health", "get"), { $ref: "#/components/schemas/Health" });
  // Strict: an SDK may rely on no other fields.
  assert.equal(document.components.schemas.Contact.additionalProperties, false);
  assert.deepEqual(
    document.paths["/auth/token"].post.responses["200"].content["application/json"].schema,
    { $ref: "#/components/schemas/TokenResponse" },
  );
  // No action is left untyped.
  for (const [path, item] of Object.entries(document.paths)) {
    // deno-lint-ignore no-explicit-any
    for (const operation of Object.values(item as Record<string, any>)) {
      const content = operation.responses["200"].content;
      assert.ok(content, `${path}: no documented 200 answer`);
      const schema = content["application/json"]?.schema;
      if (schema?.properties?.data) {
        assert.notDeepEqual(schema.properties.data, {}, `${path}: untyped data`);
      }
    }
  }
});
