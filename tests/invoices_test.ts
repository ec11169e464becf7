/**
 * Invoices over real HTTP: the spec's examples on Acme's demo data, exact money, numbering
 * under concurrency, the PDF (opened with pdf-lib, its text read from its content streams:
 * pdftotext is not installed here), emailing it through the email channel to the local mail
 * catcher, received invoices from documents/extract, the workflow step, overdue by the
 * pg_cron function with the date moved, events, isolation and the negative cases.
 */
import assert from "node:assert/strict";
import { decodePDFRawStream, PDFArray, PDFDocument, type PDFRawStream } from "pdf-lib";
import { DOCUMENTS_MODEL } from "../shared/documents/processing.ts";
import { invoice as invoiceSchema } from "../shared/invoices/schemas.ts";
import { connect, emailCredentials } from "./helpers/messaging.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";

const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

const call = (key: string, action: string, data: Record<string, unknown>) =>
  api(`invoices/${action}`, { action, data }, { key });

/** A contact of the key's organization and environment (with an email unless null). */
async function aClient(key: string, name = "Client Co", email: string | null = null) {
  const response = await api("contacts/create", {
    action: "create",
    data: { name, type: "company", ...(email ? { email } : {}) },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data.id as string;
}

const ONE_LINE = [{ description: "Work", quantity: 1, unit_price: 100, tax_rate: 21 }];

async function createInvoice(key: string, data: Record<string, unknown>) {
  const response = await call(key, "create", data);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data;
}

/** A draft of the key's organization, for a new client. */
async function aDraft(key: string, extra: Record<string, unknown> = {}) {
  return await createInvoice(key, {
    client_id: await aClient(key),
    line_items: ONE_LINE,
    ...extra,
  });
}

/** The text a PDF draws (pdf-lib writes each string as `<hex> Tj`), one string a line. */
async function pdfText(bytes: Uint8Array): Promise<string> {
  const pdf = await PDFDocument.load(bytes);
  const lines: string[] = [];
  for (const page of pdf.getPages()) {
    const contents = page.node.Contents()!;
    const streams = contents instanceof PDFArray
      ? contents.asArray().map((ref) => pdf.context.lookup(ref))
      : [contents];
    for (const stream of streams) {
      const operators = new TextDecoder("latin1").decode(
        decodePDFRawStream(stream as PDFRawStream).decode(),
      );
      for (const [, hex] of operators.matchAll(/<([0-9A-Fa-f]*)> Tj/g)) {
        lines.push(
          (hex.match(/../g) ?? []).map((h) => String.fromCharCode(parseInt(h, 16))).join(""),
        );
      }
    }
  }
  return lines.join("\n");
}

async function fetchPdf(url: string) {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/pdf");
  return new Uint8Array(await response.arrayBuffer());
}

const eventsOf = async (orgId: string, type: string) =>
  await db<{ data: Record<string, unknown>; environment: string }[]>`
    select data, environment from public.events where org_id = ${orgId} and type = ${type}
    order by seq
  `;

/** An organization with its email channel connected (live), once per organization. */
const emailConnected = new Map<string, Promise<unknown>>();
async function withEmail(org: TestOrg, key: string) {
  if (!emailConnected.has(org.orgId)) {
    emailConnected.set(org.orgId, connect(key, "email", emailCredentials()));
  }
  await emailConnected.get(org.orgId);
}

// ---------------------------------------------------------------------------------------
// The spec's examples, on Acme's demo data (seeded: INV-2026-042, counter at 42)

test("spec example: create, sent verbatim, answers in the spec's shape (INV-2026-043)", async () => {
  const [{ last_number }] = await db<{ last_number: number }[]>`
    select last_number from private.invoice_counters
    where org_id = 'org_demo_acme' and environment = 'live' and year = 2026
  `;
  const response = await api("invoices/create", {
    action: "create",
    data: {
      client_id: "ct_abc123",
      issue_date: "2026-04-07",
      due_date: "2026-05-07",
      currency: "EUR",
      line_items: [
        {
          description: "Technical consulting - 20 hours",
          quantity: 20,
          unit_price: 150.00,
          tax_rate: 21,
        },
        {
          description: "Monthly software license",
          quantity: 1,
          unit_price: 500.00,
          tax_rate: 21,
        },
      ],
      notes: "Payment due in 30 days. Bank transfer.",
      auto_send: false,
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  assert.match(data.id, /^inv_[0-9A-Za-z]+$/);
  // On a fresh stack the seeded counter is at 42: this is the spec's INV-2026-043.
  assert.equal(data.number, `INV-2026-${String(last_number + 1).padStart(3, "0")}`);
  assert.equal(data.status, "draft");
  assert.deepEqual(data.client, { id: "ct_abc123", name: "Company ABC S.L." });
  assert.equal(data.subtotal, 3500.00);
  assert.equal(data.tax, 735.00);
  assert.equal(data.total, 4235.00);
  assert.equal(data.currency, "EUR");
  assert.equal(data.issue_date, "2026-04-07");
  assert.equal(data.due_date, "2026-05-07");
  assert.match(data.created_at, ISO);
  assert.deepEqual(
    data.line_items.map((l: Record<string, number>) => [l.subtotal, l.tax, l.total]),
    [[3000, 630, 3630], [500, 105, 605]],
  );
  // pdf_url is a signed URL that returns the PDF.
  const text = await pdfText(await fetchPdf(data.pdf_url));
  assert.match(text, new RegExp(data.number));
  assert.match(text, /4,235\.00 EUR/);
});

test("spec example: list, sent verbatim, answers in the spec's shape", async () => {
  // The seeded invoice is pending as in the spec; its due date (2026-04-30) may have been
  // passed by the hourly overdue job before this test ran.
  await db`update public.invoices set status = 'pending' where id = 'inv_c6d7e8f9'`;
  const response = await api("invoices/list", {
    action: "list",
    data: {
      type: "issued",
      status: "pending",
      from_date: "2026-01-01",
      to_date: "2026-04-07",
      page: 1,
      per_page: 20,
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const { invoices, pagination } = response.body.data;
  assert.deepEqual(pagination, { page: 1, per_page: 20, total: 1, total_pages: 1 });
  const [listed] = invoices;
  assert.equal(listed.id, "inv_c6d7e8f9");
  assert.equal(listed.number, "INV-2026-042");
  assert.equal(listed.type, "issued");
  assert.equal(listed.status, "pending");
  assert.deepEqual(listed.client, { id: "ct_abc123", name: "Company ABC S.L." });
  assert.equal(listed.subtotal, 5000.00);
  assert.equal(listed.tax, 1050.00);
  assert.equal(listed.total, 6050.00);
  assert.equal(listed.currency, "EUR");
  assert.equal(listed.issue_date, "2026-04-01");
  assert.equal(listed.due_date, "2026-04-30");
  assert.equal(listed.line_items.length, 1);
  const [line] = listed.line_items;
  assert.equal(line.description, "BiVelio Pro License - April 2026");
  assert.equal(line.quantity, 10);
  assert.equal(line.unit_price, 500.00);
  assert.equal(line.tax_rate, 21);
  assert.equal(line.total, 6050.00);
});

test("the SDK's short create (client and lines only): today, 30 days, EUR", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const data = await createInvoice(key, {
    client_id: await aClient(key),
    line_items: [{
      description: "Technical consulting",
      quantity: 20,
      unit_price: 150.00,
      tax_rate: 21,
    }],
  });
  const today = new Date().toISOString().slice(0, 10);
  const due = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  assert.equal(data.issue_date, today);
  assert.equal(data.due_date, due);
  assert.equal(data.currency, "EUR");
  assert.equal(data.number, `INV-${today.slice(0, 4)}-001`);
  assert.equal(data.total, 3630);
});

// ---------------------------------------------------------------------------------------
// Money

test("money: 0.1 × 3 is 0.3, strings are read as written, tax per line, half-up", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const tenths = await createInvoice(key, {
    client_id: client,
    line_items: [{ description: "Tenths", quantity: 3, unit_price: 0.1, tax_rate: 0 }],
  });
  assert.equal(tenths.total, 0.3, "not 0.30000000000000004");
  const [stored] = await db`select total::text from public.invoices where id = ${tenths.id}`;
  assert.equal(stored.total, "0.30", "numeric in PostgreSQL, with the currency's decimals");

  const halfUp = await createInvoice(key, {
    client_id: client,
    line_items: [
      // 10.05 at 10 % → tax 1.005 → 1.01 (a double holds 1.005 as 1.00499…).
      { description: "Half", quantity: "1", unit_price: "10.05", tax_rate: "10" },
      // 3 × 0.335 = 1.005 → 1.01.
      { description: "Thirds", quantity: 3, unit_price: "0.335", tax_rate: 0 },
    ],
  });
  assert.deepEqual(
    halfUp.line_items.map((l: Record<string, number>) => [l.subtotal, l.tax, l.total]),
    [[10.05, 1.01, 11.06], [1.01, 0, 1.01]],
  );
  assert.deepEqual([halfUp.subtotal, halfUp.tax, halfUp.total], [11.06, 1.01, 12.07]);

  // Tax per line: 100 lines of 0.01 at 10 % have no tax (0.001 each rounds to 0.00).
  const many = await createInvoice(key, {
    client_id: client,
    line_items: Array.from({ length: 100 }, (_, i) => ({
      description: `Line ${i}`,
      unit_price: 0.01,
      tax_rate: 10,
    })),
  });
  assert.deepEqual([many.subtotal, many.tax, many.total], [1, 0, 1]);
  assert.equal(many.line_items.length, 100);
});

test("money: JPY rounds to whole yen; large amounts stay exact", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const yen = await createInvoice(key, {
    client_id: client,
    currency: "JPY",
    line_items: [{ description: "Yen", quantity: 3, unit_price: 333.5, tax_rate: 10 }],
  });
  assert.deepEqual([yen.subtotal, yen.tax, yen.total], [1001, 100, 1101]);
  const [stored] = await db`select total::text from public.invoices where id = ${yen.id}`;
  assert.equal(stored.total, "1101");

  const large = await createInvoice(key, {
    client_id: client,
    line_items: [
      { description: "Big", quantity: 1, unit_price: "999999999.99", tax_rate: 0 },
      { description: "Many", quantity: 999, unit_price: "999999.99", tax_rate: 21 },
    ],
  });
  assert.equal(large.subtotal, 1998999990);
  assert.equal(large.tax, 209789997.9);
  assert.equal(large.total, 2208789987.9);
  const [big] = await db`select total::text from public.invoices where id = ${large.id}`;
  assert.equal(big.total, "2208789987.90");
});

test("money: bad amounts and currencies are 400 naming the field", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const refused = async (data: Record<string, unknown>, field: string) => {
    const response = await call(key, "create", {
      client_id: client,
      line_items: ONE_LINE,
      ...data,
    });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, field, JSON.stringify(response.body));
  };
  const line = (fields: Record<string, unknown>) => ({
    line_items: [{ description: "x", quantity: 1, unit_price: 1, ...fields }],
  });
  await refused({ currency: "EURO" }, "currency");
  await refused({ currency: "eur" }, "currency");
  await refused({ currency: "XXX" }, "currency");
  await refused(line({ unit_price: -1 }), "line_items.0.unit_price");
  await refused(line({ unit_price: "1.0000001" }), "line_items.0.unit_price");
  await refused(line({ unit_price: "1e3" }), "line_items.0.unit_price");
  await refused(line({ quantity: 0 }), "line_items.0.quantity");
  await refused(line({ tax_rate: 101 }), "line_items.0.tax_rate");
  await refused(line({ unit_price: "999999999999.99", quantity: 2 }), "line_items");
  await refused({ line_items: [] }, "line_items");
  await refused({ issue_date: "2026-02-30" }, "issue_date");
  await refused({ issue_date: "2026-05-01", due_date: "2026-04-01" }, "due_date");
  await refused({ number: "MINE-1" }, "number");
  // A number a double cannot hold exactly is refused by the body parser, never rounded.
  const inexact = await api("invoices/create", undefined, {
    key,
    raw: `{"action":"create","data":{"client_id":"${client}","line_items":[{"description":"x",` +
      `"unit_price":0.10000000000000001}]}}`,
  });
  expectError(inexact, 400, "VALIDATION_ERROR");
  assert.equal(inexact.body.error.details.constraint, "exact_number");
  const missing = await call(key, "create", { client_id: "ct_doesnotexist", line_items: ONE_LINE });
  expectError(missing, 400, "VALIDATION_ERROR");
  assert.equal(missing.body.error.details.field, "client_id");
  // Nothing was numbered by the refusals.
  const [counter] = await db`select count(*)::int as n from private.invoice_counters
    where org_id = ${org.orgId}`;
  assert.equal(counter.n, 0);
});

// ---------------------------------------------------------------------------------------
// Numbering

test("numbering: 50 concurrent creates get 50 consecutive numbers, no gap, no duplicate", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const created = await Promise.all(
    Array.from(
      { length: 50 },
      () =>
        call(key, "create", { client_id: client, issue_date: "2027-03-01", line_items: ONE_LINE }),
    ),
  );
  for (const response of created) {
    assert.equal(response.status, 200, JSON.stringify(response.body));
  }
  const numbers = created.map((r) => r.body.data.number as string).sort();
  assert.deepEqual(
    numbers,
    Array.from({ length: 50 }, (_, i) => `INV-2027-${String(i + 1).padStart(3, "0")}`),
  );
});

test("numbering: per year and environment; a cancelled invoice keeps its number; no reuse", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const testKey = await org.key({ environment: "test" });
  const first = await aDraft(key, { issue_date: "2026-06-01" });
  assert.equal(first.number, "INV-2026-001");
  const nextYear = await aDraft(key, { issue_date: "2027-01-01" });
  assert.equal(nextYear.number, "INV-2027-001");
  const sandbox = await aDraft(testKey, { issue_date: "2026-06-01" });
  assert.equal(sandbox.number, "INV-2026-001", "the sandbox has its own sequence");

  const cancelled = await call(key, "cancel", { id: first.id });
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.data.status, "cancelled");
  assert.equal(cancelled.body.data.number, "INV-2026-001");
  assert.match(cancelled.body.data.cancelled_at, ISO);
  const second = await aDraft(key, { issue_date: "2026-07-01" });
  assert.equal(second.number, "INV-2026-002", "a cancelled invoice's number is not given again");
  // The database keeps numbers too: no writer can change one.
  await assert.rejects(
    db`update public.invoices set number = 'INV-2026-999' where id = ${first.id}`,
    /keeps its number/,
  );
});

