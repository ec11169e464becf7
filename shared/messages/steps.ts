/**
 * The messages group's workflow step, `send_message` (the data of `messages/send`,
 * templated), and the job kind that sends it. The step parks its instance on a
 * `message_send` job (queued in the step's commit); the job runs the same three phases as
 * the API's `send` (shared/messages/messages.ts) for the instance's organization and
 * environment (sandbox: simulated), and its result, the answer `send` would give, becomes
 * the step's output. A refusal (not connected, a bad `to`) or a provider error fails the
 * step with that error; a waited job's failure is never retried by the engine.
 *
 * Never a second send: WhatsApp, Telegram and SMTP take no idempotency key, so the message
 * row is the record of the intent. The job's ref (`<instance>.<step>.<attempt>`) is stored
 * as the message's `request_key` in the commit before the provider is called, and a job run
 * again (its worker died) looks it up first: sent, it hands over that message; failed, its
 * error; still `queued` (the call may or may not have reached the provider), the step fails
 * with OUTCOME_UNKNOWN instead of sending again.
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { defineJobKind, type JobContext, type JobError } from "../platform/worker.ts";
import { defineStep, type StepType } from "../workflows/steps.ts";
import {
  callSend,
  messageColumns,
  type MessageRow,
  type PreparedSend,
  prepareSend,
  recordSend,
  sentAnswer,
} from "./messages.ts";
import { sendInput } from "./schemas.ts";

export const MESSAGE_SEND_JOB_KIND = "message_send";

export const MESSAGE_STEP_TYPES: Record<string, StepType> = {
  send_message: defineStep({
    // Its effect is the job's (the message row, then the provider); the step only queues it.
    effect: "none",
    config: sendInput,
    // It sends in the organization's name, as `messages/send` does.
    scope: { group: "messages", level: "write" },
    run: ({ config }) => ({
      waitForJob: { kind: MESSAGE_SEND_JOB_KIND, payload: config },
    }),
  }),
};

/** What a message stored by an earlier run of this job says about how it ended. */
const storedJobError = (error: MessageRow["error"]): JobError => {
  const { code, message, ...details } = error ??
    { code: "INTEGRATION_ERROR", message: "The message could not be sent." };
  return { code, message, ...(Object.keys(details).length ? { details } : {}) };
};

/** Phase 1 for the job: ends it from an earlier run's message, or stores a new one queued. */
async function startOrReconcile(
  ctx: JobContext,
  tx: Tx,
  input: z.output<typeof sendInput>,
): Promise<PreparedSend | null> {
  const [{ held }] = await tx<{ held: boolean }[]>`select ${ctx.held(tx)} as held`;
  if (!held) return null; // another worker holds the job now
  const [existing] = await tx<MessageRow[]>`
    select ${messageColumns(tx)} from public.messages where request_key = ${ctx.job.ref}
    for update
  `;
  if (existing) {
    if (existing.status === "failed") await ctx.fail(tx, storedJobError(existing.error));
    else if (existing.status !== "queued") await ctx.finish(tx, sentAnswer(existing));
    else {
      // The last run stopped between storing the message and recording the provider's
      // answer: it may have been sent. Never send it again blindly.
      const error = {
        code: "OUTCOME_UNKNOWN",
        message: `The worker stopped while message ${existing.id} was being sent: it may or ` +
          "may not have reached the recipient, so it was not sent again.",
      };
      await tx`update public.messages set error = ${tx.json(error)} where id = ${existing.id}`;
      await ctx.fail(tx, { ...error, details: { message_id: existing.id } });
    }
    return null;
  }
  try {
    return await prepareSend(tx, input, {
      environment: ctx.job.environment,
      requestKey: ctx.job.ref,
    });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500) throw error;
    await ctx.fail(tx, error.toRecord());
    return null;
  }
}

async function runMessageSend(ctx: JobContext) {
  const input = sendInput.parse(ctx.job.payload);
  // A refusal in phase 1 is committed (the job failed) in the same transaction.
  let started: PreparedSend | null = null;
  await ctx.withTenant(async (tx) => {
    started = await startOrReconcile(ctx, tx, input);
  });
  if (!started) return;
  const prepared: PreparedSend = started;

  let outcome: Parameters<typeof recordSend>[2];
  try {
    outcome = { ok: true, value: await callSend(prepared, {}) };
  } catch (error) {
    outcome = { ok: false, error };
  }

  await ctx.withTenant(async (tx) => {
    const recorded = await recordSend(tx, prepared, outcome);
    // The message's record commits even if the lease was lost meanwhile (ended false): the
    // worker now holding the job then finds it sent (or failed) instead of unknown.
    if (recorded.ok) await ctx.finish(tx, recorded.answer);
    else await ctx.fail(tx, recorded.error.toRecord());
  });
}

export const MESSAGE_SEND_JOB = defineJobKind({
  kind: MESSAGE_SEND_JOB_KIND,
  handler: runMessageSend,
  // Nothing is retried blindly: a provider error fails the step; a crash is reconciled.
  retry: { maxAttempts: 1, backoff: () => 1000 },
  // Provider calls take up to seconds: at most half of a worker's slots.
  concurrency: { share: 0.5 },
});
