/**
 * MCP: the spec's execute example verbatim against the stack's demo server; execute, tools
 * and providers through real MCP servers built with the official server SDK (each test
 * starts its own, so what reached a server is known): success, a tool error, a server down,
 * parameters refused before any call, wrong credentials, private addresses refused; the
 * sandbox rules (read-only tools run, others are simulated and never reach the server);
 * credentials sealed and never answered; isolation between organizations and environments;
 * the workflow step `mcp_tool`; the negative cases of every action.
 */
import assert from "node:assert/strict";
import {
  createGoogleSheetsServer,
  type GoogleSheetsServerOptions,
  SPEC_SPREADSHEET_ID,
} from "../local/stand-ins/mcp-google-sheets.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";

const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;

/** A demo MCP server of this test's own, on a free port, with its own bearer token. */
function startServer(options: GoogleSheetsServerOptions = {}) {
  const bearerToken = `token-${crypto.randomUUID()}`;
  const server = createGoogleSheetsServer({ bearerToken, ...options });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, server.handler);
  return {
    url: `http://127.0.0.1:${http.addr.port}/mcp`,
    bearerToken,
    calls: server.calls,
    async close() {
      await server.close();
      await http.shutdown();
    },
  };
}

/** The key's environment's `mcp` integration named `name`, or undefined. */
async function mcpIntegration(key: string, name: string) {
  const listed = await api("integrations/list", { action: "list", data: { provider: "mcp" } }, {
    key,
  });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  return listed.body.data.integrations.find((i: { name: string }) => i.name === name) as
    | { id: string; name: string; status: string; public: Record<string, unknown> }
    | undefined;
}

/**
 * Connects an MCP server as an `mcp` integration named `name` (integrations/connect), or
 * gives the one of that name this URL and credentials (integrations/update).
 */
async function connect(
  key: string,
  data: { name: string; url: string; credentials?: Record<string, unknown> },
) {
  const credentials = { url: data.url, ...data.credentials };
  const existing = await mcpIntegration(key, data.name);
  return existing
    ? await api("integrations/update", {
      action: "update",
      data: { integration_id: existing.id, credentials },
    }, { key })
    : await api("integrations/connect", {
      action: "connect",
      data: { provider: "mcp", name: data.name, credentials },
    }, { key });
}

/** Disconnects the `mcp` integration named `name` (integrations/disconnect). */
async function disconnect(key: string, name: string) {
  const existing = await mcpIntegration(key, name);
  assert.ok(existing, `${name} is connected`);
  return await api("integrations/disconnect", {
    action: "disconnect",
    data: { integration_id: existing.id },
  }, { key });
}

const run = (key: string, data: Record<string, unknown>, headers?: Record<string, string>) =>
  api("mcp/execute", { action: "execute", data }, { key, headers });

/** A fresh organization with `sheets` connected to a server of its own (live and sandbox). */
async function orgWithServer(options: GoogleSheetsServerOptions = {}) {
  const org = await createTestOrg();
  const key = await org.key();
  const testKey = await org.key({ environment: "test" });
  const server = startServer(options);
  for (const k of [key, testKey]) {
    const connected = await connect(k, {
      name: "sheets",
      url: server.url,
      credentials: { bearer_token: server.bearerToken },
    });
    assert.equal(connected.status, 200, JSON.stringify(connected.body));
  }
  return { org, key, testKey, server };
}

async function executionRow(id: string) {
  const [row] = await db<{
    org_id: string;
    environment: string;
    provider: string;
    tool: string;
    parameters: Record<string, unknown>;
    status: string;
    simulated: boolean;
    result_bytes: number | null;
    duration_ms: number | null;
    error: { code: string; message: string; details?: Record<string, unknown> } | null;
    request_key: string | null;
  }[]>`select * from public.mcp_executions where id = ${id}`;
  return row;
}

const READ = { spreadsheet_id: SPEC_SPREADSHEET_ID, range: "Sheet1!A1:D50" };

