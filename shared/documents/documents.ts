/**
 * Stored documents: their rows (in the caller's RLS transaction, so organization and
 * environment are decided by Postgres) and their files in the `documents` bucket (through
 * the storage provider, whose sandbox face keeps files under `test/`).
 */
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, notFound } from "../platform/errors.ts";
import { pageWindow, paginationOf } from "../platform/pagination.ts";
import { clientFor } from "../platform/providers.ts";
import { BUCKETS, safeFileName, storage } from "../platform/storage.ts";
import { isoTimestamp } from "../platform/time.ts";
import { type DocumentFile, fetchDocumentUrl, type SupportedMimeType } from "./files.ts";
import type { DocumentAnswer, documentList, documentSummary, ListDocuments } from "./schemas.ts";
import type { z } from "zod";

/** How long a document's signed `url` works. `get` gives a fresh one. */
export const SIGNED_URL_SECONDS = 3600;

export interface DocumentRow {
  id: string;
  filename: string;
  folder: string | null;
  tags: string[];
  storage_path: string;
  size_bytes: number;
  mime_type: SupportedMimeType;
  page_count: number | null;
  classification: DocumentAnswer["classification"];
  created_at: Date;
}

const columns = (tx: Tx) =>
  tx`id, filename, folder, tags, storage_path, size_bytes, mime_type, page_count,
     classification, created_at`;

export function documentSummaryToApi(row: DocumentRow): z.input<typeof documentSummary> {
  return {
    document_id: row.id,
    filename: row.filename,
    size_bytes: row.size_bytes,
    mime_type: row.mime_type,
    page_count: row.page_count,
    folder: row.folder,
    tags: row.tags,
    classification: row.classification,
    uploaded_at: isoTimestamp(row.created_at),
  };
}

const filesOf = (environment: Environment) => clientFor(storage, environment);

/** A signed URL of the document's file, with when it stops working. */
export async function signedUrlOf(environment: Environment, storagePath: string) {
  const expiresAt = new Date(Date.now() + SIGNED_URL_SECONDS * 1000);
  const url = await filesOf(environment).signedUrl(
    BUCKETS.documents,
    storagePath,
    SIGNED_URL_SECONDS,
  );
  return { url, url_expires_at: isoTimestamp(expiresAt) };
}

export async function documentToApi(
  row: DocumentRow,
  environment: Environment,
): Promise<DocumentAnswer> {
  return { ...documentSummaryToApi(row), ...await signedUrlOf(environment, row.storage_path) };
}

/**
 * A new document's row, `pending` until its file is stored (the API shows only stored
 * documents). Its file's path: `<org>/<document id>/<file name made safe>`, so the same
 * name uploaded again is another file of another document.
 */
export async function insertPendingDocument(
  tx: Tx,
  input: {
    orgId: string;
    filename: string;
    folder?: string;
    tags: string[];
    file: DocumentFile;
  },
): Promise<DocumentRow> {
  const [{ id }] = await tx<{ id: string }[]>`select private.new_id('doc') as id`;
  const path = `${input.orgId}/${id}/${safeFileName(input.filename)}`;
  const [row] = await tx<DocumentRow[]>`
    insert into public.documents
      (id, filename, folder, tags, storage_path, size_bytes, mime_type, page_count)
    values (${id}, ${input.filename}, ${input.folder ?? null}, ${input.tags}::text[], ${path},
            ${input.file.bytes.length}, ${input.file.mimeType}, ${input.file.pageCount})
    returning ${columns(tx)}
  `;
  return row;
}

/** Stores the file of a pending document (phase 2: no transaction). */
export async function storeFile(environment: Environment, row: DocumentRow, file: DocumentFile) {
  await filesOf(environment).putObject(
    BUCKETS.documents,
    row.storage_path,
    file.bytes,
    file.mimeType,
  );
}

/** The pending document becomes visible; its latest state (a classification) is returned. */
export async function markStored(tx: Tx, id: string): Promise<DocumentRow> {
  const [row] = await tx<DocumentRow[]>`
    update public.documents set status = 'stored' where id = ${id} returning ${columns(tx)}
  `;
  if (!row) throw notFound("Document", id);
  return row;
}

/** A stored document's row (404 for others', pending or missing ones). */
export async function findDocument(tx: Tx, id: string): Promise<DocumentRow> {
  const [row] = await tx<DocumentRow[]>`
    select ${columns(tx)} from public.documents where id = ${id} and status = 'stored'
  `;
  if (!row) throw notFound("Document", id);
  return row;
}

/** Where a run's file comes from: a stored document, or a URL fetched in the call phase. */
export type FileSource =
  | { kind: "document"; row: DocumentRow }
  | { kind: "url"; url: string };

/** The source a request names (`document_id`: a stored document of the caller, or 404). */
export async function fileSource(
  tx: Tx,
  data: { document_id?: string; document_url?: string },
): Promise<FileSource> {
  return data.document_id
    ? { kind: "document", row: await findDocument(tx, data.document_id) }
    : { kind: "url", url: data.document_url! };
}

/** How a run's row names its source. */
export const sourceColumns = (source: FileSource) => ({
  documentId: source.kind === "document" ? source.row.id : null,
  documentUrl: source.kind === "url" ? source.url : null,
});

/** Reads the file of `source` (phase 2: no transaction). */
export async function readFile(
  source: FileSource,
  environment: Environment,
  signal?: AbortSignal,
): Promise<DocumentFile> {
  if (source.kind === "url") return await fetchDocumentUrl(source.url, signal);
  const stored = await filesOf(environment).getObject(BUCKETS.documents, source.row.storage_path);
  if (!stored) {
    throw new ApiError(
      "RESOURCE_NOT_FOUND",
      `The file of document '${source.row.id}' was not found in storage.`,
    );
  }
  return {
    bytes: stored.bytes,
    mimeType: source.row.mime_type,
    pageCount: source.row.page_count,
  };
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (ch) => `\\${ch}`);

/** Stored documents, newest first; `folder` includes its subfolders. */
export async function listDocuments(
  tx: Tx,
  query: ListDocuments,
): Promise<z.input<typeof documentList>> {
  const filters = [tx`status = 'stored'`];
  if (query.folder) {
    filters.push(
      tx`(folder = ${query.folder} or folder like ${`${escapeLike(query.folder)}/%`})`,
    );
  }
  if (query.tags?.length) filters.push(tx`tags @> ${query.tags}::text[]`);
  if (query.mime_type) filters.push(tx`mime_type = ${query.mime_type}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.documents where ${where}
  `;
  const rows = total === 0 ? [] : await tx<DocumentRow[]>`
    select ${columns(tx)} from public.documents
    where ${where}
    order by created_at desc, id desc
    ${pageWindow(tx, query)}
  `;
  return { documents: rows.map(documentSummaryToApi), pagination: paginationOf(query, total) };
}

/** Removes the document's file (phase 2); a file already gone is not an error. */
export async function removeFile(environment: Environment, storagePath: string) {
  await filesOf(environment).removeObjects(BUCKETS.documents, [storagePath]);
}

/** Deletes the row (phase 3, after its file); already deleted meanwhile is the same end. */
export async function deleteDocumentRow(tx: Tx, id: string) {
  await tx`delete from public.documents where id = ${id}`;
}
