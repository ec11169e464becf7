import assert from "node:assert/strict";
import { contextFor, type Job } from "../shared/platform/worker.ts";
import { runWorkflowJob } from "../shared/workflows/engine.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, duringTransaction, stack, test } from "./helpers/stack.ts";
import {
  createWorkflow,
  execute,
  getInstance,
  startReceiver,
  type Step,
  waitForInstance,
} from "./helpers/workflows.ts";

// The demo organization holds the ids the spec's examples use (wf_a1b2c3d4, wf_e5f6g7h8).
const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;
const setStep = (id: string, values: Record<string, unknown>): Step => ({
  id,
  type: "set",
  config: { values },
});

// ---------------------------------------------------------------------------------------
// Negative cases, one line per action
// ---------------------------------------------------------------------------------------
const aWorkflow = async (org: { key(): Promise<string> }) => ({
  workflow_id: await createWorkflow(await org.key(), { steps: [setStep("a", { x: 1 })] }),
});
negativeCases({
  group: "workflows",
  action: "list",
  scope: "read",
  valid: { status: "active" },
  invalid: { data: { status: "paused" }, field: "status" },
});
negativeCases({
  group: "workflows",
  action: "get",
  scope: "read",
  valid: aWorkflow,
  invalid: { data: { workflow_id: "ct_abc123" }, field: "workflow_id" },
});
negativeCases({
  group: "workflows",
  action: "create",
  scope: "write",
  valid: { name: "Negative", steps: [setStep("a", { x: 1 })] },
  invalid: { data: { name: "Negative", steps: [] }, field: "steps" },
});
negativeCases({
  group: "workflows",
  action: "update",
  scope: "write",
  valid: async (org) => ({ ...(await aWorkflow(org)), name: "Renamed" }),
  invalid: { data: { workflow_id: "wf_x", concurrency: "many" }, field: "concurrency" },
});
negativeCases({
  group: "workflows",
  action: "archive",
  scope: "write",
  valid: aWorkflow,
  invalid: { data: {}, field: "workflow_id" },
});
negativeCases({
  group: "workflows",
  action: "execute",
  scope: "write",
  valid: async (org) => ({ ...(await aWorkflow(org)), async: true }),
  invalid: { data: { workflow_id: "wf_x", async: "yes" }, field: "async" },
});
negativeCases({
  group: "workflows",
  action: "list_instances",
  suffix: "instances",
  scope: "read",
  valid: { per_page: 10 },
  invalid: { data: { status: "sleeping" }, field: "status" },
});
const anInstance = async (org: { key(): Promise<string> }) => {
  const key = await org.key();
  const { workflow_id } = await aWorkflow(org);
  return { instance_id: (await execute(key, workflow_id)).instance_id };
};
negativeCases({
  group: "workflows",
  action: "get_instance",
  scope: "read",
  valid: anInstance,
  invalid: { data: { instance_id: "wf_a1b2c3d4" }, field: "instance_id" },
});
negativeCases({
  group: "workflows",
  action: "cancel_instance",
  scope: "write",
  valid: async (org) => {
    const key = await org.key();
    const id = await createWorkflow(key, {
      steps: [{ id: "wait", type: "delay", config: { seconds: 600 } }],
    });
    return { instance_id: (await execute(key, id)).instance_id };
  },
  invalid: { data: { instance_id: 7 }, field: "instance_id" },
});

