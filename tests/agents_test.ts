/**
 * Agents: the spec's examples, management (admin scope, schemas Gemini accepts), invoke in
 * three phases against the Gemini stand-in (structured output checked, refunds on failure,
 * 429 retried, credits under concurrency, sandbox), streaming, isolation, and the sweep of
 * executions left running. Each test that scripts the stand-in uses a model name of its own,
 * so scripts and recorded requests never mix between tests.
 */
import assert from "node:assert/strict";
import type { ScriptedAnswer } from "../local/stand-ins/gemini.ts";
import { agentList, execution, executionList, invocation } from "../shared/agents/schemas.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";

const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;
const standIn = stack.gemini;

/** A model name no other test uses (the stand-in's scripts and records are per model). */
const uniqueModel = () => `gemini-test-${crypto.randomUUID().slice(0, 12)}`;

async function script(model: string, answers: ScriptedAnswer[]) {
  const response = await fetch(`${standIn.base_url}/_standin/script`, {
    method: "POST",
    body: JSON.stringify({ model, answers }),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

async function requestsFor(model: string): Promise<unknown[]> {
  const response = await fetch(
    `${standIn.base_url}/_standin/requests?model=${encodeURIComponent(model)}`,
  );
  return (await response.json()).requests;
}

const CLASSIFIER_OUTPUT = {
  type: "object",
  required: ["intent", "confidence"],
  properties: {
    intent: { type: "string", enum: ["billing", "support", "sales"] },
    confidence: { type: "number", minimum: 0, maximum: 1 },
  },
};

/** An active agent of `org` (live unless a key of another environment is given). */
async function createAgent(
  key: string,
  fields: Record<string, unknown> = {},
): Promise<{ id: string; model: string }> {
  const model = (fields.model as string) ?? uniqueModel();
  const response = await api("agents/create", {
    action: "create",
    data: {
      name: "Classifier",
      category: "nlp",
      instructions: "Classify the message.",
      output_schema: CLASSIFIER_OUTPUT,
      temperature: 0.2,
      ...fields,
      model,
    },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return { id: response.body.data.id, model };
}

const invoke = (key: string, data: Record<string, unknown>, headers?: Record<string, string>) =>
  api("agents/invoke", { action: "invoke", data }, { key, headers });

const setBalance = (orgId: string, credits: number) =>
  db`update public.credit_balances set balance = ${credits} where org_id = ${orgId}`;

async function balanceOf(orgId: string) {
  const [row] = await db<{ balance: number }[]>`
    select balance from public.credit_balances where org_id = ${orgId}
  `;
  return row.balance;
}

async function executionRow(id: string) {
  const [row] = await db<
    { status: string; credits: number; error: Record<string, unknown> | null }[]
  >`select status, credits, error from public.agent_executions where id = ${id}`;
  return row;
}

/** Credits given back for an execution, from the ledger. */
async function refundedFor(executionId: string) {
  const [row] = await db<{ refunds: number; credits: number }[]>`
    select count(*)::int as refunds, coalesce(sum(amount), 0)::int as credits
    from public.credit_transactions where reference = ${executionId} and operation = 'refund'
  `;
  return row;
}

/** A fresh org with an admin key and an agent of its own model. */
async function orgWithAgent(
  fields: Record<string, unknown> = {},
  plan: "pro" | "enterprise" = "enterprise",
) {
  const org = await createTestOrg({ plan });
  const key = await org.key();
  const agent = await createAgent(key, fields);
  return { org, key, agent };
}

// ---------------------------------------------------------------------------------------
// The shared negative cases, for every action

const agentFor = async (org: TestOrg) => (await createAgent(await org.key())).id;

negativeCases({
  group: "agents",
  action: "list",
  scope: "read",
  valid: { status: "active", category: "all" },
  invalid: { data: { status: "deleted" }, field: "status" },
});
negativeCases({
  group: "agents",
  action: "get",
  scope: "read",
  valid: async (org) => ({ agent_id: await agentFor(org) }),
  invalid: { data: { agent_id: "ct_abc123" }, field: "agent_id" },
});
negativeCases({
  group: "agents",
  action: "create",
  scope: "admin",
  valid: { name: "Negative cases", output_schema: CLASSIFIER_OUTPUT, model: uniqueModel() },
  invalid: {
    data: { name: "Bad", output_schema: { type: "object", patternProperties: {} } },
    field: "output_schema.patternProperties",
  },
});
negativeCases({
  group: "agents",
  action: "update",
  scope: "admin",
  valid: async (org) => ({ agent_id: await agentFor(org), description: "updated" }),
  invalid: { data: { agent_id: "ag_x", temperature: 3 }, field: "temperature" },
});
negativeCases({
  group: "agents",
  action: "archive",
  scope: "admin",
  valid: async (org) => ({ agent_id: await agentFor(org) }),
  invalid: { data: { agent_id: 42 }, field: "agent_id" },
});
negativeCases({
  group: "agents",
  action: "invoke",
  scope: "write",
  valid: async (org) => ({ agent_id: await agentFor(org), input: { text: "hello" } }),
  invalid: { data: { agent_id: "ag_x", input: "not an object" }, field: "input" },
});
negativeCases({
  group: "agents",
  action: "list_executions",
  scope: "read",
  valid: { status: "completed", per_page: 5 },
  invalid: { data: { status: "lost" }, field: "status" },
});
negativeCases({
  group: "agents",
  action: "get_execution",
  scope: "read",
  valid: async (org) => {
    const key = await org.key();
    const answer = await invoke(key, { agent_id: await agentFor(org), input: { text: "hi" } });
    return { execution_id: answer.body.data.execution_id };
  },
  invalid: { data: { execution_id: "ag_classifier_01" }, field: "execution_id" },
});

// ---------------------------------------------------------------------------------------
// The spec's examples, verbatim, against Acme's demo agents

test("spec: list example returns the demo agents with the spec's fields", async () => {
  const response = await api("agents/list", {
    action: "list",
    data: { status: "active", category: "all" },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  agentList.parse(response.body.data);
  const byId = new Map(
    response.body.data.agents.map((a: { id: string }) => [a.id, a]),
  );
  // deno-lint-ignore no-explicit-any
  const classifier: any = byId.get("ag_classifier_01");
  // deno-lint-ignore no-explicit-any
  const drafter: any = byId.get("ag_email_draft");
  assert.ok(classifier && drafter, JSON.stringify(response.body));
  assert.deepEqual(Object.keys(classifier).sort(), [
    "avg_latency_ms",
    "category",
    "description",
    "id",
    "invocations_today",
    "model",
    "name",
    "status",
  ]);
  assert.equal(classifier.name, "Intent classifier");
  assert.equal(classifier.description, "Analyzes incoming text and classifies user intent");
  assert.equal(classifier.category, "nlp");
  assert.equal(classifier.status, "active");
  assert.equal(classifier.model, "gemini-2.5-flash");
  assert.equal(drafter.name, "Email drafter");
  assert.equal(drafter.category, "communication");
});

test("spec: invoke example works as printed and answers the spec's shape", async () => {
  const before = await balanceOf("org_demo_acme");
  const response = await api("agents/invoke", {
    "action": "invoke",
    "data": {
      "agent_id": "ag_classifier_01",
      "input": {
        "text": "The client wants to upgrade their subscription plan to Enterprise",
        "context": {
          "client_id": "ct_abc123",
          "current_plan": "pro",
        },
      },
      "stream": false,
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  invocation.parse(data);
  assert.match(data.execution_id, /^age_/);
  assert.equal(data.agent_id, "ag_classifier_01");
  assert.equal(data.agent_name, "Intent classifier");
  assert.deepEqual(Object.keys(data.output).sort(), [
    "confidence",
    "extracted_entities",
    "intent",
    "suggested_action",
  ]);
  assert.equal(data.output.intent, "plan_upgrade");
  assert.equal(data.output.suggested_action, "route_to_sales");
  assert.ok(data.output.confidence >= 0 && data.output.confidence <= 1);
  assert.ok(data.tokens_used > 0);
  // The spec's example costs 1 credit: short text, small context.
  assert.equal(data.credits_consumed, 1);
  assert.equal(await balanceOf("org_demo_acme"), before - 1);
  assert.match(data.completed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  // The execution is stored, and agent.executed was written with it.
  const stored = await api("agents/get_execution", {
    action: "get_execution",
    data: { execution_id: data.execution_id },
  }, { key: acme.keys.live_secret });
  assert.equal(stored.status, 200);
  execution.parse(stored.body.data);
  assert.equal(stored.body.data.status, "completed");
  assert.deepEqual(stored.body.data.output, data.output);
  assert.equal(stored.body.data.tokens.total, data.tokens_used);
  assert.equal(stored.body.data.credits_consumed, 1);
  const [event] = await db<{ data: Record<string, unknown> }[]>`
    select data from public.events
    where type = 'agent.executed' and data ->> 'execution_id' = ${data.execution_id}
  `;
  assert.equal(event.data.status, "completed");
  assert.deepEqual(event.data.output, data.output);

  // list's figures count it.
  const listed = await api("agents/list", { action: "list", data: {} }, {
    key: acme.keys.live_secret,
  });
  const classifier = listed.body.data.agents.find((a: { id: string }) =>
    a.id === "ag_classifier_01"
  );
  assert.ok(classifier.invocations_today >= 1);
  assert.equal(typeof classifier.avg_latency_ms, "number");
});

// ---------------------------------------------------------------------------------------
// Management

test("create/get/update/archive an agent; archived and inactive agents are 409 on invoke", async () => {
  const { key, agent } = await orgWithAgent({ description: "first" });
  const got = await api("agents/get", { action: "get", data: { agent_id: agent.id } }, { key });
  assert.equal(got.status, 200);
  assert.equal(got.body.data.description, "first");
  assert.deepEqual(got.body.data.output_schema, CLASSIFIER_OUTPUT);
  assert.equal(got.body.data.temperature, 0.2);
  assert.equal(got.body.data.avg_latency_ms, null);

  const updated = await api("agents/update", {
    action: "update",
    data: { agent_id: agent.id, status: "inactive", description: "second" },
  }, { key });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.equal(updated.body.data.status, "inactive");
  assert.equal(updated.body.data.description, "second");
  assert.equal(updated.body.data.name, "Classifier", "fields not sent are kept");

  const inactive = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  expectError(inactive, 409, "AGENT_INACTIVE");

  const listed = await api("agents/list", { action: "list", data: { status: "inactive" } }, {
    key,
  });
  assert.deepEqual(listed.body.data.agents.map((a: { id: string }) => a.id), [agent.id]);
  const active = await api("agents/list", { action: "list", data: {} }, { key });
  assert.equal(active.body.data.agents.length, 0, "list defaults to active agents");

  const archived = await api("agents/archive", {
    action: "archive",
    data: { agent_id: agent.id },
  }, { key });
  assert.equal(archived.body.data.status, "archived");
  expectError(await invoke(key, { agent_id: agent.id, input: {} }), 409, "AGENT_INACTIVE");
  expectError(
    await api(
      "agents/update",
      { action: "update", data: { agent_id: agent.id, status: "active" } },
      {
        key,
      },
    ),
    409,
    "AGENT_INACTIVE",
  );
  // Nothing was charged or called for the refused invokes.
  assert.equal((await requestsFor(agent.model)).length, 0);
});

test("list filters by category ('all' = any) and status ('all' = any)", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const nlp = await createAgent(key, { category: "nlp" });
  const mail = await createAgent(key, { category: "communication" });
  const off = await createAgent(key, { category: "nlp", status: "inactive" });
  const ids = async (data: Record<string, unknown>) =>
    (await api("agents/list", { action: "list", data }, { key })).body.data.agents
      .map((a: { id: string }) => a.id).sort();
  assert.deepEqual(await ids({ category: "nlp" }), [nlp.id]);
  assert.deepEqual(await ids({ category: "all" }), [nlp.id, mail.id].sort());
  assert.deepEqual(await ids({ status: "all", category: "nlp" }), [nlp.id, off.id].sort());
});

test("management needs admin (agents:admin or admin); write keys and members get 403", async () => {
  const org = await createTestOrg();
  const writer = await org.key({ scopes: ["read", "write"] });
  const body = { action: "create", data: { name: "X", output_schema: CLASSIFIER_OUTPUT } };
  const refused = await api("agents/create", body, { key: writer });
  expectError(refused, 403, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(refused.body.error.details.required_scope, "agents:admin");
  const granular = await org.key({ scopes: ["agents:admin"] });
  assert.equal((await api("agents/create", body, { key: granular })).status, 200);
  const broad = await org.key({ scopes: ["admin"] });
  assert.equal((await api("agents/create", body, { key: broad })).status, 200);

  const member = await createTestOrg({ role: "member" });
  const memberToken = await member.signIn();
  expectError(
    await api("agents/create", body, { token: memberToken }),
    403,
    "AUTH_INSUFFICIENT_SCOPE",
  );
  const owner = await org.signIn();
  assert.equal((await api("agents/create", body, { token: owner })).status, 200);
  // Members invoke (write) but do not manage.
  const agent = await createAgent(await member.key());
  const invoked = await invoke(await member.key({ scopes: ["agents:write"] }), {
    agent_id: agent.id,
    input: { text: "hi" },
  });
  assert.equal(invoked.status, 200, JSON.stringify(invoked.body));
});

test("schemas Gemini does not accept are a 400 naming the place", async () => {
  const key = await (await createTestOrg()).key();
  const refused = async (data: Record<string, unknown>, field: string) => {
    const response = await api("agents/create", {
      action: "create",
      data: { name: "Bad", ...data },
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, field, JSON.stringify(response.body));
  };
  await refused({
    output_schema: { type: "object", properties: { code: { type: "string", pattern: "^a" } } },
  }, "output_schema.properties.code.pattern");
  await refused({ output_schema: { type: "text" } }, "output_schema.type");
  await refused({
    output_schema: { type: "object", properties: { a: { $ref: "#/$defs/missing" } } },
  }, "output_schema.properties.a.$ref");
  await refused({
    output_schema: { $ref: "#/$defs/x", description: "beside a ref", $defs: { x: {} } },
  }, "output_schema.description");
  await refused({ output_schema: { enum: [] } }, "output_schema.enum");
  await refused(
    { output_schema: CLASSIFIER_OUTPUT, input_schema: { type: "string" } },
    "input_schema.type",
  );
  await refused({ output_schema: "not a schema" }, "output_schema");
});

// ---------------------------------------------------------------------------------------
// Invoke

test("invoke: the input is checked against the agent's input schema (400 naming the field)", async () => {
  const { key, agent } = await orgWithAgent({
    input_schema: {
      type: "object",
      required: ["text"],
      properties: { text: { type: "string" }, context: { type: "object" } },
    },
  });
  const missing = await invoke(key, { agent_id: agent.id, input: { context: {} } });
  expectError(missing, 400, "VALIDATION_ERROR");
  assert.equal(missing.body.error.details.field, "input.text");
  const wrongType = await invoke(key, { agent_id: agent.id, input: { text: "a", context: 3 } });
  expectError(wrongType, 400, "VALIDATION_ERROR");
  assert.equal(wrongType.body.error.details.field, "input.context");
  assert.equal((await requestsFor(agent.model)).length, 0, "Gemini not called");
  const [{ count }] = await db<{ count: number }[]>`
    select count(*)::int from public.agent_executions where agent_id = ${agent.id}
  `;
  assert.equal(count, 0, "no execution for a refused input");
});

test("invoke: Gemini gets the instructions, the input and the output schema as response schema", async () => {
  const { key, agent } = await orgWithAgent();
  const response = await invoke(key, { agent_id: agent.id, input: { text: "refund me" } });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  // deno-lint-ignore no-explicit-any
  const [sent] = await requestsFor(agent.model) as any[];
  assert.deepEqual(sent.body.generationConfig.responseJsonSchema, CLASSIFIER_OUTPUT);
  assert.equal(sent.body.generationConfig.responseMimeType, "application/json");
  assert.equal(sent.body.generationConfig.temperature, 0.2);
  assert.equal(sent.body.systemInstruction.parts[0].text, "Classify the message.");
  assert.deepEqual(JSON.parse(sent.body.contents[0].parts[0].text), { text: "refund me" });
  assert.equal(response.body.data.output.intent, "billing");
});

test("invoke: an answer that does not match the output schema is 502, execution failed, refunded", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  await script(agent.model, [{ output: { intent: "poetry", confidence: 7 } }]);
  const response = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.reason, "invalid_output");
  assert.equal(await balanceOf(org.orgId), before, "refunded");
  const [row] = await db<{ id: string }[]>`
    select id from public.agent_executions where agent_id = ${agent.id}
  `;
  const stored = await executionRow(row.id);
  assert.equal(stored.status, "failed");
  assert.equal(stored.credits, 0);
  assert.equal(stored.error?.code, "INTEGRATION_ERROR");
  assert.deepEqual(await refundedFor(row.id), { refunds: 1, credits: 1 });
  const listed = await api("agents/list_executions", {
    action: "list_executions",
    data: { agent_id: agent.id, status: "failed" },
  }, { key });
  executionList.parse(listed.body.data);
  assert.equal(listed.body.data.executions[0].id, row.id);
  assert.equal(listed.body.data.executions[0].error.details.reason, "invalid_output");
});

test("invoke: Gemini 500 (after its retries) and 400 are refunded 502s that never show the key", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  await script(agent.model, [{ status: 500 }, { status: 500 }, { status: 500 }]);
  const unavailable = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  expectError(unavailable, 502, "INTEGRATION_ERROR");
  assert.equal(unavailable.body.error.details.reason, "unavailable");
  assert.equal(unavailable.body.error.details.status, 500);
  assert.equal((await requestsFor(agent.model)).length, 3, "retried, then given up");

  await script(agent.model, [{
    status: 400,
    message: `Invalid request for key ${standIn.api_key}`,
  }]);
  const rejected = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  expectError(rejected, 502, "INTEGRATION_ERROR");
  assert.equal(rejected.body.error.details.reason, "rejected");
  assert.ok(!JSON.stringify(rejected.body).includes(standIn.api_key!), "the key is never shown");
  assert.equal(await balanceOf(org.orgId), before, "both refunded");
  const failed = await db<{ error: unknown }[]>`
    select error from public.agent_executions where agent_id = ${agent.id} and status = 'failed'
  `;
  assert.equal(failed.length, 2);
  assert.ok(!JSON.stringify(failed).includes(standIn.api_key!), "nor stored");
});

test("invoke: a 429 is retried and the call then succeeds, charged once", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  await script(agent.model, [{ status: 429 }]);
  const response = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal((await requestsFor(agent.model)).length, 2);
  assert.equal(await balanceOf(org.orgId), before - 1);
});

test("invoke: 50 concurrent invokes on a balance of 10: exactly 10 succeed, 40 are 402 before Gemini", async () => {
  const { org, key, agent } = await orgWithAgent();
  await setBalance(org.orgId, 10);
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => invoke(key, { agent_id: agent.id, input: { n: i } })),
  );
  const statuses = answers.map((a) => a.status);
  assert.equal(statuses.filter((s) => s === 200).length, 10, statuses.join(","));
  assert.equal(statuses.filter((s) => s === 402).length, 40, statuses.join(","));
  for (const refused of answers.filter((a) => a.status === 402)) {
    expectError(refused, 402, "CREDITS_EXHAUSTED");
  }
  assert.equal(await balanceOf(org.orgId), 0);
  assert.equal((await requestsFor(agent.model)).length, 10, "Gemini only for the covered ones");
  const [{ count }] = await db<{ count: number }[]>`
    select count(*)::int from public.agent_executions where agent_id = ${agent.id}
  `;
  assert.equal(count, 10, "a refused invoke leaves no execution");
});

test("invoke: Idempotency-Key replays the answer, charged and called once", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  const headers = { "idempotency-key": crypto.randomUUID() };
  const first = await invoke(key, { agent_id: agent.id, input: { text: "hi" } }, headers);
  const second = await invoke(key, { agent_id: agent.id, input: { text: "hi" } }, headers);
  assert.equal(first.status, 200);
  assert.equal(second.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(second.body, first.body);
  assert.equal(await balanceOf(org.orgId), before - 1);
  assert.equal((await requestsFor(agent.model)).length, 1);
});

test("invoke: sandbox keys change no real balance and never reach Gemini", async () => {
  const org = await createTestOrg();
  const testKey = await org.key({ environment: "test" });
  const agent = await createAgent(testKey);
  const before = await balanceOf(org.orgId);
  const response = await invoke(testKey, { agent_id: agent.id, input: { text: "hi" } });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.output.intent, "billing");
  assert.equal(await balanceOf(org.orgId), before);
  assert.equal((await requestsFor(agent.model)).length, 0, "the simulation answered");
  const [row] = await db<{ environment: string }[]>`
    select environment from public.agent_executions where id = ${response.body.data.execution_id}
  `;
  assert.equal(row.environment, "test");
});

test("isolation: agents and executions are invisible to other organizations and environments", async () => {
  const { key, agent } = await orgWithAgent();
  const done = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  const executionId = done.body.data.execution_id;
  const other = await (await createTestOrg()).key();
  const sameOrgSandbox = await (async () => {
    const [row] = await db<{ org_id: string }[]>`
      select org_id from public.agents where id = ${agent.id}
    `;
    const { mintApiKey } = await import("../shared/api-keys/keys.ts");
    return (await mintApiKey(db, {
      name: "sandbox",
      environment: "test",
      type: "secret",
      scopes: ["read", "write", "admin"],
    }, row.org_id)).key;
  })();
  for (const outsider of [other, sameOrgSandbox]) {
    expectError(
      await api("agents/get", { action: "get", data: { agent_id: agent.id } }, { key: outsider }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await invoke(outsider, { agent_id: agent.id, input: { text: "hi" } }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("agents/update", {
        action: "update",
        data: { agent_id: agent.id, name: "stolen" },
      }, { key: outsider }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    expectError(
      await api("agents/get_execution", {
        action: "get_execution",
        data: { execution_id: executionId },
      }, { key: outsider }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    const lists = await Promise.all([
      api("agents/list", { action: "list", data: { status: "all" } }, { key: outsider }),
      api("agents/list_executions", { action: "list_executions", data: {} }, { key: outsider }),
    ]);
    assert.equal(lists[0].body.data.agents.length, 0);
    assert.equal(lists[1].body.data.executions.length, 0);
  }
});

// ---------------------------------------------------------------------------------------
// Streaming

interface ServerSentEvent {
  event: string;
  // deno-lint-ignore no-explicit-any
  data: any;
}

/** Reads SSE frames from a response body as they arrive. */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1] ?? "message";
        const data = /^data: (.*)$/m.exec(frame)?.[1] ?? "null";
        yield { event, data: JSON.parse(data) };
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const streamInvoke = (key: string, data: Record<string, unknown>, signal?: AbortSignal) =>
  fetch(`${stack.api_url}/v1/agents/invoke`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify({ action: "invoke", data: { ...data, stream: true } }),
    signal,
  });

test("stream: execution, partial output as it comes, then a result equal to the JSON answer's shape", async () => {
  // Pro: a plan with a rate limit, so its headers are there to check.
  const { org, key, agent } = await orgWithAgent({}, "pro");
  const before = await balanceOf(org.orgId);
  const response = await streamInvoke(key, { agent_id: agent.id, input: { text: "hi" } });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^text\/event-stream/);
  assert.ok(response.headers.get("x-request-id"));
  assert.ok(response.headers.get("x-ratelimit-limit"));
  const events: ServerSentEvent[] = [];
  for await (const event of readEvents(response.body!)) events.push(event);
  const names = events.map((e) => e.event);
  assert.equal(names[0], "execution");
  assert.equal(names.at(-1), "result");
  assert.ok(names.slice(1, -1).length >= 2 && names.slice(1, -1).every((n) => n === "partial"));
  const result = events.at(-1)!.data;
  assert.equal(result.success, true);
  invocation.parse(result.data);
  assert.equal(result.data.execution_id, events[0].data.execution_id);
  const text = events.slice(1, -1).map((e) => e.data.text).join("");
  assert.deepEqual(JSON.parse(text), result.data.output, "the partials add up to the output");

  // The same keys as the non-streaming answer; charged once.
  const plain = await invoke(key, { agent_id: agent.id, input: { text: "hi" } });
  assert.deepEqual(Object.keys(result.data).sort(), Object.keys(plain.body.data).sort());
  assert.equal(await balanceOf(org.orgId), before - 2);
  const stored = await executionRow(result.data.execution_id);
  assert.equal(stored.status, "completed");
});

test("stream: with Idempotency-Key, a repeat replays the final result as JSON, charged once", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  const idempotencyKey = crypto.randomUUID();
  const body = JSON.stringify({
    action: "invoke",
    data: { agent_id: agent.id, input: { text: "hi" }, stream: true },
  });
  const headers = {
    "content-type": "application/json",
    "x-api-key": key,
    "idempotency-key": idempotencyKey,
  };
  const first = await fetch(`${stack.api_url}/v1/agents/invoke`, { method: "POST", headers, body });
  const events: ServerSentEvent[] = [];
  for await (const event of readEvents(first.body!)) events.push(event);
  const result = events.at(-1)!;
  assert.equal(result.event, "result");
  const repeat = await api("agents/invoke", JSON.parse(body), {
    key,
    headers: { "idempotency-key": idempotencyKey },
  });
  assert.equal(repeat.status, 200);
  assert.equal(repeat.headers.get("idempotent-replayed"), "true");
  assert.deepEqual(repeat.body, result.data);
  assert.equal(await balanceOf(org.orgId), before - 1);
  assert.equal((await requestsFor(agent.model)).length, 1);
});

test("stream: a failure is a final error event with the error envelope, refunded", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  await script(agent.model, [{ output: { intent: "nope" } }]);
  const response = await streamInvoke(key, { agent_id: agent.id, input: { text: "hi" } });
  assert.equal(response.status, 200);
  const events: ServerSentEvent[] = [];
  for await (const event of readEvents(response.body!)) events.push(event);
  const last = events.at(-1)!;
  assert.equal(last.event, "error");
  assert.equal(last.data.success, false);
  assert.equal(last.data.error.code, "INTEGRATION_ERROR");
  assert.equal(last.data.error.details.reason, "invalid_output");
  assert.equal(await balanceOf(org.orgId), before);
});

test("stream: refusals before the call keep their status and JSON (402, 409)", async () => {
  const { org, key, agent } = await orgWithAgent();
  await setBalance(org.orgId, 0);
  const response = await streamInvoke(key, { agent_id: agent.id, input: { text: "hi" } });
  assert.equal(response.status, 402);
  assert.equal((await response.json()).error.code, "CREDITS_EXHAUSTED");
});

test("stream: a client that disconnects stops the generation; the execution fails, refunded", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  // The stand-in would answer only after 30 s.
  await script(agent.model, [{ delay_ms: 30_000 }]);
  const controller = new AbortController();
  const started = Date.now();
  const response = await streamInvoke(
    key,
    { agent_id: agent.id, input: { text: "hi" } },
    controller.signal,
  );
  const events = readEvents(response.body!);
  const first = await events.next();
  assert.equal(first.value?.event, "execution");
  const executionId = first.value!.data.execution_id;
  controller.abort();
  await events.return(undefined).catch(() => {});

  // Waits for what must happen (failed, refunded), well before the stand-in's 30 s.
  let stored = await executionRow(executionId);
  while (stored.status === "running" && Date.now() - started < 15_000) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    stored = await executionRow(executionId);
  }
  assert.equal(stored.status, "failed", "stopped when the client went away");
  assert.ok(Date.now() - started < 15_000);
  assert.equal(
    (stored.error?.details as Record<string, unknown>)?.reason,
    "cancelled",
    JSON.stringify(stored),
  );
  assert.equal(await balanceOf(org.orgId), before, "refunded");
});

// ---------------------------------------------------------------------------------------
// Executions left running

test("sweep: an execution left running over 10 minutes is failed and refunded once", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  // An invoke whose process died after phase 1: the execution and its debit, committed.
  const claims = JSON.stringify({ org_id: org.orgId, environment: "live" });
  const row = await db.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    const [execution] = await tx<{ id: string }[]>`
      insert into public.agent_executions (agent_id, model, input, credits, created_at)
      values (${agent.id}, ${agent.model}, '{}', 1, now() - interval '11 minutes')
      returning id
    `;
    await tx`select * from private.debit_credits('agent_invoke', 1, ${execution.id})`;
    return execution;
  });
  assert.equal(await balanceOf(org.orgId), before - 1);
  await db`select private.fail_abandoned_agent_executions()`;
  await db`select private.fail_abandoned_agent_executions()`;
  const stored = await executionRow(row.id);
  assert.equal(stored.status, "failed");
  assert.equal(stored.error?.code, "EXECUTION_ABANDONED");
  assert.deepEqual(await refundedFor(row.id), { refunds: 1, credits: 1 });
  assert.equal(await balanceOf(org.orgId), before);
  const got = await api("agents/get_execution", {
    action: "get_execution",
    data: { execution_id: row.id },
  }, { key });
  assert.equal(got.body.data.status, "failed");
});

// ---------------------------------------------------------------------------------------
// The workflow step invoke_agent

test("step invoke_agent: templated agent_id and input; output = the execution's output, charged per call", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  const workflowId = await createWorkflow(key, {
    steps: [
      {
        id: "classify",
        type: "invoke_agent",
        config: { agent_id: "{{input.agent}}", input: { text: "{{input.text}}" } },
      },
      {
        id: "route",
        type: "set",
        config: { values: { intent: "{{steps.classify.output.intent}}" } },
      },
    ],
  });
  const started = await execute(key, workflowId, { agent: agent.id, text: "refund me" });
  const instance = await waitForInstance(key, started.instance_id);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  assert.deepEqual(instance.output, { intent: "billing" });
  const [row] = await db<{ id: string; input: unknown; output: unknown; request_key: string }[]>`
    select id, input, output, request_key from public.agent_executions
    where agent_id = ${agent.id}
  `;
  assert.deepEqual(row.input, { text: "refund me" });
  assert.deepEqual(instance.steps[0].output, row.output);
  assert.ok(row.request_key.startsWith(`${started.instance_id}.classify.`));
  assert.equal(await balanceOf(org.orgId), before - 1);
  assert.equal((await requestsFor(agent.model)).length, 1);
});