test("numbering: a refused create takes no number; Idempotency-Key replays take none", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  await aDraft(key, { issue_date: "2026-01-10" });
  const refused = await call(key, "create", {
    client_id: client,
    issue_date: "2026-01-10",
    line_items: [{ description: "x", unit_price: "999999999999", quantity: 2 }],
  });
  expectError(refused, 400, "VALIDATION_ERROR");
  const headers = { "idempotency-key": crypto.randomUUID() };
  const body = {
    action: "create",
    data: { client_id: client, issue_date: "2026-01-10", line_items: ONE_LINE },
  };
  const once = await api("invoices/create", body, { key, headers });
  const again = await api("invoices/create", body, { key, headers });
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  assert.equal(again.body.data.id, once.body.data.id);
  assert.equal(once.body.data.number, "INV-2026-002");
  const next = await aDraft(key, { issue_date: "2026-01-10" });
  assert.equal(next.number, "INV-2026-003");
});

// ---------------------------------------------------------------------------------------
// The PDF

test("PDF: pdf_url returns a PDF showing number, dates, client, lines and totals", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await createInvoice(key, {
    client_id: await aClient(key, "Zürich Widgets GmbH"),
    issue_date: "2026-04-07",
    currency: "USD",
    line_items: [
      { description: "Widgets", quantity: 1200, unit_price: "1.25", tax_rate: 8.875 },
      { description: "Setup", quantity: 1, unit_price: 99, tax_rate: 0 },
    ],
    notes: "Thank you.",
  });
  assert.match(created.pdf_url_expires_at, ISO);
  const bytes = await fetchPdf(created.pdf_url);
  const pdf = await PDFDocument.load(bytes);
  assert.equal(pdf.getPageCount(), 1);
  assert.equal(pdf.getTitle(), `INVOICE ${created.number}`);
  const text = await pdfText(bytes);
  for (
    const shown of [
      created.number,
      "Issue date: 2026-04-07",
      "Due date: 2026-05-07",
      "Zürich Widgets GmbH",
      "Widgets",
      "1,633.13", // 1200 × 1.25 = 1500.00, + 8.875 % = 133.125 → 133.13
      "Subtotal",
      "1,599.00 USD",
      "133.13 USD", // 1500 × 8.875 % = 133.125 → 133.13
      "1,732.13 USD",
      "Thank you.",
    ]
  ) assert.ok(text.includes(shown), `the PDF shows ${shown}:\n${text}`);
  assert.equal(created.total, 1732.13);

  // The `pdf` action answers the same bytes.
  const response = await fetch(`${stack.api_url}/v1/invoices/pdf`, {
    method: "POST",
    headers: { "x-api-key": key, "content-type": "application/json" },
    body: JSON.stringify({ action: "pdf", data: { id: created.id } }),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "application/pdf");
  assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);

  // Stored under the environment's folder, once for this revision: get signs it again.
  const [row] =
    await db`select pdf_path, pdf_revision from public.invoices where id = ${created.id}`;
  assert.equal(row.pdf_revision, 1);
  const [object] = await db`select count(*)::int as n from storage.objects
    where bucket_id = 'invoices' and name = ${`live/${row.pdf_path}`}`;
  assert.equal(object.n, 1);
  const got = await call(key, "get", { id: created.id });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  assert.deepEqual(await fetchPdf(got.body.data.pdf_url), bytes);
});

