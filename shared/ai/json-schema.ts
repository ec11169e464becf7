/**
 * JSON schemas for model output: checking an answer against the schema it was asked for
 * ({@link validateJson}), and making a deterministic answer valid for a schema
 * ({@link sampleForSchema}), which both the sandbox face of Gemini and the local Gemini
 * stand-in give, so the two answer alike.
 *
 * The validator is @cfworker/json-schema: a complete validator (drafts 4, 7, 2019-09,
 * 2020-12) that interprets the schema instead of compiling code from it (no `new Function`,
 * which Ajv needs), and whose errors name the place in the answer. zod 4's
 * `z.fromJSONSchema` converts a schema into zod instead, which is lossy for keywords zod
 * has no twin for; the schema we send is the contract, so it is the schema we check.
 */
import { type OutputUnit, Validator } from "@cfworker/json-schema";

export type JsonSchema = Record<string, unknown>;

export interface SchemaViolation {
  /** Where in the value, as a JSON pointer (`/intent`; `` for the whole value). */
  path: string;
  message: string;
}

/** The schema's draft: what `$schema` names, else 2020-12 (what Gemini's JSON schema is). */
function draftOf(schema: JsonSchema) {
  const declared = String(schema.$schema ?? "");
  if (declared.includes("draft-04")) return "4" as const;
  if (declared.includes("draft-07")) return "7" as const;
  if (declared.includes("2019-09")) return "2019-09" as const;
  return "2020-12" as const;
}

/**
 * The ways `value` breaks `schema` (an empty list when it is valid), most specific first:
 * the failing leaves, not the "property does not match" lines above them.
 */
