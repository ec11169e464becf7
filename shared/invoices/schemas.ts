/**
 * The invoices group's inputs and answers: the one definition of each, from which the
 * handlers take their types, OpenAPI its schemas and the tests their checks.
 *
 * Money inputs (quantity, unit_price, tax_rate) are JSON numbers or decimal strings, read
 * as the decimal written (money.ts); money answers are JSON numbers with the currency's
 * decimals at most (4235.00 is sent as 4235).
 */
import { z } from "zod";
import { contactId } from "../contacts/schemas.ts";
import { prefixedId } from "../platform/ids.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";
import {
  inputDecimalProblem,
  isCurrency,
  LIMITS,
  type Money,
  taxRateProblem,
  toMoney,
} from "./money.ts";

export const invoiceId = prefixedId("inv", "an invoice");
export const invoiceType = z.enum(["issued", "received"]);
export const invoiceStatus = z.enum(["draft", "pending", "paid", "overdue", "cancelled"]);
export type InvoiceStatus = z.output<typeof invoiceStatus>;

/** The most lines an invoice has (its PDF stays a few pages, its event small). */
export const MAX_LINES = 200;

/** A calendar date, `2026-04-07`, that exists (2026-02-30 does not). */
export const calendarDate = z.iso.date().refine(
  (text) => {
    // Runs after a failed format check too (zod goes on): an invalid Date is no date.
    const day = new Date(`${text}T00:00:00Z`);
    return !Number.isNaN(day.getTime()) && day.toISOString().startsWith(text);
  },
  { message: "must be a date that exists", params: { constraint: "date" } },
).meta({ example: "2026-04-07" });

export const currencyCode = z.string().refine(isCurrency, {
  message: "must be an ISO 4217 currency code in capitals (EUR, USD, JPY)",
  params: { constraint: "currency" },
});

/** A decimal given as a JSON number or a string ("150.00"), checked by `problem`. */
const decimalInput = (problem: (value: Money) => string | null, description: string) =>
  z.union([
    z.number(),
    z.string().trim().regex(/^-?\d{1,20}(\.\d{1,20})?$/, "must be a decimal number"),
  ]).transform((value, ctx) => {
    const decimal = toMoney(value);
    const found = problem(decimal);
    if (found) {
      ctx.issues.push({ code: "custom", message: found, input: value });
      return z.NEVER;
    }
    return decimal;
  }).meta({ description });

const lineItemInput = z.strictObject({
  description: z.string().trim().min(1).max(500),
  quantity: decimalInput(
    (v) => inputDecimalProblem(v, { positive: true }),
    `Greater than 0; at most ${LIMITS.maxInputDecimals} decimals`,
  ).prefault(1),
  unit_price: decimalInput(
    (v) => inputDecimalProblem(v, { positive: false }),
    `In the invoice's currency, 0 or more; at most ${LIMITS.maxInputDecimals} decimals`,
  ),
  tax_rate: decimalInput(taxRateProblem, "Percent, 0-100 (21 for 21 %)").prefault(0),
});
export type LineItemInput = z.output<typeof lineItemInput>;

const notes = z.string().trim().max(5000);
const lineItems = z.array(lineItemInput).min(1).max(MAX_LINES);

export const createInvoiceInput = z.strictObject({
  /** `issued` (default): numbered by BiVelio. `received`: a supplier's invoice. */
  type: invoiceType.default("issued"),
  /** The client (issued) or the supplier (received): a contact. */
  client_id: contactId,
  /** Received invoices only: the supplier's number. Issued invoices are numbered for you. */
  number: z.string().trim().min(1).max(100).optional(),
  /** Default today (UTC); its year numbers the invoice. */
  issue_date: calendarDate.optional(),
  /** Default 30 days after issue_date. */
  due_date: calendarDate.optional(),
  currency: currencyCode.default("EUR"),
  line_items: lineItems,
  notes: notes.optional(),
  /** Email the client the PDF once created (needs the organization's email channel). */
  auto_send: z.boolean().default(false),
});
export type CreateInvoice = z.output<typeof createInvoiceInput>;