test("PDF: an updated draft gets a new PDF; many lines take more pages", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const draft = await aDraft(key);
  const lines = Array.from({ length: 120 }, (_, i) => ({
    description: `Line ${i + 1}`,
    quantity: 1,
    unit_price: 10,
    tax_rate: 21,
  }));
  const updated = await call(key, "update", { id: draft.id, line_items: lines, notes: "Updated" });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.equal(updated.body.data.total, 1452);
  assert.equal(updated.body.data.number, draft.number);
  assert.notEqual(updated.body.data.pdf_url, draft.pdf_url);
  const bytes = await fetchPdf(updated.body.data.pdf_url);
  assert.ok((await PDFDocument.load(bytes)).getPageCount() > 1);
  const text = await pdfText(bytes);
  assert.ok(text.includes("Line 120"));
  assert.ok(text.includes("1,452.00 EUR"));
  // The first PDF is still the first revision's.
  assert.ok((await pdfText(await fetchPdf(draft.pdf_url))).includes("121.00 EUR"));
});

// ---------------------------------------------------------------------------------------
// Life cycle

test("life cycle: update drafts only (409 after), issue, mark_paid with invoice.paid, cancel", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const draft = await aDraft(key, { issue_date: "2026-03-01" });
  const [created] = await eventsOf(org.orgId, "invoice.created");
  assert.equal(created.data.id, draft.id);
  assert.equal(created.data.number, draft.number);
  assert.equal(created.data.total, 121);

  const sameYear = await call(key, "update", {
    id: draft.id,
    issue_date: "2027-01-01",
    due_date: "2027-02-01",
  });
  expectError(sameYear, 400, "VALIDATION_ERROR");
  assert.equal(sameYear.body.error.details.field, "issue_date");
  const yen = await call(key, "update", { id: draft.id, currency: "JPY" });
  assert.equal(yen.status, 200, JSON.stringify(yen.body));
  assert.equal(yen.body.data.currency, "JPY");

  const paidDraft = await call(key, "mark_paid", { id: draft.id });
  expectError(paidDraft, 409, "INVOICE_STATUS_CONFLICT");
  assert.equal(paidDraft.body.error.details.status, "draft");

  const issued = await call(key, "issue", { id: draft.id });
  assert.equal(issued.status, 200, JSON.stringify(issued.body));
  assert.equal(issued.body.data.status, "pending");
  expectError(await call(key, "issue", { id: draft.id }), 409, "INVOICE_STATUS_CONFLICT");
  expectError(
    await call(key, "update", { id: draft.id, notes: "late" }),
    409,
    "INVOICE_STATUS_CONFLICT",
  );
  const future = await call(key, "mark_paid", { id: draft.id, paid_at: "2999-01-01T00:00:00Z" });
  expectError(future, 400, "VALIDATION_ERROR");

  const paid = await call(key, "mark_paid", { id: draft.id, paid_at: "2026-03-15T10:00:00Z" });
  assert.equal(paid.status, 200, JSON.stringify(paid.body));
  assert.equal(paid.body.data.status, "paid");
  assert.equal(paid.body.data.paid_at, "2026-03-15T10:00:00Z");
  const paidEvents = await eventsOf(org.orgId, "invoice.paid");
  assert.equal(paidEvents.length, 1);
  assert.equal(paidEvents[0].data.id, draft.id);
  assert.equal(paidEvents[0].data.status, "paid");
  expectError(await call(key, "cancel", { id: draft.id }), 409, "INVOICE_STATUS_CONFLICT");
  expectError(await call(key, "mark_paid", { id: draft.id }), 409, "INVOICE_STATUS_CONFLICT");
});