// ---------------------------------------------------------------------------------------
// The spec's examples, sent verbatim
// ---------------------------------------------------------------------------------------
test("spec example: list workflows, sent verbatim, answers in the spec's shape", async () => {
  const response = await api("workflows", {
    action: "list",
    data: { status: "active", page: 1, per_page: 20 },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const { workflows, pagination } = response.body.data;
  assert.deepEqual(pagination, { page: 1, per_page: 20, total: 2, total_pages: 1 });
  assert.deepEqual(workflows.map((w: { id: string }) => w.id), ["wf_a1b2c3d4", "wf_e5f6g7h8"]);
  assert.deepEqual(workflows[0], {
    id: "wf_a1b2c3d4",
    name: "Client onboarding",
    description: "Automated welcome and setup workflow",
    status: "active",
    trigger_type: "manual",
    steps_count: 7,
    created_at: "2026-03-15T10:30:00Z",
    updated_at: "2026-04-01T14:22:00Z",
  });
  assert.equal(workflows[1].trigger_type, "cron");
  assert.equal(workflows[1].steps_count, 4);
});

test("spec examples: execute then list instances, sent verbatim, in the spec's shapes", async () => {
  const executed = await api("workflows/execute", {
    action: "execute",
    data: {
      workflow_id: "wf_a1b2c3d4",
      input: { client_name: "Company ABC", client_email: "contact@companyabc.com", plan: "pro" },
      async: true,
    },
  }, { key: acme.keys.live_secret });
  assert.equal(executed.status, 200, JSON.stringify(executed.body));
  const started = executed.body.data;
  assert.match(started.instance_id, /^wfi_[0-9a-f]{32}$/);
  assert.equal(started.workflow_id, "wf_a1b2c3d4");
  assert.equal(started.status, "running");
  assert.match(started.started_at, ISO);
  assert.equal(started.current_step, 1);
  assert.equal(started.total_steps, 7);

  // The onboarding waits 2 s in its delay step, so it is still running here.
  const listed = await api("workflows/instances", {
    action: "list_instances",
    data: { workflow_id: "wf_a1b2c3d4", status: "running", page: 1, per_page: 10 },
  }, { key: acme.keys.live_secret });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  const instance = listed.body.data.instances.find(
    (i: { instance_id: string }) => i.instance_id === started.instance_id,
  );
  assert.ok(instance, JSON.stringify(listed.body.data));
  assert.equal(instance.workflow_name, "Client onboarding");
  assert.equal(instance.status, "running");
  assert.equal(instance.total_steps, 7);
  assert.deepEqual(instance.input, {
    client_name: "Company ABC",
    client_email: "contact@companyabc.com",
    plan: "pro",
  });
  assert.match(instance.updated_at, ISO);
  assert.equal(listed.body.data.pagination.page, 1);
  assert.equal(listed.body.data.pagination.per_page, 10);

  const done = await waitForInstance(acme.keys.live_secret, started.instance_id);
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.equal(done.current_step, 7);
  assert.equal(done.output.client_configured, true);
  const contact = await api("contacts/get", {
    action: "get",
    data: { id: done.output.contact_id },
  }, { key: acme.keys.live_secret });
  assert.equal(contact.body.data.name, "Company ABC");
  assert.deepEqual(contact.body.data.tags, ["client", "pro"]);
  assert.deepEqual(contact.body.data.custom_fields, { plan: "pro", onboarded: true });
  assert.deepEqual(
    done.steps.map((s: { step_id: string; status: string }) => `${s.step_id}:${s.status}`),
    [
      "create_client:completed",
      "plan_check:completed",
      "pro_setup:completed",
      "welcome:completed",
      "follow_up_delay:completed",
      "mark_onboarded:completed",
      "summary:completed",
    ],
  );
});

// ---------------------------------------------------------------------------------------
// Definitions
// ---------------------------------------------------------------------------------------
test("create, get, update (new version) and archive; list hides archived unless asked", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await api("workflows/create", {
    action: "create",
    data: {
      name: "Welcome",
      description: "Says hello",
      steps: [setStep("hello", { greeting: "Hello {{input.name}}" })],
    },
  }, { key });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const wf = created.body.data;
  assert.match(wf.id, /^wf_/);
  assert.equal(wf.version, 1);
  assert.equal(wf.status, "active");
  assert.equal(wf.concurrency, "parallel");
  assert.equal(wf.steps_count, 1);
  assert.deepEqual(wf.steps, [{
    id: "hello",
    type: "set",
    config: { values: { greeting: "Hello {{input.name}}" } },
  }]);

  const renamed = await api("workflows/update", {
    action: "update",
    data: { workflow_id: wf.id, name: "Welcome v2" },
  }, { key });
  assert.equal(renamed.body.data.name, "Welcome v2");
  assert.equal(renamed.body.data.version, 1, "no new version without new steps");
  assert.equal(renamed.body.data.description, "Says hello", "fields not sent are kept");

  const restepped = await api("workflows/update", {
    action: "update",
    data: { workflow_id: wf.id, steps: [setStep("hello", { greeting: "Hi" }), setStep("b", {})] },
  }, { key });
  assert.equal(restepped.body.data.version, 2);
  assert.equal(restepped.body.data.steps_count, 2);

  const archived = await api("workflows/archive", {
    action: "archive",
    data: { workflow_id: wf.id },
  }, { key });
  assert.equal(archived.body.data.status, "archived");
  const listed = await api("workflows/list", { action: "list", data: {} }, { key });
  assert.equal(listed.body.data.workflows.length, 0);
  const listedArchived = await api("workflows/list", {
    action: "list",
    data: { status: "archived" },
  }, { key });
  assert.equal(listedArchived.body.data.workflows[0].id, wf.id);
  expectError(
    await api("workflows/execute", { action: "execute", data: { workflow_id: wf.id } }, { key }),
    409,
    "WORKFLOW_INACTIVE",
  );
});

test("definitions are checked: step ids, configs, templates, condition targets, triggers", async () => {
  const key = await (await createTestOrg()).key();
  const cases: [Record<string, unknown>, string, string][] = [
    [{ steps: [setStep("a", {}), setStep("a", {})] }, "steps.1.id", "unique"],
    [{ steps: [{ id: "a", type: "teleport", config: {} }] }, "steps.0.type", "enum"],
    [
      { steps: [{ id: "a", type: "delay", config: { minutes: 3 } }] },
      "steps.0.config.minutes",
      "unknown_field",
    ],
    [
      { steps: [{ id: "c", type: "create_contact", config: { email: "x@example.com" } }] },
      "steps.0.config.name",
      "required",
    ],
    [
      { steps: [setStep("a", { v: "{{steps.b.output.x}}" }), setStep("b", {})] },
      "steps.0.config",
      "template",
    ],
    [{ steps: [setStep("a", { v: "{{secrets.key}}" })] }, "steps.0.config", "template"],
    [{ steps: [setStep("a", { v: "{{input.constructor()}}" })] }, "steps.0.config", "template"],
    [
      {
        steps: [setStep("a", {}), {
          id: "c",
          type: "condition",
          config: { value: 1, equals: 1, then: "a" },
        }],
      },
      "steps.1.config.then",
      "later_step",
    ],
    [
      {
        steps: [{ id: "h", type: "http_request", config: { url: "ftp://example.com/x" } }],
      },
      "steps.0.config.url",
      "url",
    ],
    [
      { trigger_type: "cron", cron_expression: "61 * * * *", steps: [setStep("a", {})] },
      "cron_expression",
      "cron",
    ],
    [
      {
        trigger_type: "cron",
        cron_expression: "* * * * *",
        timezone: "Mars/Olympus",
        steps: [setStep("a", {})],
      },
      "timezone",
      "timezone",
    ],
    [{ trigger_type: "event", steps: [setStep("a", {})] }, "trigger_events", "required"],
    [
      { trigger_type: "event", trigger_events: ["contact.deleted"], steps: [setStep("a", {})] },
      "trigger_events.0",
      "enum",
    ],
    [
      { cron_expression: "* * * * *", steps: [setStep("a", {})] },
      "cron_expression",
      "trigger_type",
    ],
  ];
  for (const [data, field, constraint] of cases) {
    const response = await api("workflows/create", {
      action: "create",
      data: { name: "Bad", ...data },
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(response.body.error.details, { field, constraint }, JSON.stringify(data));
  }
  // Templated values are checked when the step runs, not when it is saved.
  const ok = await api("workflows/create", {
    action: "create",
    data: {
      name: "Templated",
      steps: [{
        id: "c",
        type: "create_contact",
        config: { name: "{{input.n}}", email: "{{input.e}}" },
      }],
    },
  }, { key });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});

// ---------------------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------------------
test("sync execute waits for the end and returns output and per-step records", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [
      setStep("first", { n: "{{input.n}}", label: "n is {{input.n}}" }),
      { id: "pause", type: "delay", config: { seconds: 1 } },
      setStep("last", { same: "{{steps.first.output.n}}", text: "got {{steps.first.output}}" }),
    ],
  });
  const started = Date.now();
  const done = await execute(key, id, { n: 21 }, true);
  const took = Date.now() - started;
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.ok(took >= 1000, `the delay step waited (${took} ms)`);
  assert.deepEqual(done.output, { same: 21, text: 'got {"n":21,"label":"n is 21"}' });
  assert.match(done.finished_at, ISO);
  assert.deepEqual(done.steps.map((s: { attempts: number }) => s.attempts), [1, 1, 1]);
  assert.equal(done.steps[1].output.waited_until.length > 0, true);
});

