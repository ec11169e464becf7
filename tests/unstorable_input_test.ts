/**
 * Input the API would not keep as sent is refused before anything runs, with a 400 naming
 * the field (shared/platform/storable-json.ts, middleware/json-body.ts): lone UTF-16 surrogates
 * (jsonb refuses them, text turns them into U+FFFD) and numbers a double cannot hold
 * exactly (`1e309` became null, `12345678901234567890` became 12345678901234567000).
 */
import assert from "node:assert/strict";
import { expectError } from "./helpers/negative-cases.ts";
import { api, type ApiResponse, createTestOrg, test } from "./helpers/stack.ts";
import { createWorkflow, execute } from "./helpers/workflows.ts";

const refusedNaming = (response: ApiResponse, field: string, constraint: string) => {
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, field, JSON.stringify(response.body));
  assert.equal(response.body.error.details.constraint, constraint);
};

/** A request body written by hand, so it can hold what JavaScript values cannot. */
const raw = (action: string, data: string) => `{"action":"${action}","data":${data}}`;

test("a lone surrogate in any field or key is 400 naming it, never stored", async () => {
  const key = await (await createTestOrg()).key();
  const contact = (data: string) =>
    api("contacts/create", undefined, { key, raw: raw("create", data) });

  refusedNaming(
    await contact('{"name":"Ana","custom_fields":{"n":"a\\ud800b"}}'),
    "custom_fields.n",
    "no_lone_surrogate",
  );
  refusedNaming(
    await contact('{"name":"Ana","custom_fields":{"k\\udc00":1}}'),
    "custom_fields.k\udc00",
    "no_lone_surrogate",
  );
  // Text fields too (they used to become U+FFFD silently).
  refusedNaming(await contact('{"name":"An\\ud800a"}'), "name", "no_lone_surrogate");
  refusedNaming(await contact('{"name":"Ana","tags":["\\udfff"]}'), "tags.0", "no_lone_surrogate");
  // A well-formed pair (an emoji written as escapes) is a character like any other.
  const emoji = await contact('{"name":"Ana \\ud83d\\ude00"}');
  assert.equal(emoji.status, 200, JSON.stringify(emoji.body));
  assert.equal(emoji.body.data.name, "Ana 😀");

  refusedNaming(
    await api("workflows/create", undefined, {
      key,
      raw: raw(
        "create",
        '{"name":"W","steps":[{"id":"a","type":"set","config":{"values":{"x":"\\ud800"}}}]}',
      ),
    }),
    "steps.0.config.values.x",
    "no_lone_surrogate",
  );
  // Before authentication and before the workflow is looked up (this one does not exist).
  refusedNaming(
    await api("workflows/execute", undefined, {
      key,
      raw: raw("execute", '{"workflow_id":"wf_doesnotexist","input":{"q":"\\ud800"}}'),
    }),
    "input.q",
    "no_lone_surrogate",
  );
});

test("a number the API would not keep exactly is 400 naming the field", async () => {
  const key = await (await createTestOrg()).key();
  for (const number of ["1e309", "-1e309", "12345678901234567890", "9007199254740993", "1e-400"]) {
    refusedNaming(
      await api("contacts/create", undefined, {
        key,
        raw: raw("create", `{"name":"Ana","custom_fields":{"n":${number}}}`),
      }),
      "custom_fields.n",
      "exact_number",
    );
  }
  refusedNaming(
    await api("workflows/execute", undefined, {
      key,
      raw: raw("execute", '{"workflow_id":"wf_doesnotexist","input":{"ids":[1,1e309]}}'),
    }),
    "input.ids.1",
    "exact_number",
  );
});

test("numbers a double holds exactly are accepted and kept", async () => {
  const key = await (await createTestOrg()).key();
  const created = await api("contacts/create", undefined, {
    key,
    raw: raw(
      "create",
      '{"name":"Numbers","custom_fields":{"big":1e300,"tenth":0.1,"one":1.0,"minus_zero":-0,' +
        '"max_safe":9007199254740991,"long_text":"12345678901234567890e5"}}',
    ),
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const expected = {
    big: 1e300,
    tenth: 0.1,
    one: 1,
    minus_zero: 0,
    max_safe: 9007199254740991,
    long_text: "12345678901234567890e5",
  };
  assert.deepEqual(created.body.data.custom_fields, expected);
  const read = await api("contacts/get", { action: "get", data: { id: created.body.data.id } }, {
    key,
  });
  assert.deepEqual(read.body.data.custom_fields, expected);

  // And through a workflow's input and output.
  const workflowId = await createWorkflow(key, {
    steps: [{ id: "echo", type: "set", config: { values: { n: "{{input.n}}" } } }],
  });
  const response = await api("workflows/execute", undefined, {
    key,
    raw: raw("execute", `{"workflow_id":"${workflowId}","input":{"n":1e300},"async":false}`),
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.deepEqual(response.body.data.output, { n: 1e300 });
  assert.equal((await execute(key, workflowId, { n: 0.1 }, true)).output.n, 0.1);
});
