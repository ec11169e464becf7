/**
 * Bounded workflow data (INSTANCE_LIMITS in shared/workflows/instances.ts, the event limit
 * in shared/platform/events.ts) and steps whose result cannot be stored: each fails once, with its
 * own code, instead of growing without bound or being run again as a crash.
 */
import assert from "node:assert/strict";
import { MAX_EVENT_PAYLOAD_BYTES } from "../shared/platform/events.ts";
import { INSTANCE_LIMITS } from "../shared/workflows/instances.ts";
import { expectError } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, test } from "./helpers/stack.ts";
import {
  createWorkflow,
  execute,
  getInstance,
  startReceiver,
  type Step,
  waitForInstance,
} from "./helpers/workflows.ts";

const setStep = (id: string, values: Record<string, unknown>): Step => ({
  id,
  type: "set",
  config: { values },
});

/** The job of an instance, if it still has one (finished instances have none). */
const jobOf = async (instanceId: string) =>
  (await db<{ claims: number }[]>`
    select claims from private.jobs where kind = 'workflow' and ref = ${instanceId}
  `)[0];

test("a workflow whose data doubles at each step fails at the limit, once, and fast", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  // Each step names the previous output twice: 2^13 copies of the 1 KB input at the end.
  const steps = [setStep("s1", { a: "{{input.text}}", b: "{{input.text}}" })];
  for (let i = 2; i <= 13; i++) {
    const previous = `{{steps.s${i - 1}.output}}`;
    steps.push(setStep(`s${i}`, { a: previous, b: previous }));
  }
  const workflowId = await createWorkflow(key, { steps });

  const started = performance.now();
  const response = await api("workflows/execute", {
    action: "execute",
    data: { workflow_id: workflowId, input: { text: "x".repeat(1000) }, async: false },
  }, { key });
  const elapsed = performance.now() - started;
  assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 500));
  const instance = response.body.data;
  assert.equal(instance.status, "failed");
  assert.equal(instance.error.code, "RENDERED_CONFIG_TOO_LARGE", JSON.stringify(instance.error));
  assert.equal(instance.error.details.limit_bytes, INSTANCE_LIMITS.renderedConfigBytes);
  // Outputs double from 2 KB (s1) to 253 KiB (s8); s9's values would be 506 KiB.
  assert.equal(instance.error.step_id, "s9");
  assert.ok(
    Number(response.headers.get("content-length") ?? JSON.stringify(response.body).length) <
      600 * 1024,
    "the answer holds at most the outputs before the limit",
  );
  assert.ok(elapsed < 10_000, `answered in ${elapsed.toFixed(0)} ms`);

  const detail = await getInstance(key, instance.instance_id);
  const failed = detail.steps.find((s: { step_id: string }) => s.step_id === "s9");
  assert.equal(failed.status, "failed");
  assert.equal(failed.attempts, 1);
  assert.equal(failed.output, null);
  assert.equal(detail.steps.filter((s: { status: string }) => s.status === "completed").length, 8);
  assert.equal(await jobOf(instance.instance_id), undefined, "no job left to run again");

  // The worker is still there for everyone: another organization's workflow runs at once.
  const other = await createTestOrg();
  const otherKey = await other.key();
  const simple = await createWorkflow(otherKey, { steps: [setStep("only", { ok: true })] });
  const before = performance.now();
  const done = await execute(otherKey, simple, {}, true);
  assert.equal(done.status, "completed");
  assert.deepEqual(done.output, { ok: true });
  assert.ok(performance.now() - before < 5_000);
});

test("templates inside text stop at the limit too (they copy what they name)", async () => {
  const key = await (await createTestOrg()).key();
  const workflowId = await createWorkflow(key, {
    steps: [
      setStep("a", { text: "{{input.text}}" }),
      // 3 copies of a 100 KB output as text: 300 KB.
      setStep("b", { joined: "{{steps.a.output}} {{steps.a.output}} {{steps.a.output}}" }),
    ],
  });
  const instance = await execute(key, workflowId, { text: "t".repeat(100_000) }, true);
  assert.equal(instance.status, "failed");
  assert.equal(instance.error.code, "RENDERED_CONFIG_TOO_LARGE");
  assert.equal(instance.error.step_id, "b");
});

test("a step output over 256 KiB as JSON fails the step once: STEP_OUTPUT_TOO_LARGE", async () => {
  // 100 KiB of control characters: 600 KiB once written as JSON (each one is \u0001).
  const receiver = startReceiver(() =>
    new Response("\u0001".repeat(100 * 1024), { headers: { "content-type": "text/plain" } })
  );
  try {
    const key = await (await createTestOrg()).key();
    const workflowId = await createWorkflow(key, {
      steps: [{
        id: "fetch",
        type: "http_request",
        config: { url: receiver.url, method: "GET" },
        retry: { max_attempts: 3 },
      }],
    });
    const instance = await execute(key, workflowId, {}, true);
    assert.equal(instance.status, "failed");
    assert.equal(instance.error.code, "STEP_OUTPUT_TOO_LARGE");
    assert.equal(instance.error.details.limit_bytes, INSTANCE_LIMITS.stepOutputBytes);
    assert.equal(receiver.requests.length, 1, "not retried: the same answer would fail again");
  } finally {
    await receiver.close();
  }
});

test("the outputs an instance stores are bounded in total: INSTANCE_DATA_TOO_LARGE", async () => {
  const key = await (await createTestOrg()).key();
  // 25 steps of 200 KB each: 5 MB, over the 4 MiB total.
  const steps = Array.from({ length: 25 }, (_, i) => setStep(`s${i + 1}`, { v: "{{input.big}}" }));
  const workflowId = await createWorkflow(key, { steps });
  const instance = await execute(key, workflowId, { big: "y".repeat(200_000) }, true);
  assert.equal(instance.status, "failed");
  assert.equal(instance.error.code, "INSTANCE_DATA_TOO_LARGE");
  assert.equal(instance.error.details.limit_bytes, INSTANCE_LIMITS.stepOutputsTotalBytes);
  // 20 outputs of 200,008 bytes fit in 4 MiB (4,194,304); the 21st does not.
  assert.equal(instance.error.step_id, "s21");
});

