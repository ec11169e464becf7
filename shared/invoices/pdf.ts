/**
 * An invoice's PDF, rendered with pdf-lib: number, dates, client, lines and totals (A4,
 * Helvetica; more pages when the lines need them), and where it is kept: the `invoices`
 * bucket, under the environment's folder (shared/platform/storage.ts), one file per revision
 * of the invoice, so a signed URL always names the PDF it was made for.
 */
import { PDFDocument, type PDFFont, type PDFPage, rgb, StandardFonts } from "pdf-lib";
import type { Environment } from "../platform/environment.ts";
import { ApiError } from "../platform/errors.ts";
import { clientFor } from "../platform/providers.ts";
import { BUCKETS, safeFileName, storage } from "../platform/storage.ts";
import type { LoadedInvoice } from "./invoices.ts";
import { minorUnit, toMoney } from "./money.ts";
import type { InvoiceSummary } from "./schemas.ts";

/** How long a `pdf_url` works; `get` gives a fresh one. */
export const PDF_URL_SECONDS = 3600;

const PAGE: [number, number] = [595.28, 841.89]; // A4 in points
const MARGIN = 50;
const BODY = 10;
const LINE_HEIGHT = 15;

/** An amount with the currency's decimals and thousands separators: `4,235.00`. */
export const formatAmount = (amount: number, currency: string) =>
  grouped(toMoney(amount).toFixed(minorUnit(currency)));

/** A unit price: the currency's decimals at least, more when it has them (`0.0125`). */
const formatPrice = (price: number, currency: string) =>
  grouped(toMoney(price).toFixed(Math.max(minorUnit(currency), toMoney(price).decimalPlaces())));

function grouped(fixed: string) {
  const [whole, fraction] = fixed.split(".");
  const withCommas = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return fraction === undefined ? withCommas : `${withCommas}.${fraction}`;
}

/** A decimal as written, without trailing zeros: `20`, `0.5`. */
const formatDecimal = (value: number) => toMoney(value).toFixed();

/** Text the standard font can draw: characters it lacks (beyond Latin-1 mostly) become `?`. */
function drawable(font: PDFFont, text: string): string {
  const supported = new Set(font.getCharacterSet());
  return [...text.replace(/[\r\n\t]+/g, " ")]
    .map((ch) => (supported.has(ch.codePointAt(0)!) ? ch : "?"))
    .join("");
}

/** `text` cut to `width` points with an ellipsis. */
function fitted(font: PDFFont, text: string, size: number, width: number): string {
  if (font.widthOfTextAtSize(text, size) <= width) return text;
  let cut = text;
  while (cut.length > 0 && font.widthOfTextAtSize(`${cut}...`, size) > width) {
    cut = cut.slice(0, -1);
  }
  return `${cut}...`;
}

