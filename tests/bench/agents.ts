/**
 * Bench section `agents`: what the API adds to a model call. An agent invoke through the
 * gateway (API key, rate limit, the three phases: debit and execution row, the Gemini call,
 * the record with its event) against the same generateContent request sent straight to the
 * Gemini stand-in, both sequential so each figure is one call's latency; then streaming's
 * time to the first byte and to the first partial output. Target (issue 13): the invoke's
 * p50 overhead over the stand-in's own latency under 15 ms.
 */
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import type { BenchContext, BenchSection } from "./context.ts";
import { ms, percentile, table, timeSequential } from "./measure.ts";

const CALLS = Number(Deno.env.get("BENCH_AGENT_CALLS") ?? 300);
const STREAMS = Number(Deno.env.get("BENCH_AGENT_STREAMS") ?? 100);

const OUTPUT_SCHEMA = {
  type: "object",
  properties: {
    intent: { type: "string", enum: ["plan_upgrade", "support", "other"] },
    confidence: { type: "number", minimum: 0, maximum: 1 },
  },
  required: ["intent", "confidence"],
};
const INPUT = { text: "The client wants to upgrade their subscription plan to Enterprise" };

async function setUp(ctx: BenchContext) {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values ('Agents benchmark', 'enterprise', 1000000000, 1000000000)
    returning id
  `;
  await ctx.db`update public.credit_balances set balance = 1000000 where org_id = ${org.id}`;
  const { key } = await mintApiKey(ctx.db, {
    name: "agents benchmark",
    environment: "live",
    type: "secret",
    scopes: ["read", "write", "admin"],
  }, org.id);
  const created = await fetch(`${ctx.stack.api_url}/v1/agents/create`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: JSON.stringify({
      action: "create",
      data: {
        name: "Bench classifier",
        instructions: "Classify the intent.",
        output_schema: OUTPUT_SCHEMA,
      },
    }),
  });
  const body = await created.json();
  if (created.status !== 200) throw new Error(`agents/create: ${JSON.stringify(body)}`);
  return { key, agentId: body.data.id as string };
}

export const agentsSection: BenchSection = {
  name: "agents",
  async run(ctx) {
    const gemini = ctx.stack.gemini;
    if (!gemini.stand_in || !gemini.api_key) {
      ctx.log("agents: skipped (the stack is not running the Gemini stand-in)");
      return;
    }
    const { key, agentId } = await setUp(ctx);
    const invoke = (stream: boolean) =>
      fetch(`${ctx.stack.api_url}/v1/agents/invoke`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-API-Key": key },
        body: JSON.stringify({
          action: "invoke",
          data: { agent_id: agentId, input: INPUT, stream },
        }),
      });
    // The request the Gemini client sends for that invoke, straight to the stand-in.
    const direct = () =>
      fetch(`${gemini.base_url}/v1beta/models/gemini-2.5-flash:generateContent`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "x-goog-api-key": gemini.api_key! },
        body: JSON.stringify({
          contents: [{ role: "user", parts: [{ text: JSON.stringify(INPUT) }] }],
          systemInstruction: { parts: [{ text: "Classify the intent." }] },
          generationConfig: {
            responseMimeType: "application/json",
            responseJsonSchema: OUTPUT_SCHEMA,
          },
        }),
      });

    const ok = async (response: Response) => {
      const text = await response.text();
      if (response.status !== 200) throw new Error(`${response.status}: ${text.slice(0, 300)}`);
    };
    // Alternating halves, so both see the same machine.
    const ours: number[] = [];
    const baseline: number[] = [];
    for (let round = 0; round < 2; round++) {
      baseline.push(...await timeSequential(CALLS / 2, async () => await ok(await direct())));
      ours.push(...await timeSequential(CALLS / 2, async () => await ok(await invoke(false))));
    }

    const firstByte: number[] = [];
    const firstPartial: number[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const started = performance.now();
      const response = await invoke(true);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      let sawPartial = false;
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        if (seen === "") firstByte.push(performance.now() - started);
        seen += value;
        if (!sawPartial && seen.includes("event: partial")) {
          firstPartial.push(performance.now() - started);
          sawPartial = true;
        }
      }
      if (!seen.includes("event: result")) throw new Error(`stream ended without a result`);
    }

    const p50 = (v: number[]) => percentile(v, 50);
    const p99 = (v: number[]) => percentile(v, 99);
    const overhead = p50(ours) - p50(baseline);
    console.log(
      `\nagents: ${CALLS} sequential calls each (alternating halves), ${STREAMS} streams\n` +
        table([
          ["", "p50", "p99"],
          ["stand-in alone (generateContent)", ms(p50(baseline)), ms(p99(baseline))],
          ["agents/invoke through the API", ms(p50(ours)), ms(p99(ours))],
          ["stream: first byte", ms(p50(firstByte)), ms(p99(firstByte))],
          ["stream: first partial output", ms(p50(firstPartial)), ms(p99(firstPartial))],
        ]) +
        `\n  invoke overhead over the stand-in: p50 ${ms(overhead)} ` +
        `(target < 15 ms: ${overhead < 15 ? "met" : "MISSED"})`,
    );
  },
};
