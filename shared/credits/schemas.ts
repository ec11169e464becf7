/**
 * What the credits actions take and answer: the one definition of each, from which the
 * queries take their types, OpenAPI its named schemas and the tests their check.
 */
import { z } from "zod";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";
import { CHARGEABLE_OPERATIONS, LEDGER_OPERATIONS } from "./costs.ts";

export const chargeableOperation = z.enum(CHARGEABLE_OPERATIONS);
export const ledgerOperation = z.enum(LEDGER_OPERATIONS);
const transactionId = z.string().regex(/^ctx_[0-9A-Za-z]{1,64}$/, "must be a transaction id");

export const balanceInput = z.strictObject({});

export const transactionsInput = z.strictObject({
  operation: ledgerOperation.optional(),
  /** The operation's id the credits were for (an execution or document id). */
  reference: z.string().min(1).max(200).optional(),
  ...paginationInput,
});
export type TransactionsQuery = z.output<typeof transactionsInput>;

export const estimateInput = z.strictObject({
  operation: chargeableOperation,
  /** The input the operation would get; only agent invocations are priced by it. */
  input: z.unknown().optional(),
});

export const balance = z.strictObject({
  /** Credits left (the live balance; the sandbox never changes it). */
  balance: z.int().min(0),
  monthly_allowance: z.int().min(0),
  /** When the allowance is next restored: the first of the next month, 00:00 UTC. */
  resets_at: timestamp,
}).meta({ id: "CreditBalance" });

export const creditTransaction = z.strictObject({
  id: transactionId,
  operation: ledgerOperation,
  /** Negative for a debit, positive for credits given. */
  amount: z.int(),
  /** The balance right after; null for sandbox rows, which change no balance. */
  balance_after: z.int().min(0).nullable(),
  reference: z.string().nullable(),
  /** For a refund: the debit it gave back. */
  refund_of: transactionId.nullable(),
  /** A sandbox row: nothing was deducted. */
  simulated: z.boolean(),
  created_at: timestamp,
}).meta({ id: "CreditTransaction" });
export type CreditTransaction = z.output<typeof creditTransaction>;

export const transactionList = z.strictObject({
  transactions: z.array(creditTransaction),
  pagination,
}).meta({ id: "CreditTransactionList" });

export const estimate = z.strictObject({
  operation: chargeableOperation,
  credits: z.int().min(1),
}).meta({ id: "CreditEstimate" });