test("overdue: the pg_cron function marks pending invoices past due_date, with the date moved", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const due = await aDraft(key, { issue_date: "2020-01-01", due_date: "2020-01-30" });
  const dueLater = await aDraft(key, { issue_date: "2020-01-01", due_date: "2020-01-31" });
  const draft = await aDraft(key, { issue_date: "2020-01-01", due_date: "2020-01-30" });
  for (const { id } of [due, dueLater]) {
    assert.equal((await call(key, "issue", { id })).status, 200);
  }
  // "Today" is 2020-01-31: due_date 01-30 is past, 01-31 is the last day to pay.
  await db`select private.mark_overdue_invoices('2020-01-31')`;
  const statusOf = async (id: string) => (await call(key, "get", { id })).body.data.status;
  assert.equal(await statusOf(due.id), "overdue");
  assert.equal(await statusOf(dueLater.id), "pending");
  assert.equal(await statusOf(draft.id), "draft", "drafts are not due");
  // An overdue invoice can still be paid.
  assert.equal((await call(key, "mark_paid", { id: due.id })).body.data.status, "paid");
  const overdue = await call(key, "list", { status: "overdue" });
  assert.equal(overdue.body.data.pagination.total, 0);

  const [job] = await db`select schedule, command, active from cron.job
    where jobname = 'bivelio-mark-overdue-invoices'`;
  assert.deepEqual({ ...job }, {
    schedule: "7 * * * *",
    command: "select private.mark_overdue_invoices()",
    active: true,
  });
});

