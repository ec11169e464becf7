/**
 * Section "webhooks": events fanned out to 10 webhooks, each with its own local receiver
 * (tests/bench/webhook-receivers.ts, a process of its own), delivered by the stack's
 * worker processes: from the outbox insert, through the fan-out trigger and the job
 * queue, to a signed POST through the outbound guard and the attempt's record.
 *
 * Events are inserted into public.events (the outbox, as emitEvent writes it) by the bench
 * over a service connection, one per transaction; an event's commit time is when its
 * INSERT (autocommit) returned to the bench. A delivery's latency is from that commit to
 * the moment its receiver got the first attempt (both epoch ms from this machine's clock,
 * performance.timeOrigin + now()).
 *
 * Two runs of 10,000 events each (× 10 webhooks = 100,000 deliveries), after a warm-up:
 * - paced: one event every 1/BENCH_WEBHOOK_EVENTS_PER_SECOND s (default 50, so 500
 *   deliveries/s): latency without a backlog. Target: p50 < 200 ms.
 * - burst: all 10,000 inserted as fast as 8 connections can: the most deliveries/s the
 *   workers sustain (latency then is mostly queueing behind the backlog).
 * Each run checks that every (event, webhook) pair arrived exactly once, with one attempt
 * and a 2xx on record, and no delivery id twice: nothing lost, nothing duplicated. It also
 * prints the CPU milliseconds one delivery cost the stack's workers, PostgreSQL and the
 * receivers: on two cores that, not the latency of one delivery, bounds the burst's rate.
 * BENCH_WEBHOOK_EVENTS changes the events per run (a quick A/B: 3000).
 */
import postgres from "postgres";
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import { type BenchContext, type BenchSection, freePort, startDenoServer } from "./context.ts";
import { ms, percentile, table } from "./measure.ts";
import { cpuMeter, pidListeningOn } from "./probe.ts";

/** Events per run (BENCH_WEBHOOK_EVENTS; fewer for a quick comparison). */
const EVENTS = Number(Deno.env.get("BENCH_WEBHOOK_EVENTS") ?? 10_000);
const WEBHOOKS = 10;
const WARMUP_EVENTS = 200;
const BURST_CONNECTIONS = 8;
const EVENTS_PER_SECOND = Number(Deno.env.get("BENCH_WEBHOOK_EVENTS_PER_SECOND") ?? 50);
/** A run fails when no delivery has arrived for this long while some are missing. */
const STALL_MS = 30_000;
const TARGET_P50_MS = 200;

type Noted = [receiver: number, seq: number, deliveryId: string, receivedAt: number];

const now = () => performance.timeOrigin + performance.now();

interface RunResult {
  label: string;
  events: number;
  seconds: number;
  insertSeconds: number;
  deliveriesPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  duplicated: number;
}

async function setUp(ctx: BenchContext, receiverPorts: number[]) {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations (name, plan) values ('Webhooks benchmark', 'enterprise')
    returning id
  `;
  const { key } = await mintApiKey(ctx.db, {
    name: "webhooks benchmark",
    environment: "live",
    type: "secret",
    scopes: ["admin"],
  }, org.id);
  const webhookIds: string[] = [];
  for (const port of receiverPorts) {
    const response = await fetch(`${ctx.stack.api_url}/v1/webhooks/create`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body: JSON.stringify({
        action: "create",
        data: { url: `http://127.0.0.1:${port}/hook`, events: ["contact.created"] },
      }),
    });
    const body = await response.json();
    if (response.status !== 200) throw new Error(`webhook create: ${JSON.stringify(body)}`);
    webhookIds.push(body.data.webhook_id);
  }
  return { orgId: org.id, webhookIds };
}

