/**
 * Emailing an invoice to its client with the PDF attached, through the organization's email
 * channel and the messages group's own three phases (shared/messages/messages.ts): the
 * message is stored `queued` with the invoice's change, sent with no transaction held, then
 * recorded `sent` (message.sent) or `failed` with the provider's code. Sandbox callers'
 * messages are simulated by the messages group (nothing leaves).
 */
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import type { SentMessage } from "../messages/channel.ts";
import { callSend, type PreparedSend, prepareSend } from "../messages/messages.ts";
import type { LoadedInvoice } from "./invoices.ts";
import { formatAmount } from "./pdf.ts";

export type { PreparedSend };

/** Phase 1: the message to the client, queued (400 when no email channel is connected). */
export async function prepareInvoiceEmail(
  tx: Tx,
  invoice: LoadedInvoice,
  to: string,
  environment: Environment,
): Promise<PreparedSend> {
  const { summary } = invoice;
  const amount = `${formatAmount(summary.total, summary.currency)} ${summary.currency}`;
  const body = [
    `Dear ${summary.client.name},`,
    "",
    `Please find attached invoice ${summary.number} of ${summary.issue_date} for ${amount}, ` +
    `due on ${summary.due_date}.`,
    ...(summary.notes ? ["", summary.notes] : []),
  ].join("\n");
  return await prepareSend(tx, {
    channel: "email",
    to,
    message: { type: "text", subject: `Invoice ${summary.number}`, body },
    metadata: { contact_id: summary.client.id ?? undefined, invoice_id: summary.id },
  }, { environment });
}

/** Phase 2: the email with the PDF attached. */
export async function sendInvoiceEmail(
  prepared: PreparedSend,
  invoice: LoadedInvoice,
  pdf: Uint8Array,
  signal: AbortSignal,
): Promise<SentMessage> {
  const filename = `${invoice.summary.number ?? invoice.summary.id}.pdf`;
  return await callSend({
    ...prepared,
    outbound: {
      ...prepared.outbound,
      attachments: [{ filename, contentType: "application/pdf", content: pdf }],
    },
  }, { signal });
}
