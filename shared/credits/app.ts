import { createGroupApp, defineAction } from "../platform/app.ts";
import { creditCost } from "./costs.ts";
import { getBalance, listTransactions } from "./queries.ts";
import {
  balance,
  balanceInput,
  estimate,
  estimateInput,
  transactionList,
  transactionsInput,
} from "./schemas.ts";

/** POST /v1/credits[/<action>]: the AI credit balance and its ledger. */
export const actions = [
  defineAction({
    name: "balance",
    summary: "The organization's credit balance, monthly allowance and next reset",
    scope: "read",
    mutates: false,
    input: balanceInput,
    output: balance,
    handler: ({ tx }) => getBalance(tx),
  }),
  defineAction({
    name: "transactions",
    summary: "The credit ledger of the caller's environment, newest first",
    scope: "read",
    mutates: false,
    input: transactionsInput,
    output: transactionList,
    handler: ({ tx, data }) => listTransactions(tx, data),
  }),
  defineAction({
    name: "estimate",
    summary: "What an operation would cost, in credits",
    scope: "read",
    mutates: false,
    input: estimateInput,
    output: estimate,
    handler: ({ data }) =>
      Promise.resolve({
        operation: data.operation,
        credits: creditCost(data.operation, data.input),
      }),
  }),
];

export default createGroupApp("credits", actions);