test("step invoke_agent: an inactive agent, no credits or a Gemini failure fail the step with that error", async () => {
  const { org, key, agent } = await orgWithAgent();
  const workflowId = await createWorkflow(key, {
    steps: [{ id: "ask", type: "invoke_agent", config: { agent_id: agent.id, input: {} } }],
  });
  const run = async () => await waitForInstance(key, (await execute(key, workflowId)).instance_id);

  await setBalance(org.orgId, 0);
  const broke = await run();
  assert.equal(broke.status, "failed");
  assert.equal(broke.error.code, "CREDITS_EXHAUSTED", JSON.stringify(broke.error));

  await setBalance(org.orgId, 10);
  await script(agent.model, [{ status: 400 }]);
  const rejected = await run();
  assert.equal(rejected.error.code, "INTEGRATION_ERROR", JSON.stringify(rejected.error));
  assert.equal(await balanceOf(org.orgId), 10, "refunded");

  await api("agents/update", {
    action: "update",
    data: { agent_id: agent.id, status: "inactive" },
  }, { key });
  const inactive = await run();
  assert.equal(inactive.error.code, "AGENT_INACTIVE", JSON.stringify(inactive.error));
});

test("step invoke_agent: putting it in a workflow needs agents:write", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["workflows:write"] });
  const response = await api("workflows/create", {
    action: "create",
    data: {
      name: "No agents scope",
      steps: [{ id: "ask", type: "invoke_agent", config: { agent_id: "ag_x", input: {} } }],
    },
  }, { key });
  expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(response.body.error.details.required_scope, "agents:write");
});

