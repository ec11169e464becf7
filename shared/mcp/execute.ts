/**
 * Executing an MCP tool, in the three phases of an action (shared/platform/app.ts), used by
 * the `execute` action and the workflow step `mcp_tool` alike:
 *
 *   start (transaction 1): find the provider (404), insert the execution `running`;
 *   run (no transaction): connect with the SDK client through the guard, list the tools,
 *     find the tool (400 naming `tool`), check `parameters` against its input schema (400
 *     naming the field) BEFORE calling, then call it (sandbox: only read-only tools);
 *   finish (transaction 2): the execution completed (result size, duration, simulated) or
 *     failed (its error): every execution is recorded, refusals of phase 2 included.
 */
import { validateJson } from "../ai/json-schema.ts";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError } from "../platform/errors.ts";
import { jsonSize } from "../platform/json-size.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";
import { McpError, mcpErrorOf, mcpServers, type McpTool, type ToolOutcome } from "./client.ts";
import { connectionOf, findProvider, type ProviderRow } from "./providers.ts";

export interface StartedExecution {
  executionId: string;
  provider: Pick<ProviderRow, "id" | "name" | "url" | "sealed_credentials">;
  tool: string;
  parameters: Record<string, unknown>;
}

export interface ExecutionResult extends ToolOutcome {
  durationMs: number;
}

/** A failed run with how long it took; `failure` is an McpError or an ApiError (400). */
export class ExecutionFailed extends Error {
  constructor(readonly failure: unknown, readonly durationMs: number) {
    super("The MCP tool call failed.");
    this.name = "ExecutionFailed";
  }
}

/** The spec's `execute` answer. */
export interface Execution {
  execution_id: string;
  provider: string;
  tool: string;
  result: unknown;
  duration_ms: number;
  completed_at: string;
  simulated?: true;
}

/** Phase 1: the provider, and the execution row `running`. */
export async function startExecution(
  tx: Tx,
  request: {
    provider: string;
    tool: string;
    parameters: Record<string, unknown>;
    requestKey?: string;
  },
): Promise<StartedExecution> {
  const provider = await findProvider(tx, request.provider);
  const [row] = await tx<{ id: string }[]>`
    insert into public.mcp_executions (integration_id, provider, tool, parameters, request_key)
    values (${provider.id}, ${provider.name}, ${request.tool},
            ${tx.json(request.parameters as never)}, ${request.requestKey ?? null})
    returning id
  `;
  return {
    executionId: row.id,
    provider,
    tool: request.tool,
    parameters: request.parameters,
  };
}

/**
 * The field a schema violation is about, under `parameters`: its JSON pointer, and for a
 * missing property the property itself (`parameters.range`, not `parameters`).
 */
