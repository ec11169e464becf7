/**
 * The JSON schemas an agent holds, checked when it is saved so a bad one is a 400 naming
 * the place, not a Gemini 400 on every invoke:
 *
 * - the output schema is sent to Gemini as `responseJsonSchema`, which accepts only part of
 *   JSON Schema: the keywords listed in {@link GEMINI_KEYWORDS} (Gemini's API reference,
 *   GenerationConfig.responseJsonSchema), and no siblings beside a `$ref`;
 * - the input schema is checked by BiVelio itself (shared/ai/json-schema.ts), so any JSON
 *   Schema keyword will do, but it must describe an object (invoke's `input` is one).
 */
import { validateJson } from "../ai/json-schema.ts";
import { invalidField } from "../platform/errors.ts";
import { jsonLargerThan, KiB } from "../platform/json-size.ts";

/** What Gemini's responseJsonSchema supports (plus `$schema`/`$comment`, which are inert). */
const GEMINI_KEYWORDS = new Set([
  "$id",
  "$defs",
  "$ref",
  "$anchor",
  "$schema",
  "$comment",
  "type",
  "format",
  "title",
  "description",
  "enum",
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "minimum",
  "maximum",
  "anyOf",
  "oneOf",
  "properties",
  "additionalProperties",
  "required",
  "propertyOrdering",
]);

const JSON_TYPES = new Set(["string", "number", "integer", "boolean", "object", "array", "null"]);

/** A schema as JSON, at most this big: it is sent with every invoke. */
export const MAX_SCHEMA_BYTES = 32 * KiB;
const MAX_SCHEMA_DEPTH = 16;

type Problem = { at: string; message: string };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The first way `schema` (at `at`) is not a schema Gemini takes, or null. */
function geminiProblem(schema: unknown, at: string, depth: number): Problem | null {
  if (!isObject(schema)) return { at, message: "must be a JSON schema object" };
  if (depth > MAX_SCHEMA_DEPTH) return { at, message: `nests deeper than ${MAX_SCHEMA_DEPTH}` };
  const keys = Object.keys(schema);
  const unsupported = keys.find((key) => !GEMINI_KEYWORDS.has(key));
  if (unsupported) {
    return {
      at: `${at}.${unsupported}`,
      message: `'${unsupported}' is not a keyword Gemini's response schemas support`,
    };
  }
  if ("$ref" in schema) {
    if (typeof schema.$ref !== "string" || !schema.$ref.startsWith("#")) {
      return { at: `${at}.$ref`, message: "must be a local reference (#/$defs/…)" };
    }
    const sibling = keys.find((key) => !key.startsWith("$"));
    if (sibling) return { at: `${at}.${sibling}`, message: "Gemini allows nothing beside $ref" };
  }
  if ("type" in schema) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (types.length === 0 || !types.every((t) => typeof t === "string" && JSON_TYPES.has(t))) {
      return {
        at: `${at}.type`,
        message: `must be one or a list of ${[...JSON_TYPES].join(", ")}`,
      };
    }
  }
  if ("enum" in schema) {
    const values = schema.enum;
    if (
      !Array.isArray(values) || values.length === 0 ||
      !values.every((v) => typeof v === "string" || typeof v === "number")
    ) {
      return { at: `${at}.enum`, message: "must be a non-empty list of strings or numbers" };
    }
  }
  if ("required" in schema) {
    if (!Array.isArray(schema.required) || !schema.required.every((r) => typeof r === "string")) {
      return { at: `${at}.required`, message: "must be a list of property names" };
    }
  }
  for (const keyword of ["minItems", "maxItems"]) {
    const value = schema[keyword];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= 0)) {
      return { at: `${at}.${keyword}`, message: "must be a whole number ≥ 0" };
    }
  }
  for (const keyword of ["minimum", "maximum"]) {
    if (keyword in schema && typeof schema[keyword] !== "number") {
      return { at: `${at}.${keyword}`, message: "must be a number" };
    }
  }
  for (const keyword of ["title", "description", "format", "$id", "$anchor", "$comment"]) {
    if (keyword in schema && typeof schema[keyword] !== "string") {
      return { at: `${at}.${keyword}`, message: "must be a string" };
    }
  }
  for (const keyword of ["properties", "$defs"]) {
    if (!(keyword in schema)) continue;
    const members = schema[keyword];
    if (!isObject(members)) return { at: `${at}.${keyword}`, message: "must be an object" };
    for (const [name, member] of Object.entries(members)) {
      const problem = geminiProblem(member, `${at}.${keyword}.${name}`, depth + 1);
      if (problem) return problem;
    }
  }
  for (const keyword of ["anyOf", "oneOf", "prefixItems"]) {
    if (!(keyword in schema)) continue;
    const list = schema[keyword];
    if (!Array.isArray(list) || list.length === 0) {
      return { at: `${at}.${keyword}`, message: "must be a non-empty list of schemas" };
    }
    for (const [index, member] of list.entries()) {
      const problem = geminiProblem(member, `${at}.${keyword}.${index}`, depth + 1);
      if (problem) return problem;
    }
  }
  if ("items" in schema) {
    const problem = geminiProblem(schema.items, `${at}.items`, depth + 1);
    if (problem) return problem;
  }
  if ("additionalProperties" in schema && typeof schema.additionalProperties !== "boolean") {
    const problem = geminiProblem(
      schema.additionalProperties,
      `${at}.additionalProperties`,
      depth + 1,
    );
    if (problem) return problem;
  }
  if ("propertyOrdering" in schema) {
    const order = schema.propertyOrdering;
    if (!Array.isArray(order) || !order.every((name) => typeof name === "string")) {
      return { at: `${at}.propertyOrdering`, message: "must be a list of property names" };
    }
  }
  return null;
}

