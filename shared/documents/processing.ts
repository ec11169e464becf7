/**
 * Extraction and classification: a Gemini run over a document's file, in the three phases
 * of an action (shared/platform/app.ts), used alike by `extract`, `classify`, upload's
 * `auto_classify`/`auto_extract` and the workflow step `extract_document`:
 *
 *   startRun (transaction 1): the run's row (`running`: ext_… or cls_…) and its debit, in
 *     the same transaction (402 CREDITS_EXHAUSTED rolls both back: Gemini is never called);
 *   runProcessing (no transaction): the file goes to Gemini inline, with a response schema
 *     built from `document_type` and `fields` (extract) or `categories` (classify);
 *   finishRun (transaction 2): the answer stored and `document.processed` written; a
 *     failure is refunded, stored as failed and also written as `document.processed`
 *     (`status: "failed"`), as agent.executed does.
 *
 * A run left `running` by a crash is failed and refunded by pg_cron after 10 minutes
 * (private.finish_abandoned_document_work).
 */
import { DEFAULT_MODEL, gemini, GeminiError, tokenColumns, type TokenUsage } from "../ai/gemini.ts";
import type { JsonSchema } from "../ai/json-schema.ts";
import { creditCost } from "../credits/costs.ts";
import { debitCredits, refundCredits } from "../credits/ledger.ts";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";
import type { DocumentFile } from "./files.ts";
import { createReceivedInvoice } from "./received-invoices.ts";
import type { Classification, Extraction } from "./schemas.ts";

/** The model that reads documents (PDFs and images inline). */
export const DOCUMENTS_MODEL = DEFAULT_MODEL;
/** Low: the same document should give the same data. */
const TEMPERATURE = 0.1;

export interface ExtractRequest {
  operation: "extract";
  /** Unknown until an upload's classification when auto_extract runs after it. */
  document_type: string | null;
  fields?: string[];
  language?: string;
  create_received_invoice?: boolean;
}
export interface ClassifyRequest {
  operation: "classify";
  categories: string[];
}
export type ProcessingRequest = ExtractRequest | ClassifyRequest;

export interface StartedRun {
  runId: string;
  request: ProcessingRequest;
  documentId: string | null;
  credits: number;
}

/** What Gemini answered for a run, and the file it read. */
export interface RunResult {
  output: Record<string, unknown>;
  usage: TokenUsage;
  file: DocumentFile;
  /** The document type the extraction was made for (auto_extract may learn it late). */
  documentType: string | null;
}

/** A run that failed in its call phase, with the usage it still spent, if any. */
export class RunFailed extends Error {
  constructor(readonly failure: unknown) {
    super("The document processing failed.");
    this.name = "RunFailed";
  }
}

const CREDIT_OPERATION = {
  extract: "ocr_extraction",
  classify: "document_classification",
} as const;

/**
 * Phase 1, in the caller's transaction: the run's row and its debit (reference: the run's
 * id). `requestKey` (a workflow step's) makes it findable when the step is retried.
 */
export async function startRun(
  tx: Tx,
  options: {
    request: ProcessingRequest;
    documentId?: string | null;
    documentUrl?: string | null;
    requestKey?: string;
  },
): Promise<StartedRun> {
  const { request } = options;
  const credits = creditCost(CREDIT_OPERATION[request.operation]);
  const prefix = request.operation === "extract" ? "ext" : "cls";
  const [row] = await tx<{ id: string }[]>`
    insert into public.document_extractions
      (id, operation, document_id, document_url, document_type, fields, categories, language,
       model, credits, request_key)
    values (private.new_id(${prefix}), ${request.operation}, ${options.documentId ?? null},
            ${options.documentUrl ?? null},
            ${request.operation === "extract" ? request.document_type : null},
            ${request.operation === "extract" ? request.fields ?? [] : []}::text[],
            ${request.operation === "classify" ? request.categories : []}::text[],
            ${request.operation === "extract" ? request.language ?? null : null},
            ${DOCUMENTS_MODEL}, ${credits}, ${options.requestKey ?? null})
    returning id
  `;
  await debitCredits(tx, {
    operation: CREDIT_OPERATION[request.operation],
    amount: credits,
    reference: row.id,
  });
  return { runId: row.id, request, documentId: options.documentId ?? null, credits };
}

// ---------------------------------------------------------------------------------------
// What Gemini is asked

const nullable = (schema: JsonSchema): JsonSchema => ({
  ...schema,
  type: [schema.type as string, "null"],
});
const party: JsonSchema = {
  type: "object",
  properties: {
    name: { type: ["string", "null"] },
    tax_id: { type: ["string", "null"] },
    address: { type: ["string", "null"] },
  },
};
const amount = nullable({ type: "number", description: "A number, no currency sign." });
const date = nullable({ type: "string", description: "ISO 8601 date, YYYY-MM-DD." });