test("sync execute answers after 60 s with the instance as it stands when the run is longer", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [setStep("first", {}), { id: "wait", type: "delay", config: { seconds: 600 } }],
  });
  const started = Date.now();
  const answer = await execute(key, id, {}, true);
  const took = Date.now() - started;
  assert.ok(took >= 60_000 && took < 65_000, `answered after ${took} ms`);
  assert.equal(answer.status, "running");
  assert.equal(answer.current_step, 2);
  assert.equal(answer.steps[1].status, "waiting");
});

test("a single-concurrency workflow refuses a second execute while one runs (409)", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    concurrency: "single",
    steps: [{ id: "wait", type: "delay", config: { seconds: 600 } }],
  });
  const first = await execute(key, id);
  expectError(
    await api("workflows/execute", { action: "execute", data: { workflow_id: id } }, { key }),
    409,
    "WORKFLOW_ALREADY_RUNNING",
  );
  const cancelled = await api("workflows/cancel_instance", {
    action: "cancel_instance",
    data: { instance_id: first.instance_id },
  }, { key });
  assert.equal(cancelled.body.data.status, "cancelled");
  const second = await execute(key, id);
  assert.equal(second.status, "running");
});

test("a failing step is retried with backoff and the same idempotency key, then the instance fails", async () => {
  const receiver = startReceiver(() => new Response("busy", { status: 503 }));
  try {
    const key = await (await createTestOrg()).key();
    const id = await createWorkflow(key, {
      steps: [{
        id: "call",
        type: "http_request",
        config: { url: `${receiver.url}/hook`, method: "POST", body: { hello: "{{input.who}}" } },
        retry: { max_attempts: 3 },
      }],
    });
    const { instance_id } = await execute(key, id, { who: "world" });
    const done = await waitForInstance(key, instance_id);
    assert.equal(done.status, "failed");
    assert.equal(done.error.code, "HTTP_STATUS");
    assert.equal(done.error.step_id, "call");
    assert.equal(done.steps[0].attempts, 3);
    assert.equal(done.steps[0].status, "failed");
    assert.equal(receiver.requests.length, 3);
    const keys = new Set(receiver.requests.map((r) => r.headers.get("idempotency-key")));
    assert.deepEqual([...keys], [`${instance_id}.call`]);
    assert.deepEqual(JSON.parse(receiver.requests[0].body), { hello: "world" });
    const gaps = receiver.requests.slice(1).map((r, i) => r.at - receiver.requests[i].at);
    assert.ok(gaps[0] >= 900 && gaps[1] >= 1900, `backoff 1 s then 2 s: ${gaps}`);
    const [event] = await db`
      select data from public.events where type = 'workflow.failed' and data->>'instance_id' = ${instance_id}
    `;
    assert.equal(event.data.status, "failed");
    assert.equal(event.data.error.code, "HTTP_STATUS");
  } finally {
    await receiver.close();
  }
});

