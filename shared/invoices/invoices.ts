/**
 * Invoices: queries and changes, shared by the invoices endpoints, the workflow step
 * create_invoice and received invoices from documents/extract. Every function takes the
 * caller's RLS transaction, so organization and environment are decided by Postgres.
 *
 * Amounts are computed here with money.ts (exact decimals, half-up per line) and stored as
 * `numeric`; postgres.js reads `numeric` back as text, so no amount is ever a double until
 * the answer's JSON number (exact within money.ts's limits).
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { pageTotal, pageWindow, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  amountToJson,
  decimalToJson,
  invoiceAmounts,
  type LineInput,
  Money,
  toNumeric,
  withinLimits,
} from "./money.ts";
import type {
  CreateInvoice,
  invoiceList,
  InvoiceStatus,
  InvoiceSummary,
  ListInvoices,
  UpdateInvoice,
} from "./schemas.ts";

/** Days from issue_date to the default due_date (the spec's example: 04-07 → 05-07). */
export const DEFAULT_PAYMENT_DAYS = 30;

export interface InvoiceRow {
  id: string;
  number: string | null;
  type: "issued" | "received";
  status: InvoiceStatus;
  client_id: string | null;
  client_name: string;
  currency: string;
  issue_date: string;
  due_date: string;
  notes: string | null;
  subtotal: string;
  tax: string;
  total: string;
  revision: number;
  pdf_path: string | null;
  pdf_revision: number | null;
  sent_at: Date | null;
  paid_at: Date | null;
  cancelled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

interface LineRow {
  invoice_id: string;
  position: number;
  description: string;
  quantity: string;
  unit_price: string;
  tax_rate: string;
  subtotal: string;
  tax: string;
  total: string;
}

/** An invoice with what its PDF needs: the summary, and the stored PDF if it is current. */
export interface LoadedInvoice {
  summary: InvoiceSummary;
  revision: number;
  /** The stored PDF of this revision, or null: it must be rendered (pdf.ts). */
  currentPdfPath: string | null;
}

const columns = (tx: Tx) =>
  tx`id, number, type, status, client_id, client_name, currency, issue_date::text,
     due_date::text, notes, subtotal::text, tax::text, total::text, revision, pdf_path,
     pdf_revision, sent_at, paid_at, cancelled_at, created_at, updated_at`;

const lineColumns = (tx: Tx) =>
  tx`invoice_id, position, description, quantity::text, unit_price::text, tax_rate::text,
     subtotal::text, tax::text, total::text`;

export function invoiceToApi(row: InvoiceRow, lines: LineRow[]): InvoiceSummary {
  const amount = (value: string) => amountToJson(value, row.currency);
  return {
    id: row.id,
    number: row.number,
    type: row.type,
    status: row.status,
    client: { id: row.client_id, name: row.client_name },
    subtotal: amount(row.subtotal),
    tax: amount(row.tax),
    total: amount(row.total),
    currency: row.currency,
    issue_date: row.issue_date,
    due_date: row.due_date,
    line_items: lines.map((line) => ({
      description: line.description,
      quantity: decimalToJson(line.quantity),
      unit_price: decimalToJson(line.unit_price),
      tax_rate: decimalToJson(line.tax_rate),
      subtotal: amount(line.subtotal),
      tax: amount(line.tax),
      total: amount(line.total),
    })),
    notes: row.notes,
    sent_at: isoTimestamp(row.sent_at),
    paid_at: isoTimestamp(row.paid_at),
    cancelled_at: isoTimestamp(row.cancelled_at),
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  };
}

const loaded = (row: InvoiceRow, lines: LineRow[]): LoadedInvoice => ({
  summary: invoiceToApi(row, lines),
  revision: row.revision,
  currentPdfPath: row.pdf_revision === row.revision ? row.pdf_path : null,
});

async function linesOf(tx: Tx, ids: string[]): Promise<Map<string, LineRow[]>> {
  const byInvoice = new Map<string, LineRow[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return byInvoice;
  const rows = await tx<LineRow[]>`
    select ${lineColumns(tx)} from public.invoice_lines
    where invoice_id = any(${ids}::text[])
    order by invoice_id, position
  `;
  for (const row of rows) byInvoice.get(row.invoice_id)!.push(row);
  return byInvoice;
}

export async function listInvoices(
  tx: Tx,
  query: ListInvoices,
): Promise<z.input<typeof invoiceList>> {
  if (query.from_date && query.to_date && query.from_date > query.to_date) {
    throw invalidField("to_date", "after_from_date", "to_date must not be before from_date.");
  }
  const filters = [tx`true`];
  if (query.type) filters.push(tx`type = ${query.type}`);
  if (query.status) filters.push(tx`status = ${query.status}`);
  if (query.from_date) filters.push(tx`issue_date >= ${query.from_date}::date`);
  if (query.to_date) filters.push(tx`issue_date <= ${query.to_date}::date`);
  if (query.client_id) filters.push(tx`client_id = ${query.client_id}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const rows = await tx<(InvoiceRow & { full_count: number })[]>`
    select ${columns(tx)}, count(*) over ()::int as full_count
    from public.invoices
    where ${where}
    order by issue_date desc, created_at desc, id desc
    ${pageWindow(tx, query)}
  `;
  const total = await pageTotal(tx, query, rows[0]?.full_count, tx`public.invoices where ${where}`);
  const lines = await linesOf(tx, rows.map((row) => row.id));
  return {
    invoices: rows.map((row) => invoiceToApi(row, lines.get(row.id)!)),
    pagination: paginationOf(query, total),
  };
}

/** The invoice (locked for the rest of the transaction when `lock`), or 404. */
async function rowOf(tx: Tx, id: string, lock = false): Promise<InvoiceRow> {
  const [row] = lock
    ? await tx<InvoiceRow[]>`select ${columns(tx)} from public.invoices where id = ${id} for update`
    : await tx<InvoiceRow[]>`select ${columns(tx)} from public.invoices where id = ${id}`;
  if (!row) throw notFound("Invoice", id);
  return row;
}

export async function getInvoice(tx: Tx, id: string): Promise<LoadedInvoice> {
  const row = await rowOf(tx, id);
  return loaded(row, (await linesOf(tx, [id])).get(id)!);
}

/** The client (or supplier) contact, share-locked so it cannot be deleted meanwhile. */
async function clientOf(tx: Tx, clientId: string, field = "client_id") {
  const [contact] = await tx<{ id: string; name: string }[]>`
    select id, name from public.contacts where id = ${clientId} for share
  `;
  if (!contact) throw invalidField(field, "exists", `Contact '${clientId}' was not found.`);
  return contact;
}

const todayUtc = () => new Date().toISOString().slice(0, 10);
function addDays(date: string, days: number) {
  const at = new Date(`${date}T00:00:00Z`);
  at.setUTCDate(at.getUTCDate() + days);
  return at.toISOString().slice(0, 10);
}

function checkDates(issueDate: string, dueDate: string) {
  if (dueDate < issueDate) {
    throw invalidField("due_date", "after_issue_date", "due_date must not be before issue_date.");
  }
}

/** Each line's amounts and the invoice's, or a 400 when the total is beyond the limit. */
function amountsOf(lines: LineInput[], currency: string) {
  const amounts = invoiceAmounts(lines, currency);
  if (!withinLimits(amounts)) {
    throw invalidField(
      "line_items",
      "max_total",
      "The invoice's total must be less than 1,000,000,000,000 (1e12) in its currency.",
    );
  }
  return amounts;
}

async function insertLines(
  tx: Tx,
  invoiceId: string,
  lines: (LineInput & { description: string })[],
  currency: string,
) {
  const amounts = amountsOf(lines, currency);
  const rows = lines.map((line, position) => ({
    invoice_id: invoiceId,
    position,
    description: line.description,
    quantity: line.quantity.toFixed(),
    unit_price: line.unit_price.toFixed(),
    tax_rate: line.tax_rate.toFixed(),
    subtotal: toNumeric(amounts.lines[position].subtotal, currency),
    tax: toNumeric(amounts.lines[position].tax, currency),
    total: toNumeric(amounts.lines[position].total, currency),
  }));
  await tx`insert into public.invoice_lines ${tx(rows)}`;
  return amounts;
}

export interface CreateOptions {
  /** Received invoices made from an extraction start as drafts to review. */
  extractionId?: string;
}

/**
 * Creates an invoice with its lines and `invoice.created`, in the caller's transaction. An
 * issued invoice takes the next number of its year (private.next_invoice_number), last, so
 * the counter row is locked for as short a time as the transaction allows.
 */
export async function createInvoice(
  tx: Tx,
  input: Omit<CreateInvoice, "auto_send">,
  options: CreateOptions = {},
): Promise<LoadedInvoice> {
  if (input.type === "issued" && input.number !== undefined) {
    throw invalidField(
      "number",
      "assigned",
      "Issued invoices are numbered by BiVelio (INV-<year>-<nnn>); 'number' is for received ones.",
    );
  }
  const client = await clientOf(tx, input.client_id);
  const issueDate = input.issue_date ?? todayUtc();
  const dueDate = input.due_date ?? addDays(issueDate, DEFAULT_PAYMENT_DAYS);
  checkDates(issueDate, dueDate);
  // Checked before a number is taken (a refusal below would roll it back anyway).
  const amounts = amountsOf(input.line_items, input.currency);

  const number = input.type === "issued"
    ? (await tx<{ number: string }[]>`
        select private.next_invoice_number(${Number(issueDate.slice(0, 4))}::int) as number
      `)[0].number
    : input.number ?? null;
  const [{ id }] = await tx<{ id: string }[]>`
    insert into public.invoices (type, number, client_id, client_name, currency, issue_date,
      due_date, notes, subtotal, tax, total, extraction_id)
    values (${input.type}, ${number}, ${client.id}, ${client.name}, ${input.currency},
      ${issueDate}::date, ${dueDate}::date, ${input.notes ?? null},
      ${toNumeric(amounts.subtotal, input.currency)}::numeric,
      ${toNumeric(amounts.tax, input.currency)}::numeric,
      ${toNumeric(amounts.total, input.currency)}::numeric, ${options.extractionId ?? null})
    returning id
  `;
  await insertLines(tx, id, input.line_items, input.currency);
  const invoice = await getInvoice(tx, id);
  await emitEvent(tx, "invoice.created", invoice.summary);
  return invoice;
}

/** The 409 for an action the invoice's status does not allow. */
function statusConflict(row: InvoiceRow, action: string, allowed: InvoiceStatus[]) {
  return new ApiError(
    "INVOICE_STATUS_CONFLICT",
    `Invoice '${row.id}' is ${row.status}; ${action} needs it ${allowed.join(" or ")}.`,
    { details: { status: row.status, allowed_statuses: allowed } },
  );
}

/** Changes a draft: only the fields sent; line_items replaces every line. */
export async function updateInvoice(tx: Tx, patch: UpdateInvoice): Promise<LoadedInvoice> {
  const row = await rowOf(tx, patch.id, true);
  if (row.status !== "draft") throw statusConflict(row, "update", ["draft"]);
  const issueDate = patch.issue_date ?? row.issue_date;
  const dueDate = patch.due_date ?? row.due_date;
  checkDates(issueDate, dueDate);
  if (row.type === "issued" && issueDate.slice(0, 4) !== row.issue_date.slice(0, 4)) {
    // The number is of its year (INV-2026-…) and is never given again or changed.
    throw invalidField(
      "issue_date",
      "same_year",
      `The invoice is numbered ${row.number}; its issue_date stays in ${
        row.issue_date.slice(0, 4)
      }.`,
    );
  }
  const client = patch.client_id ? await clientOf(tx, patch.client_id) : null;
  const currency = patch.currency ?? row.currency;

  let amounts = null;
  if (patch.line_items || patch.currency) {
    // A new currency rounds to its own minor unit: every line is computed again.
    const lines = patch.line_items ??
      ((await linesOf(tx, [row.id])).get(row.id)!).map((line) => ({
        description: line.description,
        quantity: new Money(line.quantity),
        unit_price: new Money(line.unit_price),
        tax_rate: new Money(line.tax_rate),
      }));
    await tx`delete from public.invoice_lines where invoice_id = ${row.id}`;
    amounts = await insertLines(tx, row.id, lines, currency);
  }
  await tx`
    update public.invoices
    set client_id = ${client?.id ?? row.client_id}, client_name = ${
    client?.name ?? row.client_name
  },
        issue_date = ${issueDate}::date, due_date = ${dueDate}::date, currency = ${currency},
        notes = ${patch.notes === undefined ? row.notes : patch.notes},
        subtotal = ${amounts ? toNumeric(amounts.subtotal, currency) : row.subtotal}::numeric,
        tax = ${amounts ? toNumeric(amounts.tax, currency) : row.tax}::numeric,
        total = ${amounts ? toNumeric(amounts.total, currency) : row.total}::numeric,
        revision = revision + 1, updated_at = now()
    where id = ${row.id}
  `;
  return await getInvoice(tx, row.id);
}

/** issue: a draft becomes pending (due, and overdue after its due_date). */
export async function issueInvoice(tx: Tx, id: string): Promise<LoadedInvoice> {
  const row = await rowOf(tx, id, true);
  if (row.status !== "draft") throw statusConflict(row, "issue", ["draft"]);
  await tx`update public.invoices set status = 'pending', updated_at = now() where id = ${id}`;
  return await getInvoice(tx, id);
}

/** mark_paid: a pending or overdue invoice is paid; `invoice.paid` is written with it. */
export async function markInvoicePaid(
  tx: Tx,
  id: string,
  paidAt: string | undefined,
): Promise<LoadedInvoice> {
  const row = await rowOf(tx, id, true);
  if (row.status !== "pending" && row.status !== "overdue") {
    throw statusConflict(row, "mark_paid", ["pending", "overdue"]);
  }
  const at = paidAt ? new Date(paidAt) : new Date();
  if (at.getTime() > Date.now() + 60_000) {
    throw invalidField("paid_at", "not_future", "paid_at must not be in the future.");
  }
  await tx`
    update public.invoices set status = 'paid', paid_at = ${at}, updated_at = now()
    where id = ${id}
  `;
  const invoice = await getInvoice(tx, id);
  await emitEvent(tx, "invoice.paid", invoice.summary);
  return invoice;
}

/** cancel: any invoice not paid; it keeps its number (numbers are never given again). */
export async function cancelInvoice(tx: Tx, id: string): Promise<LoadedInvoice> {
  const row = await rowOf(tx, id, true);
  const allowed: InvoiceStatus[] = ["draft", "pending", "overdue"];
  if (!allowed.includes(row.status)) throw statusConflict(row, "cancel", allowed);
  await tx`
    update public.invoices set status = 'cancelled', cancelled_at = now(), updated_at = now()
    where id = ${id}
  `;
  return await getInvoice(tx, id);
}

/**
 * For send: the invoice, its client's email, or the reason it cannot be sent (`field`: what
 * a missing email is blamed on in the 400).
 */
export async function invoiceToSend(tx: Tx, id: string, field = "id") {
  const row = await rowOf(tx, id, true);
  if (row.type !== "issued") {
    throw new ApiError(
      "INVOICE_STATUS_CONFLICT",
      `Invoice '${id}' is a received invoice; only issued invoices are sent.`,
      { details: { type: row.type } },
    );
  }
  const allowed: InvoiceStatus[] = ["draft", "pending", "overdue"];
  if (!allowed.includes(row.status)) throw statusConflict(row, "send", allowed);
  const [contact] = row.client_id
    ? await tx<{ email: string | null }[]>`
        select email from public.contacts where id = ${row.client_id}
      `
    : [];
  if (!contact?.email) {
    throw invalidField(
      field,
      "client_email",
      `The invoice's client ${
        row.client_id ? `'${row.client_id}'` : "(deleted)"
      } has no email address to send it to; add one to the contact first.`,
    );
  }
  return { invoice: loaded(row, (await linesOf(tx, [id])).get(id)!), email: contact.email };
}

/** After a send: sent_at, and a draft becomes pending (it was issued by sending it). */
export async function recordInvoiceSent(tx: Tx, id: string): Promise<LoadedInvoice> {
  await tx`
    update public.invoices
    set sent_at = now(), updated_at = now(),
        status = case when status = 'draft' then 'pending' else status end
    where id = ${id}
  `;
  return await getInvoice(tx, id);
}

/** Remembers the PDF stored for `revision`, unless the invoice has changed since. */
export async function recordStoredPdf(tx: Tx, id: string, revision: number, path: string) {
  await tx`
    update public.invoices set pdf_path = ${path}, pdf_revision = ${revision}
    where id = ${id} and revision = ${revision}
  `;
}
