/**
 * Documents: upload to Storage, extract and classify with Gemini (the local stand-in, scripted
 * per test for the documents model), credits, the sandbox and isolation, over real HTTP.
 * Files for `document_url` are served by a receiver in this process (loopback targets are
 * allowed in the test stack); PDFs are made here with pdf-lib, so their page count is known.
 */
import assert from "node:assert/strict";
import { PDFDocument } from "pdf-lib";
import { DOCUMENTS_MODEL } from "../shared/documents/processing.ts";
import { MAX_DOCUMENT_BYTES } from "../shared/documents/files.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** A real PDF of `pages` pages, each with a line of text. */
async function makePdf(pages: number, text = "Service agreement") {
  const pdf = await PDFDocument.create();
  for (let i = 0; i < pages; i++) pdf.addPage([300, 400]).drawText(`${text}, page ${i + 1}`);
  return await pdf.save();
}

function base64(bytes: Uint8Array) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

const threePagePdf = await makePdf(3);
const PNG_1x1 = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=",
  ),
  (c) => c.charCodeAt(0),
);
const GIF_1x1 = Uint8Array.from(
  atob("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"),
  (c) => c.charCodeAt(0),
);

// ---------------------------------------------------------------------------------------
// The Gemini stand-in, scripted for the model documents use

assert.ok(stack.gemini.stand_in, "these tests script the local Gemini stand-in");

async function standIn(path: string, body?: unknown) {
  const response = await fetch(`${stack.gemini.base_url}/_standin/${path}`, {
    method: body === undefined ? "GET" : "POST",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return await response.json();
}
/** The next answers of the documents model; earlier scripts and records are forgotten. */
async function scriptModel(answers: unknown[]) {
  await standIn("reset", { model: DOCUMENTS_MODEL });
  await standIn("script", { model: DOCUMENTS_MODEL, answers });
}
// deno-lint-ignore no-explicit-any
const modelRequests = async (): Promise<any[]> =>
  (await standIn(`requests?model=${DOCUMENTS_MODEL}`)).requests;

// ---------------------------------------------------------------------------------------
// A receiver for document_url

const served = new Map<string, { bytes: Uint8Array; type: string }>();
const receiver = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  (request) => {
    const file = served.get(new URL(request.url).pathname);
    if (!file) return new Response("not found", { status: 404 });
    return new Response(file.bytes as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": file.type },
    });
  },
);
// Closed when the process ends; Deno.test's sanitizers are off for these tests.
const receiverUrl = `http://127.0.0.1:${receiver.addr.port}`;
function serve(path: string, bytes: Uint8Array, type = "application/octet-stream") {
  served.set(path, { bytes, type });
  return `${receiverUrl}${path}`;
}

// ---------------------------------------------------------------------------------------
// Helpers

const balanceOf = async (orgId: string) =>
  (await db<{ balance: number }[]>`
    select balance from public.credit_balances where org_id = ${orgId}
  `)[0].balance;

async function upload(key: string, data: Record<string, unknown>) {
  return await api("documents/upload", { action: "upload", data }, { key });
}

