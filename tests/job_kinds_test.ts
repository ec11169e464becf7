/**
 * The job-kind registry (shared/platform/worker.ts, 20261201000600_job_registry.sql), driven
 * by a Worker of this test's own, with job kinds of its own, against the stack's database
 * (the stack's worker claims only the kinds it knows, never these).
 *
 * 1. Per-kind caps: 10,000 jobs of a slow kind are queued, each held until the test lets
 *    it go (a 2 s job that never ends in time). The slow kind may hold half of the
 *    worker's 8 slots; jobs of another kind queued during the flood must all run while
 *    every slow job is still held. Without the caps the slow kind took every slot and the
 *    other kind's jobs waited for the flood to end.
 * 2. Wake-ups by kind: a worker claims only for kinds that may have due jobs; a kind it
 *    found empty is claimed for again as soon as a job of it is queued (the insert's
 *    notification names it), not at the next poll.
 * 3. One way to retry and to finish: a kind whose handler fails twice (JobFailure) is
 *    retried by its policy with the error recorded as last_error, then finished; a
 *    failure that is not retryable ends the job at once; a kind that is waited for hands
 *    its result or its error to the waiting job (private.job_outcomes) and wakes it.
 */
import assert from "node:assert/strict";
import { createTestOrg, db, stack, test } from "./helpers/stack.ts";
import {
  defineJobKind,
  type JobContext,
  JobFailure,
  type JobKind,
  Worker,
} from "../shared/platform/worker.ts";

Deno.env.set("SUPABASE_DB_URL", stack.db_url);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const unique = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);
const noRetries = { maxAttempts: 1, backoff: () => 0 };

/** Runs `kinds` in a Worker of their own until `body` returns. */
async function withWorker(
  kinds: JobKind[],
  body: () => Promise<void>,
  concurrency = 8,
  pollMs = 50,
) {
  const worker = new Worker({ kinds, concurrency, pollMs, log: () => {} });
  const running = worker.run();
  try {
    await body();
  } finally {
    await worker.stop();
    await running;
  }
}

const FLOOD = 10_000;
const QUICK = 20;

test("10,000 held jobs of a slow kind do not delay another kind's jobs (per-kind caps)", async () => {
  const org = await createTestOrg();
  const tag = unique();
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((resolve) => releaseSlow = resolve);
  let slowRunning = 0;
  let mostSlowRunning = 0;
  const slow = defineJobKind({
    kind: `test_slow_${tag}`,
    handler: async () => {
      mostSlowRunning = Math.max(mostSlowRunning, ++slowRunning);
      await slowGate;
      slowRunning--;
    },
    retry: noRetries,
    concurrency: { share: 0.5 },
  });
  const latencies: number[] = [];
  const quick = defineJobKind({
    kind: `test_quick_${tag}`,
    handler: (ctx: JobContext) => {
      latencies.push(Date.now() - Number(ctx.job.payload.queued_at));
      return Promise.resolve({ ok: true });
    },
    retry: noRetries,
    concurrency: { share: 0.5 },
  });
  await db`
    insert into private.jobs (kind, ref, org_id, environment)
    select ${slow.kind}, 'slow-' || g, ${org.orgId}, 'live' from generate_series(1, ${FLOOD}) g
  `;
  try {
    await withWorker([slow, quick], async () => {
      try {
        await assertQuickJobsRun();
      } finally {
        // The flood's waiting jobs go before the held ones are let go (the worker's stop
        // waits for its running jobs).
        await db`delete from private.jobs where kind = ${slow.kind} and lease_token is null`;
        releaseSlow();
      }
    });
  } finally {
    releaseSlow();
    await db`delete from private.jobs where kind = any(${[slow.kind, quick.kind]})`;
  }

  async function assertQuickJobsRun() {
    await until("the slow kind to fill its share", () => slowRunning === 4, 10_000);
    for (let n = 0; n < QUICK; n++) {
      await db`
          insert into private.jobs (kind, ref, org_id, environment, payload)
          values (${quick.kind}, ${`quick-${n}`}, ${org.orgId}, 'live',
                  ${db.json({ queued_at: Date.now() })})
        `;
      await sleep(10);
    }
    await until("every quick job", () => latencies.length === QUICK, 20_000);
    assert.equal(slowRunning, 4, "every slow job still held while the quick ones ran");
    assert.equal(mostSlowRunning, 4, "the slow kind never held more than its share");
    const [{ queued }] = await db<{ queued: number }[]>`
        select count(*)::int as queued from private.jobs where kind = ${slow.kind}
      `;
    assert.equal(queued, FLOOD, "the flood is still queued (4 held, the rest waiting)");
    const [{ left }] = await db<{ left: number }[]>`
        select count(*)::int as left from private.jobs where kind = ${quick.kind}
      `;
    assert.equal(left, 0, "every quick job was finished");
    latencies.sort((a, b) => a - b);
    console.log(
      `quick kind during a flood of ${FLOOD} held slow jobs: p50 ` +
        `${latencies[Math.floor(QUICK / 2)]} ms, max ${latencies[QUICK - 1]} ms`,
    );
  }
});