/** Shapes for field names documents commonly have; any other name takes any JSON value. */
const KNOWN_FIELDS: Record<string, JsonSchema> = {
  date,
  issue_date: date,
  due_date: date,
  total: amount,
  subtotal: amount,
  tax: amount,
  tax_total: amount,
  amount,
  currency: nullable({ type: "string", description: "ISO 4217 code, e.g. EUR." }),
  issuer: nullable(party),
  recipient: nullable(party),
  supplier: nullable(party),
  customer: nullable(party),
  line_items: {
    type: "array",
    items: {
      type: "object",
      properties: {
        description: { type: "string" },
        quantity: { type: "number" },
        unit_price: { type: "number" },
        tax_rate: { type: ["number", "null"], description: "Percent, e.g. 21." },
        total: { type: "number" },
      },
      required: ["description"],
    },
  },
};

const confidence: JsonSchema = {
  type: "number",
  minimum: 0,
  maximum: 1,
  description: "How sure you are of the answer, 0 to 1.",
};

/** The response schema of an extraction: the fields asked for (all present, null if absent). */
export function extractionSchema(fields: string[] | undefined): JsonSchema {
  const extracted: JsonSchema = fields?.length
    ? {
      type: "object",
      properties: Object.fromEntries(
        fields.map((field) => [
          field,
          KNOWN_FIELDS[field] ?? { description: `The document's ${field}; null if absent.` },
        ]),
      ),
      required: fields,
    }
    : { type: "object", description: "The document's data, by field name." };
  return {
    type: "object",
    properties: { extracted, confidence },
    required: ["extracted", "confidence"],
  };
}

export function classificationSchema(categories: string[]): JsonSchema {
  return {
    type: "object",
    properties: {
      classification: { type: "string", enum: categories },
      confidence,
      subcategory: {
        type: ["string", "null"],
        description: "A finer type in snake_case, e.g. service_agreement; null if none.",
      },
      summary: { type: "string", maxLength: 500, description: "One or two sentences." },
      detected_language: {
        type: ["string", "null"],
        description: "The document's main language, ISO 639-1 (en, es).",
      },
    },
    required: ["classification", "confidence", "subcategory", "summary", "detected_language"],
  };
}

function prompt(request: ProcessingRequest, documentType: string | null) {
  if (request.operation === "classify") {
    return {
      instructions:
        "You classify business documents. Read the attached document and choose the one " +
        "category that fits it best. Answer only with JSON for the response schema.",
      input: `Categories: ${request.categories.join(", ")}.`,
    };
  }
  const type = documentType ?? "document";
  return {
    instructions: "You extract structured data from business documents (OCR included). Read the " +
      "attached document and answer only with JSON for the response schema: the values as " +
      "the document states them, null for what it does not contain; never invent values." +
      (request.language ? ` Write free-text values in the language '${request.language}'.` : ""),
    input: `Document type: ${type}.` +
      (request.fields?.length
        ? ` Fields: ${request.fields.join(", ")}.`
        : " Extract every field this document type usually has."),
  };
}

/**
 * Phase 2, holding no transaction: Gemini for the caller's environment (sandbox callers get
 * the simulation). Failures are thrown as {@link RunFailed}.
 */
export async function runProcessing(
  started: StartedRun,
  file: DocumentFile,
  options: { environment: Environment; signal?: AbortSignal; documentType?: string | null },
): Promise<RunResult> {
  const { request } = started;
  const documentType = request.operation === "extract"
    ? request.document_type ?? options.documentType ?? null
    : null;
  try {
    const result = await clientFor(gemini, options.environment).generateJson({
      model: DOCUMENTS_MODEL,
      ...prompt(request, documentType),
      responseJsonSchema: request.operation === "extract"
        ? extractionSchema(request.fields)
        : classificationSchema(request.categories),
      temperature: TEMPERATURE,
      files: [{ mimeType: file.mimeType, data: file.bytes }],
      signal: options.signal,
    });
    return {
      output: result.output as Record<string, unknown>,
      usage: result.usage,
      file,
      documentType,
    };
  } catch (error) {
    throw new RunFailed(error);
  }
}

/** The error a run stores and a failed call answers: safe to show (never the key). */
export function failureOf(cause: unknown): ApiError {
  const inner = cause instanceof RunFailed ? cause.failure : cause;
  if (inner instanceof GeminiError) return inner.toApiError();
  if (inner instanceof ApiError) return inner;
  console.error(JSON.stringify({
    level: "error",
    where: "documents",
    error: inner instanceof Error ? `${inner.name}: ${inner.message}` : String(inner),
  }));
  return new ApiError("INTEGRATION_ERROR", "The document could not be processed.", {
    details: { reason: "unexpected" },
  });
}

export type RunAnswer =
  | { ok: true; operation: "extract"; answer: Extraction }
  | { ok: true; operation: "classify"; answer: Classification }
  | { ok: false; error: ApiError };

/**
 * Phase 3, in a new transaction: the run completed with Gemini's answer and
 * `document.processed` (a classification of a stored document also becomes the document's
 * `classification`); or, when the call failed, its credits refunded, the run failed with
 * the error and `document.processed` with `status: "failed"`. Returns the answer or the
 * error for the caller to answer.
 */