export function validateJson(schema: JsonSchema, value: unknown): SchemaViolation[] {
  const result = new Validator(schema, draftOf(schema), false).validate(value);
  if (result.valid) return [];
  const leaves = result.errors.filter((error: OutputUnit) =>
    !result.errors.some((other) =>
      other !== error && other.instanceLocation.startsWith(`${error.instanceLocation}/`)
    )
  );
  return leaves.map((error) => ({
    path: error.instanceLocation.replace(/^#/, ""),
    message: error.error,
  }));
}

// ---------------------------------------------------------------------------------------------
// Deterministic sample output

/** A cheap stable hash (FNV-1a), to pick words without randomness. */
function hashOf(text: string) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

const FALLBACK_WORDS = ["sample", "answer", "simulated", "output"];

/** The words of the input that a sample's strings are drawn from (so answers look related). */
function wordsOf(text: string) {
  const words = text.match(/[\p{L}\p{N}][\p{L}\p{N}'’-]*/gu) ?? [];
  return words.length > 0 ? words.slice(0, 200) : FALLBACK_WORDS;
}

/** A schema keyword that Gemini's OpenAPI-style schemas write as a string ("1") or number. */
function numberOf(value: unknown): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const number = Number(value);
  return Number.isFinite(number) ? number : undefined;
}

/** The type a schema asks for: JSON-schema lower case or Gemini's `STRING`, the first non-null
 * of a list, or what its other keywords imply. */
function typeOf(schema: JsonSchema): string | undefined {
  const declared = Array.isArray(schema.type)
    ? (schema.type.find((type) => String(type).toLowerCase() !== "null") ?? schema.type[0])
    : schema.type;
  if (typeof declared === "string") return declared.toLowerCase();
  if (schema.properties || schema.required) return "object";
  if (schema.items || schema.prefixItems) return "array";
  return undefined;
}

const FORMATTED_STRINGS: Record<string, string> = {
  "date-time": "2026-01-01T00:00:00Z",
  date: "2026-01-01",
  time: "12:00:00Z",
  email: "someone@example.com",
  uri: "https://example.com/",
  url: "https://example.com/",
  uuid: "00000000-0000-4000-8000-000000000000",
  duration: "PT1H",
};

interface SampleContext {
  root: JsonSchema;
  words: string[];
  depth: number;
}

function resolveRef(ref: string, root: JsonSchema): JsonSchema {
  if (!ref.startsWith("#")) return {};
  let node: unknown = root;
  for (const raw of ref.slice(1).split("/").filter(Boolean)) {
    const key = decodeURIComponent(raw).replaceAll("~1", "/").replaceAll("~0", "~");
    node = (node as Record<string, unknown> | undefined)?.[key];
  }
  return typeof node === "object" && node !== null ? node as JsonSchema : {};
}

function sampleString(schema: JsonSchema, path: string, context: SampleContext) {
  const format = typeof schema.format === "string" ? FORMATTED_STRINGS[schema.format] : undefined;
  const minLength = numberOf(schema.minLength) ?? 0;
  const maxLength = numberOf(schema.maxLength) ?? 200;
  let text = format;
  if (text === undefined) {
    // A few words of the input, starting at a place this property always picks.
    const { words } = context;
    const start = hashOf(path) % words.length;
    const count = Math.min(words.length, 3 + (hashOf(`${path}#`) % 6));
    text = Array.from({ length: count }, (_, i) => words[(start + i) % words.length]).join(" ");
  }
  while (text.length < minLength) text += ` ${context.words[text.length % context.words.length]}`;
  return [...text].slice(0, Math.max(maxLength, 0)).join("").padEnd(minLength, "x");
}

function sampleNumber(schema: JsonSchema, integer: boolean) {
  const exclusiveMin = typeof schema.exclusiveMinimum === "number"
    ? schema.exclusiveMinimum
    : undefined;
  const exclusiveMax = typeof schema.exclusiveMaximum === "number"
    ? schema.exclusiveMaximum
    : undefined;
  const low = numberOf(schema.minimum) ?? exclusiveMin;
  const high = numberOf(schema.maximum) ?? exclusiveMax;
  let value = low !== undefined && high !== undefined
    ? (low + high) / 2
    : low !== undefined
    ? low + 1
    : high !== undefined
    ? high - 1
    : 1;
  const step = numberOf(schema.multipleOf);
  if (step) value = Math.ceil(value / step) * step;
  if (integer) {
    value = Math.round(value);
    if (low !== undefined && value < low) value = Math.ceil(low);
    if (high !== undefined && value > high) value = Math.floor(high);
    if (exclusiveMin !== undefined && value <= exclusiveMin) value = Math.floor(exclusiveMin) + 1;
    if (exclusiveMax !== undefined && value >= exclusiveMax) value = Math.ceil(exclusiveMax) - 1;
  }
  return value;
}

function sample(schema: unknown, path: string, context: SampleContext): unknown {
  if (schema === true || schema === undefined) return sampleString({}, path, context);
  if (typeof schema !== "object" || schema === null) return null;
  let node = schema as JsonSchema;
  if (typeof node.$ref === "string") {
    if (context.depth > 16) return null;
    node = { ...resolveRef(node.$ref, context.root), ...node, $ref: undefined };
    context = { ...context, depth: context.depth + 1 };
  }
  if ("const" in node) return node.const;
  if (Array.isArray(node.enum) && node.enum.length > 0) return node.enum[0];
  if (node.default !== undefined) return node.default;
  const branches = (node.anyOf ?? node.oneOf) as unknown[] | undefined;
  if (Array.isArray(branches) && branches.length > 0) {
    const first = branches.find((branch) => typeOf(branch as JsonSchema) !== "null") ?? branches[0];
    return sample({ ...node, anyOf: undefined, oneOf: undefined, ...first as object }, path, {
      ...context,
      depth: context.depth + 1,
    });
  }
  if (Array.isArray(node.allOf)) {
    const merged: JsonSchema = { ...node, allOf: undefined };
    for (const part of node.allOf as JsonSchema[]) {
      merged.properties = { ...merged.properties as object, ...part.properties as object };
      merged.required = [
        ...(merged.required as string[] ?? []),
        ...(part.required as string[] ?? []),
      ];
      for (const [key, value] of Object.entries(part)) {
        if (!(key in merged) || merged[key] === undefined) merged[key] = value;
      }
    }
    return sample(merged, path, context);
  }
  switch (typeOf(node)) {
    case "object": {
      const properties = (node.properties ?? {}) as Record<string, unknown>;
      const required = Array.isArray(node.required) ? node.required.map(String) : [];
      // Every declared property, like a model usually answers; only the required ones
      // when the schema caps the count.
      const names = numberOf(node.maxProperties) !== undefined
        ? required
        : [...new Set([...Object.keys(properties), ...required])];
      return Object.fromEntries(
        names.map((name) => [name, sample(properties[name] ?? {}, `${path}/${name}`, context)]),
      );
    }
    case "array": {
      const prefix = Array.isArray(node.prefixItems) ? node.prefixItems : [];
      const maxItems = numberOf(node.maxItems) ?? Infinity;
      const count = Math.min(Math.max(numberOf(node.minItems) ?? 1, prefix.length, 1), maxItems);
      return Array.from(
        { length: count },
        (_, i) => sample(prefix[i] ?? node.items ?? {}, `${path}/${i}`, context),
      );
    }
    case "integer":
      return sampleNumber(node, true);
    case "number":
      return sampleNumber(node, false);
    case "boolean":
      return true;
    case "null":
      return null;
    default:
      return sampleString(node, path, context);
  }
}

/**
 * A value valid for `schema`, the same every time for the same schema and source text: objects
 * with their properties, an enum's first value, numbers within their bounds, strings made of
 * words from `sourceText` (so an answer looks related to its input). Accepts JSON schemas and
 * Gemini's OpenAPI-style ones (`"type": "STRING"`). `pattern` is not honoured.
 */
export function sampleForSchema(schema: JsonSchema, sourceText: string): unknown {
  return sample(schema, "", { root: schema, words: wordsOf(sourceText), depth: 0 });
}