async function uploadPdf(key: string, extra: Record<string, unknown> = {}) {
  const response = await upload(key, {
    filename: "doc.pdf",
    content_base64: base64(threePagePdf),
    ...extra,
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}

const aDocument = async (org: TestOrg) => ({
  document_id: (await uploadPdf(await org.key())).document_id as string,
});

// ---------------------------------------------------------------------------------------
// The shared negative cases

negativeCases({
  group: "documents",
  action: "upload",
  scope: "write",
  valid: { filename: "negative.pdf", content_base64: base64(threePagePdf) },
  invalid: { data: { filename: "x.pdf", content_base64: "not base64!" }, field: "content_base64" },
});
negativeCases({
  group: "documents",
  action: "extract",
  scope: "write",
  valid: async (org) => ({ ...await aDocument(org), document_type: "invoice", fields: ["total"] }),
  invalid: { data: { document_id: "ct_123", document_type: "invoice" }, field: "document_id" },
});
negativeCases({
  group: "documents",
  action: "classify",
  scope: "write",
  valid: aDocument,
  invalid: { data: { document_url: "ftp://example.com/a.pdf" }, field: "document_url" },
});
negativeCases({
  group: "documents",
  action: "get",
  scope: "read",
  valid: aDocument,
  invalid: { data: { document_id: "ext_123" }, field: "document_id" },
});
negativeCases({
  group: "documents",
  action: "list",
  scope: "read",
  otherSuffix: "get",
  valid: { per_page: 5 },
  invalid: { data: { mime_type: "image/gif" }, field: "mime_type" },
});
negativeCases({
  group: "documents",
  action: "delete",
  scope: "write",
  valid: aDocument,
  invalid: { data: {}, field: "document_id" },
});

// ---------------------------------------------------------------------------------------
// The spec's examples

test("spec example: upload, sent verbatim (a real 3-page PDF), answers in the spec's shape", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  await scriptModel([{
    output: {
      classification: "contract",
      confidence: 0.89,
      subcategory: "service_agreement",
      summary: "A service agreement.",
      detected_language: "en",
      // Not asked for: page_count comes from the PDF, whatever the model says.
      page_count: 12,
    },
  }]);
  const before = await balanceOf(org.orgId);
  const response = await api("documents/upload", {
    action: "upload",
    data: {
      filename: "contract_client_abc.pdf",
      content_base64: base64(threePagePdf),
      folder: "contracts",
      tags: ["client_abc", "2026"],
      auto_classify: true,
      auto_extract: false,
    },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  assert.match(data.document_id, /^doc_[0-9a-f]{32}$/);
  assert.equal(data.filename, "contract_client_abc.pdf");
  assert.equal(data.size_bytes, threePagePdf.length);
  assert.equal(data.mime_type, "application/pdf");
  assert.equal(data.page_count, 3);
  assert.equal(data.folder, "contracts");
  assert.deepEqual(data.tags, ["client_abc", "2026"]);
  assert.equal(data.classification.type, "contract");
  assert.equal(data.classification.confidence, 0.89);
  assert.match(data.uploaded_at, ISO);
  assert.equal(data.credits_consumed, 2);
  assert.deepEqual(data.processing_errors, []);
  assert.equal(await balanceOf(org.orgId), before - 2);

  // The file went to the model inline, as the PDF it is.
  const [sent] = await modelRequests();
  const inline = sent.body.contents[0].parts.find((p: { inlineData?: unknown }) => p.inlineData);
  assert.equal(inline.inlineData.mimeType, "application/pdf");
  assert.equal(inline.inlineData.data, base64(threePagePdf));

  // The signed URL works: a GET returns the very bytes uploaded.
  const file = await fetch(data.url);
  assert.equal(file.status, 200);
  assert.deepEqual(new Uint8Array(await file.arrayBuffer()), threePagePdf);
});

const SPEC_EXTRACTED = {
  invoice_number: "INV-2026-001",
  date: "2026-04-01",
  total: 1210.00,
  currency: "EUR",
  issuer: { name: "Supplier XYZ Ltd.", tax_id: "B98765432" },
  recipient: { name: "Company ABC S.L.", tax_id: "B12345678" },
  line_items: [{
    description: "Consulting services - March 2026",
    quantity: 1,
    unit_price: 1000.00,
    tax_rate: 21,
    total: 1210.00,
  }],
};

test("spec example: extract by document_url, sent verbatim, answers in the spec's shape", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const url = serve("/docs/invoice_2026_001.pdf", await makePdf(1, "Invoice INV-2026-001"));
  await scriptModel([{ output: { extracted: SPEC_EXTRACTED, confidence: 0.96 } }]);
  const before = await balanceOf(org.orgId);
  const response = await api("documents/extract", {
    action: "extract",
    data: {
      document_url: url,
      document_type: "invoice",
      language: "en",
      fields: ["invoice_number", "date", "total", "line_items", "issuer", "recipient"],
    },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  assert.match(data.extraction_id, /^ext_[0-9a-f]{32}$/);
  assert.equal(data.document_type, "invoice");
  assert.equal(data.confidence, 0.96);
  assert.deepEqual(data.extracted, SPEC_EXTRACTED);
  assert.equal(data.credits_consumed, 3);
  assert.match(data.processed_at, ISO);
  assert.equal(data.document_id, null);
  assert.equal(await balanceOf(org.orgId), before - 3);

  // The response schema named every field asked for.
  const [sent] = await modelRequests();
  const schema = sent.body.generationConfig.responseJsonSchema;
  assert.deepEqual(schema.properties.extracted.required, [
    "invoice_number",
    "date",
    "total",
    "line_items",
    "issuer",
    "recipient",
  ]);
  // The run and its event.
  const [event] = await db`
    select data from public.events
    where org_id = ${org.orgId} and type = 'document.processed'
  `;
  assert.equal(event.data.extraction_id, data.extraction_id);
  assert.equal(event.data.status, "completed");
});

test("spec example: classify by document_url, sent verbatim; page_count from the PDF", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const url = serve("/docs/unclassified_doc.pdf", await makePdf(8));
  await scriptModel([{
    output: {
      classification: "contract",
      confidence: 0.91,
      subcategory: "service_agreement",
      summary: "Service agreement contract between two parties for 12 months.",
      detected_language: "en",
      page_count: 2, // ignored: the PDF has 8
    },
  }]);
  const before = await balanceOf(org.orgId);
  const response = await api("documents/classify", {
    action: "classify",
    data: {
      document_url: url,
      categories: ["invoice", "contract", "deed", "receipt", "report", "other"],
    },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const { classification_id, processed_at, document_id, ...rest } = response.body.data;
  assert.match(classification_id, /^cls_[0-9a-f]{32}$/);
  assert.match(processed_at, ISO);
  assert.equal(document_id, null);
  assert.deepEqual(rest, {
    classification: "contract",
    confidence: 0.91,
    subcategory: "service_agreement",
    summary: "Service agreement contract between two parties for 12 months.",
    detected_language: "en",
    page_count: 8,
    credits_consumed: 2,
  });
  assert.equal(await balanceOf(org.orgId), before - 2);
});

// ---------------------------------------------------------------------------------------
// By document_id, get, list, delete

test("extract and classify by document_id; the classification is kept on the document", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  await scriptModel([]);
  const doc = await uploadPdf(key, { filename: "invoice.pdf" });
  await scriptModel([{ output: { extracted: { total: 99.5 }, confidence: 0.8 } }]);
  const extracted = await api("documents/extract", {
    action: "extract",
    data: { document_id: doc.document_id, document_type: "invoice", fields: ["total"] },
  }, { key });
  assert.equal(extracted.status, 200, JSON.stringify(extracted.body));
  assert.equal(extracted.body.data.document_id, doc.document_id);
  assert.deepEqual(extracted.body.data.extracted, { total: 99.5 });
  // The stored file, not something else, went to the model.
  const [sent] = await modelRequests();
  const inline = sent.body.contents[0].parts.find((p: { inlineData?: unknown }) => p.inlineData);
  assert.equal(inline.inlineData.data, base64(threePagePdf));

  await scriptModel([{
    output: {
      classification: "invoice",
      confidence: 0.7,
      subcategory: null,
      summary: "An invoice.",
      detected_language: "es",
    },
  }]);
  const classified = await api("documents/classify", {
    action: "classify",
    data: { document_id: doc.document_id },
  }, { key });
  assert.equal(classified.status, 200, JSON.stringify(classified.body));
  assert.equal(classified.body.data.page_count, 3);
  const got = await api("documents/get", {
    action: "get",
    data: { document_id: doc.document_id },
  }, { key });
  assert.equal(got.status, 200);
  assert.deepEqual(got.body.data.classification, {
    type: "invoice",
    confidence: 0.7,
    subcategory: null,
    classification_id: classified.body.data.classification_id,
  });
});

test("get gives a fresh signed URL that returns the bytes; delete removes the file too", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const doc = await uploadPdf(key);
  const got = await api("documents/get", {
    action: "get",
    data: { document_id: doc.document_id },
  }, { key });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.match(got.body.data.url_expires_at, ISO);
  const file = await fetch(got.body.data.url);
  assert.deepEqual(new Uint8Array(await file.arrayBuffer()), threePagePdf);

  const deleted = await api("documents/delete", {
    action: "delete",
    data: { document_id: doc.document_id },
  }, { key });
  assert.deepEqual(deleted.body.data, { document_id: doc.document_id, deleted: true });
  const [object] = await db`
    select 1 from storage.objects where bucket_id = 'documents' and name like ${`%${doc.document_id}%`}
  `;
  assert.equal(object, undefined, "the stored file is gone");
  const after = await fetch(got.body.data.url);
  assert.notEqual(after.status, 200);
  await after.body?.cancel();
  expectError(
    await api("documents/get", { action: "get", data: { document_id: doc.document_id } }, { key }),
    404,
    "RESOURCE_NOT_FOUND",
  );
});

test("the same file name uploaded again makes a new document", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const first = await uploadPdf(key, { filename: "same.pdf" });
  const second = await uploadPdf(key, { filename: "same.pdf" });
  assert.notEqual(first.document_id, second.document_id);
  for (const doc of [first, second]) {
    const file = await fetch(doc.url);
    assert.deepEqual(new Uint8Array(await file.arrayBuffer()), threePagePdf);
  }
});

test("list: newest first, paginated, filtered by folder (and subfolders), tags, mime_type", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const a = await uploadPdf(key, { folder: "contracts", tags: ["x", "y"] });
  const b = await uploadPdf(key, { folder: "contracts/2026", tags: ["x"] });
  const c = (await upload(key, {
    filename: "pic.png",
    content_base64: base64(PNG_1x1),
    folder: "images",
  })).body.data;
  const list = async (data: Record<string, unknown>) =>
    (await api("documents/list", { action: "list", data }, { key })).body.data;
  const all = await list({});
  assert.deepEqual(all.documents.map((d: { document_id: string }) => d.document_id), [
    c.document_id,
    b.document_id,
    a.document_id,
  ]);
  assert.deepEqual(all.pagination, { page: 1, per_page: 20, total: 3, total_pages: 1 });
  const ids = (body: { documents: { document_id: string }[] }) =>
    body.documents.map((d) => d.document_id);
  assert.deepEqual(ids(await list({ folder: "contracts" })), [b.document_id, a.document_id]);
  assert.deepEqual(ids(await list({ tags: ["x", "y"] })), [a.document_id]);
  assert.deepEqual(ids(await list({ mime_type: "image/png" })), [c.document_id]);
  assert.equal(c.page_count, 1);
  const page2 = await list({ per_page: 2, page: 2 });
  assert.deepEqual(ids(page2), [a.document_id]);
});

// ---------------------------------------------------------------------------------------
// Types, sizes and bad input

test("the MIME type comes from the bytes, not the file name", async () => {
  const key = await (await createTestOrg()).key();
  const pdfAsPng = await upload(key, {
    filename: "photo.png",
    content_base64: base64(threePagePdf),
  });
  assert.equal(pdfAsPng.status, 200, JSON.stringify(pdfAsPng.body));
  assert.equal(pdfAsPng.body.data.mime_type, "application/pdf");
  assert.equal(pdfAsPng.body.data.page_count, 3);

  const text = new TextEncoder().encode("Invoice 42\nTotal: 10 EUR\n");
  const textAsPdf = await upload(key, { filename: "invoice.pdf", content_base64: base64(text) });
  assert.equal(textAsPdf.status, 200, JSON.stringify(textAsPdf.body));
  assert.equal(textAsPdf.body.data.mime_type, "text/plain");
  assert.equal(textAsPdf.body.data.page_count, null);

  const png = await upload(key, { filename: "scan.pdf", content_base64: base64(PNG_1x1) });
  assert.equal(png.body.data.mime_type, "image/png");
});

test("an unsupported type (GIF, binary noise) is a clear 400 naming the type", async () => {
  const key = await (await createTestOrg()).key();
  const gif = await upload(key, { filename: "a.pdf", content_base64: base64(GIF_1x1) });
  expectError(gif, 400, "VALIDATION_ERROR");
  assert.equal(gif.body.error.details.field, "content_base64");
  assert.equal(gif.body.error.details.constraint, "mime_type");
  assert.equal(gif.body.error.details.detected, "image/gif");
  assert.match(gif.body.error.message, /image\/gif/);
  const noise = new Uint8Array(2048);
  crypto.getRandomValues(noise);
  noise[0] = 0; // not UTF-8 text either
  const binary = await upload(key, { filename: "a.bin", content_base64: base64(noise) });
  expectError(binary, 400, "VALIDATION_ERROR");
  assert.equal(binary.body.error.details.constraint, "mime_type");
  // A PDF header over garbage is not a PDF the page count can be read from.
  const broken = new TextEncoder().encode("%PDF-1.7\nthis is not really a pdf");
  const fake = await upload(key, { filename: "a.pdf", content_base64: base64(broken) });
  expectError(fake, 400, "VALIDATION_ERROR");
  assert.equal(fake.body.error.details.constraint, "pdf");
});

test("invalid base64 is a 400 naming content_base64", async () => {
  const key = await (await createTestOrg()).key();
  for (const bad of ["%%%%", "abcde", "YWJj-_", "YQ==YQ=="]) {
    const response = await upload(key, { filename: "a.pdf", content_base64: bad });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "content_base64", bad);
    assert.equal(response.body.error.details.constraint, "base64", bad);
  }
});