test("step invoke_agent: a worker killed during the Gemini call resumes the same execution, charged once", async () => {
  const { org, key, agent } = await orgWithAgent();
  const before = await balanceOf(org.orgId);
  // The first call hangs (the worker is killed meanwhile); the second answers at once.
  await script(agent.model, [{ delay_ms: 20_000 }]);
  const workflowId = await createWorkflow(key, {
    steps: [{ id: "ask", type: "invoke_agent", config: { agent_id: agent.id, input: {} } }],
  });
  const started = await execute(key, workflowId);
  const deadline = Date.now() + 10_000;
  while ((await requestsFor(agent.model)).length === 0) {
    assert.ok(Date.now() < deadline, "the job reached Gemini");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  Deno.kill(Number(Deno.readTextFileSync(stack.worker_pid_files[0])), "SIGKILL");

  // The stack starts the worker again; the job's lease (3 s in tests) runs out and it resumes.
  const instance = await waitForInstance(key, started.instance_id, undefined, 30_000);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  const executions = await db<{ status: string; output: unknown }[]>`
    select status, output from public.agent_executions where agent_id = ${agent.id}
  `;
  assert.equal(executions.length, 1, "one execution, found again by its request key");
  assert.equal(executions[0].status, "completed");
  assert.deepEqual(instance.output, executions[0].output);
  assert.equal((await requestsFor(agent.model)).length, 2, "called again after the crash");
  assert.equal(await balanceOf(org.orgId), before - 1, "charged once");
});
