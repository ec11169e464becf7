/** Reading credits in the caller's RLS transaction: the balance and the ledger. */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { notFound } from "../platform/errors.ts";
import { pageTotal, pageWindow, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import type { balance, CreditTransaction, TransactionsQuery } from "./schemas.ts";

export async function getBalance(tx: Tx): Promise<z.input<typeof balance>> {
  const [row] = await tx<{ balance: number; monthly_allowance: number; resets_at: Date }[]>`
    select balance, monthly_allowance, resets_at from public.credit_balances
  `;
  // Every organization has one (a trigger makes it); RLS shows only the caller's.
  if (!row) throw notFound("Credit balance");
  return {
    balance: row.balance,
    monthly_allowance: row.monthly_allowance,
    resets_at: isoTimestamp(row.resets_at),
  };
}

interface TransactionRow {
  id: string;
  operation: CreditTransaction["operation"];
  amount: number;
  balance_after: number | null;
  reference: string | null;
  refund_of: string | null;
  simulated: boolean;
  created_at: Date;
  total: number;
}

/** The caller's ledger in its environment, newest first. */
export async function listTransactions(tx: Tx, query: TransactionsQuery) {
  const filters = [tx`true`];
  if (query.operation) filters.push(tx`operation = ${query.operation}`);
  if (query.reference) filters.push(tx`reference = ${query.reference}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const rows = await tx<TransactionRow[]>`
    select id, operation, amount, balance_after, reference, refund_of, simulated, created_at,
           count(*) over ()::int as total
    from public.credit_transactions
    where ${where}
    order by seq desc
    ${pageWindow(tx, query)}
  `;
  const total = await pageTotal(
    tx,
    query,
    rows[0]?.total,
    tx`public.credit_transactions where ${where}`,
  );
  return {
    transactions: rows.map(({ total: _, ...row }) => ({
      ...row,
      created_at: isoTimestamp(row.created_at),
    })),
    pagination: paginationOf(query, total),
  };
}