export const updateInvoiceInput = z.strictObject({
  id: invoiceId,
  client_id: contactId.optional(),
  issue_date: calendarDate.optional(),
  due_date: calendarDate.optional(),
  currency: currencyCode.optional(),
  /** Replaces every line. */
  line_items: lineItems.optional(),
  notes: notes.nullable().optional(),
});
export type UpdateInvoice = z.output<typeof updateInvoiceInput>;

export const listInvoicesInput = z.strictObject({
  type: invoiceType.optional(),
  status: invoiceStatus.optional(),
  /** issue_date on or after. */
  from_date: calendarDate.optional(),
  /** issue_date on or before. */
  to_date: calendarDate.optional(),
  client_id: contactId.optional(),
  ...paginationInput,
});
export type ListInvoices = z.output<typeof listInvoicesInput>;

export const byInvoiceId = z.strictObject({ id: invoiceId });

export const markPaidInput = z.strictObject({
  id: invoiceId,
  /** When it was paid; default now. Not in the future. */
  paid_at: z.iso.datetime({ offset: true }).optional(),
});

// ---------------------------------------------------------------------------------------
// Answers

const money = z.number().min(0).meta({
  description: "A JSON number with the currency's decimals at most (4235.00 is sent as 4235)",
});

export const invoiceLine = z.strictObject({
  description: z.string(),
  quantity: z.number(),
  unit_price: z.number(),
  tax_rate: z.number(),
  /** quantity × unit_price, rounded half-up to the currency's minor unit. */
  subtotal: money,
  /** subtotal × tax_rate / 100, rounded half-up. */
  tax: money,
  total: money,
}).meta({ id: "InvoiceLine" });

const client = z.strictObject({
  /** Null when the contact was deleted since. */
  id: contactId.nullable(),
  /** As invoiced. */
  name: z.string(),
});

const invoiceFields = {
  id: invoiceId,
  /** Issued: INV-<year>-<nnn>; received: the supplier's number, or null. */
  number: z.string().nullable(),
  type: invoiceType,
  status: invoiceStatus,
  client,
  subtotal: money,
  tax: money,
  total: money,
  currency: z.string(),
  issue_date: z.string(),
  due_date: z.string(),
  line_items: z.array(invoiceLine),
  notes: z.string().nullable(),
  sent_at: timestamp.nullable(),
  paid_at: timestamp.nullable(),
  cancelled_at: timestamp.nullable(),
  created_at: timestamp,
  updated_at: timestamp,
};

/** An invoice as lists show it (the spec's list item, and a little more). */
export const invoiceSummary = z.strictObject(invoiceFields).meta({ id: "InvoiceSummary" });
export type InvoiceSummary = z.input<typeof invoiceSummary>;

/** How emailing the invoice went (send, and create with auto_send). */
const emailOutcome = z.strictObject({
  /** The message in /v1/messages. */
  message_id: z.string(),
  status: z.enum(["sent", "failed"]),
  /** Sandbox: nothing left BiVelio. */
  simulated: z.literal(true).optional(),
  /** Why it failed: the provider's code and message. */
  error: z.strictObject({ code: z.string(), message: z.string() }).optional(),
});

/** One invoice, with a signed URL of its PDF (valid for an hour; ask again for a new one). */
export const invoice = z.strictObject({
  ...invoiceFields,
  /**
   * A signed URL that returns the PDF; null only when Storage could not be reached just
   * now (`get` makes it again).
   */
  pdf_url: z.url().nullable(),
  pdf_url_expires_at: timestamp.nullable(),
  email: emailOutcome.optional(),
}).meta({ id: "Invoice" });
export type Invoice = z.input<typeof invoice>;

export const invoiceList = z.strictObject({
  invoices: z.array(invoiceSummary),
  pagination,
}).meta({ id: "InvoiceList" });