export const webhooksSection: BenchSection = {
  name: "webhooks",
  async run(ctx) {
    const receiverPorts = Array.from({ length: WEBHOOKS }, () => freePort());
    const receivers = await startDenoServer(
      ctx,
      new URL("./webhook-receivers.ts", import.meta.url),
      { BENCH_RECEIVER_PORTS: receiverPorts.join(",") },
    );
    const control = (path: string, method = "GET") =>
      fetch(new URL(path, receivers.url), { method }).then((r) => r.json());
    const { orgId } = await setUp(ctx, receiverPorts);
    const inserter = postgres(ctx.stack.db_url, {
      max: BURST_CONNECTIONS,
      onnotice: () => {},
      connection: { application_name: "bench-webhooks-events" },
    });
    ctx.defer(() => inserter.end({ timeout: 5 }));
    // Where a delivery's CPU goes: the stack's worker processes, PostgreSQL, the receivers.
    const workerPids = ctx.stack.worker_pid_files.map((file) =>
      Number(Deno.readTextFileSync(file).trim())
    );
    const postgresPid = pidListeningOn(Number(new URL(ctx.stack.db_url).port));

    let nextSeq = 0;
    /** Inserts one event and returns when it has committed. */
    const insertEvent = async (seq: number, committed: Map<number, number>) => {
      await inserter`
        insert into public.events (org_id, environment, type, data)
        values (${orgId}, 'live', 'contact.created', ${inserter.json({ seq, bench: true })})
      `;
      committed.set(seq, now());
    };

    /** Waits until every delivery of `seqs` arrived (or nothing moves for STALL_MS). */
    const collect = async (expected: number) => {
      let last = -1;
      let lastChange = Date.now();
      for (;;) {
        const count = await control("count") as number;
        if (count >= expected) break;
        if (count !== last) [last, lastChange] = [count, Date.now()];
        if (Date.now() - lastChange > STALL_MS) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Let any duplicate (a second attempt) show up before counting.
      await new Promise((resolve) => setTimeout(resolve, 500));
      return await control("received") as Noted[];
    };

    const run = async (
      label: string,
      count: number,
      insertAll: (seqs: number[], committed: Map<number, number>) => Promise<void>,
    ): Promise<RunResult> => {
      await control("reset", "POST");
      const seqs = Array.from({ length: count }, () => nextSeq++);
      const committed = new Map<number, number>();
      const cpu = cpuMeter({
        ...Object.fromEntries(workerPids.map((pid, i) => [`worker${i}`, pid])),
        postgres: postgresPid,
        receivers: receivers.pid,
      });
      const started = now();
      await insertAll(seqs, committed);
      const insertSeconds = (now() - started) / 1000;
      const noted = await collect(count * WEBHOOKS);

      const used = cpu.stop();
      const perDelivery = (seconds: number) => ((seconds * 1000) / (count * WEBHOOKS)).toFixed(2);
      const workersSeconds = workerPids.reduce((sum, _, i) => sum + used[`worker${i}`], 0);
      const first = new Map<string, number>();
      const deliveryIds = new Set<string>();
      let duplicated = 0;
      for (const [receiver, seq, deliveryId, receivedAt] of noted) {
        const pair = `${receiver}:${seq}`;
        if (first.has(pair) || deliveryIds.has(deliveryId)) duplicated++;
        if (!first.has(pair)) first.set(pair, receivedAt);
        deliveryIds.add(deliveryId);
      }
      const latencies: number[] = [];
      for (const [pair, receivedAt] of first) {
        const seq = Number(pair.split(":")[1]);
        latencies.push(receivedAt - committed.get(seq)!);
      }
      latencies.sort((a, b) => a - b);
      const lastArrival = Math.max(...noted.map((n) => n[3]));
      const seconds = (lastArrival - started) / 1000;
      const [onRecord] = await ctx.db<{ delivered_once: number }[]>`
        select count(*)::int as delivered_once
        from public.webhook_deliveries d join public.events e on e.id = d.event_id
        where d.org_id = ${orgId} and d.status = 'delivered' and d.attempt_count = 1
          and (e.data ->> 'seq')::int between ${seqs[0]} and ${seqs.at(-1)!}
      `;
      const expected = count * WEBHOOKS;
      const result = {
        label,
        events: count,
        seconds,
        insertSeconds,
        deliveriesPerSecond: first.size / seconds,
        p50: percentile(latencies, 50),
        p99: percentile(latencies, 99),
        max: latencies.at(-1) ?? NaN,
        lost: expected - first.size + Math.max(0, first.size - onRecord.delivered_once),
        duplicated,
      };
      ctx.log(
        `  ${label.padEnd(14)} ${count} events in ${insertSeconds.toFixed(1)} s, ` +
          `${first.size}/${expected} deliveries in ${seconds.toFixed(1)} s ` +
          `(${result.deliveriesPerSecond.toFixed(0)}/s), p50 ${ms(result.p50)}, ` +
          `p99 ${ms(result.p99)}, lost ${result.lost}, duplicated ${duplicated}; ` +
          `CPU ms per delivery: workers ${perDelivery(workersSeconds)}, ` +
          `postgres ${perDelivery(used.postgres)}, receivers ${perDelivery(used.receivers)}`,
      );
      return result;
    };

    const paced = (perSecond: number) => async (seqs: number[], committed: Map<number, number>) => {
      const interval = 1000 / perSecond;
      const start = performance.now();
      const inFlight: Promise<void>[] = [];
      for (let i = 0; i < seqs.length; i++) {
        const wait = start + i * interval - performance.now();
        if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
        inFlight.push(insertEvent(seqs[i], committed));
      }
      await Promise.all(inFlight);
    };
    const burst = async (seqs: number[], committed: Map<number, number>) => {
      let next = 0;
      await Promise.all(Array.from({ length: BURST_CONNECTIONS }, async () => {
        while (next < seqs.length) await insertEvent(seqs[next++], committed);
      }));
    };

    ctx.log(
      `${EVENTS} events × ${WEBHOOKS} webhooks (one local receiver each), ` +
        `${ctx.stack.worker_pid_files.length} worker process(es)`,
    );
    await run("warm-up", WARMUP_EVENTS, paced(EVENTS_PER_SECOND));
    const results = [
      await run(`paced ${EVENTS_PER_SECOND}/s`, EVENTS, paced(EVENTS_PER_SECOND)),
      await run("burst", EVENTS, burst),
    ];
    await receivers.stop();

    console.log(
      `\nWebhooks: ${EVENTS} events per run fanned out to ${WEBHOOKS} webhooks ` +
        `(${EVENTS * WEBHOOKS} deliveries), ${ctx.stack.worker_pid_files.length} workers`,
    );
    console.log(
      "  latency: event INSERT committed (bench) → first attempt received (receiver)",
    );
    console.log(table([
      ["run", "events/s in", "deliveries/s", "p50", "p99", "max", "lost", "duplicated"],
      ...results.map((r) => [
        r.label,
        (r.events / r.insertSeconds).toFixed(0),
        r.deliveriesPerSecond.toFixed(0),
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        String(r.lost),
        String(r.duplicated),
      ]),
    ]));
    const [pacedResult] = results;
    const intact = results.every((r) => r.lost === 0 && r.duplicated === 0);
    console.log();
    console.log(table([
      ["target", "measured", "target", ""],
      [
        "paced p50",
        ms(pacedResult.p50),
        `< ${TARGET_P50_MS} ms`,
        pacedResult.p50 < TARGET_P50_MS ? "PASS" : "MISS",
      ],
      [
        "lost or duplicated",
        String(results.reduce((n, r) => n + r.lost + r.duplicated, 0)),
        "0",
        intact ? "PASS" : "FAIL",
      ],
    ]));
    if (!intact) throw new Error("Webhook deliveries were lost or duplicated.");
  },
};
