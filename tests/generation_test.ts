/**
 * Generation from a prompt: workflows/generate (5 credits) and forms/generate (3 credits),
 * through the Gemini stand-in with scripted answers. The answer is checked by the code the
 * kind's own create uses; credits are debited with the generation's record and refunded when
 * Gemini fails or its answer does not pass.
 */
import assert from "node:assert/strict";
import { DEFAULT_MODEL } from "../shared/ai/gemini.ts";
import type { ScriptedAnswer } from "../local/stand-ins/gemini.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";

const standIn = stack.gemini;

async function script(answers: ScriptedAnswer[]) {
  const response = await fetch(`${standIn.base_url}/_standin/script`, {
    method: "POST",
    body: JSON.stringify({ model: DEFAULT_MODEL, answers }),
  });
  assert.equal(response.status, 200);
  await response.body?.cancel();
}

async function reset() {
  const response = await fetch(`${standIn.base_url}/_standin/reset`, {
    method: "POST",
    body: JSON.stringify({ model: DEFAULT_MODEL }),
  });
  await response.body?.cancel();
}

async function requestsReceived(): Promise<number> {
  const response = await fetch(
    `${standIn.base_url}/_standin/requests?model=${encodeURIComponent(DEFAULT_MODEL)}`,
  );
  return (await response.json()).requests.length;
}

const balanceOf = async (orgId: string) =>
  (await db<{ balance: number }[]>`
    select balance from public.credit_balances where org_id = ${orgId}
  `)[0].balance;

const A_WORKFLOW = {
  name: "Welcome new leads",
  description: "Creates the contact, then tells the CRM",
  trigger_type: "manual",
  steps: [
    {
      id: "client",
      type: "create_contact",
      config: { name: "{{input.name}}", email: "{{input.email}}" },
    },
    {
      id: "notify",
      type: "http_request",
      config: { url: "https://example.com/hook", method: "POST" },
    },
  ],
};

