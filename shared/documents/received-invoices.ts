/**
 * The hook for received invoices: `extract` with `document_type: "invoice"` and
 * `create_received_invoice: true` records the extraction as a received invoice (a draft,
 * with the supplier as a contact) in the same transaction as the extraction: finishRun calls
 * {@link RECEIVED_INVOICES}`.create`, which the invoices group fills
 * (shared/invoices/received.ts). While it is null the option is refused up front (400, before
 * any credit is spent) and nothing is faked.
 */
import type { Tx } from "../platform/db.ts";
import { invalidField } from "../platform/errors.ts";
import { createReceivedInvoice as recordReceivedInvoice } from "../invoices/received.ts";
import type { Extraction } from "./schemas.ts";

export interface ReceivedInvoiceHook {
  /** Records the extracted invoice; returns the new invoice's id. */
  create(tx: Tx, extraction: Extraction): Promise<{ invoice_id: string }>;
}

/** Filled by the invoices group. */
export const RECEIVED_INVOICES: { create: ReceivedInvoiceHook["create"] | null } = {
  create: recordReceivedInvoice,
};

/** Phase 1: refuses the option when it cannot be honoured (before any debit). */
export function checkReceivedInvoiceOption(
  input: { create_received_invoice?: boolean; document_type?: string | null },
) {
  if (!input.create_received_invoice) return;
  if (input.document_type !== "invoice") {
    throw invalidField(
      "create_received_invoice",
      "invoice_only",
      "create_received_invoice needs document_type 'invoice'.",
    );
  }
  if (!RECEIVED_INVOICES.create) {
    throw invalidField(
      "create_received_invoice",
      "not_available",
      "Received invoices are not built yet (the invoices group); extract without " +
        "create_received_invoice and record the invoice yourself.",
    );
  }
}

/** Phase 3: the received invoice, in the transaction that completes the extraction. */
export async function createReceivedInvoice(tx: Tx, extraction: Extraction) {
  if (!RECEIVED_INVOICES.create) {
    throw new Error("createReceivedInvoice called without the invoices group's hook");
  }
  return await RECEIVED_INVOICES.create(tx, extraction);
}
