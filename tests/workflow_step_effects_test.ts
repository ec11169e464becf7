/**
 * Step types declare how their side effect is made safe, and may wait for a job
 * (shared/workflows/steps.ts, engine.ts). The `intent` and `waitForJob` contracts are
 * driven here with step types of this test's own: the engine runs in this process with a
 * registry of its own (runWorkflowJob(ctx, stepTypes)) on instances whose jobs are kept
 * away from the stack's worker (due only at 'infinity') and claimed by the test itself, so
 * a crash can be played exactly where it matters. `transactional` (create_contact) is
 * proven by tests/workflows_crash_test.ts, `idempotency_key` (http_request) by
 * tests/workflows_test.ts, and the step scopes over the API at the end of this file.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";
import { defineJobKind, type Job, JobFailure, Worker } from "../shared/platform/worker.ts";
import { contextFor } from "../shared/platform/worker.ts";
import { runWorkflowJob } from "../shared/workflows/engine.ts";
import { STEP_TYPES } from "../shared/workflows/step-types.ts";
import { defineStep, StepFailure, type StepType } from "../shared/workflows/steps.ts";

Deno.env.set("SUPABASE_DB_URL", stack.db_url);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** A workflow with `steps` and one running instance whose job no worker will claim. */
async function hiddenInstance(orgId: string, steps: unknown[]) {
  return await db.begin(async (tx) => {
    const [workflow] = await tx<{ id: string }[]>`
      insert into public.workflows (org_id, environment, name) values (${orgId}, 'live', 'Effects')
      returning id
    `;
    await tx`
      insert into public.workflow_versions (workflow_id, version, org_id, environment, steps)
      values (${workflow.id}, 1, ${orgId}, 'live', ${tx.json(steps as never)})
    `;
    const [instance] = await tx<{ id: string }[]>`
      select id from private.start_workflow_instance(${workflow.id}, '{}', '{"type":"manual"}')
    `;
    await tx`update private.jobs set available_at = 'infinity' where ref = ${instance.id}`;
    return instance.id;
  });
}

/** Takes the instance's job as a worker would (a new lease token each time). */
async function claim(instanceId: string) {
  const [job] = await db<Job[]>`
    update private.jobs set lease_token = gen_random_uuid(), claims = claims + 1,
      available_at = now() + interval '10 minutes'
    where kind = 'workflow' and ref = ${instanceId}
    returning id::int, kind, ref, org_id, environment, lease_token, claims, attempts, payload
  `;
  assert.ok(job, "the instance has a job to claim");
  return contextFor(job, 600);
}

const instanceRow = async (id: string) =>
  (await db`select status, output, error from public.workflow_instances where id = ${id}`)[0];
const stepRow = async (id: string, stepId: string) =>
  (await db`
    select status, attempts, output, error, waiting_on from public.workflow_step_runs
    where instance_id = ${id} and step_id = ${stepId}
  `)[0];

const tag = () => crypto.randomUUID().replaceAll("-", "").slice(0, 10);

/**
 * A provider that does not deduplicate: it records every send under the engine's intent
 * key; `crashAfterSend` plays a worker that dies after the provider accepted and before
 * the result's commit (its run never returns).
 */
function sendingStep(options: { reconcile: boolean }) {
  const sent: string[] = [];
  const accepted = new Map<string, { message_id: string }>();
  let crashAfterSend = true;
  const type = defineStep({
    effect: "intent",
    config: z.strictObject({ to: z.string() }),
    run: async ({ intent }) => {
      sent.push(intent.key);
      accepted.set(intent.key, { message_id: `msg_${sent.length}` });
      if (crashAfterSend) await new Promise(() => {});
      return { output: accepted.get(intent.key) };
    },
    reconcile: options.reconcile
      ? ({ intent }) => {
        const found = accepted.get(intent.key);
        if (!found) throw new StepFailure("OUTCOME_UNKNOWN", "not found at the provider", false);
        return { output: found };
      }
      : undefined,
  });
  return {
    type,
    sent,
    stopCrashing() {
      crashAfterSend = false;
    },
  };
}

