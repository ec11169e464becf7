/**
 * Invoking an agent, in the three phases of an action (shared/platform/app.ts), used by the
 * `invoke` action and the workflow step `invoke_agent` alike:
 *
 *   start (transaction 1): load the agent, check its status and the input against its input
 *     schema, insert the execution `running` and debit its credits in the same transaction
 *     (402 CREDITS_EXHAUSTED there rolls both back: Gemini is never called);
 *   run (no transaction): Gemini with the agent's output schema as the response schema, the
 *     caller's abort signal, streaming the partial output when asked;
 *   finish (transaction 2): store output, tokens, credits and latency and write
 *     `agent.executed`; a failure is refunded and stored as failed instead.
 *
 * An execution left `running` (a crash between phases) is failed and refunded by pg_cron
 * after 10 minutes (private.fail_abandoned_agent_executions).
 */
import { gemini, GeminiError, type GenerateJsonResult, tokenColumns } from "../ai/gemini.ts";
import { validateJson } from "../ai/json-schema.ts";
import { creditCost } from "../credits/costs.ts";
import { debitCredits, refundCredits } from "../credits/ledger.ts";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";
import { type AgentRow, findAgent } from "./agents.ts";

export interface StartedInvocation {
  executionId: string;
  agent: Pick<
    AgentRow,
    "id" | "name" | "model" | "instructions" | "output_schema" | "temperature"
  >;
  input: Record<string, unknown>;
  credits: number;
}

/** What Gemini gave, and how long the call took. */
export interface InvocationResult {
  result: GenerateJsonResult;
  durationMs: number;
}

/** A Gemini call that failed, with how long it took. */
export class InvocationFailed extends Error {
  constructor(readonly failure: unknown, readonly durationMs: number) {
    super("The agent's model call failed.");
    this.name = "InvocationFailed";
  }
}

/** The spec's `invoke` answer (also the data of `agent.executed` and a stream's `result`). */
export interface Invocation {
  execution_id: string;
  agent_id: string;
  agent_name: string;
  output: unknown;
  tokens_used: number;
  credits_consumed: number;
  duration_ms: number;
  completed_at: string;
}

export const agentInactive = (agent: Pick<AgentRow, "id" | "status">) =>
  new ApiError(
    "AGENT_INACTIVE",
    `Agent '${agent.id}' is ${agent.status}; only active agents can be invoked.`,
    { details: { agent_id: agent.id, status: agent.status } },
  );

/**
 * The field a violation is about: its JSON pointer (`/context/client_id`) under `input`,
 * and for a missing property the property itself (`input.text`, not `input`).
 */
function inputField(violation: { path: string; message: string }) {
  const parts = violation.path.split("/").filter(Boolean).map((part) =>
    part.replaceAll("~1", "/").replaceAll("~0", "~")
  );
  const missing = /required property "(.+)"/.exec(violation.message)?.[1];
  return ["input", ...parts, ...(missing ? [missing] : [])].join(".");
}

/**
 * Phase 1, in the caller's transaction: the execution row (`running`) and its debit, or a
 * refusal (404, 409 AGENT_INACTIVE, 400 naming the input field, 402) that leaves nothing.
 * `requestKey` (a workflow step's) makes the execution findable on a retry.
 */
export async function startInvocation(
  tx: Tx,
  request: { agent_id: string; input: Record<string, unknown>; requestKey?: string },
): Promise<StartedInvocation> {
  // Shared lock: an archive or deactivation waits for this to commit, not the other way.
  const agent = await findAgent(tx, request.agent_id, "share");
  if (agent.status !== "active") throw agentInactive(agent);
  if (agent.input_schema) {
    const [violation] = validateJson(agent.input_schema, request.input);
    if (violation) {
      const field = inputField(violation);
      throw new ApiError(
        "VALIDATION_ERROR",
        `The '${field}' field does not match the agent's input schema: ${violation.message}`,
        { details: { field, constraint: "input_schema" } },
      );
    }
  }
  const credits = creditCost("agent_invoke", request.input);
  const [row] = await tx<{ id: string }[]>`
    insert into public.agent_executions (agent_id, model, input, credits, request_key)
    values (${agent.id}, ${agent.model}, ${tx.json(request.input as never)}, ${credits},
            ${request.requestKey ?? null})
    returning id
  `;
  // Same transaction: a 402 here rolls the execution back, and the debit commits with it.
  await debitCredits(tx, { operation: "agent_invoke", amount: credits, reference: row.id });
  return { executionId: row.id, agent, input: request.input, credits };
}

/**
 * Phase 2, holding no transaction: the Gemini call for the caller's environment (sandbox
 * callers get the simulation). With `onPartial`, the answer is streamed and each piece of
 * text is passed on as it arrives. Failures are thrown as {@link InvocationFailed}.
 */