test("a step that fails once and then succeeds completes on its second attempt", async () => {
  const receiver = startReceiver((n) =>
    n === 1 ? new Response("", { status: 500 }) : Response.json({ id: 42 })
  );
  try {
    const key = await (await createTestOrg()).key();
    const id = await createWorkflow(key, {
      steps: [
        {
          id: "call",
          type: "http_request",
          config: { url: receiver.url },
          retry: { max_attempts: 2 },
        },
        setStep("use", { remote_id: "{{steps.call.output.body.id}}" }),
      ],
    });
    const done = await waitForInstance(key, (await execute(key, id)).instance_id);
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.equal(done.steps[0].attempts, 2);
    assert.equal(done.steps[0].output.status, 200);
    assert.deepEqual(done.output, { remote_id: 42 });
  } finally {
    await receiver.close();
  }
});

test("an http_request answer PostgreSQL cannot store is kept as text, NUL characters replaced", async () => {
  const escapedNul = '{"note":"a\\u0000b"}';
  const deep = "[".repeat(100) + "]".repeat(100);
  const json = { "content-type": "application/json" };
  // Steps run in order, so the receiver's nth request is the nth step's.
  const answers = [
    () => new Response(escapedNul, { headers: json }),
    () => new Response(deep, { headers: json }),
    () => new Response("plain a\u0000b", { headers: { "content-type": "text/plain" } }),
  ];
  const receiver = startReceiver((n) => answers[n - 1]());
  try {
    const key = await (await createTestOrg()).key();
    const id = await createWorkflow(key, {
      steps: ["json", "deep", "text"].map((name) => ({
        id: name,
        type: "http_request",
        config: { url: `${receiver.url}/${name}` },
      })),
    });
    const done = await waitForInstance(key, (await execute(key, id)).instance_id);
    assert.equal(done.status, "completed", JSON.stringify(done));
    assert.deepEqual(
      done.steps.map((step: { output: { body: unknown } }) => step.output.body),
      [escapedNul, deep, "plain a\uFFFDb"],
    );
  } finally {
    await receiver.close();
  }
});

test("http_request refuses private-network targets without retrying", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{
      id: "call",
      type: "http_request",
      config: { url: "http://169.254.169.254/latest/meta-data/" },
      retry: { max_attempts: 5 },
    }],
  });
  const done = await waitForInstance(key, (await execute(key, id)).instance_id);
  assert.equal(done.status, "failed");
  assert.equal(done.error.code, "TARGET_NOT_ALLOWED");
  assert.equal(done.steps[0].attempts, 1);
});

