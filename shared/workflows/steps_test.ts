/**
 * The workflow group's pure step types (steps.ts) and the step-type registry
 * (step-types.ts) without the stack: conditions, set, delay, and the effect contracts.
 */
import assert from "node:assert/strict";
import { STEP_TYPE_NAMES, STEP_TYPES } from "./step-types.ts";
import type { StepContext } from "./steps.ts";

/** Runs a step type's config through its schema and its run, as the engine does. */
function run(type: string, config: unknown) {
  const parsed = STEP_TYPES[type].config.parse(config);
  return STEP_TYPES[type].run({ config: parsed } as StepContext<unknown>);
}

Deno.test("condition: each operator, and where it goes", () => {
  const cases: [Record<string, unknown>, boolean][] = [
    [{ value: "pro", equals: "pro" }, true],
    [{ value: { a: [1] }, equals: { a: [1] } }, true],
    [{ value: "pro", not_equals: "pro" }, false],
    [{ value: 5, greater_than: 4 }, true],
    [{ value: "5", greater_than: 4 }, false],
    [{ value: 3, less_than: 4 }, true],
    [{ value: "hello world", contains: "world" }, true],
    [{ value: ["a", { b: 1 }], contains: { b: 1 } }, true],
    [{ value: 12, contains: 1 }, false],
    [{ value: null, exists: false }, true],
    [{ value: 0, exists: true }, true],
  ];
  for (const [config, matched] of cases) {
    assert.deepEqual(
      run("condition", { ...config, then: "yes", else: "no" }),
      { output: { matched, next: matched ? "yes" : "no" }, goTo: matched ? "yes" : "no" },
      JSON.stringify(config),
    );
  }
  assert.deepEqual(run("condition", { value: 1, equals: 2 }), {
    output: { matched: false, next: null },
    goTo: undefined,
  });
});

Deno.test("condition needs exactly one operator", () => {
  assert.equal(STEP_TYPES.condition.config.safeParse({ value: 1 }).success, false);
  assert.equal(
    STEP_TYPES.condition.config.safeParse({ value: 1, equals: 1, exists: true }).success,
    false,
  );
});

Deno.test("set gives its values; delay parks until a time", () => {
  assert.deepEqual(run("set", { values: { a: 1 } }), { output: { a: 1 } });
  const until = "2030-01-01T00:00:00Z";
  assert.deepEqual(run("delay", { until }), { waitUntil: new Date(until) });
  const before = Date.now();
  const { waitUntil } = run("delay", { seconds: 60 }) as { waitUntil: Date };
  assert.ok(waitUntil.getTime() >= before + 60_000);
  assert.equal(STEP_TYPES.delay.config.safeParse({ seconds: 1, until }).success, false);
});

Deno.test("the registry: every type says how its effect is made safe; contact steps need contacts:write", () => {
  assert.deepEqual(
    Object.fromEntries(STEP_TYPE_NAMES.map((name) => [name, STEP_TYPES[name].effect])),
    {
      set: "none",
      condition: "none",
      http_request: "idempotency_key",
      delay: "none",
      create_contact: "transactional",
      update_contact: "transactional",
      invoke_agent: "none",
      extract_document: "none",
      send_message: "none",
      create_invoice: "transactional",
      create_event: "none",
      mcp_tool: "none",
    },
  );
  assert.deepEqual(STEP_TYPES.extract_document.scope, { group: "documents", level: "write" });
  assert.deepEqual(STEP_TYPES.send_message.scope, { group: "messages", level: "write" });
  assert.deepEqual(STEP_TYPES.mcp_tool.scope, { group: "mcp", level: "write" });
  assert.deepEqual(STEP_TYPES.create_invoice.scope, { group: "invoices", level: "write" });
  assert.deepEqual(STEP_TYPES.create_event.scope, { group: "calendar", level: "write" });
  for (const name of ["create_contact", "update_contact"]) {
    assert.deepEqual(STEP_TYPES[name].scope, { group: "contacts", level: "write" });
  }
  for (const name of STEP_TYPE_NAMES) {
    if (STEP_TYPES[name].effect !== "intent") assert.equal(STEP_TYPES[name].reconcile, undefined);
  }
});
