import { z } from "zod";

/** `page` (from 1) and `per_page` (1-100, default 20), as every list takes them. */
export const paginationInput = {
  page: z.number().int().min(1).default(1),
  per_page: z.number().int().min(1).max(100).default(20),
};

export function paginationOf(page: number, perPage: number, total: number) {
  return { page, per_page: perPage, total, total_pages: Math.ceil(total / perPage) };
}