test("a delay is durable: the job is rescheduled (no worker waits) and the run resumes", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [
      setStep("before", { a: 1 }),
      { id: "wait", type: "delay", config: { seconds: 2 } },
      setStep("after", { b: 2 }),
    ],
  });
  const { instance_id } = await execute(key, id);
  const waiting = await waitForInstance(
    key,
    instance_id,
    (i) => i.steps.some((s: { status: string }) => s.status === "waiting"),
  );
  const waitStep = waiting.steps.find((s: { step_id: string }) => s.step_id === "wait");
  assert.match(waitStep.next_attempt_at, ISO);
  const [job] = await db`
    select lease_token, available_at from private.jobs where kind = 'workflow' and ref = ${instance_id}
  `;
  assert.equal(job.lease_token, null, "no worker holds the job while it waits");
  assert.ok(
    Math.abs(job.available_at.getTime() - Date.parse(waitStep.next_attempt_at)) < 1000,
    "the job is due when the delay ends",
  );
  const done = await waitForInstance(key, instance_id);
  assert.equal(done.status, "completed");
  assert.deepEqual(done.output, { b: 2 });
  const [gone] = await db`select 1 from private.jobs where ref = ${instance_id}`;
  assert.equal(gone, undefined, "a finished instance leaves no job");
});

test("a worker whose lease was taken over commits nothing; the lease holder then runs the step once", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const id = await createWorkflow(key, {
    steps: [
      { id: "wait", type: "delay", config: { seconds: 3600 } },
      { id: "contact", type: "create_contact", config: { name: "Fenced contact" } },
    ],
  });
  const { instance_id } = await execute(key, id);
  await waitForInstance(
    key,
    instance_id,
    (i) => i.steps.some((s: { status: string }) => s.status === "waiting"),
  );
  // The delay is over, but the job stays unclaimed for now (due in an hour).
  await db`
    update public.workflow_step_runs set resume_at = now() - interval '1 second'
    where instance_id = ${instance_id} and step_id = 'wait'
  `;
  const [job] = await db<(Job & { available_at: Date })[]>`
    select id::int, kind, ref, org_id, environment, lease_token, claims, attempts, payload,
           available_at
    from private.jobs where ref = ${instance_id}
  `;

  // A worker holding a token the job no longer has (another worker took it over).
  Deno.env.set("SUPABASE_DB_URL", stack.db_url);
  const { available_at: _due, ...claimed } = job;
  await runWorkflowJob(contextFor({ ...claimed, lease_token: crypto.randomUUID() }, 30));
  const contacts = () =>
    db`select id from public.contacts where org_id = ${org.orgId} and name = 'Fenced contact'`;
  assert.equal((await contacts()).length, 0, "the stale worker's create_contact was not committed");
  const stale = await getInstance(key, instance_id);
  assert.equal(stale.status, "running");
  assert.equal(stale.current_step, 1);
  const [untouched] = await db`select available_at from private.jobs where id = ${job.id}`;
  assert.equal(
    untouched.available_at.getTime(),
    job.available_at.getTime(),
  );

  // The job made due: the stack's worker claims it and finishes the run, one contact.
  await db`update private.jobs set available_at = now() where id = ${job.id}`;
  const done = await waitForInstance(key, instance_id);
  assert.equal(done.status, "completed", JSON.stringify(done));
  assert.equal((await contacts()).length, 1);
});

test("conditions branch to a later step or end; skipped steps are recorded", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [
      {
        id: "check",
        type: "condition",
        config: { value: "{{input.plan}}", equals: "pro", then: "pro", else: "basic" },
      },
      setStep("pro", { tier: "pro" }),
      { id: "stop", type: "condition", config: { value: true, equals: true, then: "end" } },
      setStep("basic", { tier: "basic" }),
    ],
  });
  const pro = await execute(key, id, { plan: "pro" }, true);
  assert.deepEqual(pro.steps.map((s: { status: string }) => s.status), [
    "completed",
    "completed",
    "completed",
    "skipped",
  ]);
  assert.deepEqual(pro.output, { matched: true, next: "end" });
  const basic = await execute(key, id, { plan: "starter" }, true);
  assert.deepEqual(basic.steps.map((s: { status: string }) => s.status), [
    "completed",
    "skipped",
    "skipped",
    "completed",
  ]);
  assert.deepEqual(basic.output, { tier: "basic" });
  assert.deepEqual(basic.steps[0].output, { matched: false, next: "basic" });
});

