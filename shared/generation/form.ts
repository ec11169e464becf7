/**
 * Generating a form definition: fields with a name, a label, a type, whether they are
 * required, options (choices) and validation. The definition's schema is the contract (the
 * answer of forms/generate); the model's answer is checked against it.
 */
import { z } from "zod";
import type { JsonSchema } from "../ai/json-schema.ts";
import { GeneratedDefinitionInvalid, type GenerationKind } from "./generate.ts";

const FIELD_TYPES = [
  "text",
  "textarea",
  "email",
  "phone",
  "number",
  "date",
  "select",
  "multiselect",
  "checkbox",
  "url",
] as const;
const CHOICE_TYPES = new Set(["select", "multiselect"]);
const TEXT_TYPES = new Set(["text", "textarea", "email", "phone", "url"]);

const formField = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, "must be snake_case (a-z, 0-9, _)"),
  label: z.string().trim().min(1).max(200),
  type: z.enum(FIELD_TYPES),
  required: z.boolean(),
  /** The choices of a select or multiselect (and only of those). */
  options: z.array(z.string().trim().min(1).max(200)).min(1).max(100).optional(),
  validation: z.strictObject({
    min_length: z.number().int().min(0).max(100_000).optional(),
    max_length: z.number().int().min(1).max(100_000).optional(),
    min: z.number().optional(),
    max: z.number().optional(),
  }).optional(),
}).superRefine((field, ctx) => {
  if (CHOICE_TYPES.has(field.type) !== (field.options !== undefined)) {
    ctx.addIssue({
      code: "custom",
      path: ["options"],
      message: CHOICE_TYPES.has(field.type)
        ? "a select needs its options"
        : "only select and multiselect take options",
    });
  }
  const v = field.validation ?? {};
  if (v.min_length !== undefined && v.max_length !== undefined && v.min_length > v.max_length) {
    ctx.addIssue({ code: "custom", path: ["validation"], message: "min_length > max_length" });
  }
  if (v.min !== undefined && v.max !== undefined && v.min > v.max) {
    ctx.addIssue({ code: "custom", path: ["validation"], message: "min > max" });
  }
});

export const formDefinition = z.strictObject({
  title: z.string().trim().min(1).max(200),
  description: z.string().max(2000),
  fields: z.array(formField).min(1).max(100).refine(
    (fields) => new Set(fields.map((f) => f.name)).size === fields.length,
    "field names must be unique",
  ),
}).meta({ id: "FormDefinition" });
export type FormDefinition = z.output<typeof formDefinition>;

const responseJsonSchema: JsonSchema = {
  type: "object",
  properties: {
    title: { type: "string", maxLength: 200 },
    description: { type: "string", maxLength: 2000 },
    fields: {
      type: "array",
      minItems: 1,
      maxItems: 50,
      items: {
        type: "object",
        properties: {
          name: { type: "string", description: "snake_case" },
          label: { type: "string" },
          type: { type: "string", enum: [...FIELD_TYPES] },
          required: { type: "boolean" },
          options: { type: "array", items: { type: "string" } },
          validation: {
            type: "object",
            properties: {
              min_length: { type: "integer", minimum: 0 },
              max_length: { type: "integer", minimum: 1 },
              min: { type: "number" },
              max: { type: "number" },
            },
          },
        },
        required: ["name", "label", "type", "required"],
      },
    },
  },
  required: ["title", "description", "fields"],
};

const snakeCase = (text: string) =>
  text.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^[^a-z]+/, "").slice(0, 64);

/**
 * What a model writes loosely made exact before the check: names in snake_case and unique,
 * and only the options and validation rules a field's type takes (a text field's
 * `options: []`, a checkbox's `min_length`).
 */
function tidyFields(fields: unknown): unknown {
  if (!Array.isArray(fields)) return fields;
  const used = new Set<string>();
  return fields.map((field, index) => {
    if (field === null || typeof field !== "object") return field;
    let name = typeof field.name === "string" ? snakeCase(field.name) || `field_${index + 1}` : "";
    while (used.has(name)) name = `${name.slice(0, 58)}_${index + 1}`;
    used.add(name);
    const { options, validation, ...rest } = field;
    const rules = validation && typeof validation === "object" ? validation : {};
    const kept = Object.fromEntries(
      Object.entries(rules).filter(([rule]) =>
        rest.type === "number" ? rule === "min" || rule === "max" : TEXT_TYPES.has(rest.type) &&
          (rule === "min_length" || rule === "max_length")
      ),
    );
    return {
      ...rest,
      name,
      ...(CHOICE_TYPES.has(rest.type) ? { options } : {}),
      ...(Object.keys(kept).length ? { validation: kept } : {}),
    };
  });
}

export const formGeneration: GenerationKind<FormDefinition> = {
  kind: "form",
  operation: "form_generation",
  field: "form",
  definition: formDefinition,
  instructions: [
    "You design web forms for BiVelio, a business automation platform.",
    "Answer one form as JSON: a title, a description and its fields, each with a snake_case",
    "name, a label, a type, whether it is required, options for select and multiselect",
    "fields only, and validation (min_length/max_length for text, min/max for numbers) only",
    "where it helps.",
  ].join(" "),
  responseJsonSchema,
  check(_tx, answer) {
    const draft = answer as Record<string, unknown>;
    const parsed = formDefinition.safeParse({ ...draft, fields: tidyFields(draft?.fields) });
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return Promise.reject(
        new GeneratedDefinitionInvalid(`'${issue.path.join(".")}' ${issue.message}.`),
      );
    }
    return Promise.resolve(parsed.data);
  },
};