test("list: filters by type, status and issue date range, newest first, paginated", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const march = await aDraft(key, { issue_date: "2026-03-10" });
  const april = await aDraft(key, { issue_date: "2026-04-10" });
  const received = await createInvoice(key, {
    type: "received",
    number: "SUP-77",
    client_id: client,
    issue_date: "2026-04-11",
    line_items: ONE_LINE,
  });
  assert.equal(received.number, "SUP-77");
  await call(key, "issue", { id: april.id });
  const ids = async (data: Record<string, unknown>) =>
    (await call(key, "list", data)).body.data.invoices.map((i: { id: string }) => i.id);
  assert.deepEqual(await ids({}), [received.id, april.id, march.id]);
  assert.deepEqual(await ids({ type: "issued" }), [april.id, march.id]);
  assert.deepEqual(await ids({ type: "received" }), [received.id]);
  assert.deepEqual(await ids({ status: "pending" }), [april.id]);
  assert.deepEqual(await ids({ from_date: "2026-04-01", to_date: "2026-04-10" }), [april.id]);
  assert.deepEqual(await ids({ per_page: 1, page: 2 }), [april.id]);
  const page3 = await call(key, "list", { per_page: 1, page: 4 });
  assert.deepEqual(page3.body.data.pagination, { page: 4, per_page: 1, total: 3, total_pages: 3 });
  const backwards = await call(key, "list", { from_date: "2026-05-01", to_date: "2026-04-01" });
  expectError(backwards, 400, "VALIDATION_ERROR");
  assert.equal(backwards.body.error.details.field, "to_date");
});

