/**
 * Invoice money, exact: decimal arithmetic (decimal.js), never binary floats.
 *
 * The rule, per line then per invoice:
 *   line subtotal = round(quantity × unit_price)
 *   line tax      = round(line subtotal × tax_rate / 100)
 *   line total    = line subtotal + line tax
 *   invoice subtotal, tax and total = the sums of the lines' (so they always add up)
 * where round() is half-up (away from zero at exactly half; every amount here is ≥ 0) to the
 * currency's minor unit: 2 decimals for EUR and USD, 0 for JPY, 3 for KWD (ISO 4217).
 *
 * Amounts leave the API as JSON numbers rounded to the minor unit (3500.00 is sent as 3500,
 * JSON has no trailing zeros). They are kept within 15 significant digits (the limits
 * below), so every such number is exactly the decimal it stands for, as a double holds it.
 * Inputs are JSON numbers (the body parser refuses any a double cannot hold exactly) or
 * decimal strings ("150.00"), read as the decimal written.
 */
import { Decimal } from "decimal.js";

/** decimal.js set for money: room for any product of the limits below, half-up rounding. */
export const Money = Decimal.clone({ precision: 40, rounding: Decimal.ROUND_HALF_UP });
export type Money = InstanceType<typeof Money>;

/**
 * ISO 4217 codes of money an invoice can be in (funds, metals and test codes left out),
 * each with its minor unit: 2 unless listed below.
 */
const ISO_4217 = (
  "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP " +
  "BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP " +
  "GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES " +
  "KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU " +
  "MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON " +
  "RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND " +
  "TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG"
).split(" ");
/** The currencies whose minor unit is not 2 (ISO 4217): 0 or 3 decimals. */
const MINOR_UNITS_NOT_2: Record<string, number> = {
  ...Object.fromEntries(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split(" ").map((c) => [c, 0]),
  ),
  ...Object.fromEntries("BHD IQD JOD KWD LYD OMR TND".split(" ").map((c) => [c, 3])),
};

/** Currency code → its minor unit (decimals). */
export const MINOR_UNITS: ReadonlyMap<string, number> = new Map(
  ISO_4217.map((code) => [code, MINOR_UNITS_NOT_2[code] ?? 2]),
);

export const isCurrency = (code: string) => MINOR_UNITS.has(code);

export function minorUnit(currency: string): number {
  const digits = MINOR_UNITS.get(currency);
  if (digits === undefined) throw new RangeError(`Unknown currency '${currency}'`);
  return digits;
}

/** Limits that keep every amount the API sends within 15 significant digits (exact). */
export const LIMITS = {
  /** quantity and unit_price: at most this many decimals… */
  maxInputDecimals: 6,
  /** …and significant digits. */
  maxInputDigits: 15,
  /** tax_rate, a percentage 0-100: at most this many decimals (8.875). */
  maxTaxRateDecimals: 3,
  /** Every amount (lines and the invoice) stays below this, in major units. */
  maxAmount: new Money("1e12"),
} as const;

/** A decimal from a JSON number (the decimal it was written as) or a decimal string. */
export function toMoney(value: number | string | Money): Money {
  if (value instanceof Money) return value;
  // A double prints as the shortest decimal that reads back as itself: the JSON's text for
  // any number the body parser let through (0.1 stays 0.1, never 0.1000000000000000055…).
  return new Money(typeof value === "number" ? String(value) : value.trim());
}

/** Half-up to the currency's minor unit. */
export const roundToMinor = (amount: Money, currency: string): Money =>
  amount.toDecimalPlaces(minorUnit(currency), Money.ROUND_HALF_UP);

export interface LineInput {
  quantity: Money;
  unit_price: Money;
  /** Percent: 21 for 21 %. */
  tax_rate: Money;
}

export interface Amounts {
  subtotal: Money;
  tax: Money;
  total: Money;
}

export function lineAmounts(line: LineInput, currency: string): Amounts {
  const subtotal = roundToMinor(line.quantity.times(line.unit_price), currency);
  const tax = roundToMinor(subtotal.times(line.tax_rate).dividedBy(100), currency);
  return { subtotal, tax, total: subtotal.plus(tax) };
}

export interface InvoiceAmounts extends Amounts {
  lines: Amounts[];
}

/** Each line's amounts and the invoice's: sums of the lines' rounded amounts. */
export function invoiceAmounts(lines: LineInput[], currency: string): InvoiceAmounts {
  const perLine = lines.map((line) => lineAmounts(line, currency));
  const sum = (pick: (a: Amounts) => Money) =>
    perLine.reduce((all, a) => all.plus(pick(a)), new Money(0));
  return {
    lines: perLine,
    subtotal: sum((a) => a.subtotal),
    tax: sum((a) => a.tax),
    total: sum((a) => a.total),
  };
}

/** The text PostgreSQL's `numeric` stores: the amount with the currency's decimals. */
export const toNumeric = (amount: Money, currency: string) => amount.toFixed(minorUnit(currency));

/**
 * An amount as the API sends it: a JSON number with the currency's decimals at most. Within
 * LIMITS it is exact; beyond them this throws rather than send a changed number.
 */
export function amountToJson(amount: Money | string, currency: string): number {
  return exactNumber(toMoney(amount).toDecimalPlaces(minorUnit(currency), Money.ROUND_HALF_UP));
}

/** A quantity, unit price or rate as a JSON number (exact within LIMITS). */
export const decimalToJson = (value: Money | string): number => exactNumber(toMoney(value));

function exactNumber(value: Money): number {
  const number = value.toNumber();
  if (!new Money(String(number)).equals(value)) {
    throw new RangeError(`${value.toFixed()} cannot be sent exactly as a JSON number`);
  }
  return number;
}

/** Why a quantity or unit price is refused, or null: negative, too many decimals or digits. */
export function inputDecimalProblem(
  value: Money,
  options: { positive: boolean },
): string | null {
  if (!value.isFinite()) return "must be a finite number";
  if (options.positive ? !value.greaterThan(0) : value.isNegative()) {
    return options.positive ? "must be greater than 0" : "must not be negative";
  }
  if (value.decimalPlaces() > LIMITS.maxInputDecimals) {
    return `at most ${LIMITS.maxInputDecimals} decimals`;
  }
  if (value.precision(true) > LIMITS.maxInputDigits) {
    return `at most ${LIMITS.maxInputDigits} significant digits`;
  }
  if (value.greaterThanOrEqualTo(LIMITS.maxAmount)) return "must be less than 1e12";
  return null;
}

/** Why a tax rate is refused, or null: it is a percentage 0-100 with at most 3 decimals. */
export function taxRateProblem(value: Money): string | null {
  if (!value.isFinite() || value.isNegative() || value.greaterThan(100)) {
    return "must be a percentage from 0 to 100";
  }
  if (value.decimalPlaces() > LIMITS.maxTaxRateDecimals) {
    return `at most ${LIMITS.maxTaxRateDecimals} decimals`;
  }
  return null;
}

/** Whether the invoice's amounts stay within what the API can send exactly. */
export const withinLimits = (amounts: InvoiceAmounts) => amounts.total.lessThan(LIMITS.maxAmount);
