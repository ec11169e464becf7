import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import { ApiError } from "../platform/errors.ts";
import { KiB } from "../platform/json-size.ts";
import { StorageRequestFailed } from "../platform/storage.ts";
import {
  deleteDocumentRow,
  type DocumentRow,
  documentSummaryToApi,
  documentToApi,
  type FileSource,
  fileSource,
  findDocument,
  insertPendingDocument,
  listDocuments,
  markStored,
  readFile,
  removeFile,
  signedUrlOf,
  sourceColumns,
  storeFile,
} from "./documents.ts";
import { decodeBase64File, type DocumentFile, inspectFile, MAX_DOCUMENT_BYTES } from "./files.ts";
import {
  finishRun,
  type RunAnswer,
  RunFailed,
  runProcessing,
  type RunResult,
  type StartedRun,
  startRun,
} from "./processing.ts";
import { checkReceivedInvoiceOption } from "./received-invoices.ts";
import {
  byDocumentId,
  classification,
  classifyInput,
  DEFAULT_CATEGORIES,
  deletedDocument,
  document,
  documentList,
  extractInput,
  type Extraction,
  extraction,
  listDocumentsInput,
  uploadedDocument,
  uploadInput,
} from "./schemas.ts";

/** Room for MAX_DOCUMENT_BYTES as base64 plus the rest of the body. */
const UPLOAD_BODY_LIMIT = Math.ceil(MAX_DOCUMENT_BYTES / 3) * 4 + 64 * KiB;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(promise: Promise<T>): Promise<Settled<T>> =>
  promise.then(
    (value) => ({ ok: true as const, value }),
    (error) => ({ ok: false as const, error }),
  );

/** A Storage failure that is not the caller's: said plainly, the cause logged. */
function storageFailure(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof StorageRequestFailed) console.error(error.message);
  return new ApiError(
    "INTERNAL_ERROR",
    "The file could not be stored; nothing was kept and no credits were spent. Retry.",
  );
}

/** The phases of `extract` and `classify`, which differ only in what they ask. */
interface PreparedRun {
  started: StartedRun;
  source: FileSource;
}

async function callRun(
  prepared: PreparedRun,
  ctx: { principal: { environment: "live" | "test" }; signal: AbortSignal },
): Promise<RunResult> {
  const environment = ctx.principal.environment;
  let file: DocumentFile;
  try {
    file = await readFile(prepared.source, environment, ctx.signal);
  } catch (error) {
    throw new RunFailed(error);
  }
  return await runProcessing(prepared.started, file, { environment, signal: ctx.signal });
}