// ---------------------------------------------------------------------------------------
// Email

test("send: emails the client the PDF through the email channel; the draft becomes pending", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  await withEmail(org, key);
  const to = `billing-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const draft = await createInvoice(key, {
    client_id: await aClient(key, "Mailed Client", to),
    line_items: ONE_LINE,
  });
  const sent = await call(key, "send", { id: draft.id });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.data.status, "pending");
  assert.match(sent.body.data.sent_at, ISO);
  assert.equal(sent.body.data.email.status, "sent");
  assert.match(sent.body.data.email.message_id, /^msg_/);

  const caught = await (await fetch(`${stack.mail.http_url}/messages?to=${to}`)).json();
  assert.equal(caught.messages.length, 1);
  assert.equal(caught.messages[0].subject, `Invoice ${draft.number}`);
  const full = await (await fetch(`${stack.mail.http_url}/messages/${caught.messages[0].id}`))
    .json();
  const [attachment] = full.attachments;
  assert.equal(attachment.filename, `${draft.number}.pdf`);
  assert.equal(attachment.content_type, "application/pdf");
  const attached = Uint8Array.from(atob(attachment.content_base64), (c) => c.charCodeAt(0));
  assert.ok((await pdfText(attached)).includes(draft.number));

  const [message] = await db`select status, contact_id from public.messages
    where id = ${sent.body.data.email.message_id}`;
  assert.deepEqual({ ...message }, { status: "sent", contact_id: draft.client.id });
  assert.equal((await eventsOf(org.orgId, "message.sent")).length, 1);
});

test("create with auto_send emails it; refused (400) up front when it cannot be sent", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const noEmail = await call(key, "create", {
    client_id: await aClient(key, "Nobody"),
    line_items: ONE_LINE,
    auto_send: true,
  });
  expectError(noEmail, 400, "VALIDATION_ERROR");
  assert.equal(noEmail.body.error.details.field, "client_id");
  const to = `auto-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const client = await aClient(key, "Auto Client", to);
  const noChannel = await call(key, "create", {
    client_id: client,
    line_items: ONE_LINE,
    auto_send: true,
  });
  expectError(noChannel, 400, "VALIDATION_ERROR");
  assert.equal(noChannel.body.error.details.constraint, "not_connected");
  const [none] =
    await db`select count(*)::int as n from public.invoices where org_id = ${org.orgId}`;
  assert.equal(none.n, 0, "a refused create leaves no invoice");

  await withEmail(org, key);
  const created = await createInvoice(key, {
    client_id: client,
    line_items: ONE_LINE,
    auto_send: true,
  });
  assert.equal(created.email.status, "sent");
  assert.equal(created.status, "pending");
  assert.equal(created.number.endsWith("-001"), true, "the refused creates took no number");
  const caught = await (await fetch(`${stack.mail.http_url}/messages?to=${to}`)).json();
  assert.equal(caught.messages.length, 1);
});

test("send: a refused email is 502 with the provider's code, stored failed; received invoices are not sent", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  await withEmail(org, key);
  const to = `refused-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const draft = await createInvoice(key, {
    client_id: await aClient(key, "Refusing", to),
    line_items: ONE_LINE,
  });
  const scripted = await fetch(`${stack.mail.http_url}/_standin/script`, {
    method: "POST",
    body: JSON.stringify({ stage: "rcpt", code: 550, message: "No such mailbox", to }),
  });
  assert.equal(scripted.status, 200);
  const failed = await call(key, "send", { id: draft.id });
  expectError(failed, 502, "INTEGRATION_ERROR");
  const [message] = await db`select status from public.messages where org_id = ${org.orgId}`;
  assert.equal(message.status, "failed");
  const after = await call(key, "get", { id: draft.id });
  assert.equal(after.body.data.status, "draft");
  assert.equal(after.body.data.sent_at, null);

  const received = await createInvoice(key, {
    type: "received",
    client_id: draft.client.id,
    line_items: ONE_LINE,
  });
  expectError(await call(key, "send", { id: received.id }), 409, "INVOICE_STATUS_CONFLICT");
});

test("sandbox: send is simulated (no mail), files under test/, invisible to live", async () => {
  const org = await createTestOrg();
  const testKey = await org.key({ environment: "test" });
  const liveKey = await org.key();
  await connect(testKey, "email", emailCredentials());
  const to = `sandbox-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const draft = await createInvoice(testKey, {
    client_id: await aClient(testKey, "Sandbox Client", to),
    line_items: ONE_LINE,
  });
  const sent = await call(testKey, "send", { id: draft.id });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.data.email.simulated, true);
  const caught = await (await fetch(`${stack.mail.http_url}/messages?to=${to}`)).json();
  assert.equal(caught.messages.length, 0, "nothing left BiVelio");
  const [row] = await db`select pdf_path from public.invoices where id = ${draft.id}`;
  const [object] = await db`select count(*)::int as n from storage.objects
    where bucket_id = 'invoices' and name = ${`test/${row.pdf_path}`}`;
  assert.equal(object.n, 1);
  expectError(await call(liveKey, "get", { id: draft.id }), 404, "RESOURCE_NOT_FOUND");
  assert.equal((await call(liveKey, "list", {})).body.data.pagination.total, 0);
  const [registered] = await db`select purge_order from private.sandbox_tables
    where table_name = 'public.invoices'::regclass`;
  assert.ok(registered, "sandbox invoices are purged after 24 hours");
});

