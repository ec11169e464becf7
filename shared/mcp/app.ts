import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import { finishExecution, runExecution, startExecution } from "./execute.ts";
import { getExecution, listExecutions, listTools } from "./executions.ts";
import { findProvider, listProviders } from "./providers.ts";
import {
  byExecutionId,
  byProviderName,
  executeInput,
  execution,
  executionList,
  executionRecord,
  listExecutionsInput,
  listProvidersInput,
  providerList,
  toolList,
} from "./schemas.ts";

/**
 * POST /v1/mcp[/<action>]: tools of the organization's MCP servers, and their executions.
 * The servers are `mcp` integrations, connected through the integrations group.
 */
export const actions = [
  defineAction({
    name: "execute",
    summary: "Execute a tool of a connected MCP provider (parameters checked against the " +
      "tool's input schema first). Sandbox: only tools annotated read-only are called; " +
      "others are simulated (`simulated: true`)",
    scope: "write",
    mutates: true,
    input: executeInput,
    output: execution,
    // The provider and the execution `running`.
    handler: ({ tx, data }) => startExecution(tx, data),
    // The MCP server, no transaction held.
    call: (started, { principal, signal }) =>
      runExecution(started, { environment: principal.environment, signal }),
    // Completed or failed: recorded either way, then answered.
    record: async (outcome, { tx, prepared }) => {
      const finished = await finishExecution(tx, prepared, outcome);
      return finished.ok ? finished.execution : new FailedAfterRecord(finished.error);
    },
  }),
  defineAction({
    name: "providers",
    summary: "List the connected MCP providers (never their credentials)",
    scope: "read",
    mutates: false,
    input: listProvidersInput,
    output: providerList,
    handler: ({ tx }) => listProviders(tx),
  }),
  defineAction({
    name: "list_tools",
    summary: "List a provider's tools with their input schemas and read-only annotation",
    paths: ["list_tools", "tools"],
    scope: "read",
    mutates: false,
    input: byProviderName,
    output: toolList,
    handler: ({ tx, data }) => findProvider(tx, data.provider),
    call: (found, { principal, signal }) =>
      listTools(found, { environment: principal.environment, signal }),
  }),
  defineAction({
    name: "list_executions",
    summary: "List executions, newest first",
    paths: ["list_executions", "executions"],
    scope: "read",
    mutates: false,
    input: listExecutionsInput,
    output: executionList,
    handler: ({ tx, data }) => listExecutions(tx, data),
  }),
  defineAction({
    name: "get_execution",
    summary: "Get an execution: provider, tool, parameters, status, result size, duration, error",
    scope: "read",
    mutates: false,
    input: byExecutionId,
    output: executionRecord,
    handler: ({ tx, data }) => getExecution(tx, data.execution_id),
  }),
];

export default createGroupApp("mcp", actions);
