/**
 * The documents group's inputs and answers: the one definition of each, from which the
 * handlers take their types, OpenAPI its schemas and the tests their checks.
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";
import { SUPPORTED_MIME_TYPES } from "./files.ts";

export const documentId = prefixedId("doc", "a document");
export const extractionId = prefixedId("ext", "an extraction");
export const classificationId = prefixedId("cls", "a classification");

/** The spec's example categories: what `classify` chooses from when none are given. */
export const DEFAULT_CATEGORIES = ["invoice", "contract", "deed", "receipt", "report", "other"];

const tag = z.string().trim().min(1).max(50);
const tags = z.array(tag).max(50).transform((list) => [...new Set(list)]);
/** `contracts`, `clients/abc/2026`: segments of letters, digits, `_ - . space`. */
const folder = z.string().trim().min(1).max(200).regex(
  /^[\p{L}\p{N}_\-. ]+(\/[\p{L}\p{N}_\-. ]+)*$/u,
  "must be folder names separated by '/' (letters, digits, '_', '-', '.', space)",
);
/** A field or category name as Gemini's schema will carry it: `invoice_number`. */
const identifier = z.string().regex(
  /^[A-Za-z][A-Za-z0-9_]{0,63}$/,
  "must be a name of letters, digits and '_' (at most 64), starting with a letter",
);
const documentType = z.string().trim().min(1).max(100);
const fields = z.array(identifier).min(1).max(50).transform((list) => [...new Set(list)]);
const categories = z.array(identifier).min(2).max(50).transform((list) => [...new Set(list)]);
/** A BCP 47 language tag (`en`, `es`, `pt-BR`): the language to write extracted text in. */
const language = z.string().regex(
  /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/,
  "must be a language tag (en, es, pt-BR)",
);
/** Fetched with the private-network guard; http(s) only. */
const documentUrl = z.url({ protocol: /^https?$/ }).max(2048);

/** Where the file comes from: exactly one of `document_id` and `document_url`. */
const source = {
  document_id: documentId.optional(),
  document_url: documentUrl.optional(),
};
function oneSource(
  value: { document_id?: string; document_url?: string },
  ctx: z.RefinementCtx,
) {
  if ((value.document_id === undefined) === (value.document_url === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [value.document_id === undefined ? "document_id" : "document_url"],
      message: "give exactly one of document_id and document_url",
      params: { constraint: "one_of" },
    });
  }
}

export const extractInput = z.strictObject({
  ...source,
  document_type: documentType,
  /** The fields to extract; without them the model extracts what the document type has. */
  fields: fields.optional(),
  language: language.optional(),
  /**
   * Invoices only: also record the extraction as a received invoice, a draft with the
   * supplier as a contact (shared/invoices/received.ts).
   */
  create_received_invoice: z.boolean().default(false),
}).superRefine(oneSource);
export type ExtractInput = z.output<typeof extractInput>;

export const classifyInput = z.strictObject({
  ...source,
  categories: categories.default(DEFAULT_CATEGORIES),
}).superRefine(oneSource);
export type ClassifyInput = z.output<typeof classifyInput>;

export const uploadInput = z.strictObject({
  filename: z.string().trim().min(1).max(255),
  /**
   * The file, base64 (standard alphabet, padding optional); decoded and typed in files.ts,
   * which answers 413 past MAX_DOCUMENT_BYTES (the body limit bounds the text itself).
   */
  content_base64: z.string().min(1),
  folder: folder.optional(),
  tags: tags.default([]),
  auto_classify: z.boolean().default(false),
  auto_extract: z.boolean().default(false),
  /** For auto_classify; default the spec's categories. */
  categories: categories.optional(),
  /** For auto_extract; default the classification's type, or "document". */
  document_type: documentType.optional(),
  fields: fields.optional(),
});
export type UploadInput = z.output<typeof uploadInput>;

export const byDocumentId = z.strictObject({ document_id: documentId });

export const listDocumentsInput = z.strictObject({
  folder: folder.optional(),
  tags: z.array(tag).max(20).optional(),
  mime_type: z.enum(SUPPORTED_MIME_TYPES).optional(),
  ...paginationInput,
});
export type ListDocuments = z.output<typeof listDocumentsInput>;

// ---------------------------------------------------------------------------------------
// Answers

export const extraction = z.strictObject({
  extraction_id: extractionId,
  document_id: documentId.nullable(),
  document_type: z.string(),
  confidence: z.number().min(0).max(1),
  extracted: z.record(z.string(), z.unknown()),
  /** Set when create_received_invoice made one. */
  received_invoice_id: z.string().optional(),
  credits_consumed: z.int().min(0),
  processed_at: timestamp,
}).meta({ id: "DocumentExtraction" });
export type Extraction = z.input<typeof extraction>;

export const classification = z.strictObject({
  classification_id: classificationId,
  document_id: documentId.nullable(),
  classification: z.string(),
  confidence: z.number().min(0).max(1),
  subcategory: z.string().nullable(),
  summary: z.string(),
  detected_language: z.string().nullable(),
  /** From the PDF itself (1 for an image, null for text), never from the model. */
  page_count: z.int().min(0).nullable(),
  credits_consumed: z.int().min(0),
  processed_at: timestamp,
}).meta({ id: "DocumentClassification" });
export type Classification = z.input<typeof classification>;

/** A failed automatic step of an upload: the upload stands, the step's credits refunded. */
const processingError = z.strictObject({
  operation: z.enum(["classify", "extract"]),
  code: z.string(),
  message: z.string(),
});

export const document = z.strictObject({
  document_id: documentId,
  filename: z.string(),
  /** A signed URL: a GET returns the file until `url_expires_at`. */
  url: z.url(),
  url_expires_at: timestamp,
  size_bytes: z.int().min(1),
  mime_type: z.enum(SUPPORTED_MIME_TYPES),
  page_count: z.int().min(0).nullable(),
  folder: z.string().nullable(),
  tags: z.array(z.string()),
  classification: z.strictObject({
    type: z.string(),
    confidence: z.number().min(0).max(1),
    subcategory: z.string().nullable(),
    classification_id: classificationId,
  }).nullable(),
  uploaded_at: timestamp,
}).meta({ id: "Document" });
export type DocumentAnswer = z.input<typeof document>;

export const uploadedDocument = document.extend({
  /** The auto_extract result, when asked for and it succeeded. */
  extraction: extraction.nullable(),
  /** What auto_classify / auto_extract charged (refunded failures not counted). */
  credits_consumed: z.int().min(0),
  /** Automatic steps that failed; their credits were refunded. */
  processing_errors: z.array(processingError),
}).meta({ id: "UploadedDocument" });

/** A list entry: the document without a signed URL (get makes one). */
export const documentSummary = document.omit({ url: true, url_expires_at: true }).meta({
  id: "DocumentSummary",
});

export const documentList = z.strictObject({
  documents: z.array(documentSummary),
  pagination,
}).meta({ id: "DocumentList" });

export const deletedDocument = z.strictObject({
  document_id: documentId,
  deleted: z.literal(true),
}).meta({ id: "DeletedDocument" });