test("a template naming a missing path fails the step with a clear error", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [setStep("a", { email: "{{input.client.email}}" })],
  });
  const done = await execute(key, id, { client: { name: "X" } }, true);
  assert.equal(done.status, "failed");
  assert.equal(done.error.code, "TEMPLATE_ERROR");
  assert.equal(
    done.error.message,
    "Template '{{input.client.email}}': input.client has no 'email'.",
  );
  const invalid = await createWorkflow(key, {
    steps: [{ id: "c", type: "create_contact", config: { name: "N", email: "{{input.e}}" } }],
  });
  const bad = await execute(key, invalid, { e: "not an email" }, true);
  assert.equal(bad.error.code, "INVALID_STEP_CONFIG");
  assert.match(bad.error.message, /config\.email/);
});

test("create_contact in a step creates the contact and writes contact.created with the run's depth", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{ id: "c", type: "create_contact", config: { name: "{{input.name}}", tags: ["wf"] } }],
  });
  const done = await execute(key, id, { name: "From a workflow" }, true);
  assert.equal(done.status, "completed");
  assert.equal(done.output.name, "From a workflow");
  const [event] = await db`
    select chain_depth from public.events where type = 'contact.created' and data->>'id' = ${done.output.id}
  `;
  assert.equal(event.chain_depth, 0);
  const [completed] = await db`
    select data from public.events where type = 'workflow.completed' and data->>'instance_id' = ${done.instance_id}
  `;
  assert.deepEqual(Object.keys(completed.data).sort(), [
    "duration_ms",
    "instance_id",
    "output",
    "status",
    "workflow_id",
    "workflow_name",
  ]);
  assert.equal(completed.data.workflow_name, "Test workflow");
});

test("editing a workflow does not change instances already running", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{ id: "wait", type: "delay", config: { seconds: 1 } }, setStep("out", { version: 1 })],
  });
  const { instance_id } = await execute(key, id);
  const updated = await api("workflows/update", {
    action: "update",
    data: { workflow_id: id, steps: [setStep("out", { version: 2 })] },
  }, { key });
  assert.equal(updated.body.data.version, 2);
  const done = await waitForInstance(key, instance_id);
  assert.deepEqual(done.output, { version: 1 });
  assert.equal(done.total_steps, 2);
  const fresh = await execute(key, id, {}, true);
  assert.deepEqual(fresh.output, { version: 2 });
});

test("cancel stops a waiting instance and removes its job; cancelling again is 409", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{ id: "wait", type: "delay", config: { seconds: 600 } }],
  });
  const { instance_id } = await execute(key, id);
  await waitForInstance(key, instance_id, (i) => i.steps.length > 0);
  const cancelled = await api("workflows/cancel_instance", {
    action: "cancel_instance",
    data: { instance_id },
  }, { key });
  assert.equal(cancelled.body.data.status, "cancelled");
  assert.match(cancelled.body.data.finished_at, ISO);
  const [job] = await db`select 1 from private.jobs where ref = ${instance_id}`;
  assert.equal(job, undefined);
  expectError(
    await api("workflows/cancel_instance", { action: "cancel_instance", data: { instance_id } }, {
      key,
    }),
    409,
    "INSTANCE_FINISHED",
  );
});

test("an inactive workflow cannot be executed; reactivating it allows it again", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, { status: "inactive", steps: [setStep("a", {})] });
  const refused = await api("workflows/execute", { action: "execute", data: { workflow_id: id } }, {
    key,
  });
  expectError(refused, 409, "WORKFLOW_INACTIVE");
  assert.equal(refused.body.error.details.status, "inactive");
  await api("workflows/update", { action: "update", data: { workflow_id: id, status: "active" } }, {
    key,
  });
  assert.equal((await execute(key, id)).status, "running");
});

