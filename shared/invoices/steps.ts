/**
 * The invoices group's workflow step: create_invoice takes the create action's fields (but
 * auto_send, an email that cannot be part of a transaction) and creates the invoice, its
 * number and invoice.created in the transaction that records the step, so a retried step
 * never makes a second invoice or takes a second number. Its output is the invoice without
 * a PDF URL: the PDF is made when the invoice is first asked for (`get`, `pdf`).
 */
import { ApiError } from "../platform/errors.ts";
import { defineStep, StepFailure, type StepType } from "../workflows/steps.ts";
import { createInvoice } from "./invoices.ts";
import { createInvoiceInput } from "./schemas.ts";

export const INVOICE_STEP_TYPES: Record<string, StepType> = {
  create_invoice: defineStep({
    effect: "transactional",
    scope: { group: "invoices", level: "write" },
    config: createInvoiceInput.omit({ auto_send: true }),
    run: async ({ tx, config }) => {
      try {
        return { output: (await createInvoice(tx, config)).summary };
      } catch (error) {
        // The caller's data (a contact not found, a total too large): retrying will not help.
        if (error instanceof ApiError && error.status < 500) {
          throw new StepFailure(error.code, error.message, false, error.options.details);
        }
        throw error;
      }
    },
  }),
};