export async function runInvocation(
  started: StartedInvocation,
  options: {
    environment: Environment;
    signal?: AbortSignal;
    onPartial?: (text: string) => void;
  },
): Promise<InvocationResult> {
  const client = clientFor(gemini, options.environment);
  const request = {
    model: started.agent.model,
    instructions: started.agent.instructions || undefined,
    input: started.input,
    responseJsonSchema: started.agent.output_schema,
    temperature: started.agent.temperature,
    signal: options.signal,
  };
  const startedAt = performance.now();
  const elapsed = () => Math.round(performance.now() - startedAt);
  try {
    let result: GenerateJsonResult | undefined;
    if (options.onPartial) {
      for await (const event of client.streamJson(request)) {
        if (event.type === "partial") options.onPartial(event.text);
        else result = event.result;
      }
      if (!result) throw new GeminiError("network", "Gemini's answer ended without a result.");
    } else {
      result = await client.generateJson(request);
    }
    return { result, durationMs: elapsed() };
  } catch (error) {
    throw new InvocationFailed(error, elapsed());
  }
}

/** The error an execution stores and a failed invoke answers: safe to show (never the key). */
function failureOf(cause: unknown): ApiError {
  if (cause instanceof GeminiError) return cause.toApiError();
  if (cause instanceof ApiError) return cause;
  return new ApiError("INTEGRATION_ERROR", "The agent's model call failed unexpectedly.", {
    details: { provider: "gemini", reason: "unexpected" },
  });
}

/**
 * Phase 3, in a new transaction: the execution completed (output, tokens, latency) and
 * `agent.executed`, returning the spec's answer; or, when the call failed, its credits
 * refunded, the execution failed with the error, `agent.executed` with that error, and the
 * error returned for the caller to answer.
 */
export async function finishInvocation(
  tx: Tx,
  started: StartedInvocation,
  outcome: { ok: true; value: InvocationResult } | { ok: false; error: unknown },
): Promise<{ ok: true; invocation: Invocation } | { ok: false; error: ApiError }> {
  const { executionId, agent } = started;
  if (outcome.ok) {
    const { result, durationMs } = outcome.value;
    const tokens = tokenColumns(result.usage);
    const [row] = await tx<{ completed_at: Date }[]>`
      update public.agent_executions
      set status = 'completed', output = ${tx.json(result.output as never)},
          prompt_tokens = ${tokens.prompt}, output_tokens = ${tokens.output},
          total_tokens = ${tokens.total}, duration_ms = ${durationMs}, completed_at = now()
      where id = ${executionId} and status = 'running'
      returning completed_at
    `;
    if (row) {
      const invocation: Invocation = {
        execution_id: executionId,
        agent_id: agent.id,
        agent_name: agent.name,
        output: result.output,
        tokens_used: tokens.total,
        credits_consumed: started.credits,
        duration_ms: durationMs,
        completed_at: isoTimestamp(row.completed_at)!,
      };
      await emitEvent(tx, "agent.executed", { ...invocation, status: "completed" });
      return { ok: true, invocation };
    }
    // Failed meanwhile by the sweep of abandoned executions (which refunded it).
    return {
      ok: false,
      error: new ApiError(
        "INTEGRATION_ERROR",
        "The execution was abandoned before its answer was recorded; its credits were refunded.",
        { details: { provider: "gemini", reason: "abandoned", execution_id: executionId } },
      ),
    };
  }

  const failed = outcome.error instanceof InvocationFailed ? outcome.error : null;
  const cause = failed ? failed.failure : outcome.error;
  const error = failureOf(cause);
  const tokens = tokenColumns(cause instanceof GeminiError ? cause.details.usage : undefined);
  await refundCredits(tx, executionId);
  const stored = error.toRecord();
  const [row] = await tx<{ completed_at: Date }[]>`
    update public.agent_executions
    set status = 'failed', credits = 0, error = ${tx.json(stored as never)},
        prompt_tokens = ${tokens.prompt}, output_tokens = ${tokens.output},
        total_tokens = ${tokens.total}, duration_ms = ${failed?.durationMs ?? null},
        completed_at = now()
    where id = ${executionId} and status = 'running'
    returning completed_at
  `;
  if (row) {
    await emitEvent(tx, "agent.executed", {
      execution_id: executionId,
      agent_id: agent.id,
      agent_name: agent.name,
      status: "failed",
      output: null,
      tokens_used: tokens.total,
      credits_consumed: 0,
      duration_ms: failed?.durationMs ?? null,
      completed_at: isoTimestamp(row.completed_at),
      error: stored,
    });
  }
  return { ok: false, error };
}
