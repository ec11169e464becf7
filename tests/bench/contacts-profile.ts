/**
 * Where the contacts list's time goes (BENCH_PROFILE=1): the ladder of
 * tests/bench/ladder-server.ts, each step adding part of the API's work to the baseline,
 * then the API itself. Each step is measured once, after its warm-up.
 */
import type { BenchContext } from "./context.ts";
import { startDenoServer } from "./context.ts";
import { cpuPerRequest, measure, ms, perRequest, rps, table, us } from "./measure.ts";
import type { WrkResult, WrkTarget } from "./wrk.ts";

const STEPS = [
  ["select", "one SELECT with an explicit org filter (the baseline)"],
  ["auth", "+ key SHA-256 and private.authenticate_api_key"],
  ["auth-tx", "+ the SELECT in withClaims' RLS transaction (BEGIN, set_config, COMMIT)"],
  ["auth-list", "+ listContacts (contactToApi, pagination) and the envelope"],
] as const;

export async function profileContactsList(
  ctx: BenchContext,
  setup: { orgId: string; key: string; ours: WrkTarget },
) {
  ctx.log("profile: the ladder from the baseline to the API, one run per step");
  const rows: { label: string; what: string; result: WrkResult }[] = [];
  for (const [step, what] of STEPS) {
    const server = await startDenoServer(ctx, new URL("./ladder-server.ts", import.meta.url), {
      SUPABASE_DB_URL: ctx.stack.db_url,
      BENCH_ORG_ID: setup.orgId,
      BENCH_API_KEY: setup.key,
      BENCH_STEP: step,
    });
    const target: WrkTarget = {
      label: step,
      url: server.url,
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: setup.ours.body,
    };
    rows.push({ label: step, what, result: await measure(ctx, target, "  ") });
    await server.stop();
  }
  rows.push({
    label: "ours",
    what: "+ gateway, Hono, middleware, validation: the API",
    result: await measure(ctx, { ...setup.ours, label: "ours" }, "  "),
  });

  console.log("\nContacts list: where the time goes (one run per step)");
  for (const { label, what } of rows) console.log(`  ${label.padEnd(10)} ${what}`);
  let previous: ReturnType<typeof cpuPerRequest> = null;
  const lines = [[
    "step",
    "req/s",
    "p50",
    "p99",
    "server CPU/req",
    "Δ",
    "pg CPU/req",
    "Δ",
    "DB writes/req",
  ]];
  for (const { label, result } of rows) {
    const cpu = cpuPerRequest(result.cpu, result.requests);
    const delta = (key: "server" | "postgres") =>
      cpu && previous
        ? `${cpu[key] >= previous[key] ? "+" : ""}${us(cpu[key] - previous[key])}`
        : "";
    lines.push([
      label,
      rps(result.requestsPerSecond),
      ms(result.latencyMs.p50),
      ms(result.latencyMs.p99),
      cpu ? us(cpu.server) : "?",
      delta("server"),
      cpu ? us(cpu.postgres) : "?",
      delta("postgres"),
      perRequest(cpu?.dbWrites ?? null),
    ]);
    previous = cpu;
  }
  console.log(table(lines));
}