/** POST /v1/documents[/<action>]: files in Storage, and Gemini reading them. */
export const actions = [
  defineAction({
    name: "upload",
    summary: "Upload a document (base64), optionally classifying and extracting it",
    scope: "write",
    mutates: true,
    input: uploadInput,
    output: uploadedDocument,
    async handler({ tx, data, principal }) {
      const file = await inspectFile(decodeBase64File(data.content_base64), "content_base64");
      const row = await insertPendingDocument(tx, {
        orgId: principal.orgId,
        filename: data.filename,
        folder: data.folder,
        tags: data.tags,
        file,
      });
      // Debited with the row: a 402 leaves nothing behind, and nothing is stored.
      const classify = data.auto_classify
        ? await startRun(tx, {
          request: { operation: "classify", categories: data.categories ?? DEFAULT_CATEGORIES },
          documentId: row.id,
        })
        : null;
      const extract = data.auto_extract
        ? await startRun(tx, {
          request: {
            operation: "extract",
            document_type: data.document_type ?? null,
            fields: data.fields,
          },
          documentId: row.id,
        })
        : null;
      return { row, file, classify, extract };
    },
    async call({ row, file, classify, extract }, { principal, signal }) {
      const environment = principal.environment;
      await storeFile(environment, row, file);
      // The upload stands whatever the model says: each automatic step settles on its own.
      const classified = classify
        ? await settle(runProcessing(classify, file, { environment, signal }))
        : null;
      const learntType = classified?.ok ? classified.value.output.classification as string : null;
      const extracted = extract
        ? await settle(
          runProcessing(extract, file, { environment, signal, documentType: learntType }),
        )
        : null;
      return { classified, extracted, signed: await signedUrlOf(environment, row.storage_path) };
    },
    async record(outcome, { tx, prepared }) {
      const runs = [
        [prepared.classify, outcome.ok ? outcome.value.classified : null],
        [prepared.extract, outcome.ok ? outcome.value.extracted : null],
      ] as const;
      if (!outcome.ok) {
        // Not stored: the runs are refunded and the document goes.
        for (const [started] of runs) {
          if (started) await finishRun(tx, started, { ok: false, error: outcome.error });
        }
        await deleteDocumentRow(tx, prepared.row.id);
        return new FailedAfterRecord(storageFailure(outcome.error));
      }
      await markStored(tx, prepared.row.id);
      const finished: RunAnswer[] = [];
      for (const [started, settled] of runs) {
        if (started && settled) finished.push(await finishRun(tx, started, settled));
      }
      const row = await findDocument(tx, prepared.row.id); // with its classification
      let extracted: Extraction | null = null;
      let credits = 0;
      const errors: { operation: "classify" | "extract"; code: string; message: string }[] = [];
      for (const [index, answer] of finished.entries()) {
        if (!answer.ok) {
          const operation = index === 0 && prepared.classify ? "classify" : "extract";
          errors.push({ operation, code: answer.error.code, message: answer.error.message });
          continue;
        }
        credits += answer.answer.credits_consumed;
        if (answer.operation === "extract") extracted = answer.answer;
      }
      return {
        ...documentSummaryToApi(row),
        ...outcome.value.signed,
        extraction: extracted,
        credits_consumed: credits,
        processing_errors: errors,
      };
    },
  }),
  defineAction({
    name: "extract",
    summary: "Extract structured data from a document (OCR), by document_id or document_url",
    scope: "write",
    mutates: true,
    input: extractInput,
    output: extraction,
    async handler({ tx, data }): Promise<PreparedRun> {
      checkReceivedInvoiceOption(data);
      const source = await fileSource(tx, data);
      const started = await startRun(tx, {
        request: {
          operation: "extract",
          document_type: data.document_type,
          fields: data.fields,
          language: data.language,
          create_received_invoice: data.create_received_invoice,
        },
        ...sourceColumns(source),
      });
      return { started, source };
    },
    call: callRun,
    async record(outcome, { tx, prepared }) {
      const finished = await finishRun(tx, prepared.started, outcome);
      if (!finished.ok) return new FailedAfterRecord(finished.error);
      if (finished.operation !== "extract") throw new Error("extract finished as classify");
      return finished.answer;
    },
  }),
  defineAction({
    name: "classify",
    summary: "Classify a document among categories, by document_id or document_url",
    scope: "write",
    mutates: true,
    input: classifyInput,
    output: classification,
    async handler({ tx, data }): Promise<PreparedRun> {
      const source = await fileSource(tx, data);
      const started = await startRun(tx, {
        request: { operation: "classify", categories: data.categories },
        ...sourceColumns(source),
      });
      return { started, source };
    },
    call: callRun,
    async record(outcome, { tx, prepared }) {
      const finished = await finishRun(tx, prepared.started, outcome);
      if (!finished.ok) return new FailedAfterRecord(finished.error);
      if (finished.operation !== "classify") throw new Error("classify finished as extract");
      return finished.answer;
    },
  }),
  defineAction({
    name: "get",
    summary: "Get a document with a fresh signed URL",
    scope: "read",
    mutates: false,
    input: byDocumentId,
    output: document,
    handler: ({ tx, data }) => findDocument(tx, data.document_id),
    call: (row: DocumentRow, { principal }) => documentToApi(row, principal.environment),
  }),
  defineAction({
    name: "list",
    summary: "List documents (filters: folder and its subfolders, tags, mime_type)",
    scope: "read",
    mutates: false,
    input: listDocumentsInput,
    output: documentList,
    handler: ({ tx, data }) => listDocuments(tx, data),
  }),
  defineAction({
    name: "delete",
    summary: "Delete a document and its file",
    scope: "write",
    mutates: true,
    input: byDocumentId,
    output: deletedDocument,
    handler: ({ tx, data }) => findDocument(tx, data.document_id),
    // The file first: if the row's removal then fails, deleting again finishes the job.
    call: (row: DocumentRow, { principal }) => removeFile(principal.environment, row.storage_path),
    async record(outcome, { tx, data }) {
      if (!outcome.ok) throw storageFailure(outcome.error);
      await deleteDocumentRow(tx, data.document_id);
      return { document_id: data.document_id, deleted: true as const };
    },
  }),
];

export default createGroupApp("documents", actions, { bodyLimit: UPLOAD_BODY_LIMIT });
