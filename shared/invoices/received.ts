/**
 * Received invoices from documents/extract (`create_received_invoice: true`): the extracted
 * invoice recorded as a `received` draft, in the transaction that completes the extraction
 * (shared/documents/received-invoices.ts calls this), with the supplier as a contact.
 *
 * The model's answer is data to check, not to trust: the supplier is matched by tax id, then
 * by name (a company contact), or created (tagged `supplier`); a field that is missing or
 * not what it should be falls back (today, 30 days, EUR) and a line that cannot be read is
 * left out. With no readable line the invoice gets one line of the extracted total, or 0.
 * It stays a draft for a person to review, then `issue` makes it pending (to pay).
 */
import { createContact } from "../contacts/contacts.ts";
import type { Tx } from "../platform/db.ts";
import type { Extraction } from "../documents/schemas.ts";
import { createInvoice, DEFAULT_PAYMENT_DAYS } from "./invoices.ts";
import {
  inputDecimalProblem,
  invoiceAmounts,
  isCurrency,
  LIMITS,
  type LineInput,
  Money,
  taxRateProblem,
  toMoney,
  withinLimits,
} from "./money.ts";
import { calendarDate } from "./schemas.ts";

type Line = LineInput & { description: string };

const record = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};

function text(value: unknown, max: number): string | null {
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value !== "string") return null;
  const trimmed = value.replace(/\s+/g, " ").trim().slice(0, max).trim();
  return trimmed === "" ? null : trimmed;
}

/** A plain decimal (a number, or "1210.00"), or null. */
function decimal(value: unknown): Money | null {
  if (typeof value === "number" && Number.isFinite(value)) return toMoney(value);
  if (typeof value === "string" && /^-?\d{1,20}(\.\d{1,20})?$/.test(value.trim())) {
    return toMoney(value);
  }
  return null;
}

const date = (value: unknown) =>
  typeof value === "string" && calendarDate.safeParse(value).success ? value : null;

/** A line the API would accept, or null: decimals past 6 rounded half-up. */
function lineOf(item: unknown, index: number): Line | null {
  const fields = record(item);
  const round = (m: Money | null) =>
    m?.toDecimalPlaces(LIMITS.maxInputDecimals, Money.ROUND_HALF_UP) ?? null;
  const quantity = round(decimal(fields.quantity ?? 1));
  const unitPrice = round(decimal(fields.unit_price));
  const taxRate = decimal(fields.tax_rate ?? 0)?.toDecimalPlaces(LIMITS.maxTaxRateDecimals);
  if (!quantity || !unitPrice || !taxRate) return null;
  if (
    inputDecimalProblem(quantity, { positive: true }) ||
    inputDecimalProblem(unitPrice, { positive: false }) || taxRateProblem(taxRate)
  ) return null;
  return {
    description: text(fields.description, 500) ?? `Item ${index + 1}`,
    quantity,
    unit_price: unitPrice,
    tax_rate: taxRate,
  };
}

/** The supplier's contact: by tax id, then by name among companies, else a new one. */
async function supplierContact(tx: Tx, issuer: unknown): Promise<string> {
  const fields = record(issuer);
  const name = text(typeof issuer === "string" ? issuer : fields.name, 200) ?? "Unknown supplier";
  const taxId = text(fields.tax_id, 100);
  const email = text(fields.email, 320);
  if (taxId) {
    const [found] = await tx<{ id: string }[]>`
      select id from public.contacts where custom_fields->>'tax_id' = ${taxId}
      order by created_at, id limit 1
    `;
    if (found) return found.id;
  }
  const [byName] = await tx<{ id: string }[]>`
    select id from public.contacts where type = 'company' and lower(name) = lower(${name})
    order by created_at, id limit 1
  `;
  if (byName) return byName.id;
  const created = await createContact(tx, {
    type: "company",
    name,
    // Only an address the contacts API itself would accept.
    ...(email && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email) ? { email } : {}),
    tags: ["supplier"],
    custom_fields: taxId ? { tax_id: taxId } : {},
  });
  return created.id;
}

export async function createReceivedInvoice(
  tx: Tx,
  extraction: Extraction,
): Promise<{ invoice_id: string }> {
  const extracted = record(extraction.extracted);
  const currencyText = text(extracted.currency, 3)?.toUpperCase();
  const currency = currencyText && isCurrency(currencyText) ? currencyText : "EUR";
  const issueDate = date(extracted.date) ?? date(extracted.issue_date) ??
    new Date().toISOString().slice(0, 10);
  const due = date(extracted.due_date);

  let lines = (Array.isArray(extracted.line_items) ? extracted.line_items : [])
    .slice(0, 200)
    .map(lineOf)
    .filter((line): line is Line => line !== null);
  if (lines.length === 0 || !withinLimits(invoiceAmounts(lines, currency))) {
    const total = decimal(extracted.total);
    const usable = total && !inputDecimalProblem(total, { positive: false }) ? total : null;
    lines = [{
      description: usable ? "Invoice total" : "Amounts to review (none could be read)",
      quantity: new Money(1),
      unit_price: usable ?? new Money(0),
      tax_rate: new Money(0),
    }];
  }

  const invoice = await createInvoice(tx, {
    type: "received",
    client_id: await supplierContact(tx, extracted.issuer ?? extracted.supplier),
    number: text(extracted.invoice_number ?? extracted.number, 100) ?? undefined,
    issue_date: issueDate,
    due_date: due && due >= issueDate ? due : undefined,
    currency,
    line_items: lines,
    notes:
      `Recorded from extraction ${extraction.extraction_id} (confidence ${extraction.confidence}); review, then issue it to make it payable.` +
      (due ? "" : ` No due date was read: ${DEFAULT_PAYMENT_DAYS} days after the issue date.`),
  }, { extractionId: extraction.extraction_id });
  return { invoice_id: invoice.summary.id };
}
