/**
 * Bench section `messages` (issue 14): what the API adds to a WhatsApp send, against the
 * same Cloud API request sent straight to the stand-in (sequential, alternating halves);
 * how many signed inbound updates per second the receiver stores (a burst at 16 in flight);
 * and, paced, the time from the receiver's 200 to the `message.received` webhook arriving.
 */
import { createHmac } from "node:crypto";
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import type { BenchContext, BenchSection } from "./context.ts";
import { ms, percentile, table, timeSequential } from "./measure.ts";

const SENDS = Number(Deno.env.get("BENCH_MESSAGE_SENDS") ?? 200);
const INBOUND = Number(Deno.env.get("BENCH_INBOUND_UPDATES") ?? 1000);
const PACED = Number(Deno.env.get("BENCH_INBOUND_PACED") ?? 200);

async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function setUp(ctx: BenchContext) {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values ('Messages benchmark', 'enterprise', 1000000000, 1000000000)
    returning id
  `;
  const { key } = await mintApiKey(ctx.db, {
    name: "messages benchmark",
    environment: "live",
    type: "secret",
    scopes: ["read", "write", "admin"],
  }, org.id);
  const number = {
    phone_number_id: "955500011122",
    access_token: `bench-token-${crypto.randomUUID()}`,
    app_secret: `bench-secret-${crypto.randomUUID()}`,
    verify_token: "bench-verify",
    display_phone_number: "+1 555 000 1112",
  };
  const standIn = ctx.stack.whatsapp.base_url;
  await post(`${standIn}/_standin/numbers`, {
    phone_number_id: number.phone_number_id,
    access_token: number.access_token,
    display_phone_number: number.display_phone_number,
    verified_name: "Bench business",
  });
  const connected = await post(`${ctx.stack.api_url}/v1/integrations/connect`, {
    action: "connect",
    data: { provider: "whatsapp", credentials: number },
  }, { "x-api-key": key });
  return { key, number, inboundUrl: connected.data.inbound_url as string, standIn };
}

/** A WhatsApp callback carrying one text message, signed as Meta signs it. */
function signedUpdate(
  number: { phone_number_id: string; display_phone_number: string },
  secret: string,
  n: number,
) {
  const from = `3461${String(n % 50).padStart(7, "0")}`;
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: "bench",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: {
            display_phone_number: number.display_phone_number.replace(/\D/g, ""),
            phone_number_id: number.phone_number_id,
          },
          contacts: [{ profile: { name: `Sender ${n % 50}` }, wa_id: from }],
          messages: [{
            from,
            id: `wamid.bench.${crypto.randomUUID()}`,
            timestamp: String(Math.floor(Date.now() / 1000)),
            type: "text",
            text: { body: `bench-${n}` },
          }],
        },
      }],
    }],
  });
  const signature = createHmac("sha256", secret).update(body).digest("hex");
  return { body, headers: { "x-hub-signature-256": `sha256=${signature}` } };
}

export const messagesSection: BenchSection = {
  name: "messages",
  async run(ctx) {
    const { key, number, inboundUrl, standIn } = await setUp(ctx);

    // 1. send through the API against the same request straight to the stand-in.
    const send = () =>
      post(`${ctx.stack.api_url}/v1/messages/send`, {
        action: "send",
        data: {
          channel: "whatsapp",
          to: "+34 612 345 678",
          message: { type: "text", body: "Your order has been processed." },
        },
      }, { "x-api-key": key });
    const direct = () =>
      post(`${standIn}/v21.0/${number.phone_number_id}/messages`, {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: "34612345678",
        type: "text",
        text: { preview_url: false, body: "Your order has been processed." },
      }, { authorization: `Bearer ${number.access_token}` });
    const ours: number[] = [];
    const baseline: number[] = [];
    for (let round = 0; round < 2; round++) {
      baseline.push(...await timeSequential(SENDS / 2, direct));
      ours.push(...await timeSequential(SENDS / 2, send));
    }

    // 2. webhook receiver for message.received, then inbound burst and paced runs.
    const sentAt = new Map<string, number>();
    const latencies: number[] = [];
    const receiver = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
      const payload = await req.json();
      const body = payload?.data?.message?.body as string | undefined;
      const started = body === undefined ? undefined : sentAt.get(body);
      if (started !== undefined) latencies.push(performance.now() - started);
      return new Response("ok");
    });
    ctx.defer(() => receiver.shutdown());
    await post(`${ctx.stack.api_url}/v1/webhooks/create`, {
      action: "create",
      data: { url: `http://127.0.0.1:${receiver.addr.port}/hook`, events: ["message.received"] },
    }, { "x-api-key": key });

    const deliver = async (n: number) => {
      const update = signedUpdate(number, number.app_secret, n);
      const response = await fetch(inboundUrl, {
        method: "POST",
        headers: { "content-type": "application/json", ...update.headers },
        body: update.body,
      });
      await response.body?.cancel();
      if (response.status !== 200) throw new Error(`inbound answered ${response.status}`);
    };
    let next = 0;
    const burstStarted = performance.now();
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < INBOUND) await deliver(next++);
    }));
    const burstSeconds = (performance.now() - burstStarted) / 1000;
    const [{ stored }] = await ctx.db<{ stored: number }[]>`
      select count(*)::int as stored from public.messages m
      join public.integrations i on i.id = m.integration_id
      where m.direction = 'inbound' and m.body like 'bench-%'
        and i.public ->> 'phone_number_id' = ${number.phone_number_id}
    `;

    // Paced at 20/s: commit → webhook, not the burst's backlog.
    latencies.length = 0;
    for (let i = 0; i < PACED; i++) {
      const n = INBOUND + i;
      sentAt.set(`bench-${n}`, performance.now());
      await deliver(n);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const deadline = Date.now() + 30_000;
    while (latencies.length < PACED && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const p = (v: number[], q: number) => (v.length ? ms(percentile(v, q)) : "—");
    console.log(
      `\nmessages: ${SENDS} sequential sends each (alternating), ${INBOUND} inbound updates ` +
        `at 16 in flight, ${PACED} paced at 20/s\n` +
        table([
          ["", "p50", "p99"],
          ["WhatsApp stand-in alone (Cloud API send)", p(baseline, 50), p(baseline, 99)],
          ["messages/send through the API", p(ours, 50), p(ours, 99)],
          ["receiver 200 → message.received webhook (paced)", p(latencies, 50), p(latencies, 99)],
        ]) +
        `\n  send overhead over the stand-in: p50 ${
          ms(percentile(ours, 50) - percentile(baseline, 50))
        }` +
        `\n  inbound burst: ${(INBOUND / burstSeconds).toFixed(0)} updates/s, ` +
        `${stored} of ${INBOUND} stored (once each); webhooks received for ` +
        `${latencies.length} of ${PACED} paced updates`,
    );
  },
};