function parameterField(violation: { path: string; message: string }) {
  const parts = violation.path.split("/").filter(Boolean).map((part) =>
    part.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const missing = /required property "(.+)"/.exec(violation.message)?.[1];
  return ["parameters", ...parts, ...(missing ? [missing] : [])].join(".");
}

/** 400 naming the first parameter the tool's input schema refuses; nothing when it accepts. */
export function checkParameters(provider: string, tool: McpTool, parameters: unknown) {
  let violations;
  try {
    violations = validateJson(tool.inputSchema, parameters);
  } catch {
    throw new McpError(
      provider,
      "protocol",
      `Tool '${tool.name}' of MCP server '${provider}' has an input schema that cannot be used.`,
      { tool: tool.name },
    );
  }
  const [violation] = violations;
  if (!violation) return;
  const field = parameterField(violation);
  throw new ApiError(
    "VALIDATION_ERROR",
    `The '${field}' field does not match the input schema of tool '${tool.name}': ${violation.message}`,
    { details: { field, constraint: "input_schema", tool: tool.name } },
  );
}

/** The tool named `name` among `tools`, or a 400 naming `tool` with the tools there are. */
export function findTool(provider: string, tools: McpTool[], name: string): McpTool {
  const tool = tools.find((candidate) => candidate.name === name);
  if (tool) return tool;
  throw new ApiError(
    "VALIDATION_ERROR",
    `MCP server '${provider}' has no tool '${name}' (mcp/list_tools lists them).`,
    {
      details: {
        field: "tool",
        constraint: "known_tool",
        allowed: tools.slice(0, 100).map((t) => t.name),
      },
    },
  );
}

/**
 * Phase 2, holding no transaction: the tool call for the caller's environment (sandbox: a
 * tool not annotated read-only is simulated). Failures are thrown as {@link ExecutionFailed}.
 */
export async function runExecution(
  started: StartedExecution,
  options: {
    environment: Environment;
    signal?: AbortSignal;
    /**
     * The call may have been made already (a workflow's job run again after a crash): only
     * a read-only tool is called again; any other fails with reason `outcome_unknown`.
     */
    repeat?: boolean;
  },
): Promise<ExecutionResult> {
  const startedAt = performance.now();
  const elapsed = () => Math.round(performance.now() - startedAt);
  const name = started.provider.name;
  try {
    const connection = await connectionOf(started.provider);
    const session = await clientFor(mcpServers, options.environment).open(
      connection,
      options.signal,
    );
    try {
      const tool = findTool(name, await session.listTools(), started.tool);
      checkParameters(name, tool, started.parameters);
      if (options.repeat && !tool.readOnly) {
        throw new McpError(
          name,
          "outcome_unknown",
          `The worker stopped during the call of tool '${tool.name}', which is not read-only; ` +
            "whether it took effect cannot be known, so it is not called a second time.",
          { tool: tool.name },
        );
      }
      const outcome = await session.callTool(tool, started.parameters);
      return { ...outcome, durationMs: elapsed() };
    } finally {
      await session.close();
    }
  } catch (error) {
    throw new ExecutionFailed(
      error instanceof ApiError ? error : mcpErrorOf(name, error),
      elapsed(),
    );
  }
}

/** The error a failed execution stores and answers: safe to show (never a credential). */
function failureOf(provider: string, cause: unknown): ApiError {
  if (cause instanceof ApiError) return cause;
  return mcpErrorOf(provider, cause).toApiError();
}

/**
 * Phase 3: the execution completed (result size, duration), answering the spec's shape; or
 * failed with its error, which is returned for the caller to answer.
 */
export async function finishExecution(
  tx: Tx,
  started: StartedExecution,
  outcome: { ok: true; value: ExecutionResult } | { ok: false; error: unknown },
): Promise<{ ok: true; execution: Execution } | { ok: false; error: ApiError }> {
  const { executionId } = started;
  const provider = started.provider.name;
  if (outcome.ok) {
    const { result, simulated, durationMs } = outcome.value;
    const [row] = await tx<{ completed_at: Date }[]>`
      update public.mcp_executions
      set status = 'completed', simulated = ${simulated}, result_bytes = ${jsonSize(result)},
          duration_ms = ${durationMs}, completed_at = now()
      where id = ${executionId} and status = 'running'
      returning completed_at
    `;
    if (row) {
      return {
        ok: true,
        execution: {
          execution_id: executionId,
          provider,
          tool: started.tool,
          result,
          duration_ms: durationMs,
          completed_at: isoTimestamp(row.completed_at),
          ...(simulated ? { simulated: true as const } : {}),
        },
      };
    }
    return {
      ok: false,
      error: new ApiError(
        "INTEGRATION_ERROR",
        "The execution was abandoned before its result was recorded.",
        { details: { provider, reason: "abandoned", execution_id: executionId } },
      ),
    };
  }
  const failed = outcome.error instanceof ExecutionFailed ? outcome.error : null;
  const cause = failureOf(provider, failed ? failed.failure : outcome.error);
  // The answer names the execution, which keeps the error: mcp/get_execution.
  const error = new ApiError(cause.code, cause.message, {
    ...cause.options,
    details: { ...cause.options.details, execution_id: executionId },
  });
  const stored = error.toRecord();
  await tx`
    update public.mcp_executions
    set status = 'failed', error = ${tx.json(stored as never)},
        duration_ms = ${failed?.durationMs ?? null}, completed_at = now()
    where id = ${executionId} and status = 'running'
  `;
  return { ok: false, error };
}