test("a document over 10 MiB is 413, uploaded or fetched; exactly 10 MiB is accepted", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  // Over the limit by 32 KiB: the JSON body is still within the upload's body limit, so the
  // decoded size is what refuses it. "AAAA…" is plain text.
  const big = new Uint8Array(MAX_DOCUMENT_BYTES + 32 * 1024).fill(0x41);
  const over = await upload(key, { filename: "big.txt", content_base64: base64(big) });
  expectError(over, 413, "PAYLOAD_TOO_LARGE");
  assert.equal(over.body.error.details.field, "content_base64");
  // Further over, the body itself is over the upload's body limit: 413 all the same.
  const huge = new Uint8Array(MAX_DOCUMENT_BYTES + 1024 * 1024).fill(0x41);
  expectError(
    await upload(key, { filename: "huge.txt", content_base64: base64(huge) }),
    413,
    "PAYLOAD_TOO_LARGE",
  );
  const atLimit = await upload(key, {
    filename: "limit.txt",
    content_base64: base64(big.subarray(0, MAX_DOCUMENT_BYTES)),
  });
  assert.equal(atLimit.status, 200, JSON.stringify(atLimit.body).slice(0, 300));
  assert.equal(atLimit.body.data.size_bytes, MAX_DOCUMENT_BYTES);

  const before = await balanceOf(org.orgId);
  const fetched = await api("documents/classify", {
    action: "classify",
    data: { document_url: serve("/big.txt", big, "text/plain") },
  }, { key });
  expectError(fetched, 413, "PAYLOAD_TOO_LARGE");
  assert.equal(fetched.body.error.details.field, "document_url");
  assert.equal(await balanceOf(org.orgId), before, "refunded");
});

