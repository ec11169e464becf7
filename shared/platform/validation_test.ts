import assert from "node:assert/strict";
import { z } from "zod";
import { ApiError } from "./errors.ts";
import { validate, validationError } from "./validation.ts";

const schema = z.strictObject({
  email: z.email(),
  tags: z.array(z.string().max(3)).default([]),
  plan: z.enum(["starter", "pro"]).optional(),
});

/** The VALIDATION_ERROR `validate` throws for `input`, as {field, constraint}. */
function refusal(input: unknown): { field?: unknown; constraint?: unknown; message?: string } {
  try {
    validate(schema, input);
  } catch (error) {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, "VALIDATION_ERROR");
    return { ...error.options.details, message: error.message };
  }
  assert.fail("expected a VALIDATION_ERROR");
}

Deno.test("validate names the field and the constraint, as the spec's error example does", () => {
  assert.deepEqual(refusal({}), {
    field: "email",
    constraint: "required",
    message: "The 'email' field is required.",
  });
  assert.equal(refusal({ email: 42 }).constraint, "type");
  assert.equal(refusal({ email: "not-an-email" }).constraint, "email");
  assert.deepEqual(
    { ...refusal({ email: "a@b.co", tags: ["toolong"] }), message: undefined },
    { field: "tags.0", constraint: "max", message: undefined },
  );
  assert.equal(refusal({ email: "a@b.co", plan: "gold" }).constraint, "enum");
  assert.deepEqual(
    { ...refusal({ email: "a@b.co", extra: 1 }), message: undefined },
    { field: "extra", constraint: "unknown_field", message: undefined },
  );
  assert.deepEqual(
    { ...refusal("a string"), message: undefined },
    { field: "data", constraint: "type", message: undefined },
  );
});

Deno.test("validate returns the parsed data with defaults", () => {
  assert.deepEqual(validate(schema, { email: "a@b.co" }), { email: "a@b.co", tags: [] });
});

Deno.test("validationError places a nested value's issue inside its request field", () => {
  const issue = z.strictObject({ url: z.url() }).safeParse({ url: "nope" }).error!.issues[0];
  const error = validationError(issue, { url: "nope" }, "config", ["steps", "2", "config"]);
  assert.deepEqual(error.options.details, { field: "steps.2.config.url", constraint: "url" });
});
