/**
 * The mcp group's schemas: what each action takes and answers (the spec's shape for
 * `execute`).
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

/** A provider's name, as `execute` names it: `google_sheets`. */
export const providerName = z.string().regex(
  /^[a-z][a-z0-9_]{0,62}$/,
  "must be lower case letters, digits or '_', starting with a letter (at most 63)",
);
/** A tool's name as MCP servers give them (the spec allows letters, digits, _ - . /). */
export const toolName = z.string().min(1).max(200).regex(
  /^[A-Za-z0-9_.\/-]+$/,
  "must be an MCP tool name (letters, digits, '_', '-', '.', '/')",
);
export const executionId = prefixedId("mcp", "an MCP execution");

export const EXECUTION_STATUSES = ["running", "completed", "failed"] as const;

/** Tool arguments: a JSON object, checked against the tool's input schema before the call. */
export const toolParameters = z.record(z.string(), z.unknown());

export const executeInput = z.strictObject({
  provider: providerName,
  tool: toolName,
  parameters: toolParameters.default({}),
});
export type ExecuteInput = z.output<typeof executeInput>;

/** Secrets sent to the MCP server on every request: sealed at rest, never answered. */
export const providerCredentials = z.strictObject({
  /** Sent as `Authorization: Bearer …`. */
  bearer_token: z.string().min(1).max(4096).optional(),
  /** Other headers a server wants (an API key header). */
  headers: z.record(
    z.string().min(1).max(100).regex(/^[A-Za-z0-9-]+$/, "must be an HTTP header name"),
    z.string().max(4096),
  ).optional(),
});
export type ProviderCredentials = z.output<typeof providerCredentials>;

/**
 * What `integrations/connect` takes for `provider: "mcp"` (with the provider's `name`): the
 * server's Streamable HTTP endpoint and what it wants on every request.
 */
export const mcpIntegrationCredentials = z.strictObject({
  /** The server's Streamable HTTP endpoint (`https://…/mcp`). */
  url: z.url({ protocol: /^https?$/ }).max(2048),
  ...providerCredentials.shape,
});
export type McpIntegrationCredentials = z.output<typeof mcpIntegrationCredentials>;

export const byProviderName = z.strictObject({ provider: providerName });

export const listProvidersInput = z.strictObject({});

export const listExecutionsInput = z.strictObject({
  provider: providerName.optional(),
  status: z.enum(EXECUTION_STATUSES).optional(),
  ...paginationInput,
});
export type ListExecutions = z.output<typeof listExecutionsInput>;

export const byExecutionId = z.strictObject({ execution_id: executionId });

// ---------------------------------------------------------------------------------------
// Responses

/** The spec's `execute` answer. */
export const execution = z.strictObject({
  execution_id: executionId,
  provider: providerName,
  tool: z.string(),
  /** The tool's structured content; `{content}` (MCP content blocks) when it has none. */
  result: z.unknown(),
  duration_ms: z.int().min(0),
  completed_at: timestamp,
  /** Sandbox: the tool is not annotated read-only, so it was not called. */
  simulated: z.literal(true).optional(),
}).meta({ id: "McpExecution" });

/** A connected provider: never its credentials, only which kinds it has. */
export const provider = z.strictObject({
  name: providerName,
  url: z.string(),
  /** Which credentials are stored (sealed): `bearer_token`, `headers`. */
  credentials: z.array(z.enum(["bearer_token", "headers"])),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "McpProvider" });

export const providerList = z.strictObject({ providers: z.array(provider) });

export const tool = z.strictObject({
  name: z.string(),
  title: z.string().nullable(),
  description: z.string().nullable(),
  input_schema: z.record(z.string(), z.unknown()),
  /** `annotations.readOnlyHint`: the sandbox runs such tools; others are simulated there. */
  read_only: z.boolean(),
  annotations: z.record(z.string(), z.unknown()),
}).meta({ id: "McpTool" });

export const toolList = z.strictObject({ provider: providerName, tools: z.array(tool) });

/** A recorded execution (get_execution, list_executions): what was asked and how it ended. */
export const executionRecord = z.strictObject({
  execution_id: executionId,
  provider: z.string(),
  tool: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  status: z.enum(EXECUTION_STATUSES),
  simulated: z.boolean(),
  result_bytes: z.int().min(0).nullable(),
  duration_ms: z.int().min(0).nullable(),
  error: z.strictObject({
    code: z.string(),
    message: z.string(),
    details: z.record(z.string(), z.unknown()).optional(),
  }).nullable(),
  created_at: timestamp,
  completed_at: timestamp.nullable(),
}).meta({ id: "McpExecutionRecord" });

export const executionList = z.strictObject({
  executions: z.array(executionRecord),
  pagination,
});
