/**
 * The agents group's workflow step, `invoke_agent` `{agent_id, input}` (templated), and the
 * job kind that runs it. The step parks its instance on an `agent_invocation` job (the
 * engine queues it in the step's commit); the job runs the same three phases as the API's
 * `invoke` (shared/agents/invoke.ts) with the instance's organization and environment, and
 * its result, the execution's output, becomes the step's output. Credits are charged per
 * call, like an API invoke; a refusal (402, 409 AGENT_INACTIVE, an input the agent's schema
 * refuses) or a Gemini failure fails the step with that error.
 *
 * Why a job: Gemini does not deduplicate, and the execution row is already the record of
 * the intent. The job's ref (`<instance>.<step>.<attempt>`) is stored as the execution's
 * `request_key`, so a job run again after a crash finds its execution: completed, it hands
 * over the output; failed, the error; still running, it makes the call again for the same
 * execution, charged once.
 */
import { z } from "zod";
import { ApiError } from "../platform/errors.ts";
import type { Tx } from "../platform/db.ts";
import { defineJobKind, type JobContext, type JobError } from "../platform/worker.ts";
import { defineStep, type StepType } from "../workflows/steps.ts";
import { type AgentRow } from "./agents.ts";
import {
  finishInvocation,
  type InvocationResult,
  runInvocation,
  type StartedInvocation,
  startInvocation,
} from "./invoke.ts";
import { agentId } from "./schemas.ts";

export const AGENT_INVOCATION_JOB_KIND = "agent_invocation";

const invokeAgentConfig = z.strictObject({
  agent_id: agentId,
  input: z.record(z.string(), z.unknown()).default({}),
});
type InvokeAgentConfig = z.output<typeof invokeAgentConfig>;

export const AGENT_STEP_TYPES: Record<string, StepType> = {
  invoke_agent: defineStep({
    // Its effect is the job's (the execution row and its debit); the step only queues it.
    effect: "none",
    config: invokeAgentConfig,
    // It spends the organization's credits, as `invoke` does.
    scope: { group: "agents", level: "write" },
    run: ({ config }) => ({
      waitForJob: { kind: AGENT_INVOCATION_JOB_KIND, payload: config },
    }),
  }),
};

interface ExistingExecution {
  id: string;
  status: "running" | "completed" | "failed";
  output: unknown;
  error: JobError | null;
  input: Record<string, unknown>;
  credits: number;
  agent: Pick<AgentRow, "id" | "name" | "model" | "instructions" | "output_schema" | "temperature">;
}

/** Phase 1 for the job: its execution from an earlier run, or a new one (and its debit). */
async function startOrResume(
  ctx: JobContext,
  tx: Tx,
  config: InvokeAgentConfig,
): Promise<StartedInvocation | null> {
  const [{ held }] = await tx<{ held: boolean }[]>`select ${ctx.held(tx)} as held`;
  if (!held) return null; // another worker holds the job now
  const [existing] = await tx<ExistingExecution[]>`
    select e.id, e.status, e.output, e.error, e.input, e.credits,
           json_build_object('id', a.id, 'name', a.name, 'model', e.model,
             'instructions', a.instructions, 'output_schema', a.output_schema,
             'temperature', a.temperature) as agent
    from public.agent_executions e join public.agents a on a.id = e.agent_id
    where e.request_key = ${ctx.job.ref}
  `;
  if (existing?.status === "completed") {
    await ctx.finish(tx, existing.output);
    return null;
  }
  if (existing?.status === "failed") {
    await ctx.fail(tx, existing.error ?? { code: "INTEGRATION_ERROR", message: "Failed." });
    return null;
  }
  if (existing) {
    // The last run stopped during the call: call again for the same execution.
    return {
      executionId: existing.id,
      agent: existing.agent,
      input: existing.input,
      credits: existing.credits,
    };
  }
  try {
    return await startInvocation(tx, { ...config, requestKey: ctx.job.ref });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500) throw error;
    await ctx.fail(tx, error.toRecord());
    return null;
  }
}

async function runAgentInvocation(ctx: JobContext) {
  const config = invokeAgentConfig.parse(ctx.job.payload);
  // A refusal in phase 1 is committed (the job failed) in the same transaction.
  let started: StartedInvocation | null = null;
  await ctx.withTenant(async (tx) => {
    started = await startOrResume(ctx, tx, config);
  });
  if (!started) return;
  const invocation: StartedInvocation = started;

  let outcome: { ok: true; value: InvocationResult } | { ok: false; error: unknown };
  try {
    outcome = {
      ok: true,
      value: await runInvocation(invocation, { environment: ctx.job.environment }),
    };
  } catch (error) {
    outcome = { ok: false, error };
  }

  await ctx.withTenant(async (tx) => {
    const finished = await finishInvocation(tx, invocation, outcome);
    const ended = finished.ok
      ? await ctx.finish(tx, finished.invocation.output)
      : await ctx.fail(tx, finished.error.toRecord());
    // The lease was lost: the worker holding the job now records it; undo this record.
    if (!ended) throw new Error("agent_invocation: lease lost before the record");
  });
}

export const AGENT_INVOCATION_JOB = defineJobKind({
  kind: AGENT_INVOCATION_JOB_KIND,
  handler: runAgentInvocation,
  // Gemini's own retries (429, 5xx) are inside the call; a crash is retried by the worker.
  retry: { maxAttempts: 1, backoff: () => 1000 },
  // Model calls take seconds: at most half of a worker's slots.
  concurrency: { share: 0.5 },
});