for (const reconcile of [true, false]) {
  test(`intent: a worker dying after the provider accepted never sends twice (${reconcile ? "reconciled from the provider" : "no reconcile: OUTCOME_UNKNOWN"})`, async () => {
    const org = await createTestOrg();
    const name = `test_send_${tag()}`;
    const sender = sendingStep({ reconcile });
    const types: Record<string, StepType> = { ...STEP_TYPES, [name]: sender.type };
    const id = await hiddenInstance(org.orgId, [
      { id: "send", type: name, config: { to: "+34600000000" } },
      { id: "after", type: "set", config: { values: { sent: "{{steps.send.output}}" } } },
    ]);

    // The first worker commits the intent, sends, and dies before the result's commit.
    void runWorkflowJob(await claim(id), types);
    const intent = await until("the intent's commit", async () => {
      const step = await stepRow(id, "send");
      return step?.status === "running" && sender.sent.length === 1 ? step : undefined;
    });
    assert.deepEqual(intent.waiting_on, { intent: { attempt: 1, key: `${id}.send.1` } });
    assert.equal(intent.attempts, 1);

    // Its lease ran out: another worker takes the job over.
    sender.stopCrashing();
    await runWorkflowJob(await claim(id), types);
    assert.deepEqual(sender.sent, [`${id}.send.1`], "the provider got exactly one send");
    const instance = await instanceRow(id);
    if (reconcile) {
      assert.equal(instance.status, "completed", JSON.stringify(instance));
      assert.deepEqual(instance.output, { sent: { message_id: "msg_1" } });
      const step = await stepRow(id, "send");
      assert.equal(step.status, "completed");
      assert.equal(step.waiting_on, null);
    } else {
      assert.equal(instance.status, "failed");
      assert.equal(instance.error.code, "OUTCOME_UNKNOWN");
      assert.equal(instance.error.step_id, "send");
      assert.equal(instance.error.details.intent_key, `${id}.send.1`);
    }
  });
}

test("intent: a send that fails before the provider accepts is retried with a new attempt and key", async () => {
  const org = await createTestOrg();
  const name = `test_send_${tag()}`;
  const keys: string[] = [];
  const types: Record<string, StepType> = {
    ...STEP_TYPES,
    [name]: defineStep({
      effect: "intent",
      config: z.strictObject({}),
      run: ({ intent }) => {
        keys.push(intent.key);
        if (keys.length === 1) {
          throw new StepFailure("PROVIDER_DOWN", "503 from the provider", true);
        }
        return { output: { key: intent.key } };
      },
    }),
  };
  const id = await hiddenInstance(org.orgId, [
    { id: "send", type: name, config: {}, retry: { max_attempts: 2 } },
  ]);
  await runWorkflowJob(await claim(id), types);
  assert.equal((await stepRow(id, "send")).status, "retrying");
  await runWorkflowJob(await claim(id), types);
  assert.deepEqual(keys, [`${id}.send.1`, `${id}.send.2`]);
  assert.equal((await instanceRow(id)).status, "completed");
});