test("an execute input over 256 KiB is 400 naming 'input' (max_bytes)", async () => {
  const key = await (await createTestOrg()).key();
  const workflowId = await createWorkflow(key, { steps: [setStep("a", { x: 1 })] });
  const tooLarge = await api("workflows/execute", {
    action: "execute",
    data: { workflow_id: workflowId, input: { text: "z".repeat(INSTANCE_LIMITS.inputBytes) } },
  }, { key });
  expectError(tooLarge, 400, "VALIDATION_ERROR");
  assert.equal(tooLarge.body.error.details.field, "input");
  assert.equal(tooLarge.body.error.details.constraint, "max_bytes");
  assert.equal(tooLarge.body.error.details.max_bytes, INSTANCE_LIMITS.inputBytes);

  // Just under the limit is accepted: `{"text":"…"}` is 11 bytes more than the text.
  const fits = await execute(key, workflowId, {
    text: "z".repeat(INSTANCE_LIMITS.inputBytes - 11),
  });
  assert.equal(fits.status, "running");
});

test("an event over 512 KiB is refused with the change that would send it (413)", async () => {
  const key = await (await createTestOrg()).key();
  const tooLarge = await api("contacts/create", {
    action: "create",
    data: { name: "Big", custom_fields: { notes: "n".repeat(MAX_EVENT_PAYLOAD_BYTES) } },
  }, { key });
  expectError(tooLarge, 413, "PAYLOAD_TOO_LARGE");
  assert.equal(tooLarge.body.error.details.event, "contact.created");
  const list = await api("contacts/list", { action: "list", data: { search: "Big" } }, { key });
  assert.equal(list.body.data.contacts.length, 0, "the contact was not created either");
});

test("a provider's answer with a lone surrogate is kept as text, sent once", async () => {
  // The raw bytes {"a":"\ud800"}: valid JSON text that jsonb cannot store.
  const receiver = startReceiver(() =>
    new Response('{"a":"\\ud800"}', { headers: { "content-type": "application/json" } })
  );
  try {
    const key = await (await createTestOrg()).key();
    const workflowId = await createWorkflow(key, {
      steps: [{ id: "call", type: "http_request", config: { url: receiver.url, method: "POST" } }],
    });
    const started = performance.now();
    const instance = await execute(key, workflowId, {}, true);
    assert.equal(instance.status, "completed", JSON.stringify(instance.error));
    assert.equal(instance.output.body, '{"a":"\\ud800"}');
    assert.equal(instance.output.status, 200);
    assert.equal(receiver.requests.length, 1);
    assert.ok(performance.now() - started < 5_000);
  } finally {
    await receiver.close();
  }
});

test("a step whose result the database refuses fails with the cause, after its attempts", async () => {
  // A data exception at commit that the API's own checks do not foresee, raised by
  // PostgreSQL for this test's step records only.
  const marker = `refuse-${crypto.randomUUID()}`;
  const name = `refuse_${marker.slice(7).replaceAll("-", "_")}`;
  await db.unsafe(`
    create function public.${name}() returns trigger language plpgsql as $$
    begin
      if strpos(new.output::text, '${marker}') > 0 then
        raise exception 'value for this test is out of range' using errcode = '22003';
      end if;
      return new;
    end $$;
    create trigger ${name} before insert or update on public.workflow_step_runs
      for each row execute function public.${name}();
  `);
  const receiver = startReceiver(() => Response.json({ marker }));
  try {
    const key = await (await createTestOrg()).key();
    const workflowId = await createWorkflow(key, {
      steps: [
        setStep("before", { kept: true }),
        {
          id: "call",
          type: "http_request",
          config: { url: receiver.url, method: "POST" },
          retry: { max_attempts: 2 },
        },
        setStep("after", { never: true }),
      ],
    });
    const { instance_id } = await execute(key, workflowId);
    const instance = await waitForInstance(key, instance_id);
    assert.equal(instance.status, "failed", JSON.stringify(instance));
    assert.equal(instance.error.code, "STEP_RESULT_UNSTORABLE", JSON.stringify(instance.error));
    assert.equal(instance.error.step_id, "call");
    assert.match(instance.error.message, /value for this test is out of range/);
    assert.equal(receiver.requests.length, 2, "one request per attempt, no crash re-runs");
    const [before, call] = instance.steps;
    assert.deepEqual([before.step_id, before.status, before.output], ["before", "completed", {
      kept: true,
    }]);
    assert.deepEqual([call.step_id, call.status, call.attempts], ["call", "failed", 2]);
    assert.equal(call.output, null);
    assert.equal(call.error.details.sqlstate, "22003");
    assert.equal(instance.steps.length, 2, "the step after it never ran");

    // A pure step's record is written with the instance's last commit: when that is
    // refused, the instance ends failed with the cause (pure steps are not retried).
    const pure = await createWorkflow(key, { steps: [setStep("only", { marker })] });
    const ended = await execute(key, pure, {}, true);
    assert.equal(ended.status, "failed");
    assert.equal(ended.error.code, "STEP_RESULT_UNSTORABLE");
    assert.equal(ended.error.step_id, "only");
    assert.equal(await jobOf(ended.instance_id), undefined);
  } finally {
    await receiver.close();
    await db.unsafe(
      `drop trigger ${name} on public.workflow_step_runs; drop function public.${name}();`,
    );
  }
});
