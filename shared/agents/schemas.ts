/**
 * The agents group's schemas: what each action takes, and what it answers (the spec's
 * shapes for `list` and `invoke`).
 */
import { z } from "zod";
import { DEFAULT_MODEL } from "../ai/gemini.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

/**
 * Agent ids: `ag_` and letters, digits or underscores, so the spec's own ids
 * (`ag_classifier_01`, `ag_email_draft`) are accepted beside generated ones.
 */
export const agentId = z.string().regex(/^ag_[0-9A-Za-z_]{1,64}$/, "must be an agent id (ag_…)");
export const executionId = z.string().regex(
  /^age_[0-9A-Za-z_]{1,64}$/,
  "must be an agent execution id (age_…)",
);

export const AGENT_STATUSES = ["active", "inactive", "archived"] as const;
export const EXECUTION_STATUSES = ["running", "completed", "failed"] as const;

/** A JSON schema as sent: checked by checkInputSchema/checkOutputSchema (json-schemas.ts). */
const jsonSchema = z.record(z.string(), z.unknown());

const agentFields = {
  name: z.string().trim().min(1).max(200),
  description: z.string().trim().max(2000),
  category: z.string().trim().min(1).max(50).regex(
    /^[a-z0-9][a-z0-9_-]*$/,
    "must be lower case letters, digits, '-' or '_'",
  ),
  /** Gemini model names: `gemini-2.5-flash`, `gemini-2.5-pro`, `gemma-…`. */
  model: z.string().min(1).max(100).regex(
    /^(gemini|gemma)-[a-z0-9.-]+$/,
    "must be a Gemini model name (gemini-…)",
  ),
  instructions: z.string().max(100_000),
  input_schema: jsonSchema.nullable(),
  output_schema: jsonSchema,
  temperature: z.number().min(0).max(2),
};

export const createAgentInput = z.strictObject({
  ...agentFields,
  description: agentFields.description.default(""),
  category: agentFields.category.default("general"),
  model: agentFields.model.default(DEFAULT_MODEL),
  instructions: agentFields.instructions.default(""),
  input_schema: agentFields.input_schema.default(null),
  temperature: agentFields.temperature.default(1),
  status: z.enum(["active", "inactive"]).default("active"),
});

export const updateAgentInput = z.strictObject({
  agent_id: agentId,
  name: agentFields.name.optional(),
  description: agentFields.description.optional(),
  category: agentFields.category.optional(),
  model: agentFields.model.optional(),
  instructions: agentFields.instructions.optional(),
  input_schema: agentFields.input_schema.optional(),
  output_schema: agentFields.output_schema.optional(),
  temperature: agentFields.temperature.optional(),
  /** Archived agents stay archived: `archive` is one way. */
  status: z.enum(["active", "inactive"]).optional(),
});

export const listAgentsInput = z.strictObject({
  /** Default "active": the spec's list "returns the agents configured and active". */
  status: z.enum([...AGENT_STATUSES, "all"]).default("active"),
  /** "all" (the default) is any category. */
  category: z.string().trim().min(1).max(50).default("all"),
  ...paginationInput,
});

export const byAgentId = z.strictObject({ agent_id: agentId });

export const invokeInput = z.strictObject({
  agent_id: agentId,
  /** Checked against the agent's input schema when it has one. */
  input: z.record(z.string(), z.unknown()),
  /** true: answer text/event-stream (partial output, then the same envelope as `result`). */
  stream: z.boolean().default(false),
});

export const listExecutionsInput = z.strictObject({
  agent_id: agentId.optional(),
  status: z.enum(EXECUTION_STATUSES).optional(),
  ...paginationInput,
});

export const byExecutionId = z.strictObject({ execution_id: executionId });

export type CreateAgent = z.output<typeof createAgentInput>;
export type UpdateAgent = z.output<typeof updateAgentInput>;
export type ListAgents = z.output<typeof listAgentsInput>;
export type InvokeAgent = z.output<typeof invokeInput>;
export type ListExecutions = z.output<typeof listExecutionsInput>;

// ---------------------------------------------------------------------------------------
// Responses

/** An agent in `list` (the spec's fields). */
export const agentSummary = z.strictObject({
  id: agentId,
  name: z.string(),
  description: z.string(),
  category: z.string(),
  status: z.enum(AGENT_STATUSES),
  model: z.string(),
  /** Average duration of its latest 100 completed executions; null before the first. */
  avg_latency_ms: z.int().min(0).nullable(),
  /** Executions started since 00:00 UTC today. */
  invocations_today: z.int().min(0),
}).meta({ id: "AgentSummary" });

export const agent = z.strictObject({
  ...agentSummary.shape,
  instructions: z.string(),
  input_schema: jsonSchema.nullable(),
  output_schema: jsonSchema,
  temperature: z.number(),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "Agent" });

export const agentList = z.strictObject({
  agents: z.array(agentSummary),
  pagination,
});

/** `invoke`'s answer (the spec's), and the data of a stream's final `result` event. */
export const invocation = z.strictObject({
  execution_id: executionId,
  agent_id: agentId,
  agent_name: z.string(),
  /** Valid for the agent's output schema. */
  output: z.unknown(),
  tokens_used: z.int().min(0),
  credits_consumed: z.int().min(0),
  duration_ms: z.int().min(0),
  completed_at: timestamp,
}).meta({ id: "AgentInvocation" });

/** The events a streamed invoke sends before its `result` (or `error`). */
export const invocationEvents = {
  /** First: the execution is recorded and Gemini is being called. */
  execution: z.strictObject({
    execution_id: executionId,
    agent_id: agentId,
    agent_name: z.string(),
  }),
  /** The output's text so far, as Gemini streams it (valid JSON only in `result`). */
  partial: z.strictObject({ text: z.string() }),
};

export const executionError = z.object({
  code: z.string(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});

export const execution = z.strictObject({
  id: executionId,
  agent_id: agentId,
  agent_name: z.string(),
  model: z.string(),
  status: z.enum(EXECUTION_STATUSES),
  input: z.record(z.string(), z.unknown()),
  output: z.unknown(),
  tokens: z.strictObject({
    prompt: z.int().min(0),
    output: z.int().min(0),
    total: z.int().min(0),
  }),
  credits_consumed: z.int().min(0),
  duration_ms: z.int().min(0).nullable(),
  error: executionError.nullable(),
  created_at: timestamp,
  completed_at: timestamp.nullable(),
}).meta({ id: "AgentExecution" });

export const executionList = z.strictObject({
  executions: z.array(execution),
  pagination,
});
