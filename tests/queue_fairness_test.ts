/**
 * Fairness of the job queue (20261201000200_fair_job_claim.sql) and the worker's lease
 * heartbeat (shared/platform/worker.ts).
 *
 * 1. One organization, with a sandbox key, floods the queue with instances whose one step
 *    calls a slow receiver in this process (1 s per call), so the stack's worker (32 slots)
 *    drains its backlog at about 32 instances a second. Another organization then runs a
 *    one-step workflow. With the old oldest-first claim it waited behind the whole backlog
 *    (every job queued before it was claimed before it); now it takes the next free slot.
 *    The assertion is on order, not time: when the other organization's instance has
 *    completed, at least half of the flood's backlog must still be waiting unclaimed.
 * 2. While another transaction holds the lock of one job row, the worker's heartbeat still
 *    extends its other leases (it used to wait for the lock holding the rows already
 *    updated, which deadlocked with the lease sweep and with multi-job deletes).
 */
import assert from "node:assert/strict";
import { createTestOrg, db, test } from "./helpers/stack.ts";
import { createWorkflow, execute } from "./helpers/workflows.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Instances the flooding organization queues. */
const FLOOD = 600;
/** How long the receiver takes to answer each of the flood's calls until released. */
const RECEIVER_DELAY_MS = 1_000;
/** The flood's instances are queued this many at a time, as a client with a pool would. */
const IN_FLIGHT = 8;

/**
 * A local HTTP server whose answers wait `delayMs` (or, with no delay, until released);
 * `release()` answers every waiting request at once and every later one immediately.
 */
function slowReceiver(delayMs: number | null) {
  let released = false;
  const waiting = new Set<() => void>();
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    requests++;
    if (!released) {
      await new Promise<void>((resolve) => {
        const done = () => {
          waiting.delete(done);
          clearTimeout(timer);
          resolve();
        };
        const timer = delayMs === null ? undefined : setTimeout(done, delayMs);
        waiting.add(done);
      });
    }
    return Response.json({ ok: true });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/slow`,
    get requests() {
      return requests;
    },
    release() {
      released = true;
      for (const done of [...waiting]) done();
    },
    close: () => server.shutdown(),
  };
}

/** A workflow of one http_request step to `url`. */
const slowWorkflow = (key: string, url: string) =>
  createWorkflow(key, {
    name: "Slow call",
    steps: [{ id: "call", type: "http_request", config: { url, method: "POST" } }],
  });

/** Polls until `check()` is true; throws with `what` after `timeoutMs`. */
async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const openInstances = async (orgId: string) => {
  const [{ n }] = await db<{ n: number }[]>`
    select count(*)::int as n from public.workflow_instances
    where org_id = ${orgId} and status in ('pending', 'running')
  `;
  return n;
};

/** The organization's jobs never claimed yet (queued, not started). */
const unclaimedJobs = async (orgId: string) => {
  const [{ n }] = await db<{ n: number }[]>`
    select count(*)::int as n from private.jobs where org_id = ${orgId} and claims = 0
  `;
  return n;
};

test("one organization's flood of slow instances does not hold up another organization's workflow", async () => {
  const receiver = slowReceiver(RECEIVER_DELAY_MS);
  const flooder = await createTestOrg();
  const other = await createTestOrg();
  try {
    const floodKey = await flooder.key({ environment: "test" });
    const floodWorkflow = await slowWorkflow(floodKey, receiver.url);
    let sent = 0;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (sent < FLOOD) await execute(floodKey, floodWorkflow, { n: sent++ });
    }));
    const backlog = await unclaimedJobs(flooder.orgId);
    assert.ok(
      backlog >= FLOOD / 3,
      `the flood should have queued a backlog (${backlog} of ${FLOOD} instances unclaimed)`,
    );

    const otherKey = await other.key();
    const quick = await createWorkflow(otherKey, {
      name: "Quick",
      steps: [{ id: "only", type: "set", config: { values: { ok: true } } }],
    });
    const sentAt = Date.now();
    const { instance_id } = await execute(otherKey, quick, { hello: "world" });
    // Long enough for the old claim to get to it, so its figure can be reported too.
    await until("the other organization's instance", async () => {
      const [row] =
        await db`select status from public.workflow_instances where id = ${instance_id}`;
      return row.status === "completed";
    }, 120_000);
    const stillQueued = await unclaimedJobs(flooder.orgId);
    const [timing] = await db<{ first_step: number; finished: number }[]>`
      select extract(epoch from s.started_at) * 1000 as first_step,
             extract(epoch from i.finished_at) * 1000 as finished
      from public.workflow_instances i
      join public.workflow_step_runs s on s.instance_id = i.id and s.position = 1
      where i.id = ${instance_id}
    `;
    console.log(
      `flood backlog ${backlog} unclaimed; other organization: execute → first step ` +
        `${(Number(timing.first_step) - sentAt).toFixed(0)} ms, → completed ` +
        `${(Number(timing.finished) - sentAt).toFixed(0)} ms; flood still unclaimed then: ` +
        `${stillQueued}`,
    );
    assert.ok(
      stillQueued >= backlog / 2,
      `the other organization's instance should run before most of the flood's backlog ` +
        `(${stillQueued} of ${backlog} still unclaimed when it completed)`,
    );
  } finally {
    receiver.release();
    await until(
      "the flood to drain",
      async () => (await openInstances(flooder.orgId)) === 0,
      180_000,
    )
      .finally(() => receiver.close());
  }
});

test("the lease heartbeat extends the other leases while one job row is locked elsewhere", async () => {
  const receiver = slowReceiver(null); // holds every call until released
  const org = await createTestOrg();
  try {
    const key = await org.key();
    const workflow = await slowWorkflow(key, receiver.url);
    const ids = [
      (await execute(key, workflow, { n: 1 })).instance_id,
      (await execute(key, workflow, { n: 2 })).instance_id,
    ];
    // Both running: their calls wait at the receiver, their jobs leased by the worker.
    await until("both calls", () => receiver.requests >= 2, 20_000);
    const jobs = await db<{ id: string; lease_token: string }[]>`
      select id, lease_token from private.jobs where ref = any(${ids}) order by id
    `;
    assert.equal(jobs.length, 2);
    const [locked, free] = jobs;
    /** When the free job's lease ends, if the worker still holds the same lease. */
    const leaseEnd = async () => {
      const [row] = await db<{ available_at: Date; lease_token: string }[]>`
        select available_at, lease_token from private.jobs where id = ${free.id}
      `;
      assert.equal(row.lease_token, free.lease_token, "the free job's lease ran out");
      return row.available_at.getTime();
    };

    await db.begin(async (tx) => {
      await tx`select 1 from private.jobs where id = ${locked.id} for update`;
      // Read after the lock: a heartbeat that got past it before has committed by now.
      const before = await leaseEnd();
      // The heartbeat runs every third of a lease (1 s in the test stack).
      await until(
        "the heartbeat to extend the lease of the job nobody else locked",
        async () => (await leaseEnd()) > before,
        6_000,
      );
    });
  } finally {
    receiver.release();
    await until("the instances to end", async () => (await openInstances(org.orgId)) === 0, 30_000)
      .finally(() => receiver.close());
  }
});