// ---------------------------------------------------------------------------------------
// Isolation

test("isolation: another organization's invoice is 404 for every action, never listed", async () => {
  const owner = await createTestOrg();
  const other = await createTestOrg();
  const ownerKey = await owner.key();
  const otherKey = await other.key();
  const invoice = await aDraft(ownerKey);
  for (const action of ["get", "update", "issue", "send", "mark_paid", "cancel"]) {
    expectError(await call(otherKey, action, { id: invoice.id }), 404, "RESOURCE_NOT_FOUND");
  }
  const pdf = await api("invoices/pdf", { action: "pdf", data: { id: invoice.id } }, {
    key: otherKey,
  });
  expectError(pdf, 404, "RESOURCE_NOT_FOUND");
  assert.equal((await call(otherKey, "list", {})).body.data.pagination.total, 0);
  // Another organization's contact cannot be invoiced.
  const foreign = await call(otherKey, "create", {
    client_id: invoice.client.id,
    line_items: ONE_LINE,
  });
  expectError(foreign, 400, "VALIDATION_ERROR");
  assert.equal(foreign.body.error.details.field, "client_id");
  // Under RLS, lines too: the other organization's claims see none.
  const seen = await db.begin(async (tx) => {
    await tx`set local role authenticated`;
    await tx`select set_config('request.jwt.claims', ${
      JSON.stringify({
        org_id: other.orgId,
        environment: "live",
      })
    }, true)`;
    return await tx`select
      (select count(*)::int from public.invoices where id = ${invoice.id}) as invoices,
      (select count(*)::int from public.invoice_lines where invoice_id = ${invoice.id}) as lines`;
  });
  assert.deepEqual({ ...seen[0] }, { invoices: 0, lines: 0 });
});

// ---------------------------------------------------------------------------------------
// Received invoices from documents/extract, and the workflow step

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

async function scriptModel(answers: unknown[]) {
  for (
    const [path, body] of [["reset", { model: DOCUMENTS_MODEL }], ["script", {
      model: DOCUMENTS_MODEL,
      answers,
    }]]
  ) {
    const response = await fetch(`${stack.gemini.base_url}/_standin/${path}`, {
      method: "POST",
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200);
  }
}

test("received: documents/extract with create_received_invoice records a draft from the supplier", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const pdf = await PDFDocument.create();
  pdf.addPage().drawText("Invoice INV-2026-001");
  const content = btoa(String.fromCharCode(...await pdf.save()));
  const uploaded = await api("documents/upload", {
    action: "upload",
    data: { filename: "supplier.pdf", content_base64: content },
  }, { key });
  assert.equal(uploaded.status, 200, JSON.stringify(uploaded.body));
  const extract = () =>
    api("documents/extract", {
      action: "extract",
      data: {
        document_id: uploaded.body.data.document_id,
        document_type: "invoice",
        create_received_invoice: true,
      },
    }, { key });

  await scriptModel([{ output: { extracted: SPEC_EXTRACTED, confidence: 0.96 } }]);
  const first = await extract();
  assert.equal(first.status, 200, JSON.stringify(first.body));
  const invoiceId = first.body.data.received_invoice_id;
  assert.match(invoiceId, /^inv_/);
  const got = await call(key, "get", { id: invoiceId });
  assert.equal(got.status, 200, JSON.stringify(got.body));
  const received = got.body.data;
  assert.equal(received.type, "received");
  assert.equal(received.status, "draft");
  assert.equal(received.number, "INV-2026-001", "the supplier's number");
  assert.equal(received.client.name, "Supplier XYZ Ltd.");
  assert.equal(received.issue_date, "2026-04-01");
  assert.deepEqual([received.subtotal, received.tax, received.total], [1000, 210, 1210]);
  const [supplier] = await db`select type, tags, custom_fields from public.contacts
    where id = ${received.client.id}`;
  assert.deepEqual({ ...supplier }, {
    type: "company",
    tags: ["supplier"],
    custom_fields: { tax_id: "B98765432" },
  });
  // Nothing numbered: received invoices keep the supplier's number.
  const [counters] = await db`select count(*)::int as n from private.invoice_counters
    where org_id = ${org.orgId}`;
  assert.equal(counters.n, 0);

  // The same supplier again (by tax id), and an answer with unreadable lines.
  await scriptModel([{
    output: {
      extracted: {
        issuer: { name: "Supplier XYZ", tax_id: "B98765432" },
        total: "80.50",
        line_items: [{ description: "?" }],
      },
      confidence: 0.5,
    },
  }]);
  const second = await extract();
  assert.equal(second.status, 200, JSON.stringify(second.body));
  const other = (await call(key, "get", { id: second.body.data.received_invoice_id })).body.data;
  assert.equal(other.client.id, received.client.id, "matched by tax id");
  assert.equal(other.total, 80.5);
  assert.equal(other.number, null);
});

