import assert from "node:assert/strict";
import { type JsonSchema, sampleForSchema, validateJson } from "./json-schema.ts";

const INPUT = "Please draft a friendly follow-up email to Ana about the March invoice";

/** Schemas an agent's output could have; each sample must be valid for its schema. */
const SCHEMAS: Record<string, JsonSchema> = {
  classifier: {
    type: "object",
    required: ["intent", "confidence"],
    properties: {
      intent: { type: "string", enum: ["billing", "support"] },
      confidence: { type: "number", minimum: 0, maximum: 1 },
    },
    additionalProperties: false,
  },
  bounds: {
    type: "object",
    properties: {
      count: { type: "integer", exclusiveMinimum: 3, exclusiveMaximum: 5 },
      score: { type: "number", minimum: 10 },
      below: { type: "integer", maximum: -5 },
      step: { type: "number", minimum: 0.1, maximum: 1, multipleOf: 0.25 },
    },
    required: ["count", "score", "below", "step"],
  },
  strings: {
    type: "object",
    properties: {
      subject: { type: "string", minLength: 5, maxLength: 12 },
      long: { type: "string", minLength: 400 },
      email: { type: "string", format: "email" },
      when: { type: "string", format: "date-time" },
      kind: { const: "email" },
      nothing: { type: "null" },
      flag: { type: "boolean" },
      maybe: { type: ["string", "null"] },
    },
    required: ["subject", "long", "email", "when", "kind", "nothing", "flag", "maybe"],
  },
  arrays: {
    type: "array",
    minItems: 3,
    maxItems: 4,
    items: { type: "object", properties: { tag: { type: "string" } }, required: ["tag"] },
  },
  tuple: { type: "array", prefixItems: [{ type: "integer" }, { type: "string" }], minItems: 2 },
  refs: {
    $defs: { line: { type: "object", properties: { amount: { type: "number", minimum: 1 } } } },
    type: "object",
    properties: { lines: { type: "array", items: { $ref: "#/$defs/line" } } },
    required: ["lines"],
  },
  choices: {
    anyOf: [{ type: "null" }, { type: "object", properties: { a: { type: "integer" } } }],
  },
  merged: {
    allOf: [
      { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
      { properties: { b: { type: "integer", minimum: 2 } }, required: ["b"] },
    ],
  },
  capped: {
    type: "object",
    maxProperties: 1,
    properties: { keep: { type: "string" }, drop: { type: "string" } },
    required: ["keep"],
  },
};

for (const [name, schema] of Object.entries(SCHEMAS)) {
  Deno.test(`a sample for the '${name}' schema is valid for it`, () => {
    const value = sampleForSchema(schema, INPUT);
    assert.deepEqual(validateJson(schema, value), [], JSON.stringify(value));
  });
}

Deno.test("samples are deterministic, take enums' first value and words from the input", () => {
  const schema = {
    type: "object",
    properties: { intent: { enum: ["billing", "support"] }, summary: { type: "string" } },
  };
  const first = sampleForSchema(schema, INPUT) as { intent: string; summary: string };
  assert.deepEqual(sampleForSchema(schema, INPUT), first);
  assert.equal(first.intent, "billing");
  const inputWords = new Set(INPUT.split(" "));
  assert.ok(first.summary.split(" ").every((word) => inputWords.has(word)), first.summary);
  // Another input, other words.
  assert.notDeepEqual(sampleForSchema(schema, "Quarterly revenue grew strongly"), first);
});

Deno.test("Gemini's OpenAPI-style schemas (upper-case types, counts as strings) are sampled", () => {
  const schema = {
    type: "OBJECT",
    properties: {
      items: { type: "ARRAY", minItems: "2", items: { type: "INTEGER", minimum: 3 } },
      name: { type: "STRING" },
    },
    required: ["items", "name"],
  };
  const value = sampleForSchema(schema, INPUT) as { items: number[]; name: string };
  assert.equal(value.items.length, 2);
  assert.ok(value.items.every((item) => Number.isInteger(item) && item >= 3));
  assert.equal(typeof value.name, "string");
});

Deno.test("validateJson names the failing places, not the objects around them", () => {
  const violations = validateJson(SCHEMAS.classifier, { intent: "weather", confidence: 2 });
  assert.deepEqual(violations.map((violation) => violation.path), ["/intent", "/confidence"]);
  assert.deepEqual(validateJson(SCHEMAS.classifier, { intent: "billing" }).map((v) => v.path), [
    "",
  ]);
  assert.match(validateJson(SCHEMAS.classifier, { intent: "billing" })[0].message, /confidence/);
  assert.deepEqual(validateJson(SCHEMAS.classifier, { intent: "billing", confidence: 0.3 }), []);
});