// ---------------------------------------------------------------------------------------
// The spec's example, against `deno task start`'s demo provider

test("spec example: mcp/execute read_range on google_sheets answers the spec's result", async () => {
  const response = await api("mcp/execute", {
    "action": "execute",
    "data": {
      "provider": "google_sheets",
      "tool": "read_range",
      "parameters": {
        "spreadsheet_id": "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgVE2upms",
        "range": "Sheet1!A1:D50",
      },
    },
  }, { key: acme.keys.live_secret });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  assert.match(data.execution_id, /^mcp_[0-9a-f]+$/);
  assert.equal(data.provider, "google_sheets");
  assert.equal(data.tool, "read_range");
  assert.deepEqual(data.result, {
    "values": [
      ["Name", "Email", "Plan", "Status"],
      ["Company ABC", "abc@example.com", "pro", "active"],
      ["Company XYZ", "xyz@example.com", "starter", "trial"],
    ],
    "rows_count": 3,
    "columns_count": 4,
  });
  assert.ok(Number.isInteger(data.duration_ms) && data.duration_ms >= 0);
  assert.match(data.completed_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(data.simulated, undefined);

  const row = await executionRow(data.execution_id);
  assert.equal(row.org_id, "org_demo_acme");
  assert.equal(row.status, "completed");
  assert.deepEqual(row.parameters, READ);
  assert.equal(row.result_bytes, JSON.stringify(data.result).length);
  assert.equal(row.duration_ms, data.duration_ms);
  assert.equal(row.error, null);
});

test("spec example: the demo organizations' sandbox has google_sheets too", async () => {
  const response = await run(acme.keys.test_secret, {
    provider: "google_sheets",
    tool: "read_range",
    parameters: READ,
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.result.rows_count, 3);
  assert.equal(response.body.data.simulated, undefined, "read-only: really called");
});

// ---------------------------------------------------------------------------------------
// Execute through a real SDK server

test("execute: a read-only tool's structured content is the result, with the token sent", async () => {
  const { key, server } = await orgWithServer();
  try {
    const response = await run(key, {
      provider: "sheets",
      tool: "read_range",
      parameters: { spreadsheet_id: SPEC_SPREADSHEET_ID, range: "A1:B2" },
    });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    assert.deepEqual(response.body.data.result, {
      values: [["Name", "Email"], ["Company ABC", "abc@example.com"]],
      rows_count: 2,
      columns_count: 2,
    });
    assert.deepEqual(server.calls, [{
      tool: "read_range",
      arguments: { spreadsheet_id: SPEC_SPREADSHEET_ID, range: "A1:B2" },
    }]);
  } finally {
    await server.close();
  }
});

test("execute: a tool error is 502 INTEGRATION_ERROR with the provider's message, recorded", async () => {
  const { key, server } = await orgWithServer();
  try {
    const response = await run(key, {
      provider: "sheets",
      tool: "failing_tool",
      parameters: { reason: "Quota exceeded for sheet 42" },
    });
    expectError(response, 502, "INTEGRATION_ERROR");
    assert.match(response.body.error.message, /Quota exceeded for sheet 42/);
    assert.equal(response.body.error.details.provider, "sheets");
    assert.equal(response.body.error.details.reason, "tool_error");
    const row = await executionRow(response.body.error.details.execution_id);
    assert.equal(row.status, "failed");
    assert.equal(row.error?.code, "INTEGRATION_ERROR");
    assert.match(row.error!.message, /Quota exceeded/);
    assert.ok(row.duration_ms !== null);
    assert.equal(server.calls.length, 1);
  } finally {
    await server.close();
  }
});

test("execute: a server that is down is 502 INTEGRATION_ERROR (unreachable), recorded", async () => {
  const { key, server } = await orgWithServer();
  await server.close(); // nothing listens on its port any more
  const response = await run(key, { provider: "sheets", tool: "read_range", parameters: READ });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.reason, "unreachable");
  assert.match(response.body.error.message, /sheets.*unreachable/);
  const row = await executionRow(response.body.error.details.execution_id);
  assert.equal(row.status, "failed");
  assert.equal(row.error?.details?.reason, "unreachable");
});

test("execute: parameters the tool's input schema refuses are 400 naming the field; no call is made", async () => {
  const { key, server } = await orgWithServer();
  try {
    const missing = await run(key, {
      provider: "sheets",
      tool: "read_range",
      parameters: { spreadsheet_id: SPEC_SPREADSHEET_ID },
    });
    expectError(missing, 400, "VALIDATION_ERROR");
    assert.equal(missing.body.error.details.field, "parameters.range");
    assert.equal(missing.body.error.details.constraint, "input_schema");

    const wrongType = await run(key, {
      provider: "sheets",
      tool: "append_row",
      parameters: { spreadsheet_id: "s1", values: ["a", 2] },
    });
    expectError(wrongType, 400, "VALIDATION_ERROR");
    assert.equal(wrongType.body.error.details.field, "parameters.values.1");

    const unknownTool = await run(key, { provider: "sheets", tool: "delete_sheet" });
    expectError(unknownTool, 400, "VALIDATION_ERROR");
    assert.equal(unknownTool.body.error.details.field, "tool");
    assert.deepEqual(
      unknownTool.body.error.details.allowed.sort(),
      ["append_row", "failing_tool", "read_range"],
    );

    assert.deepEqual(server.calls, [], "nothing reached the tools");
    const row = await executionRow(missing.body.error.details.execution_id);
    assert.equal(row.status, "failed");
    assert.equal(row.error?.code, "VALIDATION_ERROR");
  } finally {
    await server.close();
  }
});

test("execute: credentials the server refuses are 502 INTEGRATION_ERROR (unauthorized)", async () => {
  const { key, server } = await orgWithServer();
  try {
    await connect(key, {
      name: "sheets",
      url: server.url,
      credentials: { bearer_token: "not-the-token" },
    });
    const response = await run(key, { provider: "sheets", tool: "read_range", parameters: READ });
    expectError(response, 502, "INTEGRATION_ERROR");
    assert.equal(response.body.error.details.reason, "unauthorized");
    assert.ok(!JSON.stringify(response.body).includes("not-the-token"), "no credential echoed");
    assert.deepEqual(server.calls, []);
  } finally {
    await server.close();
  }
});

test("execute: a server answering more than 4 MiB is cut off: 502 INTEGRATION_ERROR", async () => {
  // Not an MCP server: it answers every request with an endless JSON string.
  const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
  let sent = 0;
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.byteLength;
        if (sent > 64 * 1024 * 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    const org = await createTestOrg();
    const key = await org.key();
    const connected = await connect(key, {
      name: "flood",
      url: `http://127.0.0.1:${http.addr.port}/mcp`,
    });
    assert.equal(connected.status, 200, JSON.stringify(connected.body));
    const response = await run(key, { provider: "flood", tool: "read_range", parameters: READ });
    expectError(response, 502, "INTEGRATION_ERROR");
    assert.equal(
      response.body.error.details.reason,
      "invalid_result",
      JSON.stringify(response.body),
    );
    assert.ok(sent < 16 * 1024 * 1024, `stopped reading early (${sent} bytes sent)`);
  } finally {
    await http.shutdown();
  }
});

test("execute: an unknown provider is 404 RESOURCE_NOT_FOUND", async () => {
  const org = await createTestOrg();
  const response = await run(await org.key(), { provider: "nowhere", tool: "read_range" });
  expectError(response, 404, "RESOURCE_NOT_FOUND");
  const [{ count }] = await db<{ count: number }[]>`
    select count(*)::int as count from public.mcp_executions where org_id = ${org.orgId}
  `;
  assert.equal(count, 0);
});

test("execute: Idempotency-Key replays the answer without calling the tool again", async () => {
  const { key, server } = await orgWithServer();
  try {
    const headers = { "idempotency-key": crypto.randomUUID() };
    const data = {
      provider: "sheets",
      tool: "append_row",
      parameters: { spreadsheet_id: "s", values: ["x"] },
    };
    const first = await run(key, data, headers);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const second = await run(key, data, headers);
    assert.equal(second.status, 200);
    assert.equal(second.headers.get("idempotent-replayed"), "true");
    assert.deepEqual(second.body, first.body);
    assert.equal(server.calls.length, 1);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------
// Private addresses

test("connect: a provider URL to a private address is 400 naming credentials.url", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  for (
    const url of ["https://10.0.0.1/mcp", "https://169.254.169.254/mcp", "https://[fd00::1]/mcp"]
  ) {
    const response = await connect(key, { name: "internal", url });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "credentials.url");
    assert.equal(response.body.error.details.constraint, "forbidden_address", url);
  }
  const plain = await connect(key, { name: "internal", url: "http://93.184.216.34/mcp" });
  expectError(plain, 400, "VALIDATION_ERROR");
  assert.equal(plain.body.error.details.constraint, "https_required");
  const [{ count }] = await db<{ count: number }[]>`
    select count(*)::int as count from public.integrations where org_id = ${org.orgId}
  `;
  assert.equal(count, 0);
});

test("execute: a stored provider URL to a private address is refused at the call (502 blocked)", async () => {
  const org = await createTestOrg();
  // As if its name had resolved to a public address when it was saved.
  await db`
    insert into public.integrations (org_id, environment, provider, name, public)
    values (${org.orgId}, 'live', 'mcp', 'metadata', '{"url": "http://169.254.169.254/mcp"}')
  `;
  const response = await run(await org.key(), { provider: "metadata", tool: "read_range" });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.reason, "blocked");
  assert.match(response.body.error.message, /169\.254\.169\.254/);
});

// ---------------------------------------------------------------------------------------
// Sandbox

test("sandbox: read-only tools are called; others are simulated, say so, and never reach the server", async () => {
  const { key, testKey, server } = await orgWithServer();
  try {
    const read = await run(testKey, { provider: "sheets", tool: "read_range", parameters: READ });
    assert.equal(read.status, 200, JSON.stringify(read.body));
    assert.equal(read.body.data.simulated, undefined);
    assert.equal(server.calls.length, 1);

    const write = await run(testKey, {
      provider: "sheets",
      tool: "append_row",
      parameters: { spreadsheet_id: SPEC_SPREADSHEET_ID, values: ["Company QRS", "q@example.com"] },
    });
    assert.equal(write.status, 200, JSON.stringify(write.body));
    assert.equal(write.body.data.simulated, true);
    assert.match(JSON.stringify(write.body.data.result), /simulated/);
    assert.equal(server.calls.length, 1, "the write tool was not called");
    const row = await executionRow(write.body.data.execution_id);
    assert.equal(row.environment, "test");
    assert.equal(row.simulated, true);
    assert.equal(row.status, "completed");

    // Parameters are still checked in the sandbox.
    const bad = await run(testKey, { provider: "sheets", tool: "append_row", parameters: {} });
    expectError(bad, 400, "VALIDATION_ERROR");
    assert.equal(bad.body.error.details.field, "parameters.spreadsheet_id");

    // Live, the same write is made.
    const live = await run(key, {
      provider: "sheets",
      tool: "append_row",
      parameters: { spreadsheet_id: SPEC_SPREADSHEET_ID, values: ["Company QRS"] },
    });
    assert.equal(live.status, 200, JSON.stringify(live.body));
    assert.equal(live.body.data.simulated, undefined);
    assert.deepEqual(live.body.data.result, { updated_rows: 1, rows_count: 4 });
    assert.equal(server.calls.length, 2);
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------
// Providers, tools, executions

test("providers: connected providers without their credentials; sealed at rest; disconnect through integrations", async () => {
  const { org, key, server } = await orgWithServer();
  try {
    const listed = await api("mcp/providers", { action: "providers", data: {} }, { key });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.data.providers.map((p: { name: string }) => p.name), ["sheets"]);
    assert.deepEqual(listed.body.data.providers[0].credentials, ["bearer_token"]);
    assert.equal(listed.body.data.providers[0].url, server.url);
    assert.ok(!JSON.stringify(listed.body).includes(server.bearerToken));
    const [row] = await db<{ sealed_credentials: string }[]>`
      select sealed_credentials from public.integrations
      where org_id = ${org.orgId} and environment = 'live' and provider = 'mcp'
    `;
    assert.match(row.sealed_credentials, /^v1\./);
    assert.ok(!row.sealed_credentials.includes(server.bearerToken));

    const executed = await run(key, { provider: "sheets", tool: "read_range", parameters: READ });
    assert.equal(executed.status, 200);
    const gone = await disconnect(key, "sheets");
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.equal(gone.body.data.status, "disconnected");
    assert.equal(gone.body.data.name, "sheets");
    const none = await api("mcp/providers", { action: "providers", data: {} }, { key });
    assert.deepEqual(none.body.data.providers, []);
    expectError(
      await run(key, { provider: "sheets", tool: "read_range", parameters: READ }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    // The execution stays, by name.
    const kept = await api("mcp/get_execution", {
      action: "get_execution",
      data: { execution_id: executed.body.data.execution_id },
    }, { key });
    assert.equal(kept.status, 200);
    assert.equal(kept.body.data.provider, "sheets");
  } finally {
    await server.close();
  }
});

test("list_tools: the server's tools with input schemas and the read-only annotation", async () => {
  const { key, server } = await orgWithServer();
  try {
    const response = await api("mcp/list_tools", {
      action: "list_tools",
      data: { provider: "sheets" },
    }, { key });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const byName = Object.fromEntries(
      response.body.data.tools.map((t: { name: string }) => [t.name, t]),
    );
    assert.deepEqual(Object.keys(byName).sort(), ["append_row", "failing_tool", "read_range"]);
    assert.equal(byName.read_range.read_only, true);
    assert.equal(byName.append_row.read_only, false);
    assert.deepEqual(byName.read_range.input_schema.required, ["spreadsheet_id", "range"]);
    assert.deepEqual(server.calls, [], "listing calls no tool");
  } finally {
    await server.close();
  }
});

test("list_executions and get_execution: what was asked and how it ended, newest first", async () => {
  const { key, server } = await orgWithServer();
  try {
    await run(key, { provider: "sheets", tool: "read_range", parameters: READ });
    await run(key, { provider: "sheets", tool: "failing_tool", parameters: { reason: "nope" } });
    const listed = await api("mcp/list_executions", {
      action: "list_executions",
      data: {},
    }, { key });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.data.executions.map((e: { tool: string; status: string }) => [e.tool, e.status]),
      [["failing_tool", "failed"], ["read_range", "completed"]],
    );
    const failed = await api("mcp/list_executions", {
      action: "list_executions",
      data: { status: "failed" },
    }, { key });
    assert.equal(failed.body.data.pagination.total, 1);
    assert.equal(failed.body.data.executions[0].error.code, "INTEGRATION_ERROR");
  } finally {
    await server.close();
  }
});

// ---------------------------------------------------------------------------------------
// Isolation

test("isolation: another organization's or environment's providers and executions are invisible", async () => {
  const a = await orgWithServer();
  try {
    const executed = await run(a.key, { provider: "sheets", tool: "read_range", parameters: READ });
    assert.equal(executed.status, 200);
    const executionId = executed.body.data.execution_id;

    const b: TestOrg = await createTestOrg();
    const bKey = await b.key();
    expectError(
      await run(bKey, { provider: "sheets", tool: "read_range", parameters: READ }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    const bProviders = await api("mcp/providers", { action: "providers", data: {} }, { key: bKey });
    assert.deepEqual(bProviders.body.data.providers, []);
    expectError(
      await api("mcp/get_execution", {
        action: "get_execution",
        data: { execution_id: executionId },
      }, { key: bKey }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    const bList = await api("mcp/list_executions", { action: "list_executions", data: {} }, {
      key: bKey,
    });
    assert.equal(bList.body.data.pagination.total, 0);
    const aSheets = (await mcpIntegration(a.key, "sheets"))!;
    expectError(
      await api("integrations/disconnect", {
        action: "disconnect",
        data: { integration_id: aSheets.id },
      }, { key: await b.key({ scopes: ["admin"] }) }),
      404,
      "RESOURCE_NOT_FOUND",
    );

    // The sandbox of the same organization does not see live executions.
    expectError(
      await api("mcp/get_execution", {
        action: "get_execution",
        data: { execution_id: executionId },
      }, { key: a.testKey }),
      404,
      "RESOURCE_NOT_FOUND",
    );
    // Disconnecting the sandbox provider leaves the live one.
    assert.equal((await disconnect(a.testKey, "sheets")).status, 200);
    const still = await run(a.key, { provider: "sheets", tool: "read_range", parameters: READ });
    assert.equal(still.status, 200);
  } finally {
    await a.server.close();
  }
});

// ---------------------------------------------------------------------------------------
// The workflow step mcp_tool

test("step mcp_tool: templated parameters; its output is the execute answer, recorded with the job's key", async () => {
  const { key, server } = await orgWithServer();
  try {
    const workflowId = await createWorkflow(key, {
      steps: [
        {
          id: "read",
          type: "mcp_tool",
          config: {
            provider: "sheets",
            tool: "read_range",
            parameters: { spreadsheet_id: "{{input.sheet}}", range: "A1:D50" },
          },
        },
        {
          id: "count",
          type: "set",
          config: { values: { rows: "{{steps.read.output.result.rows_count}}" } },
        },
      ],
    });
    const started = await execute(key, workflowId, { sheet: SPEC_SPREADSHEET_ID });
    const instance = await waitForInstance(key, started.instance_id);
    assert.equal(instance.status, "completed", JSON.stringify(instance));
    assert.deepEqual(instance.output, { rows: 3 });
    const output = instance.steps[0].output;
    assert.equal(output.provider, "sheets");
    assert.equal(output.result.values[1][0], "Company ABC");
    const row = await executionRow(output.execution_id);
    assert.ok(row.request_key?.startsWith(`${started.instance_id}.read.`), row.request_key ?? "");
    assert.equal(server.calls.length, 1);
  } finally {
    await server.close();
  }
});

test("step mcp_tool: a tool error or bad parameters fail the step with that error", async () => {
  const { key, server } = await orgWithServer();
  try {
    const failing = await createWorkflow(key, {
      steps: [{
        id: "boom",
        type: "mcp_tool",
        config: { provider: "sheets", tool: "failing_tool", parameters: { reason: "locked" } },
      }],
    });
    const failed = await waitForInstance(key, (await execute(key, failing)).instance_id);
    assert.equal(failed.status, "failed");
    assert.equal(failed.error.code, "INTEGRATION_ERROR", JSON.stringify(failed.error));
    assert.match(failed.error.message, /locked/);

    const bad = await createWorkflow(key, {
      steps: [{ id: "bad", type: "mcp_tool", config: { provider: "sheets", tool: "read_range" } }],
    });
    const refused = await waitForInstance(key, (await execute(key, bad)).instance_id);
    assert.equal(refused.status, "failed");
    assert.equal(refused.error.code, "VALIDATION_ERROR", JSON.stringify(refused.error));
  } finally {
    await server.close();
  }
});

/**
 * Runs a one-step workflow calling `tool`; its first call is held at the server while the
 * worker is killed. The stack starts the worker again and the job (lease 3 s in tests)
 * runs again, finding its execution still running. Answers the instance, the server's calls
 * and the executions.
 */
async function killWorkerDuringCall(tool: string, parameters: Record<string, unknown>) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  const { org, key, server } = await orgWithServer({
    beforeAnswer: (n) => n === 1 ? held : undefined,
  });
  try {
    const workflowId = await createWorkflow(key, {
      steps: [{ id: "call", type: "mcp_tool", config: { provider: "sheets", tool, parameters } }],
    });
    const started = await execute(key, workflowId);
    const deadline = Date.now() + 10_000;
    while (server.calls.length === 0) {
      assert.ok(Date.now() < deadline, "the job reached the server");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    Deno.kill(Number(Deno.readTextFileSync(stack.worker_pid_files[0])), "SIGKILL");
    const instance = await waitForInstance(key, started.instance_id, undefined, 30_000);
    const executions = await db<{ status: string; error: { details?: { reason?: string } } }[]>`
      select status, error from public.mcp_executions where org_id = ${org.orgId}
    `;
    return { instance, calls: [...server.calls], executions };
  } finally {
    release();
    await server.close();
  }
}

test("step mcp_tool: a worker killed during a write tool's call never calls it again (OUTCOME_UNKNOWN)", async () => {
  const { instance, calls, executions } = await killWorkerDuringCall("append_row", {
    spreadsheet_id: "s1",
    values: ["once"],
  });
  assert.equal(instance.status, "failed", JSON.stringify(instance));
  assert.equal(instance.error.code, "OUTCOME_UNKNOWN", JSON.stringify(instance.error));
  assert.equal(calls.length, 1, "called once");
  assert.equal(executions.length, 1, "the same execution, found again by its request key");
  assert.equal(executions[0].status, "failed");
  assert.equal(executions[0].error.details?.reason, "outcome_unknown");
});

test("step mcp_tool: a worker killed during a read-only tool's call calls it again", async () => {
  const { instance, calls, executions } = await killWorkerDuringCall("read_range", READ);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  assert.equal(instance.steps[0].output.result.rows_count, 3);
  assert.equal(calls.length, 2, "called again after the crash");
  assert.equal(executions.length, 1);
  assert.equal(executions[0].status, "completed");
});

test("step mcp_tool: defining it needs mcp:write", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["workflows:write"] });
  const response = await api("workflows/create", {
    action: "create",
    data: {
      name: "No MCP scope",
      steps: [{ id: "read", type: "mcp_tool", config: { provider: "sheets", tool: "read_range" } }],
    },
  }, { key });
  expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
});

// ---------------------------------------------------------------------------------------
// Negative cases of every action

/** Connects the stack's demo server as `google_sheets` for `org` (live). */
async function demoProviderFor(org: TestOrg, name = "google_sheets") {
  const response = await connect(await org.key(), {
    name,
    url: stack.mcp_google_sheets.url,
    credentials: { bearer_token: stack.mcp_google_sheets.bearer_token },
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return name;
}

negativeCases({
  group: "mcp",
  action: "execute",
  otherSuffix: "providers",
  scope: "write",
  valid: async (org) => ({
    provider: await demoProviderFor(org),
    tool: "read_range",
    parameters: READ,
  }),
  invalid: { data: { provider: "Google Sheets", tool: "read_range" }, field: "provider" },
});
negativeCases({
  group: "mcp",
  action: "providers",
  scope: "read",
  otherSuffix: "execute",
  valid: {},
  invalid: { data: { unexpected: true }, field: "unexpected" },
});
negativeCases({
  group: "mcp",
  action: "list_tools",
  otherSuffix: "execute",
  scope: "read",
  valid: async (org) => ({ provider: await demoProviderFor(org) }),
  invalid: { data: { provider: "" }, field: "provider" },
});
negativeCases({
  group: "mcp",
  action: "list_executions",
  otherSuffix: "execute",
  scope: "read",
  valid: { status: "completed" },
  invalid: { data: { status: "done" }, field: "status" },
});
negativeCases({
  group: "mcp",
  action: "get_execution",
  otherSuffix: "execute",
  scope: "read",
  valid: async (org) => {
    const response = await run(await org.key(), {
      provider: await demoProviderFor(org),
      tool: "read_range",
      parameters: READ,
    });
    return { execution_id: response.body.data.execution_id };
  },
  invalid: { data: { execution_id: "ag_123" }, field: "execution_id" },
});
