/**
 * Spending credits: what the groups that call Gemini (agents, documents, generation) use
 * inside their own RLS transaction, so the debit commits or rolls back with the record of
 * the operation it pays for. The organization and environment are the transaction's
 * claims (private.debit_credits acts for them); sandbox callers get simulated rows and
 * their balance is never touched.
 *
 * The pattern for an action with a Gemini call (handler → call → record):
 *
 *   handler (transaction 1): check the request, compute `creditCost(...)`, insert the
 *     operation's row (`running`), `debitCredits(tx, {operation, amount, reference: id})`.
 *     Not covered: CREDITS_EXHAUSTED is thrown, the transaction rolls back (no row, no
 *     debit) and Gemini is never called. Covered: the credits are held by the commit, so
 *     concurrent requests cannot spend them twice.
 *   call: Gemini, no transaction.
 *   record (transaction 2): success → complete the row; failure →
 *     `refundCredits(tx, id)`, mark the row failed, answer `new FailedAfterRecord(error)`.
 */
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import type { ChargeableOperation } from "./costs.ts";

export interface Debit {
  operation: ChargeableOperation;
  /** Credits to take: a positive integer, usually `creditCost(operation, input)`. */
  amount: number;
  /** What the credits pay for (the execution or document id): refunds find the debit by it. */
  reference: string;
}

export interface DebitReceipt {
  /** The ledger row (`ctx_…`). */
  transactionId: string;
  /** The credits taken (the debit's amount). */
  credits: number;
  /** The live balance after the debit; null in the sandbox, which has none. */
  balance: number | null;
  /** Sandbox: the row is simulated and no balance changed. */
  simulated: boolean;
}

export interface Refund {
  /** Credits given back: 0 when nothing with that reference was left to refund. */
  refunded: number;
  /** The live balance after the refund; null in the sandbox. */
  balance: number | null;
}

/** The 402 for an operation the balance cannot cover. */
export function creditsExhausted(required: number, balance: number) {
  return new ApiError(
    "CREDITS_EXHAUSTED",
    `This operation costs ${required} credit${
      required === 1 ? "" : "s"
    } and the balance is ${balance}. ` +
      "Credits are restored monthly with the plan's allowance.",
    { details: { required, balance } },
  );
}

/**
 * Takes `amount` credits from the caller's organization in `tx`, or throws
 * CREDITS_EXHAUSTED (402, details `{required, balance}`) changing nothing. Concurrent
 * debits never take the balance below zero: each takes the balance row's lock in turn and
 * re-checks it. In the sandbox it always succeeds and deducts nothing.
 */
export async function debitCredits(tx: Tx, debit: Debit): Promise<DebitReceipt> {
  if (!Number.isInteger(debit.amount) || debit.amount <= 0) {
    throw new Error(`debitCredits: amount must be a positive integer, got ${debit.amount}`);
  }
  const [row] = await tx<{ covered: boolean; balance: number | null; transaction_id: string }[]>`
    select covered, balance, transaction_id
    from private.debit_credits(${debit.operation}, ${debit.amount}::int, ${debit.reference})
  `;
  if (!row.covered) throw creditsExhausted(debit.amount, row.balance ?? 0);
  return {
    transactionId: row.transaction_id,
    credits: debit.amount,
    balance: row.balance,
    simulated: row.balance === null,
  };
}

/**
 * Gives back the debits made with `reference` in the caller's organization and
 * environment (a Gemini call that failed). Each debit is refunded at most once, however
 * often or concurrently this is called.
 */
export async function refundCredits(tx: Tx, reference: string): Promise<Refund> {
  const [row] = await tx<Refund[]>`
    select refunded, balance from private.refund_credits(${reference})
  `;
  return { refunded: row.refunded, balance: row.balance };
}