test("a document_url to a private address is a 400 naming it; its credits are refunded", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const before = await balanceOf(org.orgId);
  for (const url of ["http://10.0.0.1/a.pdf", "http://169.254.169.254/latest/meta-data/"]) {
    const response = await api("documents/extract", {
      action: "extract",
      data: { document_url: url, document_type: "invoice" },
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "document_url", url);
    assert.equal(response.body.error.details.constraint, "forbidden_address", url);
  }
  const notFound = await api("documents/classify", {
    action: "classify",
    data: { document_url: `${receiverUrl}/missing.pdf` },
  }, { key });
  expectError(notFound, 400, "VALIDATION_ERROR");
  assert.match(notFound.body.error.message, /404/);
  assert.equal(await balanceOf(org.orgId), before);
  const runs = await db`
    select status, credits from public.document_extractions where org_id = ${org.orgId}
  `;
  assert.equal(runs.length, 3);
  assert.ok(runs.every((run) => run.status === "failed" && run.credits === 0));
});

// ---------------------------------------------------------------------------------------
// Credits

test("a Gemini failure is a 502 and refunds the credits; the run is stored as failed", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const doc = await uploadPdf(key);
  const before = await balanceOf(org.orgId);
  await scriptModel([{ status: 400, message: "Request contains an invalid argument." }]);
  const failed = await api("documents/extract", {
    action: "extract",
    data: { document_id: doc.document_id, document_type: "invoice", fields: ["total"] },
  }, { key });
  expectError(failed, 502, "INTEGRATION_ERROR");
  assert.equal(failed.body.error.details.provider, "gemini");
  assert.equal(await balanceOf(org.orgId), before);
  const [run] = await db`
    select status, credits, error from public.document_extractions where org_id = ${org.orgId}
  `;
  assert.equal(run.status, "failed");
  assert.equal(run.credits, 0);
  assert.equal(run.error.code, "INTEGRATION_ERROR");
  const ledger = await db`
    select operation, amount from public.credit_transactions
    where org_id = ${org.orgId} order by seq
  `;
  assert.deepEqual(ledger.slice(-2).map((row) => [row.operation, row.amount]), [
    ["ocr_extraction", -3],
    ["refund", 3],
  ]);
  const [event] = await db`
    select data from public.events where org_id = ${org.orgId} and type = 'document.processed'
  `;
  assert.equal(event.data.status, "failed");

  // On upload, a failed auto_classify leaves the upload standing, refunded and reported.
  await scriptModel([{ status: 400 }]);
  const uploaded = await uploadPdf(key, { auto_classify: true });
  assert.equal(uploaded.classification, null);
  assert.equal(uploaded.credits_consumed, 0);
  assert.equal(uploaded.processing_errors[0].operation, "classify");
  assert.equal(uploaded.processing_errors[0].code, "INTEGRATION_ERROR");
  assert.equal(await balanceOf(org.orgId), before);
});

