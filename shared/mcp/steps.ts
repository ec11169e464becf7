/**
 * The mcp group's workflow step, `mcp_tool` `{provider, tool, parameters}` (templated), and
 * the job kind that runs it. The step parks its instance on an `mcp_tool_call` job (queued
 * in the step's commit); the job runs the same three phases as the API's `execute`
 * (shared/mcp/execute.ts) as the instance's organization and environment, and the execute
 * answer (`execution_id`, `result`, …) becomes the step's output. A refusal (404 provider,
 * 400 tool or parameters) or an MCP failure fails the step with that error.
 *
 * How its effect is made safe: the execution row, committed `running` before the call with
 * the job's ref as `request_key`, is the intent. A job run again after a crash finds it:
 * a tool annotated read-only is called again (safe to repeat, like a `none` step); any other
 * is not, and the step fails with OUTCOME_UNKNOWN (as an `intent` step without reconcile).
 * The record and the job's end commit together, so a finished execution ends its job.
 */
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { defineJobKind, type JobContext, type JobError } from "../platform/worker.ts";
import { defineStep, type StepType } from "../workflows/steps.ts";
import {
  type ExecutionResult,
  finishExecution,
  runExecution,
  type StartedExecution,
  startExecution,
} from "./execute.ts";
import { providerName, toolName, toolParameters } from "./schemas.ts";

export const MCP_TOOL_JOB_KIND = "mcp_tool_call";

const mcpToolConfig = z.strictObject({
  provider: providerName,
  tool: toolName,
  parameters: toolParameters.default({}),
});
type McpToolConfig = z.output<typeof mcpToolConfig>;

export const MCP_STEP_TYPES: Record<string, StepType> = {
  mcp_tool: defineStep({
    // Its effect is the job's (see above); the step only queues it.
    effect: "none",
    config: mcpToolConfig,
    scope: { group: "mcp", level: "write" },
    run: ({ config }) => ({ waitForJob: { kind: MCP_TOOL_JOB_KIND, payload: config } }),
  }),
};

/** An API error or an MCP failure as the job's, and the step's, error. */
function jobErrorOf(error: ApiError): JobError {
  const record = error.toRecord();
  return record.details?.reason === "outcome_unknown"
    ? { ...record, code: "OUTCOME_UNKNOWN" }
    : record;
}

interface Resumed {
  started: StartedExecution;
  /** The execution was left running by an earlier run: the call may have happened. */
  repeat: boolean;
}

/** Phase 1 for the job: its execution from an earlier run, or a new one. */
async function startOrResume(
  ctx: JobContext,
  tx: Tx,
  config: McpToolConfig,
): Promise<Resumed | null> {
  const [{ held }] = await tx<{ held: boolean }[]>`select ${ctx.held(tx)} as held`;
  if (!held) return null; // another worker holds the job now
  const [existing] = await tx<{
    id: string;
    status: string;
    error: JobError | null;
    provider: StartedExecution["provider"] | null;
  }[]>`
    select e.id, e.status, e.error,
           case when p.id is null then null else json_build_object('id', p.id, 'name', p.name,
             'url', p.public ->> 'url', 'sealed_credentials', p.sealed_credentials) end as provider
    from public.mcp_executions e
    left join public.integrations p on p.id = e.integration_id and p.status <> 'disconnected'
    where e.request_key = ${ctx.job.ref}
  `;
  if (existing && (existing.status !== "running" || !existing.provider)) {
    await ctx.fail(
      tx,
      existing.error ?? {
        code: "INTEGRATION_ERROR",
        message: "The execution ended without its job (its provider was disconnected).",
      },
    );
    return null;
  }
  if (existing) {
    return {
      started: {
        executionId: existing.id,
        provider: existing.provider!,
        tool: config.tool,
        parameters: config.parameters,
      },
      repeat: true,
    };
  }
  try {
    return {
      started: await startExecution(tx, { ...config, requestKey: ctx.job.ref }),
      repeat: false,
    };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500) throw error;
    await ctx.fail(tx, jobErrorOf(error));
    return null;
  }
}

async function runMcpToolCall(ctx: JobContext) {
  const config = mcpToolConfig.parse(ctx.job.payload);
  let resumed: Resumed | null = null;
  await ctx.withTenant(async (tx) => {
    resumed = await startOrResume(ctx, tx, config);
  });
  if (!resumed) return;
  const { started, repeat }: Resumed = resumed;

  let outcome: { ok: true; value: ExecutionResult } | { ok: false; error: unknown };
  try {
    outcome = {
      ok: true,
      value: await runExecution(started, { environment: ctx.job.environment, repeat }),
    };
  } catch (error) {
    outcome = { ok: false, error };
  }

  await ctx.withTenant(async (tx) => {
    const finished = await finishExecution(tx, started, outcome);
    const ended = finished.ok
      ? await ctx.finish(tx, finished.execution)
      : await ctx.fail(tx, jobErrorOf(finished.error));
    // The lease was lost: the worker holding the job now records it; undo this record.
    if (!ended) throw new Error("mcp_tool_call: lease lost before the record");
  });
}

export const MCP_TOOL_JOB = defineJobKind({
  kind: MCP_TOOL_JOB_KIND,
  handler: runMcpToolCall,
  // A crash is retried by the worker (and resumes its execution, above).
  retry: { maxAttempts: 1, backoff: () => 1000 },
  // Calls to other servers take a while: at most half of a worker's slots.
  concurrency: { share: 0.5 },
});
