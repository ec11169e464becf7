import assert from "node:assert/strict";
import { AGENT_CONTEXT_BYTES, CHARGEABLE_OPERATIONS, creditCost } from "./costs.ts";

/** An input whose JSON is exactly `bytes` long: {"text":"xx…"}. */
const inputOfSize = (bytes: number) => ({ text: "x".repeat(bytes - '{"text":""}'.length) });

Deno.test("the spec's fixed prices", () => {
  assert.equal(creditCost("ocr_extraction"), 3);
  assert.equal(creditCost("document_classification"), 2);
  assert.equal(creditCost("workflow_generation"), 5);
  assert.equal(creditCost("form_generation"), 3);
  // The input does not change a fixed price.
  assert.equal(creditCost("ocr_extraction", inputOfSize(500_000)), 3);
});

Deno.test("agent invoke: 1 for short text, then 2-5 by the input's JSON size", () => {
  assert.equal(JSON.stringify(inputOfSize(2048)).length, 2048);
  const cases: [number, number][] = [
    [20, 1],
    [2048, 1],
    [2049, 2],
    [8192, 2],
    [8193, 3],
    [32768, 3],
    [32769, 4],
    [131072, 4],
    [131073, 5],
    [5_000_000, 5],
  ];
  for (const [bytes, credits] of cases) {
    assert.equal(creditCost("agent_invoke", inputOfSize(bytes)), credits, `${bytes} bytes`);
  }
  assert.equal(creditCost("agent_invoke"), 1, "no input at all is short");
  // Bytes, not characters: 700 three-byte characters are 2,100 bytes.
  assert.equal(creditCost("agent_invoke", { text: "€".repeat(700) }), 2);
});

Deno.test("agent invoke: the spec's example (short text, small context) costs 1, as printed", () => {
  const specInput = {
    text: "The client wants to upgrade their subscription plan to Enterprise",
    context: { client_id: "ct_abc123", current_plan: "pro" },
  };
  assert.equal(creditCost("agent_invoke", specInput), 1);
});

Deno.test("agent invoke: a context larger than the threshold costs at least 2", () => {
  const context = { notes: "y".repeat(AGENT_CONTEXT_BYTES) };
  assert.equal(creditCost("agent_invoke", { text: "hi", context }), 2);
  // A big context counts by size like the rest of the input.
  assert.equal(creditCost("agent_invoke", { text: "hi", context: inputOfSize(40_000) }), 4);
  // Without the `context` member, the same bytes elsewhere are still short text.
  assert.equal(creditCost("agent_invoke", { text: "hi", notes: "y".repeat(600) }), 1);
});

Deno.test("every chargeable operation has a price of 1-5", () => {
  for (const operation of CHARGEABLE_OPERATIONS) {
    const credits = creditCost(operation, inputOfSize(100));
    assert.ok(Number.isInteger(credits) && credits >= 1 && credits <= 5, operation);
  }
});
