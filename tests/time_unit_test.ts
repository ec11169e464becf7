import assert from "node:assert/strict";
import { isoTimestamp } from "../shared/platform/time.ts";

const viaToIsoString = (date: Date) => `${date.toISOString().slice(0, 19)}Z`;

Deno.test("isoTimestamp writes what toISOString writes, to the second, for any date", () => {
  const start = Date.UTC(1969, 11, 31, 23, 59, 59);
  for (let i = 0; i < 5_000; i++) {
    // Steps of a little over 3 days and 7 seconds cross month, leap-year and second edges.
    const date = new Date(start + i * 266_407_000 + (i % 1000));
    assert.equal(isoTimestamp(date), viaToIsoString(date));
  }
  assert.equal(isoTimestamp(new Date(Date.UTC(2026, 3, 7, 12, 0, 0, 999))), "2026-04-07T12:00:00Z");
});

Deno.test("isoTimestamp takes strings and null, and keeps toISOString's form outside years 1000-9999", () => {
  assert.equal(isoTimestamp("2026-11-23T08:46:12.123456+01:00"), "2026-11-23T07:46:12Z");
  assert.equal(isoTimestamp(null), null);
  assert.equal(isoTimestamp(undefined), null);
  for (const year of [999, 10000, -1]) {
    const date = new Date(Date.UTC(2000, 0, 1));
    date.setUTCFullYear(year);
    assert.equal(isoTimestamp(date), viaToIsoString(date));
  }
  assert.throws(() => isoTimestamp(new Date(Number.NaN)), RangeError);
});
