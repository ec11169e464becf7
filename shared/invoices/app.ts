/**
 * POST /v1/invoices[/<action>]: invoices issued and received, with exact money, numbering
 * per organization, environment and year, and a PDF in Storage.
 *
 * Actions that answer one invoice run in three phases (shared/platform/app.ts) so no
 * connection is held while Storage works: the change (transaction 1) → the PDF rendered and
 * stored when its revision has none yet, and a signed URL (no transaction) → the stored PDF
 * remembered (transaction 2). `send` and `create` with `auto_send` also email it there.
 */
import { z } from "zod";
import type { SentMessage } from "../messages/channel.ts";
import { recordSend } from "../messages/messages.ts";
import {
  type ActionContext,
  BinaryAnswer,
  binaryOutput,
  type CallOutcome,
  createGroupApp,
  defineAction,
  FailedAfterRecord,
} from "../platform/app.ts";
import type { Tx } from "../platform/db.ts";
import { invalidField } from "../platform/errors.ts";
import type { Principal } from "../platform/principal.ts";
import { isoTimestamp } from "../platform/time.ts";
import { type PreparedSend, prepareInvoiceEmail, sendInvoiceEmail } from "./email.ts";
import {
  cancelInvoice,
  createInvoice,
  getInvoice,
  invoiceToSend,
  issueInvoice,
  listInvoices,
  type LoadedInvoice,
  markInvoicePaid,
  recordInvoiceSent,
  recordStoredPdf,
  updateInvoice,
} from "./invoices.ts";
import { type ProvidedPdf, providePdf, renderInvoicePdf } from "./pdf.ts";
import {
  byInvoiceId,
  createInvoiceInput,
  type Invoice,
  invoice,
  invoiceList,
  listInvoicesInput,
  markPaidInput,
  updateInvoiceInput,
} from "./schemas.ts";

/** What phase 1 hands on: the invoice, and the email to send when one is asked for. */
interface Prepared {
  invoice: LoadedInvoice;
  orgId: string;
  environment: Principal["environment"];
  email?: PreparedSend;
}

interface Called {
  pdf: ProvidedPdf | null;
  /** Why the PDF could not be made or signed (Storage down): the answer's pdf_url is null. */
  pdfError?: unknown;
  sent?: CallOutcome<SentMessage>;
}

const prepared = (
  invoice: LoadedInvoice,
  principal: Principal,
  email?: PreparedSend,
): Prepared => ({ invoice, orgId: principal.orgId, environment: principal.environment, email });

/** Phase 2: the PDF (and the email with it attached). Never throws: phase 3 records all. */
async function callPdf(p: Prepared, { signal }: { signal: AbortSignal }): Promise<Called> {
  let pdf: ProvidedPdf;
  try {
    pdf = await providePdf(p, { withBytes: p.email !== undefined });
  } catch (error) {
    console.error(JSON.stringify({
      level: "error",
      what: "invoice PDF",
      invoice_id: p.invoice.summary.id,
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    }));
    return { pdf: null, pdfError: error, ...(p.email ? { sent: { ok: false, error } } : {}) };
  }
  if (!p.email) return { pdf };
  try {
    return {
      pdf,
      sent: { ok: true, value: await sendInvoiceEmail(p.email, p.invoice, pdf.bytes!, signal) },
    };
  } catch (error) {
    return { pdf, sent: { ok: false, error } };
  }
}

/**
 * Phase 3: the stored PDF remembered, the email recorded (sent_at; a sent draft is pending)
 * and the answer. `failSend`: a failed email is the action's error (send), not a note in
 * the answer (create, whose invoice exists either way).
 */
async function recordPdf(
  outcome: CallOutcome<Called>,
  { tx, prepared: p }: ActionContext<unknown> & { prepared: Prepared },
  failSend = false,
): Promise<Invoice | FailedAfterRecord> {
  // callPdf never throws; a failure here is a bug, answered as such.
  if (!outcome.ok) throw outcome.error;
  const { pdf, sent } = outcome.value;
  if (pdf?.stored) {
    await recordStoredPdf(tx, p.invoice.summary.id, pdf.stored.revision, pdf.stored.path);
  }
  let invoice = p.invoice;
  let email: Invoice["email"];
  if (p.email && sent) {
    const recorded = await recordSend(tx, p.email, sent);
    if (recorded.ok) {
      invoice = await recordInvoiceSent(tx, p.invoice.summary.id);
      email = {
        message_id: recorded.row.id,
        status: "sent",
        ...(recorded.row.simulated ? { simulated: true as const } : {}),
      };
    } else {
      if (failSend) return new FailedAfterRecord(recorded.error);
      email = {
        message_id: p.email.messageId,
        status: "failed",
        error: { code: recorded.error.code, message: recorded.error.message },
      };
    }
  }
  return {
    ...invoice.summary,
    pdf_url: pdf?.url ?? null,
    pdf_url_expires_at: pdf ? isoTimestamp(pdf.expiresAt) : null,
    ...(email ? { email } : {}),
  };
}