export async function finishRun(
  tx: Tx,
  started: StartedRun,
  outcome: { ok: true; value: RunResult } | { ok: false; error: unknown },
): Promise<RunAnswer> {
  const { runId, request, documentId } = started;
  const idName = request.operation === "extract" ? "extraction_id" : "classification_id";
  if (!outcome.ok) return await failRun(tx, started, outcome.error);

  const { output, usage, file, documentType } = outcome.value;
  const tokens = tokenColumns(usage);
  const [row] = await tx<{ completed_at: Date }[]>`
    update public.document_extractions
    set status = 'completed',
        extracted = ${
    tx.json((request.operation === "extract" ? output.extracted : output) as never)
  },
        confidence = ${output
    .confidence as number}, document_type = coalesce(document_type, ${documentType}),
        mime_type = ${file.mimeType}, size_bytes = ${file.bytes.length},
        page_count = ${file.pageCount}, prompt_tokens = ${tokens.prompt},
        output_tokens = ${tokens.output}, total_tokens = ${tokens.total}, completed_at = now()
    where id = ${runId} and status = 'running'
    returning completed_at
  `;
  if (!row) {
    // Failed meanwhile by the sweep of abandoned runs (which refunded it).
    return {
      ok: false,
      error: new ApiError(
        "INTEGRATION_ERROR",
        "The processing was abandoned before its answer was recorded; its credits were refunded.",
        { details: { provider: "gemini", reason: "abandoned", [idName]: runId } },
      ),
    };
  }
  const processedAt = isoTimestamp(row.completed_at);
  if (request.operation === "classify") {
    const answer: Classification = {
      classification_id: runId,
      document_id: documentId,
      classification: output.classification as string,
      confidence: output.confidence as number,
      subcategory: (output.subcategory as string | null) ?? null,
      summary: output.summary as string,
      detected_language: (output.detected_language as string | null) ?? null,
      page_count: file.pageCount,
      credits_consumed: started.credits,
      processed_at: processedAt,
    };
    if (documentId) {
      const stored = {
        type: answer.classification,
        confidence: answer.confidence,
        subcategory: answer.subcategory,
        classification_id: runId,
      };
      await tx`
        update public.documents set classification = ${tx.json(stored)} where id = ${documentId}
      `;
    }
    await emitEvent(tx, "document.processed", {
      operation: "classify",
      status: "completed",
      ...answer,
    });
    return { ok: true, operation: "classify", answer };
  }
  const answer: Extraction = {
    extraction_id: runId,
    document_id: documentId,
    document_type: documentType ?? "document",
    confidence: output.confidence as number,
    extracted: output.extracted as Record<string, unknown>,
    credits_consumed: started.credits,
    processed_at: processedAt,
  };
  if (request.create_received_invoice) {
    answer.received_invoice_id = (await createReceivedInvoice(tx, answer)).invoice_id;
  }
  await emitEvent(tx, "document.processed", {
    operation: "extract",
    status: "completed",
    ...answer,
  });
  return { ok: true, operation: "extract", answer };
}

async function failRun(tx: Tx, started: StartedRun, cause: unknown): Promise<RunAnswer> {
  const { runId, request, documentId } = started;
  const error = failureOf(cause);
  const inner = cause instanceof RunFailed ? cause.failure : cause;
  const tokens = tokenColumns(inner instanceof GeminiError ? inner.details.usage : undefined);
  await refundCredits(tx, runId);
  const stored = error.toRecord();
  const [row] = await tx<{ completed_at: Date }[]>`
    update public.document_extractions
    set status = 'failed', credits = 0, error = ${tx.json(stored as never)},
        prompt_tokens = ${tokens.prompt}, output_tokens = ${tokens.output},
        total_tokens = ${tokens.total}, completed_at = now()
    where id = ${runId} and status = 'running'
    returning completed_at
  `;
  if (row) {
    await emitEvent(tx, "document.processed", {
      operation: request.operation,
      status: "failed",
      [request.operation === "extract" ? "extraction_id" : "classification_id"]: runId,
      document_id: documentId,
      credits_consumed: 0,
      processed_at: isoTimestamp(row.completed_at),
      error: stored,
    });
  }
  return { ok: false, error };
}

/** A run of an earlier attempt (a workflow step's), found by its request key. */
export interface ExistingRun {
  id: string;
  status: "running" | "completed" | "failed";
  document_id: string | null;
  document_url: string | null;
  document_type: string | null;
  extracted: Record<string, unknown> | null;
  confidence: number | null;
  credits: number;
  error: { code: string; message: string; details?: unknown } | null;
  completed_at: Date | null;
}

export async function findRunByRequestKey(tx: Tx, requestKey: string) {
  const [row] = await tx<ExistingRun[]>`
    select id, status, document_id, document_url, document_type, extracted, confidence,
           credits, error, completed_at
    from public.document_extractions where request_key = ${requestKey}
  `;
  return row ?? null;
}

/** A completed extraction run as `extract` answered it. */
export const extractionOfRun = (run: ExistingRun): Extraction => ({
  extraction_id: run.id,
  document_id: run.document_id,
  document_type: run.document_type ?? "document",
  confidence: run.confidence ?? 0,
  extracted: run.extracted ?? {},
  credits_consumed: run.credits,
  processed_at: isoTimestamp(run.completed_at ?? new Date()),
});