test("waitForJob: the step queues a job in its commit, the instance parks, the job's result is the step's output (its failure the step's)", async () => {
  const org = await createTestOrg();
  const suffix = tag();
  const kind = `test_echo_${suffix}`;
  const name = `test_wait_${suffix}`;
  const types: Record<string, StepType> = {
    ...STEP_TYPES,
    [name]: defineStep({
      effect: "none",
      config: z.strictObject({ text: z.string(), fail: z.boolean().default(false) }),
      run: ({ config }) => ({ waitForJob: { kind, payload: config } }),
    }),
  };
  const echo = defineJobKind({
    kind,
    handler: (ctx) => {
      if (ctx.job.payload.fail) throw new JobFailure("ECHO_REFUSED", "the echo refused", false);
      return Promise.resolve({ echoed: ctx.job.payload.text });
    },
    retry: { maxAttempts: 1, backoff: () => 0 },
    concurrency: { share: 1 },
  });
  const steps = (fail: boolean) => [
    { id: "wait", type: name, config: { text: "hello", fail } },
    { id: "after", type: "set", config: { values: { got: "{{steps.wait.output.echoed}}" } } },
  ];
  const ok = await hiddenInstance(org.orgId, steps(false));
  const failing = await hiddenInstance(org.orgId, steps(true));
  for (const id of [ok, failing]) await runWorkflowJob(await claim(id), types);

  // Parked: no lease, never due by time; the job queued for it carries the payload.
  const parked = await db`
    select j.ref, j.lease_token, j.available_at = 'infinity' as parked, c.payload, c.waiter_ref
    from private.jobs j join private.jobs c on c.kind = ${kind} and c.waiter_ref = j.ref
    where j.kind = 'workflow' and j.ref = any(${[ok, failing]}) order by j.ref = ${ok} desc
  `;
  assert.equal(parked.length, 2);
  assert.deepEqual({ ...parked[0], ref: undefined }, {
    ref: undefined,
    lease_token: null,
    parked: true,
    payload: { text: "hello", fail: false },
    waiter_ref: ok,
  });
  assert.equal((await stepRow(ok, "wait")).status, "waiting");

  // The echo kind runs in a worker of its own; its end wakes the instances, which the
  // stack's worker then finishes (the waiting step needs nothing of its type to resume).
  const worker = new Worker({ kinds: [echo], concurrency: 2, pollMs: 50, log: () => {} });
  const running = worker.run();
  try {
    const done = await until("both instances to end", async () => {
      const rows = await db`
        select id, status, output, error from public.workflow_instances
        where id = any(${[ok, failing]}) and status in ('completed', 'failed')
      `;
      return rows.length === 2 ? rows : undefined;
    });
    const byId = new Map(done.map((row) => [row.id, row]));
    assert.equal(byId.get(ok)!.status, "completed", JSON.stringify(byId.get(ok)));
    assert.deepEqual(byId.get(ok)!.output, { got: "hello" });
    assert.deepEqual((await stepRow(ok, "wait")).output, { echoed: "hello" });
    assert.equal(byId.get(failing)!.status, "failed");
    assert.deepEqual(byId.get(failing)!.error, {
      code: "ECHO_REFUSED",
      message: "the echo refused",
      step_id: "wait",
    });
    const [{ left }] = await db`
      select (select count(*) from private.job_outcomes where waiter_ref = any(${[ok, failing]}))
           + (select count(*) from private.jobs where kind = ${kind})::int as left
    `;
    assert.equal(
      Number(left),
      0,
      "the outcomes went with their instances, the jobs with their end",
    );
  } finally {
    await worker.stop();
    await running;
  }
});

// ---------------------------------------------------------------------------------------
// Scopes: a step type's scope, and contact events, over the API
// ---------------------------------------------------------------------------------------

test("a workflows:write key cannot define contact steps or contact triggers; with contacts scopes it can", async () => {
  const org = await createTestOrg();
  const workflowsOnly = await org.key({ scopes: ["workflows:write"] });
  const both = await org.key({ scopes: ["workflows:write", "contacts:write"] });
  const create = (key: string, data: Record<string, unknown>) =>
    api("workflows/create", { action: "create", data: { name: "Scoped", ...data } }, { key });
  const contactSteps = [
    { id: "s", type: "set", config: { values: { a: 1 } } },
    { id: "c", type: "create_contact", config: { name: "Ana" } },
  ];

  const refused = await create(workflowsOnly, { steps: contactSteps });
  assert.equal(refused.status, 403, JSON.stringify(refused.body));
  assert.equal(refused.body.error.code, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(refused.body.error.details.field, "steps.1.type");
  assert.equal(refused.body.error.details.required_scope, "contacts:write");

  const trigger = await create(workflowsOnly, {
    trigger_type: "event",
    trigger_events: ["workflow.completed", "contact.created"],
    steps: [contactSteps[0]],
  });
  assert.equal(trigger.status, 403, JSON.stringify(trigger.body));
  assert.equal(trigger.body.error.details.field, "trigger_events.1");
  assert.equal(trigger.body.error.details.required_scope, "contacts:read");

  const plain = await create(workflowsOnly, { steps: [contactSteps[0]] });
  assert.equal(plain.status, 200, JSON.stringify(plain.body));
  const update = await api("workflows/update", {
    action: "update",
    data: { workflow_id: plain.body.data.id, steps: contactSteps },
  }, { key: workflowsOnly });
  assert.equal(update.status, 403, JSON.stringify(update.body));
  assert.equal(update.body.error.details.field, "steps.1.type");

  const allowed = await create(both, {
    trigger_type: "event",
    trigger_events: ["contact.created"],
    steps: contactSteps,
  });
  assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
  const [{ n }] =
    await db`select count(*)::int as n from public.workflows where org_id = ${org.orgId}`;
  assert.equal(n, 2, "the refused creates stored nothing");
});