/** An action answering one invoice: `change` in phase 1, then the PDF phases. */
function invoiceAction<S extends z.ZodType>(definition: {
  name: string;
  summary: string;
  scope: "read" | "write";
  mutates: boolean;
  input: S;
  change(tx: Tx, data: z.output<S>): Promise<LoadedInvoice>;
}) {
  return defineAction({
    name: definition.name,
    summary: definition.summary,
    scope: definition.scope,
    mutates: definition.mutates,
    input: definition.input,
    output: invoice,
    handler: async ({ tx, data, principal }) =>
      prepared(await definition.change(tx, data), principal),
    call: callPdf,
    record: (outcome, ctx) => recordPdf(outcome, ctx),
  });
}

export const actions = [
  defineAction({
    name: "list",
    summary: "List invoices issued or received (type, status, issue date range)",
    scope: "read",
    mutates: false,
    input: listInvoicesInput,
    output: invoiceList,
    handler: ({ tx, data }) => listInvoices(tx, data),
  }),
  invoiceAction({
    name: "get",
    summary: "Get an invoice with a fresh signed URL of its PDF",
    scope: "read",
    mutates: false,
    input: byInvoiceId,
    change: (tx, data) => getInvoice(tx, data.id),
  }),
  defineAction({
    name: "create",
    summary: "Create an invoice (a numbered draft) with its PDF; auto_send emails it",
    scope: "write",
    mutates: true,
    input: createInvoiceInput,
    output: invoice,
    handler: async ({ tx, data, principal }) => {
      const { auto_send, ...input } = data;
      const created = await createInvoice(tx, input);
      if (!auto_send) return prepared(created, principal);
      // Refused (400) here, before the invoice commits, when it cannot be emailed.
      if (input.type !== "issued") {
        throw invalidField("auto_send", "issued_only", "Only issued invoices are emailed.");
      }
      const { email } = await invoiceToSend(tx, created.summary.id, "client_id");
      return prepared(
        created,
        principal,
        await prepareInvoiceEmail(tx, created, email, principal.environment),
      );
    },
    call: callPdf,
    record: (outcome, ctx) => recordPdf(outcome, ctx),
  }),
  invoiceAction({
    name: "update",
    summary: "Change a draft (only the fields sent; line_items replaces the lines); 409 otherwise",
    scope: "write",
    mutates: true,
    input: updateInvoiceInput,
    change: updateInvoice,
  }),
  invoiceAction({
    name: "issue",
    summary: "Issue a draft: it becomes pending (and overdue after its due date)",
    scope: "write",
    mutates: true,
    input: byInvoiceId,
    change: (tx, data) => issueInvoice(tx, data.id),
  }),
  defineAction({
    name: "send",
    summary: "Email the invoice to its client with the PDF attached (a draft becomes pending)",
    scope: "write",
    mutates: true,
    input: byInvoiceId,
    output: invoice,
    handler: async ({ tx, data, principal }) => {
      const { invoice, email } = await invoiceToSend(tx, data.id);
      return prepared(
        invoice,
        principal,
        await prepareInvoiceEmail(tx, invoice, email, principal.environment),
      );
    },
    call: callPdf,
    record: (outcome, ctx) => recordPdf(outcome, ctx, true),
  }),
  invoiceAction({
    name: "mark_paid",
    summary: "Mark a pending or overdue invoice paid (invoice.paid)",
    scope: "write",
    mutates: true,
    input: markPaidInput,
    change: (tx, data) => markInvoicePaid(tx, data.id, data.paid_at),
  }),
  invoiceAction({
    name: "cancel",
    summary: "Cancel an invoice that is not paid; it keeps its number",
    scope: "write",
    mutates: true,
    input: byInvoiceId,
    change: (tx, data) => cancelInvoice(tx, data.id),
  }),
  defineAction({
    name: "pdf",
    summary: "The invoice's PDF itself (application/pdf)",
    scope: "read",
    mutates: false,
    input: byInvoiceId,
    output: binaryOutput("application/pdf"),
    handler: ({ tx, data, principal }) =>
      getInvoice(tx, data.id).then((loaded) => prepared(loaded, principal)),
    // The stored PDF of this revision, or one rendered now (stored by the next `get`).
    call: async (p) => {
      const stored = p.invoice.currentPdfPath ? await providePdf(p, { withBytes: true }) : null;
      const bytes = stored?.bytes ?? await renderInvoicePdf(p.invoice.summary);
      return new BinaryAnswer(
        bytes,
        "application/pdf",
        `${p.invoice.summary.number ?? p.invoice.summary.id}.pdf`,
      );
    },
  }),
];

export default createGroupApp("invoices", actions);
