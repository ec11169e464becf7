import assert from "node:assert/strict";
import {
  amountToJson,
  decimalToJson,
  inputDecimalProblem,
  invoiceAmounts,
  isCurrency,
  lineAmounts,
  type LineInput,
  minorUnit,
  Money,
  roundToMinor,
  taxRateProblem,
  toMoney,
  toNumeric,
  withinLimits,
} from "./money.ts";

const line = (quantity: number | string, unit_price: number | string, tax_rate: number | string) =>
  ({
    quantity: toMoney(quantity),
    unit_price: toMoney(unit_price),
    tax_rate: toMoney(tax_rate),
  }) satisfies LineInput;

const texts = (a: { subtotal: Money; tax: Money; total: Money }, currency = "EUR") => ({
  subtotal: toNumeric(a.subtotal, currency),
  tax: toNumeric(a.tax, currency),
  total: toNumeric(a.total, currency),
});

Deno.test("the spec's example: 20 × 150.00 + 1 × 500.00 at 21 % → 3500.00, 735.00, 4235.00", () => {
  const amounts = invoiceAmounts([line(20, 150.00, 21), line(1, 500.00, 21)], "EUR");
  assert.deepEqual(texts(amounts), { subtotal: "3500.00", tax: "735.00", total: "4235.00" });
  assert.deepEqual(texts(amounts.lines[0]), {
    subtotal: "3000.00",
    tax: "630.00",
    total: "3630.00",
  });
  // As the API sends them: JSON numbers (4235.00 is 4235 in JSON).
  assert.equal(JSON.stringify(amountToJson(amounts.total, "EUR")), "4235");
});

Deno.test("0.1 × 3 is exactly 0.30 (a double gives 0.30000000000000004)", () => {
  assert.notEqual(0.1 * 3, 0.3);
  const amounts = invoiceAmounts([line(3, 0.1, 0)], "EUR");
  assert.equal(toNumeric(amounts.total, "EUR"), "0.30");
  assert.equal(amountToJson(amounts.total, "EUR"), 0.3);
  // Three lines of 0.1 add up exactly too.
  const three = invoiceAmounts([line(1, 0.1, 0), line(1, 0.1, 0), line(1, 0.1, 0)], "EUR");
  assert.equal(toNumeric(three.total, "EUR"), "0.30");
});

Deno.test("many lines: 1000 lines of 0.01 at 10 % sum exactly, tax rounded per line", () => {
  const lines = Array.from({ length: 1000 }, () => line(1, "0.01", 10));
  const amounts = invoiceAmounts(lines, "EUR");
  // Each line's tax 0.001 rounds to 0.00: tax per line, not on the sum (which would be 1.00).
  assert.deepEqual(texts(amounts), { subtotal: "10.00", tax: "0.00", total: "10.00" });
  const floats = lines.reduce((sum) => sum + 0.01, 0);
  assert.notEqual(floats, 10, "a float sum drifts");
});

Deno.test("rounding is half-up at .005 (not banker's, not the double's 1.00499…)", () => {
  assert.equal(roundToMinor(new Money("1.005"), "EUR").toFixed(2), "1.01");
  assert.equal(roundToMinor(new Money("1.015"), "EUR").toFixed(2), "1.02");
  assert.equal(roundToMinor(new Money("1.025"), "EUR").toFixed(2), "1.03");
  assert.equal(roundToMinor(new Money("1.0049999"), "EUR").toFixed(2), "1.00");
  assert.equal(Math.round(1.005 * 100) / 100, 1, "the float way rounds 1.005 down");
  // A line: 1 × 10.05 at 10 % → tax 1.005 → 1.01.
  assert.deepEqual(texts(lineAmounts(line(1, "10.05", 10), "EUR")), {
    subtotal: "10.05",
    tax: "1.01",
    total: "11.06",
  });
  // quantity × price rounded half-up too: 3 × 0.335 = 1.005 → 1.01.
  assert.equal(toNumeric(lineAmounts(line(3, "0.335", 0), "USD").subtotal, "USD"), "1.01");
});

