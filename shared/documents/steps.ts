/**
 * The documents group's workflow step, `extract_document`
 * `{document_id | document_url, document_type, fields?, language?}` (templated), and the job
 * kind that runs it. Like `invoke_agent` (shared/agents/steps.ts), the step parks its
 * instance on a `document_extraction` job; the job runs the same three phases as the API's
 * `extract` (shared/documents/processing.ts) as the instance's organization and
 * environment, and its result, the extraction (the `extract` answer), becomes the step's
 * output. Credits are charged per call (3); a refusal (402, 404, a private URL) or a Gemini
 * failure fails the step with that error, refunded.
 *
 * Gemini does not deduplicate, so the run row is the record of the intent: the job's ref
 * (`<instance>.<step>.<attempt>`) is stored as the run's `request_key`, and a job run again
 * after a crash finds its run: completed, it hands over the extraction; failed, the error;
 * still running, it calls again for the same run, charged once.
 */
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { defineJobKind, type JobContext } from "../platform/worker.ts";
import { defineStep, type StepType } from "../workflows/steps.ts";
import { type FileSource, fileSource, findDocument, readFile, sourceColumns } from "./documents.ts";
import {
  extractionOfRun,
  findRunByRequestKey,
  finishRun,
  RunFailed,
  runProcessing,
  type RunResult,
  type StartedRun,
  startRun,
} from "./processing.ts";
import { checkReceivedInvoiceOption } from "./received-invoices.ts";
import { type ExtractInput, extractInput } from "./schemas.ts";

export const DOCUMENT_EXTRACTION_JOB_KIND = "document_extraction";

export const DOCUMENT_STEP_TYPES: Record<string, StepType> = {
  extract_document: defineStep({
    // Its effect is the job's (the run row and its debit); the step only queues it.
    effect: "none",
    config: extractInput,
    // It spends the organization's credits, as `extract` does.
    scope: { group: "documents", level: "write" },
    run: ({ config }) => ({
      waitForJob: { kind: DOCUMENT_EXTRACTION_JOB_KIND, payload: config },
    }),
  }),
};

const extractRequest = (config: ExtractInput) => ({
  operation: "extract" as const,
  document_type: config.document_type,
  fields: config.fields,
  language: config.language,
  create_received_invoice: config.create_received_invoice,
});

/** Phase 1 for the job: its run from an earlier attempt, or a new one (and its debit). */
async function startOrResume(
  ctx: JobContext,
  tx: Tx,
  config: ExtractInput,
): Promise<{ started: StartedRun; source: FileSource } | null> {
  const [{ held }] = await tx<{ held: boolean }[]>`select ${ctx.held(tx)} as held`;
  if (!held) return null; // another worker holds the job now
  try {
    const existing = await findRunByRequestKey(tx, ctx.job.ref);
    if (existing?.status === "completed") {
      await ctx.finish(tx, extractionOfRun(existing));
      return null;
    }
    if (existing?.status === "failed") {
      await ctx.fail(tx, existing.error ?? { code: "INTEGRATION_ERROR", message: "Failed." });
      return null;
    }
    if (existing) {
      // The last attempt stopped during the call: call again for the same run.
      const source: FileSource = existing.document_id
        ? { kind: "document", row: await findDocument(tx, existing.document_id) }
        : { kind: "url", url: existing.document_url! };
      const started = {
        runId: existing.id,
        request: extractRequest(config),
        documentId: existing.document_id,
        credits: existing.credits,
      };
      return { started, source };
    }
    checkReceivedInvoiceOption(config);
    const source = await fileSource(tx, config);
    const started = await startRun(tx, {
      request: extractRequest(config),
      ...sourceColumns(source),
      requestKey: ctx.job.ref,
    });
    return { started, source };
  } catch (error) {
    if (!(error instanceof ApiError) || error.status >= 500) throw error;
    await ctx.fail(tx, error.toRecord());
    return null;
  }
}

async function runDocumentExtraction(ctx: JobContext) {
  const config = extractInput.parse(ctx.job.payload);
  let prepared: { started: StartedRun; source: FileSource } | null = null;
  // A refusal in phase 1 is committed (the job failed) in the same transaction.
  await ctx.withTenant(async (tx) => {
    prepared = await startOrResume(ctx, tx, config);
  });
  if (!prepared) return;
  const { started, source } = prepared as { started: StartedRun; source: FileSource };
  const environment = ctx.job.environment;

  let outcome: { ok: true; value: RunResult } | { ok: false; error: unknown };
  try {
    let file;
    try {
      file = await readFile(source, environment);
    } catch (error) {
      throw new RunFailed(error);
    }
    outcome = { ok: true, value: await runProcessing(started, file, { environment }) };
  } catch (error) {
    outcome = { ok: false, error };
  }

  await ctx.withTenant(async (tx) => {
    const finished = await finishRun(tx, started, outcome);
    const ended = finished.ok
      ? await ctx.finish(tx, finished.answer)
      : await ctx.fail(tx, finished.error.toRecord());
    // The lease was lost: the worker holding the job now records it; undo this record.
    if (!ended) throw new Error("document_extraction: lease lost before the record");
  });
}

export const DOCUMENT_EXTRACTION_JOB = defineJobKind({
  kind: DOCUMENT_EXTRACTION_JOB_KIND,
  handler: runDocumentExtraction,
  // Gemini's own retries (429, 5xx) are inside the call; a crash is retried by the worker.
  retry: { maxAttempts: 1, backoff: () => 1000 },
  // Model calls take seconds: at most half of a worker's slots.
  concurrency: { share: 0.5 },
});
