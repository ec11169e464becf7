/**
 * Credits: the three read actions at /v1/credits in their shapes, the ledger functions other
 * groups spend through (debit, refund, sandbox, concurrency, the same transaction as the
 * operation's record), isolation, and the monthly reset.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { debitCredits, refundCredits } from "../shared/credits/ledger.ts";
import { balance, estimate, transactionList } from "../shared/credits/schemas.ts";
import { ApiError } from "../shared/platform/errors.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";

negativeCases({
  group: "credits",
  action: "balance",
  scope: "read",
  otherSuffix: "estimate",
  valid: {},
  invalid: { data: { org_id: "org_other" }, field: "org_id" },
});
negativeCases({
  group: "credits",
  action: "transactions",
  scope: "read",
  otherSuffix: "balance",
  valid: { operation: "agent_invoke", page: 1, per_page: 5 },
  invalid: { data: { operation: "steal" }, field: "operation" },
});
negativeCases({
  group: "credits",
  action: "estimate",
  scope: "read",
  otherSuffix: "balance",
  valid: { operation: "agent_invoke", input: { text: "hello" } },
  invalid: { data: { operation: "refund" }, field: "operation" },
});

type Environment = "live" | "test";

/** Runs `fn` as the API does: role authenticated with the org's claims, in one transaction. */
function asCaller<T>(
  sql: postgres.Sql,
  orgId: string,
  environment: Environment,
  fn: (tx: postgres.Sql) => Promise<T>,
): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${
      JSON.stringify({ role: "authenticated", org_id: orgId, environment })
    }, true)`;
    return await fn(tx as unknown as postgres.Sql);
  }) as Promise<T>;
}

const setBalance = (orgId: string, credits: number) =>
  db`update public.credit_balances set balance = ${credits} where org_id = ${orgId}`;

const balanceOf = async (orgId: string) =>
  (await db<{ balance: number }[]>`
    select balance from public.credit_balances where org_id = ${orgId}
  `)[0].balance;

const ledgerOf = async (orgId: string) => [
  ...await db<
    { operation: string; amount: number; balance_after: number | null; environment: string }[]
  >`
    select operation, amount, balance_after, environment from public.credit_transactions
    where org_id = ${orgId} order by seq
  `,
];

async function balanceAnswer(key: string) {
  const response = await api("credits/balance", { action: "balance", data: {} }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return balance.parse(response.body.data);
}

async function transactionsAnswer(key: string, data: Record<string, unknown> = {}) {
  const response = await api("credits/transactions", { action: "transactions", data }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return transactionList.parse(response.body.data);
}

// ---------------------------------------------------------------------------------------
// The actions
// ---------------------------------------------------------------------------------------

test("balance: a new organization starts with its plan's allowance, reset on the 1st (UTC)", async () => {
  for (
    const [plan, allowance] of [["starter", 500], ["pro", 5000], ["enterprise", 50000]] as const
  ) {
    const org = await createTestOrg({ plan });
    const answer = await balanceAnswer(await org.key({ scopes: ["read"] }));
    const now = new Date();
    const firstOfNextMonth = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
    assert.deepEqual(answer, {
      balance: allowance,
      monthly_allowance: allowance,
      resets_at: firstOfNextMonth.toISOString().replace(".000Z", "Z"),
    }, plan);
  }
});

test("balance: a plan change brings the new plan's allowance (the balance waits for the reset)", async () => {
  const org = await createTestOrg({ plan: "starter" });
  await db`update public.organizations set plan = 'pro' where id = ${org.orgId}`;
  const answer = await balanceAnswer(await org.key());
  assert.equal(answer.monthly_allowance, 5000);
  assert.equal(answer.balance, 500);
});

test("the demo organizations start with an ample balance, granted in their ledger", async () => {
  const rows = await db<{ org_id: string; balance: number }[]>`
    select org_id, balance from public.credit_balances
    where org_id in ('org_demo_acme', 'org_demo_bistro') order by org_id
  `;
  assert.equal(rows.length, 2);
  for (const row of rows) assert.ok(row.balance >= 100_000, `${row.org_id}: ${row.balance}`);
  const [grant] = await db`
    select amount from public.credit_transactions
    where org_id = 'org_demo_acme' and operation = 'grant'
  `;
  assert.equal(grant.amount, 100_000);
});

test("estimate: the spec's table, and agent invocations priced by their input", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["credits:read"] });
  const cost = async (data: Record<string, unknown>) => {
    const response = await api("credits/estimate", { action: "estimate", data }, { key });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return estimate.parse(response.body.data);
  };
  assert.deepEqual(await cost({ operation: "ocr_extraction" }), {
    operation: "ocr_extraction",
    credits: 3,
  });
  assert.equal((await cost({ operation: "document_classification" })).credits, 2);
  assert.equal((await cost({ operation: "workflow_generation" })).credits, 5);
  assert.equal((await cost({ operation: "form_generation" })).credits, 3);
  // The spec's invoke example, verbatim: short text with a small context.
  const specInput = {
    text: "The client wants to upgrade their subscription plan to Enterprise",
    context: { client_id: "ct_abc123", current_plan: "pro" },
  };
  assert.equal((await cost({ operation: "agent_invoke", input: specInput })).credits, 1);
  assert.equal(
    (await cost({ operation: "agent_invoke", input: { text: "x".repeat(10_000) } })).credits,
    3,
  );
  assert.equal(
    (await cost({
      operation: "agent_invoke",
      input: { text: "hi", context: { history: "y".repeat(1000) } },
    })).credits,
    2,
  );
  assert.equal(
    (await cost({ operation: "agent_invoke", input: { text: "x".repeat(200_000) } })).credits,
    5,
  );
  const refused = await api("credits/estimate", {
    action: "estimate",
    data: { operation: "monthly_reset" },
  }, { key });
  expectError(refused, 400, "VALIDATION_ERROR");
  assert.equal(refused.body.error.details.field, "operation");
});

test("transactions: newest first, paginated, filtered by operation and reference", async () => {
  const org = await createTestOrg({ plan: "starter" });
  await asCaller(db, org.orgId, "live", async (tx) => {
    await debitCredits(tx, { operation: "agent_invoke", amount: 1, reference: "age_t1" });
    await debitCredits(tx, { operation: "ocr_extraction", amount: 3, reference: "doc_t1" });
    await debitCredits(tx, { operation: "agent_invoke", amount: 2, reference: "age_t2" });
    await refundCredits(tx, "doc_t1");
  });
  const key = await org.key({ scopes: ["read"] });

  const all = await transactionsAnswer(key);
  assert.deepEqual(
    all.transactions.map((t) => [t.operation, t.amount, t.balance_after, t.reference]),
    [
      ["refund", 3, 497, "doc_t1"],
      ["agent_invoke", -2, 494, "age_t2"],
      ["ocr_extraction", -3, 496, "doc_t1"],
      ["agent_invoke", -1, 499, "age_t1"],
    ],
  );
  assert.equal(all.transactions[0].refund_of, all.transactions[2].id);
  assert.ok(all.transactions.every((t) => t.simulated === false && /^ctx_/.test(t.id)));
  assert.deepEqual(all.pagination, { page: 1, per_page: 20, total: 4, total_pages: 1 });

  const invokes = await transactionsAnswer(key, { operation: "agent_invoke" });
  assert.deepEqual(invokes.transactions.map((t) => t.reference), ["age_t2", "age_t1"]);
  const byReference = await transactionsAnswer(key, { reference: "doc_t1" });
  assert.deepEqual(byReference.transactions.map((t) => t.operation), ["refund", "ocr_extraction"]);

  const page2 = await transactionsAnswer(key, { page: 2, per_page: 3 });
  assert.deepEqual(page2.transactions.map((t) => t.reference), ["age_t1"]);
  assert.deepEqual(page2.pagination, { page: 2, per_page: 3, total: 4, total_pages: 2 });
  const past = await transactionsAnswer(key, { page: 9, per_page: 3 });
  assert.deepEqual(past.transactions, []);
  assert.equal(past.pagination.total, 4);

  assert.equal((await balanceAnswer(key)).balance, 497);
});

// ---------------------------------------------------------------------------------------
// Debits
// ---------------------------------------------------------------------------------------

test("a debit the balance cannot cover is CREDITS_EXHAUSTED (402) with balance and cost, and changes nothing", async () => {
  const org = await createTestOrg();
  await setBalance(org.orgId, 2);
  const error = await asCaller(
    db,
    org.orgId,
    "live",
    (tx) => debitCredits(tx, { operation: "ocr_extraction", amount: 3, reference: "doc_x" }),
  ).then(() => null, (e) => e);
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.code, "CREDITS_EXHAUSTED");
  assert.equal(error.status, 402);
  assert.deepEqual(error.options.details, { required: 3, balance: 2 });
  assert.match(error.message, /costs 3 credits and the balance is 2/);
  assert.equal(await balanceOf(org.orgId), 2);
  assert.deepEqual(await ledgerOf(org.orgId), []);
});

test("50 concurrent debits on a balance of 10: exactly 10 covered, the balance 0, never below", async () => {
  const org = await createTestOrg();
  await setBalance(org.orgId, 10);
  // One connection per debit, so all 50 are in flight at once and queue on the balance row.
  const sql = postgres(stack.db_url, { max: 50, onnotice: () => {} });
  try {
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        asCaller(sql, org.orgId, "live", async (tx) => {
          const receipt = await debitCredits(tx, {
            operation: "agent_invoke",
            amount: 1,
            reference: `age_concurrent_${i}`,
          });
          // Hold the debit a moment, as an operation's transaction would.
          await tx`select pg_sleep(0.01)`;
          return receipt;
        }).then(
          (receipt) => ({ covered: true, balance: receipt.balance }),
          (error) => {
            if (!(error instanceof ApiError) || error.code !== "CREDITS_EXHAUSTED") throw error;
            return { covered: false, balance: null };
          },
        )),
    );
    assert.equal(outcomes.filter((o) => o.covered).length, 10);
    assert.deepEqual(
      outcomes.filter((o) => o.covered).map((o) => o.balance).sort((a, b) => a! - b!),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      "each covered debit saw a different balance: none was spent twice",
    );
  } finally {
    await sql.end();
  }
  assert.equal(await balanceOf(org.orgId), 0);
  const ledger = await ledgerOf(org.orgId);
  assert.equal(ledger.length, 10);
  assert.ok(ledger.every((row) => row.amount === -1 && row.balance_after! >= 0));
});

test("a debit commits or rolls back with the operation's record", async () => {
  const org = await createTestOrg();
  await setBalance(org.orgId, 10);
  // The operation fails after its debit: nothing of either is left.
  const failed = await asCaller(db, org.orgId, "live", async (tx) => {
    await tx`insert into public.contacts (type, name) values ('person', 'rolled back record')`;
    await debitCredits(tx, { operation: "form_generation", amount: 3, reference: "req_rb" });
    throw new Error("the operation failed after its debit");
  }).catch((e) => e);
  assert.match(String(failed), /failed after its debit/);
  assert.equal(await balanceOf(org.orgId), 10);
  assert.deepEqual(await ledgerOf(org.orgId), []);
  assert.equal((await db`select id from public.contacts where org_id = ${org.orgId}`).length, 0);

  await asCaller(db, org.orgId, "live", async (tx) => {
    await tx`insert into public.contacts (type, name) values ('person', 'committed record')`;
    await debitCredits(tx, { operation: "form_generation", amount: 3, reference: "req_ok" });
  });
  assert.equal(await balanceOf(org.orgId), 7);
  assert.equal((await ledgerOf(org.orgId)).length, 1);
  assert.equal((await db`select id from public.contacts where org_id = ${org.orgId}`).length, 1);
});

test("a refund gives a debit back once, however often or concurrently it is asked for", async () => {
  const org = await createTestOrg();
  await setBalance(org.orgId, 10);
  await asCaller(
    db,
    org.orgId,
    "live",
    (tx) => debitCredits(tx, { operation: "agent_invoke", amount: 4, reference: "age_refund" }),
  );
  assert.equal(await balanceOf(org.orgId), 6);

  const sql = postgres(stack.db_url, { max: 8, onnotice: () => {} });
  try {
    const refunds = await Promise.all(
      Array.from(
        { length: 8 },
        () => asCaller(sql, org.orgId, "live", (tx) => refundCredits(tx, "age_refund")),
      ),
    );
    assert.deepEqual(refunds.map((r) => r.refunded).sort(), [0, 0, 0, 0, 0, 0, 0, 4]);
  } finally {
    await sql.end();
  }
  const again = await asCaller(db, org.orgId, "live", (tx) => refundCredits(tx, "age_refund"));
  assert.deepEqual(again, { refunded: 0, balance: 10 });
  assert.equal(await balanceOf(org.orgId), 10);
  assert.deepEqual((await ledgerOf(org.orgId)).map((r) => [r.operation, r.amount]), [
    ["agent_invoke", -4],
    ["refund", 4],
  ]);
  // Nothing to refund under an unknown reference, or another organization's.
  const other = await createTestOrg();
  const stranger = await asCaller(db, other.orgId, "live", (tx) => refundCredits(tx, "age_refund"));
  assert.equal(stranger.refunded, 0);
});

// ---------------------------------------------------------------------------------------
// Sandbox and isolation
// ---------------------------------------------------------------------------------------

test("sandbox: debits deduct nothing, are never refused, and show to sandbox keys only", async () => {
  const org = await createTestOrg();
  await setBalance(org.orgId, 1);
  const receipt = await asCaller(
    db,
    org.orgId,
    "test",
    (tx) => debitCredits(tx, { operation: "workflow_generation", amount: 5, reference: "req_sb" }),
  );
  assert.equal(receipt.simulated, true);
  assert.equal(receipt.balance, null);
  const refund = await asCaller(db, org.orgId, "test", (tx) => refundCredits(tx, "req_sb"));
  assert.deepEqual(refund, { refunded: 5, balance: null });
  assert.equal(await balanceOf(org.orgId), 1, "the real balance is untouched");

  const testKey = await org.key({ environment: "test", scopes: ["read"] });
  const liveKey = await org.key({ scopes: ["read"] });
  const sandbox = await transactionsAnswer(testKey);
  assert.deepEqual(
    sandbox.transactions.map((t) => [t.operation, t.amount, t.balance_after, t.simulated]),
    [["refund", 5, null, true], ["workflow_generation", -5, null, true]],
  );
  assert.deepEqual((await transactionsAnswer(liveKey)).transactions, []);
  // Both see the one real balance; the sandbox never changed it.
  assert.equal((await balanceAnswer(testKey)).balance, 1);
  assert.equal((await balanceAnswer(liveKey)).balance, 1);

  // And a live debit is not visible to the sandbox key.
  await asCaller(
    db,
    org.orgId,
    "live",
    (tx) => debitCredits(tx, { operation: "agent_invoke", amount: 1, reference: "age_live" }),
  );
  assert.equal((await transactionsAnswer(testKey)).transactions.length, 2);
  assert.equal((await transactionsAnswer(liveKey)).transactions.length, 1);
});

test("isolation: an organization sees only its own balance and ledger", async () => {
  const orgs: TestOrg[] = [
    await createTestOrg({ plan: "starter" }),
    await createTestOrg({ plan: "pro" }),
  ];
  await asCaller(
    db,
    orgs[0].orgId,
    "live",
    (tx) => debitCredits(tx, { operation: "ocr_extraction", amount: 3, reference: "doc_mine" }),
  );
  const [mine, theirs] = [await orgs[0].key(), await orgs[1].key()];
  assert.equal((await balanceAnswer(mine)).balance, 497);
  assert.equal((await balanceAnswer(theirs)).balance, 5000);
  assert.equal((await transactionsAnswer(mine)).transactions.length, 1);
  assert.deepEqual((await transactionsAnswer(theirs)).transactions, []);
  assert.deepEqual(
    (await transactionsAnswer(theirs, { reference: "doc_mine" })).transactions,
    [],
  );
  // A debit acts for the caller's organization only.
  assert.equal(await balanceOf(orgs[1].orgId), 5000);
});

test("the API role cannot change balances or the ledger directly", async () => {
  const org = await createTestOrg();
  const refused = async (statement: (tx: postgres.Sql) => Promise<unknown>) => {
    const error = await asCaller(db, org.orgId, "live", statement).then(() => null, (e) => e);
    assert.equal(error?.code, "42501", String(error));
  };
  await refused((tx) => tx`update public.credit_balances set balance = 1000000`);
  await refused((tx) =>
    tx`insert into public.credit_transactions (org_id, environment, operation, amount, balance_after)
       values (${org.orgId}, 'live', 'grant', 1000, 1000)`
  );
  await refused((tx) => tx`delete from public.credit_transactions`);
  await refused((tx) => tx`select private.grant_credits(${org.orgId}, 1000)`);
  await refused((tx) => tx`select private.reset_monthly_credits()`);
});

// ---------------------------------------------------------------------------------------
// The monthly allowance
// ---------------------------------------------------------------------------------------

test("monthly reset: due balances are topped up to the allowance once, with a ledger row", async () => {
  const [spent, granted] = [await createTestOrg({ plan: "starter" }), await createTestOrg()];
  await setBalance(spent.orgId, 3);
  await setBalance(granted.orgId, 80_000); // above the enterprise allowance of 50,000
  // Time moved: both resets are due (one second ago); nothing sleeps.
  await db`
    update public.credit_balances set resets_at = now() - interval '1 second'
    where org_id in ${db([spent.orgId, granted.orgId])}
  `;
  const ran = await db<{ n: number }[]>`select private.reset_monthly_credits() as n`;
  assert.ok(ran[0].n >= 2);
  const again = await db<{ n: number }[]>`select private.reset_monthly_credits() as n`;
  assert.equal(again[0].n, 0, "a second run finds nothing due");

  assert.equal(await balanceOf(spent.orgId), 500);
  assert.equal(await balanceOf(granted.orgId), 80_000, "credits above the allowance are kept");
  assert.deepEqual(
    (await ledgerOf(spent.orgId)).map((r) => [r.operation, r.amount, r.balance_after]),
    [["monthly_reset", 497, 500]],
  );
  assert.deepEqual(
    (await ledgerOf(granted.orgId)).map((r) => [r.operation, r.amount, r.balance_after]),
    [["monthly_reset", 0, 80_000]],
  );
  const answer = await balanceAnswer(await spent.key());
  const now = new Date();
  assert.equal(
    answer.resets_at,
    new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)).toISOString()
      .replace(".000Z", "Z"),
  );
});

test("monthly reset: the next reset is the first of the following month, 00:00 UTC", async () => {
  const cases = [
    ["2027-03-15T10:00:00Z", "2027-04-01T00:00:00.000Z"],
    ["2026-12-31T23:59:59Z", "2027-01-01T00:00:00.000Z"],
    ["2027-02-01T00:00:00Z", "2027-03-01T00:00:00.000Z"],
  ];
  for (const [at, expected] of cases) {
    const [row] = await db<{ next: Date }[]>`select private.next_credit_reset(${at}) as next`;
    assert.equal(row.next.toISOString(), expected, at);
  }
});

test("monthly reset: pg_cron runs it", async () => {
  const [job] = await db`
    select schedule, command, active from cron.job where jobname = 'bivelio-reset-monthly-credits'
  `;
  assert.deepEqual({ ...job }, {
    schedule: "*/5 * * * *",
    command: "select private.reset_monthly_credits()",
    active: true,
  });
});

test("the ledger is registered for the 24-hour sandbox purge", async () => {
  const rows = await db`
    select 1 from private.sandbox_tables where table_name = 'public.credit_transactions'::regclass
  `;
  assert.equal(rows.length, 1);
});