export async function renderInvoicePdf(invoice: InvoiceSummary): Promise<Uint8Array> {
  const pdf = await PDFDocument.create();
  const regular = await pdf.embedFont(StandardFonts.Helvetica);
  const bold = await pdf.embedFont(StandardFonts.HelveticaBold);
  const title = invoice.type === "issued" ? "INVOICE" : "RECEIVED INVOICE";
  pdf.setTitle(`${title} ${invoice.number ?? invoice.id}`);
  pdf.setProducer("BiVelio");

  let page: PDFPage = pdf.addPage(PAGE);
  let y = PAGE[1] - MARGIN;
  const text = (
    value: string,
    x: number,
    options: { font?: PDFFont; size?: number; width?: number; right?: boolean } = {},
  ) => {
    const font = options.font ?? regular;
    const size = options.size ?? BODY;
    let shown = drawable(font, value);
    if (options.width) shown = fitted(font, shown, size, options.width);
    const at = options.right ? x - font.widthOfTextAtSize(shown, size) : x;
    page.drawText(shown, { x: at, y, size, font, color: rgb(0.1, 0.1, 0.1) });
  };
  const newLine = (times = 1) => {
    y -= LINE_HEIGHT * times;
    if (y < MARGIN + LINE_HEIGHT) {
      page = pdf.addPage(PAGE);
      y = PAGE[1] - MARGIN;
    }
  };

  text(title, MARGIN, { font: bold, size: 20 });
  text(invoice.number ?? "", PAGE[0] - MARGIN, { font: bold, size: 14, right: true });
  newLine(2);
  text(`Issue date: ${invoice.issue_date}`, MARGIN);
  newLine();
  text(`Due date: ${invoice.due_date}`, MARGIN);
  newLine();
  text(`Currency: ${invoice.currency}`, MARGIN);
  newLine(2);
  text(invoice.type === "issued" ? "Bill to" : "Supplier", MARGIN, { font: bold });
  newLine();
  text(invoice.client.name, MARGIN, { width: PAGE[0] - 2 * MARGIN });
  newLine(2);

  // Description | Qty | Unit price | Tax % | Total
  const columns = { qty: 330, price: 410, rate: 460, total: PAGE[0] - MARGIN };
  const header = () => {
    text("Description", MARGIN, { font: bold });
    text("Qty", columns.qty, { font: bold, right: true });
    text("Unit price", columns.price, { font: bold, right: true });
    text("Tax %", columns.rate, { font: bold, right: true });
    text("Total", columns.total, { font: bold, right: true });
    newLine();
  };
  header();
  for (const line of invoice.line_items) {
    const before = page;
    text(line.description, MARGIN, { width: columns.qty - MARGIN - 50 });
    text(formatDecimal(line.quantity), columns.qty, { right: true });
    text(formatPrice(line.unit_price, invoice.currency), columns.price, { right: true });
    text(formatDecimal(line.tax_rate), columns.rate, { right: true });
    text(formatAmount(line.total, invoice.currency), columns.total, { right: true });
    newLine();
    if (page !== before) header();
  }
  newLine();
  const totals: [string, number][] = [
    ["Subtotal", invoice.subtotal],
    ["Tax", invoice.tax],
    ["Total", invoice.total],
  ];
  for (const [label, amount] of totals) {
    const font = label === "Total" ? bold : regular;
    text(label, columns.rate, { font, right: true });
    text(`${formatAmount(amount, invoice.currency)} ${invoice.currency}`, columns.total, {
      font,
      right: true,
    });
    newLine();
  }
  if (invoice.notes) {
    newLine();
    text("Notes", MARGIN, { font: bold });
    newLine();
    // Wrapped by words to the page's width.
    const words = drawable(regular, invoice.notes).split(" ");
    let current = "";
    for (const word of words) {
      const next = current ? `${current} ${word}` : word;
      if (regular.widthOfTextAtSize(next, BODY) > PAGE[0] - 2 * MARGIN && current) {
        text(current, MARGIN, { width: PAGE[0] - 2 * MARGIN });
        newLine();
        current = word;
      } else {
        current = next;
      }
    }
    if (current) text(current, MARGIN, { width: PAGE[0] - 2 * MARGIN });
  }
  return await pdf.save();
}

/** Where the PDF of `revision` is kept: `<org>/<invoice id>/<number>-r<revision>.pdf`. */
export const pdfPathOf = (orgId: string, invoice: InvoiceSummary, revision: number) =>
  `${orgId}/${invoice.id}/${safeFileName(invoice.number ?? invoice.id)}-r${revision}.pdf`;

export interface PdfRequest {
  orgId: string;
  environment: Environment;
  invoice: LoadedInvoice;
}

export interface ProvidedPdf {
  url: string;
  expiresAt: Date;
  /** Set when it was rendered and stored now: the path to remember for its revision. */
  stored: { path: string; revision: number } | null;
  /** The bytes, when asked for. */
  bytes?: Uint8Array;
}

/**
 * The invoice's PDF in Storage and a signed URL of it: the stored one when it is of the
 * invoice's revision and still there, else rendered and stored now (no transaction held).
 */
export async function providePdf(
  request: PdfRequest,
  options: { withBytes?: boolean } = {},
): Promise<ProvidedPdf> {
  const files = clientFor(storage, request.environment);
  const { invoice } = request;
  const sign = async (path: string) => {
    const expiresAt = new Date(Date.now() + PDF_URL_SECONDS * 1000);
    return { url: await files.signedUrl(BUCKETS.invoices, path, PDF_URL_SECONDS), expiresAt };
  };
  if (invoice.currentPdfPath) {
    try {
      const bytes = options.withBytes
        ? (await files.getObject(BUCKETS.invoices, invoice.currentPdfPath))?.bytes
        : undefined;
      if (!options.withBytes || bytes) {
        return { ...await sign(invoice.currentPdfPath), stored: null, bytes };
      }
    } catch (error) {
      // Gone from Storage (removed by hand, lost): rendered again below.
      if (!(error instanceof ApiError && error.code === "RESOURCE_NOT_FOUND")) throw error;
    }
  }
  const bytes = await renderInvoicePdf(invoice.summary);
  const path = pdfPathOf(request.orgId, invoice.summary, invoice.revision);
  await files.putObject(BUCKETS.invoices, path, bytes, "application/pdf");
  return { ...await sign(path), stored: { path, revision: invoice.revision }, bytes };
}