test("workflow step create_invoice: created in the step's transaction, numbered once", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const client = await aClient(key);
  const workflowId = await createWorkflow(key, {
    steps: [{
      id: "bill",
      type: "create_invoice",
      config: {
        client_id: "{{input.client_id}}",
        issue_date: "2026-09-01",
        line_items: [{ description: "Monthly plan", unit_price: 49.9, tax_rate: 21 }],
      },
    }],
  });
  const started = await execute(key, workflowId, { client_id: client });
  const instance = await waitForInstance(key, started.instance_id);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  const [row] =
    await db`select number, total::text from public.invoices where org_id = ${org.orgId}`;
  assert.deepEqual({ ...row }, { number: "INV-2026-001", total: "60.38" });
  // 49.9 × 21 % = 10.479 → 10.48; total 60.38.
  const output = JSON.stringify(instance);
  assert.ok(output.includes("INV-2026-001"), output);
});

// ---------------------------------------------------------------------------------------
// The shared negative cases

/** A draft of `org` as `{ id }`. */
const draftOf = async (org: TestOrg) => ({ id: (await aDraft(await org.key())).id as string });

negativeCases({
  group: "invoices",
  action: "list",
  scope: "read",
  valid: { type: "issued", per_page: 5 },
  invalid: { data: { status: "unpaid" }, field: "status" },
});
negativeCases({
  group: "invoices",
  action: "create",
  scope: "write",
  valid: async (org) => ({ client_id: await aClient(await org.key()), line_items: ONE_LINE }),
  invalid: {
    data: { client_id: "ct_abc123", line_items: ONE_LINE, currency: "ZZZ" },
    field: "currency",
  },
});
negativeCases({
  group: "invoices",
  action: "get",
  scope: "read",
  valid: draftOf,
  invalid: { data: { id: "ct_abc123" }, field: "id" },
});
negativeCases({
  group: "invoices",
  action: "update",
  scope: "write",
  valid: async (org) => ({ ...await draftOf(org), notes: "Changed" }),
  invalid: { data: { id: "inv_x", due_date: "tomorrow" }, field: "due_date" },
});
negativeCases({
  group: "invoices",
  action: "issue",
  scope: "write",
  valid: draftOf,
  invalid: { data: {}, field: "id" },
});
negativeCases({
  group: "invoices",
  action: "send",
  scope: "write",
  valid: async (org) => {
    const key = await org.key();
    await withEmail(org, key);
    const client = await aClient(
      key,
      "Negative",
      `neg-${crypto.randomUUID().slice(0, 8)}@example.com`,
    );
    return { id: (await createInvoice(key, { client_id: client, line_items: ONE_LINE })).id };
  },
  invalid: { data: { id: 42 }, field: "id" },
});
negativeCases({
  group: "invoices",
  action: "mark_paid",
  scope: "write",
  valid: async (org) => {
    const { id } = await draftOf(org);
    await call(await org.key(), "issue", { id });
    return { id };
  },
  invalid: { data: { id: "inv_x", paid_at: "yesterday" }, field: "paid_at" },
});
negativeCases({
  group: "invoices",
  action: "cancel",
  scope: "write",
  valid: draftOf,
  invalid: { data: { id: "" }, field: "id" },
});

test("invoices/pdf: 401 without a key, 400 for a bad id, 404 for an unknown one", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  expectError(
    await api("invoices/pdf", { action: "pdf", data: { id: "inv_x" } }),
    401,
    "AUTH_INVALID_TOKEN",
  );
  const bad = await api("invoices/pdf", { action: "pdf", data: { id: "ct_1" } }, { key });
  expectError(bad, 400, "VALIDATION_ERROR");
  assert.equal(bad.body.error.details.field, "id");
  expectError(
    await api("invoices/pdf", { action: "pdf", data: { id: "inv_unknown" } }, { key }),
    404,
    "RESOURCE_NOT_FOUND",
  );
  const readOnly = await org.key({ scopes: ["invoices:read"] });
  const draft = await aDraft(key);
  const response = await fetch(`${stack.api_url}/v1/invoices/pdf`, {
    method: "POST",
    headers: { "x-api-key": readOnly, "content-type": "application/json" },
    body: JSON.stringify({ action: "pdf", data: { id: draft.id } }),
  });
  assert.equal(response.status, 200);
  await PDFDocument.load(new Uint8Array(await response.arrayBuffer()));
  // The answer's schema, for the record.
  invoiceSchema.parse(draft);
});
