/**
 * Generating a workflow definition: what Gemini is asked for, and the answer checked by the
 * same code as `workflows/create` (createWorkflowInput, checkSteps, the trigger checks).
 */
import type { JsonSchema } from "../ai/json-schema.ts";
import { ApiError } from "../platform/errors.ts";
import { type CreateWorkflow, createWorkflowInput } from "../workflows/definitions.ts";
import { checkWorkflowDefinition } from "../workflows/definitions.ts";
import { GeneratedDefinitionInvalid, type GenerationKind } from "./generate.ts";

const step = (type: string, config: JsonSchema): JsonSchema => ({
  type: "object",
  properties: {
    id: { type: "string", description: "letters, digits, '_' or '-', starting with a letter" },
    type: { type: "string", enum: [type] },
    config,
  },
  required: ["id", "type", "config"],
});

/** The step types a generated workflow may use, with the configs they take. */
const STEP_SHAPES: JsonSchema[] = [
  step("set", {
    type: "object",
    properties: { values: { type: "object", description: "values to keep, by name" } },
    required: ["values"],
  }),
  step("create_contact", {
    type: "object",
    properties: {
      name: { type: "string" },
      email: { type: "string", description: "an email address or a template" },
    },
    required: ["name"],
  }),
  step("http_request", {
    type: "object",
    properties: {
      url: { type: "string", description: "an https URL" },
      method: { type: "string", enum: ["POST", "GET", "PUT", "PATCH", "DELETE"] },
    },
    required: ["url", "method"],
  }),
  step("delay", {
    type: "object",
    properties: { seconds: { type: "integer", minimum: 1, maximum: 2592000 } },
    required: ["seconds"],
  }),
  step("condition", {
    type: "object",
    properties: {
      value: { type: "string", description: "a template such as {{input.plan}}" },
      equals: { type: "string" },
      then: { type: "string", description: "a later step's id, or end" },
    },
    required: ["value", "equals"],
  }),
];

const responseJsonSchema: JsonSchema = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 200 },
    description: { type: "string", maxLength: 2000 },
    trigger_type: { type: "string", enum: ["manual", "cron", "event"] },
    cron_expression: { type: "string", description: "5 fields; only for trigger_type cron" },
    steps: { type: "array", minItems: 1, maxItems: 20, items: { anyOf: STEP_SHAPES } },
  },
  required: ["name", "description", "trigger_type", "steps"],
};

const STEP_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/**
 * Step ids a model wrote loosely ("Send email") made valid and unique ("Send_email"); ids
 * that are valid already are kept, so the templates naming them still do.
 */
function usableStepIds(steps: unknown): unknown {
  if (!Array.isArray(steps)) return steps;
  const used = new Set<string>();
  return steps.map((item, index) => {
    if (item === null || typeof item !== "object" || typeof item.id !== "string") return item;
    let id: string = STEP_ID.test(item.id)
      ? item.id
      : (`s_${item.id}`.replace(/[^A-Za-z0-9_-]+/g, "_").slice(0, 60) || `step_${index + 1}`);
    while (used.has(id)) id = `${id.slice(0, 58)}_${index + 1}`;
    used.add(id);
    return { ...item, id };
  });
}

async function check(tx: Parameters<GenerationKind<CreateWorkflow>["check"]>[0], answer: unknown) {
  const draft = answer as Record<string, unknown>;
  const parsed = createWorkflowInput.safeParse({
    name: draft.name,
    description: draft.description,
    trigger_type: draft.trigger_type,
    ...(draft.trigger_type === "cron" ? { cron_expression: draft.cron_expression } : {}),
    steps: usableStepIds(draft.steps),
    // A draft is never active by itself: the caller reviews it and creates it.
    status: "inactive",
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new GeneratedDefinitionInvalid(`'${issue.path.join(".")}' ${issue.message}.`);
  }
  try {
    await checkWorkflowDefinition(tx, parsed.data);
  } catch (error) {
    if (error instanceof ApiError) throw new GeneratedDefinitionInvalid(error.message);
    throw error;
  }
  return parsed.data;
}

export const workflowGeneration: GenerationKind<CreateWorkflow> = {
  kind: "workflow",
  operation: "workflow_generation",
  field: "workflow",
  definition: createWorkflowInput,
  instructions: [
    "You design automation workflows for BiVelio, a business automation platform.",
    "Answer one workflow as JSON: a name, a description, a trigger_type (manual unless the",
    "request asks for a schedule or an event) and ordered steps. Step types: set {values},",
    "create_contact {name, email}, http_request {url, method}, delay {seconds},",
    "condition {value, equals, then}. Refer to the input as {{input.<field>}} and to an",
    "earlier step's result as {{steps.<step id>.output.<field>}}. Step ids use letters,",
    "digits, '_' or '-'. A condition's then names a later step's id or end.",
  ].join(" "),
  responseJsonSchema,
  check,
};
