/**
 * A document's bytes: decoded from an upload's base64 or fetched from a `document_url`, then
 * typed from the bytes themselves (never from the file name or a Content-Type header) and,
 * for a PDF, counted in pages by reading the PDF (never by asking the model).
 */
import { fileTypeFromBuffer } from "file-type";
import { PDFDocument } from "pdf-lib";
import { ApiError, invalidField } from "../platform/errors.ts";
import { formatBytes, MiB } from "../platform/json-size.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { guardedFetch } from "../platform/outbound/fetch.ts";
import { readCapped } from "../platform/read-capped.ts";

/**
 * The largest document, decoded: uploads and fetched URLs alike. Gemini takes files inline
 * up to about 20 MB per request, and base64 makes them a third bigger on the way.
 */
export const MAX_DOCUMENT_BYTES = 10 * MiB;

/**
 * The types a document may be: what Gemini reads inline (PDF, PNG, JPEG, WEBP, HEIC/HEIF,
 * plain text). Others (GIF, TIFF, Office files, archives…) are refused with a 400.
 */
export const SUPPORTED_MIME_TYPES = [
  "application/pdf",
  "image/png",
  "image/jpeg",
  "image/webp",
  "image/heic",
  "image/heif",
  "text/plain",
] as const;
export type SupportedMimeType = typeof SUPPORTED_MIME_TYPES[number];

/** A document's bytes with what was learnt from them. */
export interface DocumentFile {
  bytes: Uint8Array;
  mimeType: SupportedMimeType;
  /** Pages of a PDF; 1 for an image; null for text. */
  pageCount: number | null;
}

const tooLarge = (field: string, size?: number) =>
  new ApiError(
    "PAYLOAD_TOO_LARGE",
    `The document ${size === undefined ? "is" : `is ${formatBytes(size)},`} larger than ${
      formatBytes(MAX_DOCUMENT_BYTES)
    }, the limit for one document.`,
    { details: { field, limit_bytes: MAX_DOCUMENT_BYTES } },
  );

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The bytes of an upload's `content_base64` (standard alphabet; padding optional; line
 * breaks ignored). Not base64: 400 naming `field`. Over the limit: 413.
 */
export function decodeBase64File(text: string, field = "content_base64"): Uint8Array {
  const compact = text.replace(/[\r\n]/g, "");
  if (!BASE64.test(compact) || compact.length % 4 === 1) {
    throw invalidField(
      field,
      "base64",
      `The '${field}' field is not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding).`,
    );
  }
  const size = Math.floor(compact.replace(/=+$/, "").length * 3 / 4);
  if (size > MAX_DOCUMENT_BYTES) throw tooLarge(field, size);
  if (size === 0) throw invalidField(field, "min", `The '${field}' field holds an empty file.`);
  const binary = atob(compact);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Text Gemini can read: UTF-8, no control characters but tabs, line and page breaks. */
function isPlainText(bytes: Uint8Array) {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  // deno-lint-ignore no-control-regex -- finding control characters is the point
  return !/[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(text);
}

/**
 * Types `bytes` by their content and reads what the document says of itself (a PDF's
 * pages). An unsupported or unreadable file is a 400 naming `field`.
 */
export async function inspectFile(bytes: Uint8Array, field: string): Promise<DocumentFile> {
  const detected = (await fileTypeFromBuffer(bytes))?.mime ??
    (isPlainText(bytes) ? "text/plain" : undefined);
  if (!(SUPPORTED_MIME_TYPES as readonly string[]).includes(detected ?? "")) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `The document is ${
        detected ? `of type ${detected}` : "of a type that could not be recognised"
      }; supported: PDF, PNG, JPEG, WEBP, HEIC/HEIF and plain UTF-8 text.`,
      {
        details: {
          field,
          constraint: "mime_type",
          detected: detected ?? null,
          supported: SUPPORTED_MIME_TYPES,
        },
      },
    );
  }
  const mimeType = detected as SupportedMimeType;
  return { bytes, mimeType, pageCount: await pageCountOf(bytes, mimeType, field) };
}

async function pageCountOf(bytes: Uint8Array, mimeType: SupportedMimeType, field: string) {
  if (mimeType === "text/plain") return null;
  if (mimeType !== "application/pdf") return 1;
  try {
    // Encrypted PDFs still have a readable page tree; only their contents are locked.
    const pdf = await PDFDocument.load(bytes, {
      ignoreEncryption: true,
      updateMetadata: false,
      throwOnInvalidObject: false,
    });
    return pdf.getPageCount();
  } catch {
    throw invalidField(field, "pdf", "The document starts like a PDF but cannot be read as one.");
  }
}

/** The time a `document_url` has to deliver the whole file. */
export const DOCUMENT_URL_TIMEOUT_MS = 30_000;

/**
 * GETs `url` through the private-network guard (public addresses only; loopback where
 * BIVELIO_ALLOW_LOOPBACK_TARGETS allows it; no redirects followed) and reads at most
 * MAX_DOCUMENT_BYTES of it. Every refusal is a client error naming `document_url`: a
 * private address or a failed request is 400, a file too big is 413.
 */
export async function fetchDocumentUrl(url: string, signal?: AbortSignal): Promise<DocumentFile> {
  const field = "document_url";
  const deadline = AbortSignal.timeout(DOCUMENT_URL_TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
  let response: Response;
  try {
    response = await guardedFetch({ timeoutMs: DOCUMENT_URL_TIMEOUT_MS })(url, {
      headers: { "User-Agent": "BiVelio-Documents/1.0", Accept: "*/*" },
      signal: combined,
    });
  } catch (error) {
    throw fetchFailure(error, url, deadline);
  }
  if (response.status < 200 || response.status > 299) {
    await response.body?.cancel();
    throw invalidField(
      field,
      "fetchable",
      `The document_url answered HTTP ${response.status}${
        response.status >= 300 && response.status < 400 ? " (redirects are not followed)" : ""
      }; it must answer 200 with the file.`,
    );
  }
  const declared = Number(response.headers.get("content-length"));
  if (declared > MAX_DOCUMENT_BYTES) {
    await response.body?.cancel();
    throw tooLarge(field, declared);
  }
  let bytes: Uint8Array | null;
  try {
    bytes = await readCapped(response.body, MAX_DOCUMENT_BYTES);
  } catch (error) {
    throw fetchFailure(error, url, deadline);
  }
  if (bytes === null) throw tooLarge(field);
  if (bytes.length === 0) throw invalidField(field, "min", "The document_url answered no bytes.");
  return await inspectFile(bytes, field);
}

function fetchFailure(error: unknown, url: string, deadline: AbortSignal) {
  if (error instanceof ApiError) return error;
  if (error instanceof OutboundBlockedError) {
    return invalidField("document_url", error.reason, error.message);
  }
  if (deadline.aborted) {
    return invalidField(
      "document_url",
      "fetchable",
      `The document_url did not deliver the file within ${DOCUMENT_URL_TIMEOUT_MS} ms.`,
    );
  }
  if (error instanceof OutboundNetworkError) {
    return invalidField("document_url", "fetchable", error.message);
  }
  const host = URL.canParse(url) ? new URL(url).host : "the host";
  return invalidField("document_url", "fetchable", `The request to ${host} failed.`);
}