/** Every `$ref` names `#` or one of the root's `$defs` (the only references Gemini follows). */
function referenceProblem(root: Record<string, unknown>, at: string): Problem | null {
  const defs = isObject(root.$defs) ? root.$defs : {};
  const walk = (node: unknown, path: string): Problem | null => {
    if (Array.isArray(node)) {
      for (const [index, item] of node.entries()) {
        const problem = walk(item, `${path}.${index}`);
        if (problem) return problem;
      }
    } else if (isObject(node)) {
      const ref = node.$ref;
      if (typeof ref === "string" && ref !== "#") {
        const name = ref.startsWith("#/$defs/") ? ref.slice("#/$defs/".length) : null;
        if (name === null || !Object.hasOwn(defs, name)) {
          return { at: `${path}.$ref`, message: `names no schema in $defs: '${ref}'` };
        }
      }
      for (const [key, value] of Object.entries(node)) {
        const problem = walk(value, `${path}.${key}`);
        if (problem) return problem;
      }
    }
    return null;
  };
  return walk(root, at);
}

/** A schema the validator can use: references resolve, patterns compile. */
function validatorProblem(schema: Record<string, unknown>, at: string): Problem | null {
  try {
    validateJson(schema, {});
    return null;
  } catch (error) {
    return {
      at,
      message: `is not a usable JSON schema: ${error instanceof Error ? error.message : error}`,
    };
  }
}

function sizeProblem(schema: unknown, at: string): Problem | null {
  return jsonLargerThan(schema, MAX_SCHEMA_BYTES)
    ? { at, message: `is larger than ${MAX_SCHEMA_BYTES / KiB} KiB as JSON` }
    : null;
}

function refuse(field: string, problem: Problem | null) {
  if (!problem) return;
  throw invalidField(
    problem.at,
    "json_schema",
    `The '${field}' field is not a valid schema: ${problem.at}: ${problem.message}.`,
  );
}

/** 400 naming the place unless `schema` is an output schema Gemini accepts. */
export function checkOutputSchema(schema: Record<string, unknown>) {
  const field = "output_schema";
  refuse(
    field,
    sizeProblem(schema, field) ?? geminiProblem(schema, field, 0) ??
      referenceProblem(schema, field) ?? validatorProblem(schema, field),
  );
}

/** 400 naming the place unless `schema` is a JSON schema of an object. */
export function checkInputSchema(schema: Record<string, unknown>) {
  const field = "input_schema";
  const typeProblem = schema.type !== "object"
    ? { at: `${field}.type`, message: 'must be "object" (invoke\'s input is an object)' }
    : null;
  refuse(
    field,
    sizeProblem(schema, field) ?? typeProblem ?? validatorProblem(schema, field),
  );
}
