/**
 * Bench section `mcp`: what the API adds to an MCP tool call. `mcp/execute` of the spec's
 * example (read_range on the stack's demo server, through the gateway: API key, rate limit,
 * the execution row, the SDK client's handshake, the tool list and the parameters' check,
 * the call, the record) against the same callTool made directly with the SDK client, both
 * sequential so each figure is one call's latency, in alternating halves:
 *
 * - "callTool alone": one client connected once, then only callTool (the server's latency);
 * - "connect + listTools + callTool": a fresh client per call, what execute does inside.
 *
 * The overhead reported is execute's p50 over "callTool alone".
 */
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import type { BenchContext, BenchSection } from "./context.ts";
import { ms, percentile, table, timeSequential } from "./measure.ts";

const CALLS = Number(Deno.env.get("BENCH_MCP_CALLS") ?? 300);

const PARAMETERS = {
  spreadsheet_id: "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgVE2upms",
  range: "Sheet1!A1:D50",
};

async function setUp(ctx: BenchContext) {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values ('MCP benchmark', 'enterprise', 1000000000, 1000000000)
    returning id
  `;
  const { key } = await mintApiKey(ctx.db, {
    name: "mcp benchmark",
    environment: "live",
    type: "secret",
    scopes: ["read", "write", "admin"],
  }, org.id);
  const server = ctx.stack.mcp_google_sheets;
  const connected = await fetch(`${ctx.stack.api_url}/v1/integrations/connect`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: JSON.stringify({
      action: "connect",
      data: {
        provider: "mcp",
        name: "google_sheets",
        credentials: { url: server.url, bearer_token: server.bearer_token },
      },
    }),
  });
  const body = await connected.json();
  if (connected.status !== 200) throw new Error(`integrations/connect: ${JSON.stringify(body)}`);
  return key;
}

/** A client of the demo server as execute makes one (the same negotiation and auth). */
async function directClient(ctx: BenchContext) {
  const server = ctx.stack.mcp_google_sheets;
  const client = new Client(
    { name: "bivelio-bench", version: "1.0.0" },
    { versionNegotiation: { mode: "auto" } },
  );
  await client.connect(
    new StreamableHTTPClientTransport(new URL(server.url), {
      authProvider: { token: () => Promise.resolve(server.bearer_token) },
    }),
  );
  return client;
}

async function callReadRange(client: Client) {
  const answer = await client.callTool({ name: "read_range", arguments: PARAMETERS });
  if (answer.isError) throw new Error(`read_range failed: ${JSON.stringify(answer.content)}`);
}

export const mcpSection: BenchSection = {
  name: "mcp",
  async run(ctx) {
    const key = await setUp(ctx);
    const execute = async () => {
      const response = await fetch(`${ctx.stack.api_url}/v1/mcp/execute`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": key },
        body: JSON.stringify({
          action: "execute",
          data: { provider: "google_sheets", tool: "read_range", parameters: PARAMETERS },
        }),
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`${response.status}: ${text.slice(0, 300)}`);
    };
    const connected = await directClient(ctx);
    const fresh = async () => {
      const client = await directClient(ctx);
      try {
        await client.listTools();
        await callReadRange(client);
      } finally {
        await client.close();
      }
    };

    const ours: number[] = [];
    const callOnly: number[] = [];
    const freshCall: number[] = [];
    try {
      for (let round = 0; round < 2; round++) {
        callOnly.push(...await timeSequential(CALLS / 2, () => callReadRange(connected)));
        freshCall.push(...await timeSequential(CALLS / 2, fresh));
        ours.push(...await timeSequential(CALLS / 2, execute));
      }
    } finally {
      await connected.close();
    }

    const p50 = (v: number[]) => percentile(v, 50);
    const p99 = (v: number[]) => percentile(v, 99);
    console.log(
      `\nmcp: ${CALLS} sequential calls each (alternating halves), read_range on the demo server\n` +
        table([
          ["", "p50", "p99"],
          ["callTool alone (SDK client, connected once)", ms(p50(callOnly)), ms(p99(callOnly))],
          ["connect + listTools + callTool (SDK client)", ms(p50(freshCall)), ms(p99(freshCall))],
          ["mcp/execute through the API", ms(p50(ours)), ms(p99(ours))],
        ]) +
        `\n  execute overhead over callTool alone: p50 ${ms(p50(ours) - p50(callOnly))}; ` +
        `over a fresh client's connect + list + call: p50 ${ms(p50(ours) - p50(freshCall))}`,
    );
  },
};