// ---------------------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------------------
test("cron: the enqueue function starts a matching workflow once per minute; the pg_cron job exists", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    trigger_type: "cron",
    cron_expression: "30 9 * * 1",
    timezone: "Europe/Madrid",
    steps: [setStep("when", { at: "{{input.scheduled_for}}" })],
  });
  const got = await api("workflows/get", { action: "get", data: { workflow_id: id } }, { key });
  assert.equal(got.body.data.cron_expression, "30 9 * * 1");
  assert.equal(got.body.data.timezone, "Europe/Madrid");
  const countRuns = async () =>
    (await db`select count(*)::int as n from public.workflow_instances where workflow_id = ${id}`)[
      0
    ].n;

  // Monday 2026-11-23 09:30 in Madrid is 08:30 UTC.
  await db`select private.start_cron_workflows('2026-11-23 08:29:00+00')`;
  assert.equal(await countRuns(), 0, "09:29 does not match");
  await db`select private.start_cron_workflows('2026-11-23 08:30:00+00')`;
  await db`select private.start_cron_workflows('2026-11-23 08:30:40+00')`;
  assert.equal(await countRuns(), 1, "09:30 matches, once");
  const [run] =
    await db`select id, trigger from public.workflow_instances where workflow_id = ${id}`;
  assert.equal(run.trigger.type, "cron");
  const done = await waitForInstance(key, run.id);
  assert.deepEqual(done.output, { at: "2026-11-23T08:30:00Z" });

  const [job] =
    await db`select schedule, command from cron.job where jobname = 'bivelio-start-cron-workflows'`;
  assert.equal(job.schedule, "* * * * *");
  assert.match(job.command, /private\.start_cron_workflows\(\)/);
});

test("event triggers: a contact.created starts a subscribed workflow of the same org and environment", async () => {
  const org = await createTestOrg();
  const other = await createTestOrg();
  const key = await org.key();
  const sandboxKey = await org.key({ environment: "test" });
  const id = await createWorkflow(key, {
    trigger_type: "event",
    trigger_events: ["contact.created"],
    steps: [setStep("seen", { name: "{{input.data.name}}", event: "{{input.event}}" })],
  });
  await api("contacts/create", { action: "create", data: { name: "Sandbox person" } }, {
    key: sandboxKey,
  });
  await api("contacts/create", { action: "create", data: { name: "Other org person" } }, {
    key: await other.key(),
  });
  await api("contacts/create", { action: "create", data: { name: "Live person" } }, { key });
  const listed = await api("workflows/instances", {
    action: "list_instances",
    data: { workflow_id: id },
  }, { key });
  assert.equal(
    listed.body.data.instances.length,
    1,
    "only the live contact of this org triggers it",
  );
  const done = await waitForInstance(key, listed.body.data.instances[0].instance_id);
  assert.deepEqual(done.output, { name: "Live person", event: "contact.created" });
});