test("workflows/generate: a checked draft, never saved or active, for 5 credits", async () => {
  await reset();
  const org = await createTestOrg();
  const key = await org.key();
  const before = await balanceOf(org.orgId);
  await script([{ output: A_WORKFLOW }]);

  const response = await api("workflows/generate", {
    action: "generate",
    data: { prompt: "When a lead signs up, save them and tell our CRM." },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const { workflow, credits_consumed, tokens_used, generation_id } = response.body.data;
  assert.equal(credits_consumed, 5);
  assert.ok(tokens_used > 0);
  assert.match(generation_id, /^gen_/);
  assert.equal(workflow.status, "inactive", "a draft is never active by itself");
  assert.deepEqual(workflow.steps.map((s: { id: string }) => s.id), ["client", "notify"]);
  assert.equal(await balanceOf(org.orgId), before - 5);

  const listed = await api("workflows/list", { action: "list", data: {} }, { key });
  assert.equal(listed.body.data.pagination.total, 0, "nothing was saved");
  const created = await api("workflows/create", { action: "create", data: workflow }, { key });
  assert.equal(created.status, 200, "the draft is what create takes");
});

test("workflows/generate: an answer create would refuse is a 502 and costs nothing", async () => {
  await reset();
  const org = await createTestOrg();
  const key = await org.key();
  const before = await balanceOf(org.orgId);
  // A condition that jumps backwards: checkSteps refuses it.
  await script([{
    output: {
      ...A_WORKFLOW,
      steps: [
        { id: "first", type: "set", config: { values: { a: 1 } } },
        { id: "loop", type: "condition", config: { value: "x", equals: "x", then: "first" } },
      ],
    },
  }]);
  const response = await api("workflows/generate", {
    action: "generate",
    data: { prompt: "Loop forever" },
  }, { key });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.reason, "invalid_definition");
  assert.match(response.body.error.message, /later step/);
  assert.equal(await balanceOf(org.orgId), before, "refunded");
  const [row] = await db`
    select status, credits from public.generations where org_id = ${org.orgId}
  `;
  assert.deepEqual({ ...row }, { status: "failed", credits: 0 });
});

test("generation: Gemini failing is a 502 with a refund; a balance too low is 402 before Gemini", async () => {
  await reset();
  const org = await createTestOrg();
  const key = await org.key();
  const before = await balanceOf(org.orgId);
  await script([{ status: 400, message: "Request contains an invalid argument." }]);
  const failed = await api("forms/generate", {
    action: "generate",
    data: { prompt: "A contact form" },
  }, { key });
  expectError(failed, 502, "INTEGRATION_ERROR");
  assert.equal(failed.body.error.details.provider, "gemini");
  assert.equal(await balanceOf(org.orgId), before, "refunded");

  await db`update public.credit_balances set balance = 2 where org_id = ${org.orgId}`;
  const asked = await requestsReceived();
  const poor = await api("forms/generate", {
    action: "generate",
    data: { prompt: "A contact form" },
  }, { key });
  expectError(poor, 402, "CREDITS_EXHAUSTED");
  assert.deepEqual(poor.body.error.details, { required: 3, balance: 2 });
  assert.equal(await requestsReceived(), asked, "Gemini was not called");
  assert.equal(await balanceOf(org.orgId), 2);
});

test("forms/generate: fields checked and tidied (snake_case names, options only on choices)", async () => {
  await reset();
  const org = await createTestOrg();
  const key = await org.key();
  await script([{
    output: {
      title: "Contact us",
      description: "Reach the sales team",
      fields: [
        { name: "Full Name", label: "Full name", type: "text", required: true, options: [] },
        { name: "email", label: "Email", type: "email", required: true },
        {
          name: "plan",
          label: "Plan",
          type: "select",
          required: false,
          options: ["starter", "pro"],
          validation: { min: 1 },
        },
        {
          name: "seats",
          label: "Seats",
          type: "number",
          required: false,
          validation: { min: 1, max: 500, min_length: 3 },
        },
      ],
    },
  }]);
  const response = await api("forms/generate", {
    action: "generate",
    data: { prompt: "A contact form for sales with the plan and seats" },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.credits_consumed, 3);
  const fields = response.body.data.form.fields;
  assert.deepEqual(fields.map((f: { name: string }) => f.name), [
    "full_name",
    "email",
    "plan",
    "seats",
  ]);
  assert.equal(fields[0].options, undefined, "a text field takes no options");
  assert.deepEqual(fields[2].options, ["starter", "pro"]);
  assert.equal(fields[2].validation, undefined, "a select takes no min");
  assert.deepEqual(fields[3].validation, { min: 1, max: 500 });

  // A select without choices cannot be made a form: 502, not a broken definition.
  await script([{
    output: {
      title: "Broken",
      description: "",
      fields: [{ name: "plan", label: "Plan", type: "select", required: true }],
    },
  }]);
  const broken = await api("forms/generate", {
    action: "generate",
    data: { prompt: "A broken form" },
  }, { key });
  expectError(broken, 502, "INTEGRATION_ERROR");
  assert.match(broken.body.error.message, /options/);
});

test("generation in the sandbox is simulated and costs the real balance nothing", async () => {
  await reset();
  const org = await createTestOrg();
  const before = await balanceOf(org.orgId);
  const response = await api("forms/generate", {
    action: "generate",
    data: { prompt: "Newsletter sign-up with email and interests" },
  }, { key: await org.key({ environment: "test" }) });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.ok(response.body.data.form.fields.length >= 1);
  assert.equal(await balanceOf(org.orgId), before);
  assert.equal(await requestsReceived(), 0, "the stand-in was not reached");
});

negativeCases({
  group: "workflows",
  action: "generate",
  scope: "write",
  valid: { prompt: "A workflow that waits a minute" },
  invalid: { data: { prompt: "" }, field: "prompt" },
});
negativeCases({
  group: "forms",
  action: "generate",
  scope: "write",
  // The group's only action: no other suffix to disagree with.
  otherSuffix: null,
  valid: { prompt: "A feedback form" },
  invalid: { data: { prompt: 42 }, field: "prompt" },
});