test("upload with auto_classify and auto_extract: the extraction uses the classified type", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const before = await balanceOf(org.orgId);
  await scriptModel([
    {
      output: {
        classification: "receipt",
        confidence: 0.9,
        subcategory: null,
        summary: "A receipt.",
        detected_language: "en",
      },
    },
    { output: { extracted: { total: 12 }, confidence: 0.75 } },
  ]);
  const doc = await uploadPdf(key, { auto_classify: true, auto_extract: true, fields: ["total"] });
  assert.equal(doc.classification.type, "receipt");
  assert.equal(doc.extraction.document_type, "receipt");
  assert.deepEqual(doc.extraction.extracted, { total: 12 });
  assert.equal(doc.extraction.document_id, doc.document_id);
  assert.equal(doc.credits_consumed, 5);
  assert.equal(await balanceOf(org.orgId), before - 5);
  const [, second] = await modelRequests();
  assert.match(JSON.stringify(second.body.contents), /Document type: receipt/);
});

test("an empty balance is 402 CREDITS_EXHAUSTED before Gemini; nothing is stored", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const doc = await uploadPdf(key);
  await db`update public.credit_balances set balance = 2 where org_id = ${org.orgId}`;
  await scriptModel([]);
  const response = await api("documents/extract", {
    action: "extract",
    data: { document_id: doc.document_id, document_type: "invoice" },
  }, { key });
  expectError(response, 402, "CREDITS_EXHAUSTED");
  const runs = await db`select 1 from public.document_extractions where org_id = ${org.orgId}`;
  assert.equal(runs.length, 0);
  assert.equal((await modelRequests()).length, 0, "Gemini was not called");
  // An upload asking for processing it cannot pay for keeps nothing either.
  const upload402 = await upload(key, {
    filename: "x.pdf",
    content_base64: base64(threePagePdf),
    auto_classify: true,
    auto_extract: true,
  });
  expectError(upload402, 402, "CREDITS_EXHAUSTED");
  const docs = await db`select 1 from public.documents where org_id = ${org.orgId}`;
  assert.equal(docs.length, 1);
});