test("event loops are cut off: a workflow creating contacts on contact.created stops at depth 5", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    trigger_type: "event",
    trigger_events: ["contact.created"],
    steps: [{
      id: "again",
      type: "create_contact",
      config: { name: "Echo of {{input.data.name}}" },
    }],
  });
  await api("contacts/create", { action: "create", data: { name: "Seed" } }, { key });
  const deadline = Date.now() + 15_000;
  let runs: { status: string; chain_depth: number }[] = [];
  while (Date.now() < deadline) {
    runs =
      await db`select status, chain_depth from public.workflow_instances where workflow_id = ${id}`;
    if (runs.length === 5 && runs.every((r) => r.status === "completed")) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.deepEqual(runs.map((r) => r.chain_depth).sort(), [1, 2, 3, 4, 5]);
  assert.ok(runs.every((r) => r.status === "completed"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const [{ n }] =
    await db`select count(*)::int as n from public.workflow_instances where workflow_id = ${id}`;
  assert.equal(n, 5, "no sixth run");
});

// ---------------------------------------------------------------------------------------
// Isolation
// ---------------------------------------------------------------------------------------
test("another organization's or environment's workflows and instances are invisible", async () => {
  const owner = await createTestOrg();
  const ownerKey = await owner.key();
  const id = await createWorkflow(ownerKey, { steps: [setStep("a", {})] });
  const { instance_id } = await execute(ownerKey, id);
  for (
    const key of [await (await createTestOrg()).key(), await owner.key({ environment: "test" })]
  ) {
    expectError(
      await api("workflows/get", { action: "get", data: { workflow_id: id } }, { key }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("workflows/execute", { action: "execute", data: { workflow_id: id } }, { key }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("workflows/update", { action: "update", data: { workflow_id: id, name: "x" } }, {
        key,
      }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("workflows/archive", { action: "archive", data: { workflow_id: id } }, { key }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("workflows/get_instance", { action: "get_instance", data: { instance_id } }, {
        key,
      }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("workflows/cancel_instance", { action: "cancel_instance", data: { instance_id } }, {
        key,
      }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    const lists = await api("workflows/list", { action: "list", data: {} }, { key });
    assert.equal(lists.body.data.workflows.length, 0);
    const instances = await api("workflows/instances", { action: "list_instances", data: {} }, {
      key,
    });
    assert.equal(instances.body.data.instances.length, 0);
  }
  const own = await getInstance(ownerKey, instance_id);
  assert.equal(own.workflow_id, id);
});

test("a run acts for its own organization: its contact lands in the instance's org and environment", async () => {
  const org = await createTestOrg();
  const sandboxKey = await org.key({ environment: "test" });
  const id = await createWorkflow(sandboxKey, {
    steps: [{ id: "c", type: "create_contact", config: { name: "Sandbox made" } }],
  });
  const done = await execute(sandboxKey, id, {}, true);
  const [row] =
    await db`select org_id, environment from public.contacts where id = ${done.output.id}`;
  assert.deepEqual({ ...row }, { org_id: org.orgId, environment: "test" });
});

// ---------------------------------------------------------------------------------------
// The worker function (what pg_net calls in production)
// ---------------------------------------------------------------------------------------
test("POST /v1/worker runs due jobs only with the worker secret", async () => {
  const call = (secret: string) =>
    fetch(`${stack.api_url}/v1/worker`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}` },
    });
  const refused = await call("not-the-secret");
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error.code, "AUTH_INVALID_TOKEN");

  // A job due now is run by whichever worker gets it first: the stack's or this call's.
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, { steps: [setStep("a", { ran: true })] });
  const { instance_id } = await execute(key, id);
  const drained = await call(stack.worker_secret);
  assert.equal(drained.status, 200);
  const body = await drained.json();
  assert.equal(typeof body.data.processed, "number");
  const done = await waitForInstance(key, instance_id);
  assert.deepEqual(done.output, { ran: true });
});

// ---------------------------------------------------------------------------------------
// Concurrent changes: a request that meets a change another transaction is making
// ---------------------------------------------------------------------------------------

test("an update meeting another update of the steps makes the next version, never a 500", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const id = await createWorkflow(key, { steps: [setStep("a", { v: 1 })] });
  // What another update of the steps does: version 2, then the workflow points at it.
  const response = await duringTransaction(
    async (tx) => {
      await tx`
        insert into public.workflow_versions (workflow_id, version, org_id, environment, steps)
        values (${id}, 2, ${org.orgId}, 'live', ${tx.json([setStep("a", { v: 2 })] as never)})
      `;
      await tx`update public.workflows set version = 2, updated_at = now() where id = ${id}`;
    },
    () =>
      api("workflows/update", {
        action: "update",
        data: { workflow_id: id, steps: [setStep("a", { v: 3 })] },
      }, { key }),
  );
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.version, 3);
  assert.deepEqual(response.body.data.steps, [setStep("a", { v: 3 })]);
});

test("an update meeting an archive keeps the workflow archived (no lost update)", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, { steps: [setStep("a", {})] });
  const response = await duringTransaction(
    (tx) => tx`update public.workflows set status = 'archived' where id = ${id}`,
    () =>
      api("workflows/update", { action: "update", data: { workflow_id: id, name: "Renamed" } }, {
        key,
      }),
  );
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.name, "Renamed");
  assert.equal(response.body.data.status, "archived");
});

test("cancelling an instance that ends meanwhile is 409 INSTANCE_FINISHED, not a 200 that did nothing", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{ id: "wait", type: "delay", config: { seconds: 600 } }],
  });
  const { instance_id } = await execute(key, id);
  await waitForInstance(key, instance_id, (i) => i.steps.length > 0);
  // What the worker's last commit does (the trigger drops the job).
  const response = await duringTransaction(
    (tx) =>
      tx`update public.workflow_instances
         set status = 'completed', finished_at = clock_timestamp(), updated_at = clock_timestamp()
         where id = ${instance_id}`,
    () =>
      api("workflows/cancel_instance", { action: "cancel_instance", data: { instance_id } }, {
        key,
      }),
  );
  expectError(response, 409, "INSTANCE_FINISHED");
  assert.equal(response.body.error.details.status, "completed");
});

test("switching a workflow to single concurrency while an instance runs: execute is 409 until it ends", async () => {
  const key = await (await createTestOrg()).key();
  const id = await createWorkflow(key, {
    steps: [{ id: "wait", type: "delay", config: { seconds: 600 } }],
  });
  const first = await execute(key, id);
  const switched = await api("workflows/update", {
    action: "update",
    data: { workflow_id: id, concurrency: "single" },
  }, { key });
  assert.equal(switched.body.data.concurrency, "single");
  expectError(
    await api("workflows/execute", { action: "execute", data: { workflow_id: id } }, { key }),
    409,
    "WORKFLOW_ALREADY_RUNNING",
  );
  await api("workflows/cancel_instance", {
    action: "cancel_instance",
    data: { instance_id: first.instance_id },
  }, { key });
  assert.equal((await execute(key, id)).status, "running");
});