test("a kind found empty is claimed for as soon as a job of it is queued, not at the next poll", async () => {
  const org = await createTestOrg();
  const tag = unique();
  const ran: string[] = [];
  const kindOf = (name: string) =>
    defineJobKind({
      kind: `test_${name}_${tag}`,
      handler: (ctx) => {
        ran.push(ctx.job.ref);
        return Promise.resolve();
      },
      retry: noRetries,
      concurrency: { share: 0.5 },
    });
  const [first, second] = [kindOf("first"), kindOf("second")];
  const queue = (kind: JobKind, ref: string) =>
    db`insert into private.jobs (kind, ref, org_id, environment) values (${kind.kind}, ${ref}, ${org.orgId}, 'live')`;
  try {
    // A poll an hour away: only a notification can wake the worker within the test.
    await withWorker(
      [first, second],
      async () => {
        await queue(first, "a");
        await until("the first kind's job", () => ran.includes("a"), 10_000);
        // Both kinds are now known empty (the claims found less than they asked for).
        await queue(second, "b");
        await until(
          "the second kind's job, woken by its notification",
          () => ran.includes("b"),
          10_000,
        );
        await queue(first, "c");
        await until("the first kind's job again", () => ran.includes("c"), 10_000);
      },
      8,
      3_600_000,
    );
    assert.deepEqual(ran, ["a", "b", "c"]);
  } finally {
    await db`delete from private.jobs where kind = any(${[first.kind, second.kind]})`;
  }
});

test("retry and finish: a policy's retries record last_error; a waited-for job's outcome wakes its waiter", async () => {
  const org = await createTestOrg();
  const tag = unique();
  const seen: { attempts: number; lastError: unknown }[] = [];
  const flaky = defineJobKind({
    kind: `test_flaky_${tag}`,
    handler: async (ctx) => {
      const [row] = await db`select last_error from private.jobs where id = ${ctx.job.id}`;
      seen.push({ attempts: ctx.job.attempts, lastError: row.last_error });
      if (ctx.job.payload.fatal) throw new JobFailure("NOT_RETRYABLE", "never again", false);
      if (ctx.job.attempts < 2) {
        throw new JobFailure("FLAKY", `failed attempt ${ctx.job.attempts + 1}`);
      }
      return { done_after: ctx.job.attempts + 1 };
    },
    retry: { maxAttempts: 5, backoff: () => 10 },
    concurrency: { share: 0.5 },
  });
  const woken: string[] = [];
  // A waiter: on its first run it queues a flaky job and parks; woken, it reads the outcome.
  const waiter = defineJobKind({
    kind: `test_waiter_${tag}`,
    handler: async (ctx) => {
      const child = `child-of-${ctx.job.ref}`;
      const [outcome] = await db`
        select result, error from private.job_outcomes where kind = ${flaky.kind} and ref = ${child}
      `;
      if (!outcome) {
        await ctx.withTenant((tx) => ctx.waitFor(tx, flaky.kind, child, ctx.job.payload));
        return;
      }
      woken.push(ctx.job.ref);
      return { child: outcome.result, error: outcome.error };
    },
    retry: noRetries,
    concurrency: { share: 0.5 },
  });
  try {
    await db`
      insert into private.jobs (kind, ref, org_id, environment, payload) values
        (${waiter.kind}, 'ok', ${org.orgId}, 'live', '{}'),
        (${waiter.kind}, 'fatal', ${org.orgId}, 'live', ${db.json({ fatal: true })})
    `;
    await withWorker([flaky, waiter], async () => {
      await until("both waiters to be woken and finished", async () => {
        const [{ n }] = await db<{ n: number }[]>`
          select count(*)::int as n from private.jobs where kind = any(${[waiter.kind, flaky.kind]})
        `;
        return woken.length === 2 && n === 0;
      }, 20_000);
    });
    assert.deepEqual(
      seen.map((s) => s.attempts).sort(),
      [0, 0, 1, 2],
      "the flaky job ran 3 times (attempts 0, 1, 2), the unretryable one once",
    );
    assert.deepEqual(
      seen.filter((s) => s.lastError !== null).map((s) => s.lastError),
      [
        { code: "FLAKY", message: "failed attempt 1" },
        { code: "FLAKY", message: "failed attempt 2" },
      ],
      "each retry saw the previous failure recorded as last_error",
    );
    const outcomes = await db`
      select ref, result, error from private.job_outcomes where kind = ${flaky.kind} order by ref
    `;
    assert.deepEqual(outcomes.map((o) => ({ ...o })), [
      {
        ref: "child-of-fatal",
        result: null,
        error: { code: "NOT_RETRYABLE", message: "never again" },
      },
      { ref: "child-of-ok", result: { done_after: 3 }, error: null },
    ]);
  } finally {
    await db`delete from private.jobs where kind = any(${[waiter.kind, flaky.kind]})`;
    await db`delete from private.job_outcomes where kind = ${flaky.kind}`;
  }
});
