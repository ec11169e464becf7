import type { z } from "zod";
import { ApiError } from "./errors.ts";

/** zod's issue kinds, named as the spec's `details.constraint`. */
function constraintOf(issue: z.core.$ZodIssue, present: boolean): string {
  switch (issue.code) {
    case "invalid_type":
      return present ? "type" : "required";
    case "too_small":
      return "min";
    case "too_big":
      return "max";
    case "invalid_format":
      return issue.format;
    case "invalid_value":
      return "enum";
    case "unrecognized_keys":
      return "unknown_field";
    default:
      return issue.code;
  }
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Validates `input` with `schema`; the first problem becomes a VALIDATION_ERROR whose
 * message names the field (`email`, `tags.0`) and whose details say which field and which
 * constraint. A problem with the input as a whole is named `rootName`.
 */
export function validate<S extends z.ZodType>(
  schema: S,
  input: unknown,
  rootName = "data",
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  throw validationError(result.error.issues[0], input, rootName);
}

/**
 * The VALIDATION_ERROR for one zod issue of `input`. `inside` names where `input` sits in
 * the request (`steps.2.config`) when it is part of it.
 */
export function validationError(
  issue: z.core.$ZodIssue,
  input: unknown,
  rootName = "data",
  inside: string[] = [],
) {
  const path = issue.code === "unrecognized_keys" ? [...issue.path, issue.keys[0]] : issue.path;
  const field = [...inside, ...path].join(".") || rootName;
  const present = valueAt(input, issue.path) !== undefined;
  const constraint = constraintOf(issue, present);
  const message = constraint === "required"
    ? `The '${field}' field is required.`
    : constraint === "unknown_field"
    ? `The '${field}' field is not recognised.`
    : `The '${field}' field is invalid: ${issue.message}`;
  return new ApiError("VALIDATION_ERROR", message, { details: { field, constraint } });
}