Deno.test("JPY has no minor unit: amounts round to whole yen; KWD has 3 decimals", () => {
  assert.equal(minorUnit("JPY"), 0);
  const yen = lineAmounts(line(3, 333.5, 10), "JPY");
  // 1000.5 → 1001; tax 100.1 → 100.
  assert.deepEqual(texts(yen, "JPY"), { subtotal: "1001", tax: "100", total: "1101" });
  assert.equal(JSON.stringify(amountToJson(yen.total, "JPY")), "1101");
  const half = lineAmounts(line(1, 1000, 8.05), "JPY"); // tax 80.5 → 81
  assert.equal(toNumeric(half.tax, "JPY"), "81");
  assert.equal(minorUnit("KWD"), 3);
  assert.equal(toNumeric(lineAmounts(line(1, "1.2345", 0), "KWD").total, "KWD"), "1.235");
});

Deno.test("large amounts stay exact up to the limit, and are refused beyond it", () => {
  const big = invoiceAmounts([line(1, "999999999.99", 0), line(999, "999999.99", 21)], "EUR");
  assert.deepEqual(texts(big), {
    subtotal: "1998999990.00",
    tax: "209789997.90",
    total: "2208789987.90",
  });
  assert.equal(amountToJson(big.total, "EUR"), 2208789987.9);
  assert.ok(withinLimits(big));
  const nearMax = invoiceAmounts([line(1, "999999999999.99", 0)], "EUR");
  assert.ok(withinLimits(nearMax));
  assert.equal(amountToJson(nearMax.total, "EUR"), 999999999999.99);
  const over = invoiceAmounts([line(1001, "999999999.99", 0)], "EUR");
  assert.ok(!withinLimits(over));
  // Beyond 15 significant digits a number would change: refused rather than sent changed.
  assert.throws(() => amountToJson(new Money("12345678901234567.89"), "EUR"), RangeError);
});

Deno.test("inputs: numbers read as the decimal written, strings as written", () => {
  assert.equal(toMoney(0.1).toFixed(), "0.1");
  assert.equal(toMoney(150.00).toFixed(), "150");
  assert.equal(toMoney(" 150.005 ").toFixed(), "150.005");
  assert.equal(decimalToJson(toMoney("0.333333")), 0.333333);
  assert.equal(inputDecimalProblem(toMoney("0.0000001"), { positive: true }), "at most 6 decimals");
  assert.equal(inputDecimalProblem(toMoney(0), { positive: true }), "must be greater than 0");
  assert.equal(inputDecimalProblem(toMoney(0), { positive: false }), null);
  assert.equal(inputDecimalProblem(toMoney(-1), { positive: false }), "must not be negative");
  assert.equal(
    inputDecimalProblem(toMoney("123456789.1234567"), { positive: true }),
    "at most 6 decimals",
  );
  assert.equal(
    inputDecimalProblem(toMoney("1234567890.123456"), { positive: true }),
    "at most 15 significant digits",
  );
  assert.equal(inputDecimalProblem(toMoney("1e12"), { positive: true }), "must be less than 1e12");
  assert.equal(taxRateProblem(toMoney(21)), null);
  assert.equal(taxRateProblem(toMoney(8.875)), null);
  assert.equal(taxRateProblem(toMoney(100.5)), "must be a percentage from 0 to 100");
  assert.equal(taxRateProblem(toMoney("7.1234")), "at most 3 decimals");
});

Deno.test("currencies: ISO 4217 codes only", () => {
  for (const code of ["EUR", "USD", "JPY", "GBP", "CHF", "KWD"]) assert.ok(isCurrency(code), code);
  for (const code of ["eur", "EURO", "XXX", "XAU", "ABC", ""]) assert.ok(!isCurrency(code), code);
});
