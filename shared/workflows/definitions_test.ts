/** The checks a workflow definition passes before it is saved (definitions.ts), no stack. */
import assert from "node:assert/strict";
import { ApiError } from "../platform/errors.ts";
import type { Principal, Scope } from "../platform/principal.ts";
import { checkScopes, checkSteps, type StepDefinition } from "./definitions.ts";

const step = (id: string, type: string, config: Record<string, unknown> = {}): StepDefinition => ({
  id,
  type,
  config,
});
const set = (id: string, values: Record<string, unknown> = { a: 1 }) => step(id, "set", { values });

/** The ApiError `fn` throws, for its code and details. */
function refusal(fn: () => void) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    return { code: error.code, status: error.status, details: error.options.details };
  }
  assert.fail("expected a refusal");
}

Deno.test("checkSteps accepts a valid definition, templates to earlier steps included", () => {
  checkSteps([
    set("first", { x: "{{input.x}}" }),
    step("branch", "condition", { value: "{{steps.first.output.x}}", equals: 1, then: "last" }),
    set("middle"),
    set("last", { y: "{{steps.first.output.x}}" }),
  ]);
});

Deno.test("checkSteps refuses duplicate ids, bad configs, later or unknown step templates", () => {
  assert.deepEqual(refusal(() => checkSteps([set("a"), set("a")])).details, {
    field: "steps.1.id",
    constraint: "unique",
  });
  assert.equal(
    (refusal(() => checkSteps([step("a", "set", { values: 1 })])).details as { field: string })
      .field,
    "steps.0.config.values",
  );
  assert.deepEqual(
    refusal(() => checkSteps([set("a", { x: "{{steps.b.output.x}}" }), set("b")])).details,
    { field: "steps.0.config", constraint: "template" },
  );
  assert.deepEqual(
    refusal(() => checkSteps([set("a", { x: "{{ env.SECRET }}" })])).details,
    { field: "steps.0.config", constraint: "template" },
  );
});

Deno.test("checkSteps leaves templated values to run time, checks the rest now", () => {
  checkSteps([step("wait", "delay", { seconds: "{{input.seconds}}" })]);
  assert.equal(
    (refusal(() => checkSteps([step("call", "http_request", { url: "ftp://x" })]))
      .details as { field: string }).field,
    "steps.0.config.url",
  );
});

Deno.test("conditions go forward only: to a later step or to end", () => {
  const condition = (then: string) => step("c", "condition", { value: 1, equals: 1, then });
  checkSteps([condition("end"), set("after")]);
  for (const target of ["c", "before", "nowhere"]) {
    assert.deepEqual(
      refusal(() => checkSteps([set("before"), condition(target), set("after")])).details,
      { field: "steps.1.config.then", constraint: "later_step" },
      target,
    );
  }
});

const principal = (...scopes: Scope[]): Principal => ({
  kind: "api_key",
  orgId: "org_x",
  environment: "live",
  scopes,
  claims: { role: "authenticated", org_id: "org_x", environment: "live" },
});

Deno.test("checkScopes: contact steps need contacts:write, contact triggers contacts:read", () => {
  const steps = [set("a"), step("c", "create_contact", { name: "Ana" })];
  const refused = refusal(() => checkScopes(principal("workflows:write"), { steps }));
  assert.equal(refused.code, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(refused.status, 403);
  assert.deepEqual(refused.details, {
    field: "steps.1.type",
    required_scope: "contacts:write",
    accepted_scopes: ["contacts:write", "write", "contacts:admin", "admin"],
  });
  checkScopes(principal("workflows:write", "contacts:write"), { steps });
  checkScopes(principal("write"), { steps });

  const events = { trigger_events: ["workflow.failed", "contact.updated"] };
  assert.deepEqual(
    (refusal(() => checkScopes(principal("workflows:write"), events)).details as {
      field: string;
    }).field,
    "trigger_events.1",
  );
  checkScopes(principal("workflows:write", "contacts:read"), events);
  // message.* is read with messages:read, as the messages themselves are.
  const inbound = { trigger_events: ["message.received"] };
  assert.equal(
    (refusal(() => checkScopes(principal("workflows:write"), inbound)).details as {
      required_scope: string;
    }).required_scope,
    "messages:read",
  );
  checkScopes(principal("workflows:write", "messages:read"), inbound);
});