test("create_received_invoice needs document_type 'invoice' (no credits spent)", async () => {
  // Received invoices themselves are tested with the invoices group (tests/invoices_test.ts).
  const org = await createTestOrg();
  const key = await org.key();
  const doc = await uploadPdf(key);
  const before = await balanceOf(org.orgId);
  const response = await api("documents/extract", {
    action: "extract",
    data: {
      document_id: doc.document_id,
      document_type: "contract",
      create_received_invoice: true,
    },
  }, { key });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "create_received_invoice");
  assert.equal(response.body.error.details.constraint, "invoice_only");
  assert.equal(await balanceOf(org.orgId), before);
});

// ---------------------------------------------------------------------------------------
// Sandbox and isolation

test("sandbox: simulated model, nothing deducted, files under test/, invisible to live", async () => {
  const org = await createTestOrg();
  const testKey = await org.key({ environment: "test" });
  const liveKey = await org.key();
  await scriptModel([]);
  const before = await balanceOf(org.orgId);
  const doc = await uploadPdf(testKey, { auto_classify: true });
  assert.ok(doc.classification, "the simulation classified it");
  const extracted = await api("documents/extract", {
    action: "extract",
    data: { document_id: doc.document_id, document_type: "invoice", fields: ["total"] },
  }, { key: testKey });
  assert.equal(extracted.status, 200, JSON.stringify(extracted.body));
  assert.equal(extracted.body.data.credits_consumed, 3);
  assert.equal(await balanceOf(org.orgId), before, "sandbox deducts nothing");
  assert.equal((await modelRequests()).length, 0, "the sandbox never reaches Gemini");
  const [row] = await db`
    select environment, storage_path from public.documents where id = ${doc.document_id}
  `;
  assert.equal(row.environment, "test");
  const [object] = await db`
    select name from storage.objects where bucket_id = 'documents'
      and name = ${`test/${row.storage_path}`}
  `;
  assert.ok(object, "the sandbox file is under test/ (purged with the sandbox)");
  expectError(
    await api("documents/get", { action: "get", data: { document_id: doc.document_id } }, {
      key: liveKey,
    }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  const liveList = await api("documents/list", { action: "list", data: {} }, { key: liveKey });
  assert.equal(liveList.body.data.pagination.total, 0);
  const [registered] = await db`
    select count(*)::int as n from private.sandbox_tables
    where table_name::text in ('documents', 'document_extractions',
                               'public.documents', 'public.document_extractions')
  `;
  assert.equal(registered.n, 2);
});

test("another organization's document is 404 for every action", async () => {
  const owner = await createTestOrg();
  const doc = await uploadPdf(await owner.key());
  const otherKey = await (await createTestOrg()).key();
  await scriptModel([]);
  for (
    const [action, data] of [
      ["get", {}],
      ["delete", {}],
      ["classify", {}],
      ["extract", { document_type: "invoice" }],
    ] as const
  ) {
    const response = await api(`documents/${action}`, {
      action,
      data: { document_id: doc.document_id, ...data },
    }, { key: otherKey });
    expectError(response, 404, "RESOURCE_NOT_FOUND");
  }
  assert.equal((await modelRequests()).length, 0);
  const still = await api("documents/get", {
    action: "get",
    data: { document_id: doc.document_id },
  }, { key: await owner.key() });
  assert.equal(still.status, 200);
});

// ---------------------------------------------------------------------------------------
// The workflow step extract_document

test("step extract_document: by templated document_id; output = the extraction, charged 3", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const doc = await uploadPdf(key);
  const workflowId = await createWorkflow(key, {
    steps: [
      {
        id: "read",
        type: "extract_document",
        config: { document_id: "{{input.document}}", document_type: "invoice", fields: ["total"] },
      },
      {
        id: "done",
        type: "set",
        config: { values: { total: "{{steps.read.output.extracted.total}}" } },
      },
    ],
  });
  await scriptModel([{ output: { extracted: { total: 42 }, confidence: 0.9 } }]);
  const before = await balanceOf(org.orgId);
  const started = await execute(key, workflowId, { document: doc.document_id });
  const instanceId: string = started.instance_id ?? started.id;
  const instance = await waitForInstance(key, instanceId);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  assert.deepEqual(instance.output, { total: 42 });
  const output = instance.steps[0].output;
  assert.match(output.extraction_id, /^ext_/);
  assert.equal(output.document_id, doc.document_id);
  assert.equal(output.credits_consumed, 3);
  const [run] = await db`
    select request_key from public.document_extractions where id = ${output.extraction_id}
  `;
  assert.ok(run.request_key.startsWith(`${instanceId}.read.`));
  assert.equal(await balanceOf(org.orgId), before - 3);
});

test("step extract_document: a private URL, no credits or a Gemini failure fail the step", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const run = async (config: Record<string, unknown>) => {
    const workflowId = await createWorkflow(key, {
      steps: [{ id: "read", type: "extract_document", config }],
    });
    const started = await execute(key, workflowId);
    return await waitForInstance(key, started.instance_id ?? started.id);
  };
  const privateUrl = await run({ document_url: "http://10.0.0.1/a.pdf", document_type: "invoice" });
  assert.equal(privateUrl.status, "failed");
  assert.equal(privateUrl.error.code, "VALIDATION_ERROR", JSON.stringify(privateUrl.error));

  const url = serve("/step/invoice.pdf", await makePdf(2));
  await scriptModel([{ status: 400 }]);
  const before = await balanceOf(org.orgId);
  const rejected = await run({ document_url: url, document_type: "invoice" });
  assert.equal(rejected.error.code, "INTEGRATION_ERROR", JSON.stringify(rejected.error));
  assert.equal(await balanceOf(org.orgId), before, "refunded");

  await db`update public.credit_balances set balance = 0 where org_id = ${org.orgId}`;
  const broke = await run({ document_url: url, document_type: "invoice" });
  assert.equal(broke.error.code, "CREDITS_EXHAUSTED", JSON.stringify(broke.error));
});

