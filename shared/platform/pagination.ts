/**
 * Paged lists, as every `list` action takes and answers them: `page` (from 1) and
 * `per_page` (1-100, default 20) in, `pagination {page, per_page, total, total_pages}` out.
 */
import { z } from "zod";
import type { Tx } from "./db.ts";

export const paginationInput = {
  page: z.number().int().min(1).default(1),
  per_page: z.number().int().min(1).max(100).default(20),
};

export interface Page {
  page: number;
  per_page: number;
}

/** The `limit … offset …` of the page, for the end of a list's query. */
export const pageWindow = (tx: Tx, query: Page) =>
  tx`limit ${query.per_page} offset ${(query.page - 1) * query.per_page}`;

/**
 * A list's total, from its first row's `count(*) over ()`: past the last page there is no
 * row to report it on, so it is counted again from `from` (`public.x where …`).
 */
export async function pageTotal(
  tx: Tx,
  query: Page,
  firstRowCount: number | undefined,
  from: ReturnType<Tx>,
): Promise<number> {
  if (firstRowCount !== undefined || query.page === 1) return firstRowCount ?? 0;
  const [{ total }] = await tx<{ total: number }[]>`select count(*)::int as total from ${from}`;
  return total;
}

/** The `pagination` object of a list's answer, as its response schema says it. */
export const pagination = z.strictObject({
  page: z.int().min(1),
  per_page: z.int().min(1).max(100),
  total: z.int().min(0),
  total_pages: z.int().min(0),
}).meta({ id: "Pagination" });

/** The `pagination` object of a list's answer. */
export function paginationOf(query: Page, total: number): z.input<typeof pagination> {
  return {
    page: query.page,
    per_page: query.per_page,
    total,
    total_pages: Math.ceil(total / query.per_page),
  };
}
