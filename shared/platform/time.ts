import { z } from "zod";

const twoDigits = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/** Timestamps as the spec writes them: ISO 8601 UTC to the second, `2026-04-07T12:00:00Z`. */
export function isoTimestamp(value: Date | string): string;
export function isoTimestamp(value: Date | string | null | undefined): string | null;
export function isoTimestamp(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  const date = value instanceof Date ? value : new Date(value);
  const year = date.getUTCFullYear();
  // Hot on list endpoints (two per row): built from the fields, which costs a third of
  // toISOString. Years toISOString writes with a sign (and invalid dates) go through it.
  if (!(year >= 1000 && year <= 9999)) return `${date.toISOString().slice(0, 19)}Z`;
  return `${year}-${twoDigits(date.getUTCMonth() + 1)}-${twoDigits(date.getUTCDate())}T${
    twoDigits(date.getUTCHours())
  }:${twoDigits(date.getUTCMinutes())}:${twoDigits(date.getUTCSeconds())}Z`;
}

/** A timestamp in a response, as isoTimestamp writes it (`2026-04-07T12:00:00Z`). */
export const timestamp = z.iso.datetime({ precision: 0 }).meta({
  description: "ISO 8601, UTC, to the second",
  example: "2026-04-07T12:00:00Z",
});