test("step extract_document: putting it in a workflow needs documents:write", async () => {
  const key = await (await createTestOrg()).key({ scopes: ["workflows:write"] });
  const response = await api("workflows/create", {
    action: "create",
    data: {
      name: "No documents scope",
      steps: [{
        id: "read",
        type: "extract_document",
        config: { document_id: "doc_x", document_type: "invoice" },
      }],
    },
  }, { key });
  expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(response.body.error.details.required_scope, "documents:write");
});

// ---------------------------------------------------------------------------------------
// Work left half done by a process that died between the phases

test("after 10 minutes, pending uploads and running runs left by a crash are settled", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  // Its file is in Storage: made pending again, as if the record phase never ran.
  const reached = await uploadPdf(key);
  const suffix = crypto.randomUUID().replaceAll("-", "");
  const lostDocument = `doc_${suffix}`;
  const lostRun = `ext_${suffix}`;
  const before = await balanceOf(org.orgId);
  await db.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({ org_id: org.orgId, environment: "live" })
    }, true)`;
    await tx`
      update public.documents set status = 'pending', created_at = now() - interval '11 minutes'
      where id = ${reached.document_id}
    `;
    // Its file never reached Storage.
    await tx`
      insert into public.documents (id, org_id, environment, filename, storage_path, size_bytes,
                                    mime_type, created_at)
      values (${lostDocument}, ${org.orgId}, 'live', 'lost.pdf',
              ${`${org.orgId}/${lostDocument}/lost.pdf`}, 10, 'application/pdf',
              now() - interval '11 minutes')
    `;
    await tx`
      insert into public.document_extractions (id, org_id, environment, operation, model,
                                               credits, created_at)
      values (${lostRun}, ${org.orgId}, 'live', 'extract', 'gemini-2.5-flash', 3,
              now() - interval '11 minutes')
    `;
    await tx`select * from private.debit_credits('ocr_extraction', 3, ${lostRun})`;
  });
  assert.equal(await balanceOf(org.orgId), before - 3);

  await db`select private.finish_abandoned_document_work()`;
  const documents = await db`
    select id, status from public.documents where org_id = ${org.orgId} order by id
  `;
  assert.deepEqual(documents.map((d) => [d.id, d.status]), [[reached.document_id, "stored"]]);
  const [run] = await db`
    select status, credits, error from public.document_extractions where id = ${lostRun}
  `;
  assert.equal(run.status, "failed");
  assert.equal(run.credits, 0);
  assert.equal(run.error.code, "PROCESSING_ABANDONED");
  assert.equal(await balanceOf(org.orgId), before, "refunded");
  const [event] = await db`
    select data from public.events
    where org_id = ${org.orgId} and type = 'document.processed'
  `;
  assert.equal(event.data.extraction_id, lostRun);
  assert.equal(event.data.status, "failed");
});
