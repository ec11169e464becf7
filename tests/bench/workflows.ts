/**
 * Section "workflows": 1,000 instances of a 5-step workflow of cheap `set` steps, executed
 * end to end through the API and the stack's two worker processes, against graphile-worker
 * (npm) running the same number of no-op jobs (1,000 × 5) with two worker processes of the
 * same concurrency, on the same PostgreSQL (its own `graphile_worker` schema).
 *
 * Ours: the bench process sends 1,000 `POST /v1/workflows/execute` (async), 8 in flight
 * (BENCH_WORKFLOWS_IN_FLIGHT) over keep-alive connections, then polls until every instance
 * has ended. Figures come from the database: the instance's `created_at` (PostgreSQL's
 * clock at insert), its first step's `started_at` (the worker's clock) and its
 * `finished_at` (PostgreSQL's clock at the final commit); "execute" is when the bench sent
 * the request (its clock). All of these clocks are this machine's. Wall time runs from the
 * first request sent to the last instance finished.
 *
 * Baseline: tests/bench/graphile-baseline.ts, started twice. The 5,000 jobs are added in one
 * `graphile_worker.add_jobs` call (its bulk API: one insert, one NOTIFY); each worker notes
 * per job its `created_at`, when the task started and when graphile-worker reported it
 * complete. Wall time runs from just before the add to the last job reported complete. Its
 * start latency includes waiting behind the whole backlog, so it is no yardstick for ours.
 *
 * Latency without a backlog: after each burst, 200 more items one every 10 ms (ours: one
 * execute each; graphile: one `add_job` call each).
 *
 * Why 8 in flight: on this 2-core machine 8 concurrent executes already keep the workers
 * and PostgreSQL saturated (more add little throughput); each request beyond that only
 * waits in the API, so the p50 from send grows as in-flight ÷ throughput (README lists
 * runs at 4, 16 and 32).
 *
 * Fairness (after the rounds): another organization's executes (the same 5-step workflow,
 * 100 at 20/s) are measured alone, then while a flooding organization (sandbox key) has
 * queued 2,000 instances of one `http_request` step to a receiver in this process that
 * answers after 500 ms: the flood fills every worker slot and keeps a backlog of about
 * 1,500 instances. Reported: the other organization's execute → first step p50 / p99 in
 * both, and the flood's backlog before and after. Then the cost of one claim (16 jobs)
 * with a backlog of 10,000 due jobs of one organization, the fair claim against the old
 * oldest-first claim, on a copy of the jobs table that no worker touches.
 *
 * Kind fairness (section "job-kinds", run after this one): a Worker in this process (16 slots) runs two bench-only job kinds
 * (the stack's workers never claim them): `bench_quick` jobs (no-op, 100 at 20/s, their
 * latency from insert to the handler's start) alone; then while 10,000 `bench_slow` jobs
 * of 2 s each are queued (the slow kind capped at 3/4 of the slots, as the registry's
 * kinds are); then the same flood with the slow kind uncapped (share 1: the claim's turns
 * alone). Same organization for both kinds.
 *
 * Both are warmed up first each round (ours: 50 instances; graphile: 250 jobs) and measured
 * alternately (graphile, ours, graphile, …; BENCH_ROUNDS, default 2); the tables show
 * medians. Targets (issue 3): ours steps/s ≥ 0.5 × graphile jobs/s, and ours p50
 * execute → first step < 50 ms in the burst. The CPU time of each group of processes
 * during the burst is shown too: on two cores it is what bounds throughput.
 */
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import { type BenchContext, type BenchSection, median } from "./context.ts";
import { ms, percent, percentile, table } from "./measure.ts";
import {
  DEFAULT_CONCURRENCY,
  defineJobKind,
  type JobKind,
  Worker,
} from "../../shared/platform/worker.ts";

const INSTANCES = 1_000;
const STEPS = [
  { id: "s1", type: "set", config: { values: { n: "{{input.n}}", name: "{{input.name}}" } } },
  {
    id: "s2",
    type: "set",
    config: { values: { greeting: "Hello {{steps.s1.output.name}}", n: "{{steps.s1.output.n}}" } },
  },
  { id: "s3", type: "set", config: { values: { tier: "gold", n: "{{steps.s2.output.n}}" } } },
  {
    id: "s4",
    type: "set",
    config: { values: { summary: "{{steps.s2.output.greeting}} ({{steps.s3.output.tier}})" } },
  },
  {
    id: "s5",
    type: "set",
    config: {
      values: { n: "{{steps.s3.output.n}}", summary: "{{steps.s4.output.summary}}", done: true },
    },
  },
];
const JOBS = INSTANCES * STEPS.length;
/** Execute requests in flight at once during the burst (BENCH_WORKFLOWS_IN_FLIGHT). */
const IN_FLIGHT = Number(Deno.env.get("BENCH_WORKFLOWS_IN_FLIGHT") || 8);
if (!Number.isInteger(IN_FLIGHT) || IN_FLIGHT < 1) {
  throw new Error("BENCH_WORKFLOWS_IN_FLIGHT must be a whole number of at least 1.");
}
const WARMUP_INSTANCES = 50;
const WARMUP_JOBS = 250;
/** After the burst, for latency without a backlog: this many items at this rate. */
const PACED_ITEMS = 200;
const PACED_PER_SECOND = 100;
/** The stack's worker runs this many jobs at once; graphile-worker gets the same. */
const WORKER_CONCURRENCY = Number(
  Deno.env.get("BIVELIO_WORKER_CONCURRENCY") ?? DEFAULT_CONCURRENCY,
);
const WORKER_PROCESSES = 2;
/** A round that has not finished by then fails the run. */
const ROUND_TIMEOUT_MS = 180_000;
// Far above what the machine can do, so the limiter counts every request but refuses none.
const UNREACHABLE_LIMIT = 1_000_000_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; figures are left out elsewhere)
// ---------------------------------------------------------------------------------------

const CLOCK_TICKS_PER_SECOND = 100;

function readText(path: string) {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** Parent pid and CPU seconds (utime + stime) of every process, by pid. */
function allProcesses() {
  const processes = new Map<number, { ppid: number; seconds: number; cmdline: string }>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const stat = readText(`/proc/${entry.name}/stat`);
    if (!stat) continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    processes.set(Number(entry.name), {
      ppid: Number(fields[1]),
      seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND,
      cmdline: (readText(`/proc/${entry.name}/cmdline`) ?? "").replaceAll("\0", " "),
    });
  }
  return processes;
}

function machineBusySeconds() {
  const line = readText("/proc/stat")?.split("\n")[0];
  if (!line?.startsWith("cpu ")) return 0;
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

type CpuGroup = "gateway" | "workers" | "postgres" | "bench";
type CpuUse = Record<CpuGroup | "machine", number> & { wall: number };

/**
 * CPU seconds by group: the gateway and the stack's workers (children of this process, by
 * their scripts), graphile-worker's processes (counted as workers), PostgreSQL (the
 * postmaster and its backends) and this process (the load generator).
 */
function cpuGroups(postmasterPid: number | null) {
  const processes = allProcesses();
  const use = { gateway: 0, workers: 0, postgres: 0, bench: 0 };
  for (const [pid, p] of processes) {
    if (pid === Deno.pid) use.bench += p.seconds;
    else if (postmasterPid !== null && (pid === postmasterPid || p.ppid === postmasterPid)) {
      use.postgres += p.seconds;
    } else if (p.ppid === Deno.pid && p.cmdline.includes("local/gateway.ts")) {
      use.gateway += p.seconds;
    } else if (
      p.ppid === Deno.pid &&
      (p.cmdline.includes("local/worker.ts") || p.cmdline.includes("graphile-baseline.ts"))
    ) {
      use.workers += p.seconds;
    }
  }
  return use;
}

async function cpuMeter(ctx: BenchContext) {
  if (readText("/proc/stat") === null) return null;
  const [{ pid }] = await ctx.db<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const stat = readText(`/proc/${pid}/stat`);
  const postmasterPid = stat ? Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) : null;
  return {
    start() {
      const before = { ...cpuGroups(postmasterPid), machine: machineBusySeconds() };
      const at = performance.now();
      return (): CpuUse => {
        const after = { ...cpuGroups(postmasterPid), machine: machineBusySeconds() };
        return {
          gateway: after.gateway - before.gateway,
          workers: after.workers - before.workers,
          postgres: after.postgres - before.postgres,
          bench: after.bench - before.bench,
          machine: after.machine - before.machine,
          wall: (performance.now() - at) / 1000,
        };
      };
    },
  };
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------

interface Latencies {
  p50: number;
  p99: number;
}

interface Timings {
  /** Execute (request sent) or job added → first step or task started. */
  start: Latencies;
  /** … → instance finished or job reported complete. */
  end: Latencies;
  /** Ours only: the same from the instance's insert (leaving out the gateway's share). */
  fromInsert?: { start: Latencies; end: Latencies };
}

interface RoundResult {
  /** Instances (ours) or jobs (graphile). */
  items: number;
  steps: number;
  wallSeconds: number;
  /** Of the burst, whose wall time is measured. */
  burst: Timings;
  /** Of PACED_ITEMS items sent one by one at PACED_PER_SECOND. */
  paced: Timings;
  /** Of the burst. */
  cpu: CpuUse | null;
}

const latencies = (values: number[]): Latencies => ({
  p50: percentile(values, 50),
  p99: percentile(values, 99),
});

/** Calls `send` `items` times at `perSecond` (not waiting for the answers). */
async function paced(
  send: () => Promise<void>,
  items = PACED_ITEMS,
  perSecond = PACED_PER_SECOND,
) {
  const sending: Promise<void>[] = [];
  const begin = Date.now();
  for (let i = 0; i < items; i++) {
    const wait = begin + (i * 1000) / perSecond - Date.now();
    if (wait > 0) await sleep(wait);
    sending.push(send());
  }
  await Promise.all(sending);
}

// ---------------------------------------------------------------------------------------
// Ours: the API and the stack's workers
// ---------------------------------------------------------------------------------------

interface Ours {
  key: string;
  workflowId: string;
  url: string;
  /** The next instance's input number. */
  next: number;
}

async function postJson(url: string, key: string, body: unknown) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${text}`);
  return JSON.parse(text).data;
}

/** A fresh enterprise organization (limits far out of reach) and a key of `environment`. */
async function benchOrg(ctx: BenchContext, name: string, environment: "live" | "test") {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values (${name}, 'enterprise', ${UNREACHABLE_LIMIT}, ${UNREACHABLE_LIMIT})
    returning id
  `;
  const { key } = await mintApiKey(ctx.db, {
    name: "workflows benchmark",
    environment,
    type: "secret",
    scopes: ["read", "write"],
  }, org.id);
  return { orgId: org.id, key };
}

/** The benchmark's organization, a key and the workflow. */
async function setUpOurs(ctx: BenchContext): Promise<Ours> {
  const { key } = await benchOrg(ctx, "Workflows benchmark org", "live");
  const workflow = await postJson(`${ctx.stack.api_url}/v1/workflows/create`, key, {
    action: "create",
    data: { name: "Benchmark: five set steps", steps: STEPS },
  });
  return {
    key,
    workflowId: workflow.id,
    url: `${ctx.stack.api_url}/v1/workflows/execute`,
    next: 0,
  };
}

/** Executes one instance (async) and notes when the request was sent, by instance id. */
async function executeOne(ours: Ours, sentAt: Map<string, number>) {
  const n = ours.next++;
  const at = Date.now();
  const instance = await postJson(ours.url, ours.key, {
    action: "execute",
    data: { workflow_id: ours.workflowId, input: { n, name: `Client ${n}` }, async: true },
  });
  sentAt.set(instance.instance_id, at);
}

/** Sends `count` executes, IN_FLIGHT at once; returns when each was sent, by instance id. */
async function executeMany(ours: Ours, count: number) {
  const sentAt = new Map<string, number>();
  let left = count;
  const sender = async () => {
    while (left-- > 0) await executeOne(ours, sentAt);
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, count) }, sender));
  return sentAt;
}

/** Polls until every one of `ids` has ended; throws if any did not complete correctly. */
async function waitForInstances(ctx: BenchContext, ids: string[]) {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  for (;;) {
    const [{ open }] = await ctx.db<{ open: number }[]>`
      select count(*)::int as open from public.workflow_instances
      where id = any(${ids}) and status in ('pending', 'running')
    `;
    if (open === 0) break;
    if (Date.now() > deadline) {
      throw new Error(`${open} of ${ids.length} instances still running after the time limit.`);
    }
    await sleep(100);
  }
  // Completed, all five steps recorded, and the templates carried the input to the output.
  const [check] = await ctx.db<{ good: number; statuses: string }[]>`
    select count(*) filter (
             where i.status = 'completed' and (i.output->>'n')::int = (i.input->>'n')::int
               and i.output->>'summary' = 'Hello ' || (i.input->>'name') || ' (gold)'
               and (select count(*) from public.workflow_step_runs s
                    where s.instance_id = i.id and s.status = 'completed') = ${STEPS.length}
           )::int as good,
           string_agg(distinct i.status, ', ') as statuses
    from public.workflow_instances i where i.id = any(${ids})
  `;
  if (check.good !== ids.length) {
    throw new Error(
      `Only ${check.good} of ${ids.length} instances completed with the expected output ` +
        `(statuses: ${check.statuses}).`,
    );
  }
}

/** Waits for the instances, then reads their timings from the database. */
async function instanceTimings(ctx: BenchContext, sentAt: Map<string, number>) {
  const ids = [...sentAt.keys()];
  await waitForInstances(ctx, ids);
  const rows = await ctx.db<
    { id: string; created: number; first_step: number; finished: number }[]
  >`
    select i.id,
           extract(epoch from i.created_at) * 1000 as created,
           extract(epoch from s.started_at) * 1000 as first_step,
           extract(epoch from i.finished_at) * 1000 as finished
    from public.workflow_instances i
    join public.workflow_step_runs s on s.instance_id = i.id and s.position = 1
    where i.id = any(${ids})
  `;
  const sent = (row: { id: string }) => sentAt.get(row.id)!;
  const timings: Timings = {
    start: latencies(rows.map((r) => Number(r.first_step) - sent(r))),
    end: latencies(rows.map((r) => Number(r.finished) - sent(r))),
    fromInsert: {
      start: latencies(rows.map((r) => Number(r.first_step) - Number(r.created))),
      end: latencies(rows.map((r) => Number(r.finished) - Number(r.created))),
    },
  };
  return { timings, lastFinished: Math.max(...rows.map((r) => Number(r.finished))) };
}

async function runOurs(ctx: BenchContext, ours: Ours): Promise<RoundResult> {
  const meter = await cpuMeter(ctx);
  if (ctx.settings.warmupSeconds > 0) {
    await waitForInstances(ctx, [...(await executeMany(ours, WARMUP_INSTANCES)).keys()]);
  }
  const stopMeter = meter?.start();
  const firstSent = Date.now();
  const burst = await instanceTimings(ctx, await executeMany(ours, INSTANCES));
  const cpu = stopMeter?.() ?? null;

  const pacedSentAt = new Map<string, number>();
  await paced(() => executeOne(ours, pacedSentAt));
  return {
    items: INSTANCES,
    steps: JOBS,
    wallSeconds: (burst.lastFinished - firstSent) / 1000,
    burst: burst.timings,
    paced: (await instanceTimings(ctx, pacedSentAt)).timings,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------
// Baseline: graphile-worker
// ---------------------------------------------------------------------------------------

/** Splits a byte stream into lines. */
async function* lines(stream: ReadableStream<Uint8Array>) {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}

interface GraphileProcess {
  /** Asks for the noted jobs ([added, started, completed] ms) and forgets them. */
  samples(): Promise<[number, number, number][]>;
}

const CONFIG = new URL("../../deno.json", import.meta.url).pathname;
const GRAPHILE_SCRIPT = new URL("./graphile-baseline.ts", import.meta.url).pathname;

async function startGraphileProcess(ctx: BenchContext): Promise<GraphileProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, GRAPHILE_SCRIPT],
    env: { BENCH_DB_URL: ctx.stack.db_url, BENCH_CONCURRENCY: String(WORKER_CONCURRENCY) },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  let exited = false;
  const status = child.status.finally(() => (exited = true));
  /** Waits up to `ms` for the process to exit; whether it did. */
  const exits = (ms: number) =>
    Promise.race([status.then(() => true), sleep(ms).then(() => exited)]);
  ctx.defer(async () => {
    await stdin.close().catch(() => {}); // the worker's cue to shut down
    if (await exits(5_000)) return;
    child.kill("SIGTERM");
    if (await exits(5_000)) return;
    child.kill("SIGKILL");
    await status;
  });

  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  const waiting: ((samples: [number, number, number][]) => void)[] = [];
  (async () => {
    for await (const line of lines(child.stdout)) {
      if (line === "ready") ready();
      else if (line.startsWith("samples ")) waiting.shift()?.(JSON.parse(line.slice(8)));
      else console.log(`[graphile-worker] ${line}`);
    }
  })();
  const started = await Promise.race([
    isReady.then(() => true),
    status.then(() => false),
    sleep(60_000).then(() => false),
  ]);
  if (!started) throw new Error("A graphile-worker process did not get ready.");
  return {
    samples() {
      const answer = new Promise<[number, number, number][]>((resolve) => waiting.push(resolve));
      stdin.write(new TextEncoder().encode("samples\n"));
      return answer;
    },
  };
}

async function graphileQueueLength(ctx: BenchContext) {
  const [{ n }] = await ctx.db<{ n: number }[]>`
    select count(*)::int as n from graphile_worker._private_jobs
  `;
  return n;
}

/** Adds `count` no-op jobs in one `add_jobs` call. */
async function addGraphileJobs(ctx: BenchContext, count: number, warmup: boolean) {
  await ctx.db`
    select count(*) from graphile_worker.add_jobs(array(
      select json_populate_record(null::graphile_worker.job_spec,
        json_build_object('identifier', 'noop', 'payload', json_build_object('warmup', ${warmup})))
      from generate_series(1, ${count})
    ))
  `;
}

async function waitForEmptyGraphileQueue(ctx: BenchContext) {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  let left;
  while ((left = await graphileQueueLength(ctx)) > 0) {
    if (Date.now() > deadline) {
      throw new Error(`${left} graphile-worker jobs left after the limit.`);
    }
    await sleep(100);
  }
}

/** Waits for the queue to empty, then collects the workers' notes on the jobs. */
async function jobTimings(ctx: BenchContext, processes: GraphileProcess[], expected: number) {
  await waitForEmptyGraphileQueue(ctx);
  const samples = (await Promise.all(processes.map((p) => p.samples()))).flat();
  if (samples.length !== expected) {
    throw new Error(`graphile-worker reported ${samples.length} of ${expected} jobs completed.`);
  }
  const timings: Timings = {
    start: latencies(samples.map(([added, started]) => started - added)),
    end: latencies(samples.map(([added, , completed]) => completed - added)),
  };
  return { timings, lastCompleted: Math.max(...samples.map(([, , completed]) => completed)) };
}

async function runGraphile(ctx: BenchContext, processes: GraphileProcess[]): Promise<RoundResult> {
  const meter = await cpuMeter(ctx);
  await waitForEmptyGraphileQueue(ctx);
  if (ctx.settings.warmupSeconds > 0) {
    await addGraphileJobs(ctx, WARMUP_JOBS, true);
    await waitForEmptyGraphileQueue(ctx);
  }
  const stopMeter = meter?.start();
  const added = Date.now();
  await addGraphileJobs(ctx, JOBS, false);
  const burst = await jobTimings(ctx, processes, JOBS);
  const cpu = stopMeter?.() ?? null;

  // One add_job call (one transaction) per job, as an execute request makes one instance.
  await paced(async () => {
    await ctx.db`select graphile_worker.add_job('noop', json_build_object('warmup', false))`;
  });
  return {
    items: JOBS,
    steps: JOBS,
    wallSeconds: (burst.lastCompleted - added) / 1000,
    burst: burst.timings,
    paced: (await jobTimings(ctx, processes, PACED_ITEMS)).timings,
    cpu,
  };
}

// ---------------------------------------------------------------------------------------
// Fairness: another organization's latency while one floods the queue
// ---------------------------------------------------------------------------------------

/** Instances the flooding organization queues (BENCH_FAIRNESS_FLOOD). */
const FLOOD_INSTANCES = Number(Deno.env.get("BENCH_FAIRNESS_FLOOD") || 2_000);
/** How long the flood's receiver takes to answer: 32 slots drain 64 instances a second. */
const FLOOD_CALL_MS = 500;
/** The other organization's executes, alone and during the flood. */
const OTHER_ITEMS = 100;
const OTHER_PER_SECOND = 20;

interface FairnessResult {
  alone: Timings;
  duringFlood: Timings;
  /** The flood's instances not yet claimed by a worker when the other's began and ended. */
  backlogBefore: number;
  backlogAfter: number;
}

/** A receiver in this process answering every request after `delayMs`, until released. */
function slowReceiver(delayMs: number) {
  let released = false;
  const waiting = new Set<() => void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async () => {
    if (!released) {
      await new Promise<void>((resolve) => {
        const done = () => {
          waiting.delete(done);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, delayMs);
        waiting.add(done);
      });
    }
    return Response.json({ ok: true });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/slow`,
    release() {
      released = true;
      for (const done of [...waiting]) done();
    },
    close: () => server.shutdown(),
  };
}

async function unclaimedJobs(ctx: BenchContext, orgId: string) {
  const [{ n }] = await ctx.db<{ n: number }[]>`
    select count(*)::int as n from private.jobs where org_id = ${orgId} and claims = 0
  `;
  return n;
}

async function measureFairness(ctx: BenchContext, ours: Ours): Promise<FairnessResult> {
  const otherExecutes = async () => {
    const sentAt = new Map<string, number>();
    await paced(() => executeOne(ours, sentAt), OTHER_ITEMS, OTHER_PER_SECOND);
    return (await instanceTimings(ctx, sentAt)).timings;
  };
  const alone = await otherExecutes();

  const receiver = slowReceiver(FLOOD_CALL_MS);
  ctx.defer(() => receiver.close());
  const flooder = await benchOrg(ctx, "Workflows benchmark flooding org", "test");
  const api = `${ctx.stack.api_url}/v1/workflows`;
  const flood = await postJson(`${api}/create`, flooder.key, {
    action: "create",
    data: {
      name: "Benchmark: one slow call",
      steps: [{ id: "call", type: "http_request", config: { url: receiver.url, method: "POST" } }],
    },
  });
  let sent = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (sent++ < FLOOD_INSTANCES) {
      await postJson(`${api}/execute`, flooder.key, {
        action: "execute",
        data: { workflow_id: flood.id, input: { n: sent } },
      });
    }
  }));
  const backlogBefore = await unclaimedJobs(ctx, flooder.orgId);
  const duringFlood = await otherExecutes();
  const backlogAfter = await unclaimedJobs(ctx, flooder.orgId);

  receiver.release();
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  for (;;) {
    const [{ open }] = await ctx.db<{ open: number }[]>`
      select count(*)::int as open from public.workflow_instances
      where org_id = ${flooder.orgId} and status in ('pending', 'running')
    `;
    if (open === 0) break;
    if (Date.now() > deadline) throw new Error(`${open} flood instances left after the limit.`);
    await sleep(200);
  }
  return { alone, duringFlood, backlogBefore, backlogAfter };
}

// ---------------------------------------------------------------------------------------
// The cost of one claim with a big backlog: the fair claim against the old FIFO one
// ---------------------------------------------------------------------------------------

const CLAIM_BACKLOG = 10_000;
const CLAIM_LIMIT = 16;
/** The flooding organization's jobs already running (two workers' slots). */
const CLAIM_HELD = 32;
const CLAIM_OTHER_ORGS = [1, 100, 1_000];
const CLAIM_SAMPLES = 40;

/** The claim of 20261123000200_job_queue.sql: due jobs oldest first, one global queue. */
const FIFO_CLAIM = `
create function claim_bench.fifo_claim_jobs(p_kinds text[], p_limit int, p_lease_seconds int)
returns setof claim_bench.fifo_jobs language plpgsql volatile as $$
begin
  return query
  with due as (
    select id from claim_bench.fifo_jobs
    where available_at <= now() and kind = any (p_kinds)
    order by available_at limit p_limit for update skip locked
  )
  update claim_bench.fifo_jobs j
  set available_at = now() + make_interval(secs => p_lease_seconds),
      lease_token = gen_random_uuid(), claims = j.claims + 1
  from due where j.id = due.id returning j.*;
end $$`;

interface ClaimCost {
  otherOrgs: number;
  fair: Latencies;
  fifo: Latencies;
}

/**
 * Two copies of private.jobs in a schema of their own, which no worker claims from: `jobs`
 * with today's indexes and claim_jobs pointed at it, and `fifo_jobs` with the indexes of
 * the first job-queue migration and its claim. Both hold the same backlog. Each claim runs
 * in a transaction rolled back, so every sample sees the same backlog; the time is
 * PostgreSQL's, from the statement's start to its last row.
 */
async function measureClaimCost(ctx: BenchContext): Promise<ClaimCost[]> {
  await ctx.db`drop schema if exists claim_bench cascade`;
  ctx.defer(async () => {
    await ctx.db`drop schema if exists claim_bench cascade`;
  });
  await ctx.db`create schema claim_bench`;
  await ctx.db`create table claim_bench.jobs (like private.jobs including all)`;
  await ctx.db`
    create table claim_bench.fifo_jobs (
      like private.jobs including defaults including identity including constraints,
      primary key (id), unique (kind, ref)
    )
  `;
  await ctx.db`create index on claim_bench.fifo_jobs (available_at)`;
  const [{ definition }] = await ctx.db<{ definition: string }[]>`
    select pg_get_functiondef('private.claim_jobs(text[], int, int, int[])'::regprocedure)
      as definition
  `;
  await ctx.db.unsafe(definition.replaceAll("private.", "claim_bench."));
  await ctx.db.unsafe(FIFO_CLAIM);

  const results: ClaimCost[] = [];
  for (const otherOrgs of CLAIM_OTHER_ORGS) {
    for (const table of ["jobs", "fifo_jobs"]) {
      const jobs = ctx.db(`claim_bench.${table}`);
      await ctx.db`truncate ${jobs}`;
      await ctx.db`
        insert into ${jobs} (kind, ref, org_id, environment, available_at)
        select 'workflow', 'flood_' || n, 'org_flood', 'test',
               now() - interval '1 hour' + n * interval '1 ms'
        from generate_series(1, ${CLAIM_BACKLOG}) as n
      `;
      await ctx.db`
        update ${jobs} set lease_token = gen_random_uuid(), available_at = now() + interval '1 hour'
        where ref in (select 'flood_' || n from generate_series(1, ${CLAIM_HELD}) as n)
      `;
      await ctx.db`
        insert into ${jobs} (kind, ref, org_id, environment, available_at)
        select 'workflow', 'other_' || n, 'org_other_' || n, 'live', now() - interval '1 second'
        from generate_series(1, ${otherOrgs}) as n
      `;
      await ctx.db`vacuum analyze ${jobs}`;
    }
    const samples = { fair: [] as number[], fifo: [] as number[] };
    for (let i = 0; i < CLAIM_SAMPLES; i++) {
      for (const variant of ["fair", "fifo"] as const) {
        const fn = variant === "fair" ? "claim_jobs" : "fifo_claim_jobs";
        await ctx.db.begin(async (tx) => {
          const [row] = await tx.unsafe<{ n: number; ms: number }[]>(`
            select count(*)::int as n,
                   extract(epoch from clock_timestamp() - statement_timestamp()) * 1000 as ms
            from claim_bench.${fn}(array['workflow', 'webhook'], ${CLAIM_LIMIT}, 30)
          `);
          if (row.n !== CLAIM_LIMIT) throw new Error(`${fn} claimed ${row.n} jobs`);
          samples[variant].push(Number(row.ms));
          throw new RollBack();
        }).catch((error) => {
          if (!(error instanceof RollBack)) throw error;
        });
      }
    }
    results.push({ otherOrgs, fair: latencies(samples.fair), fifo: latencies(samples.fifo) });
  }
  return results;
}

/** Thrown to roll a measured transaction back. */
class RollBack extends Error {}

function printFairness(f: FairnessResult, costs: ClaimCost[]) {
  console.log(
    `\nFairness: another organization's executes (${OTHER_ITEMS} at ${OTHER_PER_SECOND}/s, ` +
      `${STEPS.length} set steps) alone, and while one organization (sandbox key) has queued ` +
      `${FLOOD_INSTANCES} instances of one ${FLOOD_CALL_MS} ms http_request step`,
  );
  console.log(table([
    ["other organization", "execute → first step p50 / p99", "→ finished p50 / p99", "flood"],
    ["alone", pair(f.alone.start), pair(f.alone.end), "—"],
    [
      "during the flood",
      pair(f.duringFlood.start),
      pair(f.duringFlood.end),
      `${f.backlogBefore} → ${f.backlogAfter} unclaimed`,
    ],
  ]));
  console.log(
    `  (the flood holds every slot, so another organization's job waits for the next slot to ` +
      `free: up to one flood call (${FLOOD_CALL_MS} ms) when the flood's calls end together; ` +
      `the old oldest-first claim made it wait for the whole backlog)`,
  );
  console.log(
    `\nOne claim of ${CLAIM_LIMIT} jobs with ${CLAIM_BACKLOG.toLocaleString("en")} due jobs of ` +
      `one organization (${CLAIM_HELD} of them running) and one due job in each of N others ` +
      `(PostgreSQL's time, ${CLAIM_SAMPLES} samples, alternating)`,
  );
  console.log(table([
    ["N other organizations", "fair claim p50 / p99", "old oldest-first claim p50 / p99"],
    ...costs.map((c) => [String(c.otherOrgs), pair(c.fair), pair(c.fifo)]),
  ]));
}

// ---------------------------------------------------------------------------------------
// The section
// ---------------------------------------------------------------------------------------

const pair = (l: Latencies) => `${ms(l.p50)} / ${ms(l.p99)}`;

/** CPU seconds of the machine outside the measured groups (another program, the kernel). */
const otherCpu = (cpu: CpuUse) =>
  cpu.machine - cpu.gateway - cpu.workers - cpu.postgres - cpu.bench;

function logRound(ctx: BenchContext, round: number, label: string, r: RoundResult) {
  ctx.log(
    `  round ${round}  ${label.padEnd(15)} ${r.wallSeconds.toFixed(2)} s, ` +
      `${(r.steps / r.wallSeconds).toFixed(0)} steps/s; start p50/p99 ${pair(r.burst.start)}, ` +
      `end ${pair(r.burst.end)}; paced start ${pair(r.paced.start)}` +
      (r.cpu ? `; other CPU ${otherCpu(r.cpu).toFixed(2)} s` : ""),
  );
}

/** The median of each figure over the rounds. */
function summarize(rounds: RoundResult[]): RoundResult {
  const m = (pick: (r: RoundResult) => number) => median(rounds.map(pick));
  const lat = (pick: (r: RoundResult) => Latencies): Latencies => ({
    p50: m((r) => pick(r).p50),
    p99: m((r) => pick(r).p99),
  });
  const timings = (pick: (r: RoundResult) => Timings): Timings => ({
    start: lat((r) => pick(r).start),
    end: lat((r) => pick(r).end),
    fromInsert: pick(rounds[0]).fromInsert && {
      start: lat((r) => pick(r).fromInsert!.start),
      end: lat((r) => pick(r).fromInsert!.end),
    },
  });
  const cpus = rounds.map((r) => r.cpu);
  const cpu = (key: keyof CpuUse) => median(cpus.map((c) => c![key]));
  return {
    items: rounds[0].items,
    steps: rounds[0].steps,
    wallSeconds: m((r) => r.wallSeconds),
    burst: timings((r) => r.burst),
    paced: timings((r) => r.paced),
    cpu: cpus.every((c) => c !== null)
      ? {
        gateway: cpu("gateway"),
        workers: cpu("workers"),
        postgres: cpu("postgres"),
        bench: cpu("bench"),
        machine: cpu("machine"),
        wall: cpu("wall"),
      }
      : null,
  };
}

function printResults(ours: RoundResult, graphile: RoundResult, rounds: number) {
  const verdict = (pass: boolean) => (pass ? "PASS" : "MISS");
  console.log(
    `\nWorkflows: ${INSTANCES} instances × ${STEPS.length} set steps vs ${JOBS} no-op ` +
      `graphile-worker jobs, ${WORKER_PROCESSES} worker processes × ${WORKER_CONCURRENCY} ` +
      `jobs at once each (medians of ${rounds} rounds each)`,
  );
  console.log(
    `  ours:     POST /v1/workflows/execute (async), ${IN_FLIGHT} in flight; ` +
      `start = first step started, end = instance finished`,
  );
  console.log(
    `  graphile: run() defaults; all jobs added by one add_jobs call; ` +
      `start = task started, end = job reported complete`,
  );
  const row = (label: string, items: string, r: RoundResult, t: Timings["fromInsert"]) => [
    label,
    items,
    r.wallSeconds.toFixed(2),
    (r.items / r.wallSeconds).toFixed(0),
    (r.steps / r.wallSeconds).toFixed(0),
    pair(t!.start),
    pair(t!.end),
  ];
  console.log(table([
    ["", "items", "wall s", "items/s", "steps/s", "start p50 / p99", "end-to-end p50 / p99"],
    row("graphile-worker (from add)", `${graphile.items} jobs`, graphile, graphile.burst),
    row("ours (from execute sent)", `${ours.items} inst.`, ours, ours.burst),
    row("ours (from instance insert)", `${ours.items} inst.`, ours, ours.burst.fromInsert),
  ]));

  console.log(
    `\nStart latency at a steady ${PACED_PER_SECOND} items/s (${PACED_ITEMS} each; ` +
      `graphile: one add_job call per job)`,
  );
  const pacedRow = (label: string, t: Timings["fromInsert"]) => [
    label,
    pair(t!.start),
    pair(t!.end),
  ];
  console.log(table([
    ["", "start p50 / p99", "end-to-end p50 / p99"],
    pacedRow("graphile-worker (from add)", graphile.paced),
    pacedRow("ours (from execute sent)", ours.paced),
    pacedRow("ours (from instance insert)", ours.paced.fromInsert),
  ]));

  const ratio = (ours.steps / ours.wallSeconds) / (graphile.steps / graphile.wallSeconds);
  console.log();
  console.log(table([
    ["", "measured", "target", ""],
    ["ours steps/s ÷ graphile jobs/s", ratio.toFixed(2), "≥ 0.5", verdict(ratio >= 0.5)],
    [
      "ours p50 execute → first step (burst)",
      ms(ours.burst.start.p50),
      "< 50 ms",
      verdict(ours.burst.start.p50 < 50),
    ],
  ]));

  if (ours.cpu && graphile.cpu) {
    const cpuRow = (label: string, r: RoundResult) => {
      const cpu = r.cpu!;
      const perThousandSteps = (seconds: number) => `${(seconds * 1e6 / r.steps).toFixed(0)}`;
      return [
        label,
        perThousandSteps(cpu.gateway),
        perThousandSteps(cpu.workers),
        perThousandSteps(cpu.postgres),
        perThousandSteps(cpu.bench),
        perThousandSteps(otherCpu(cpu)),
        perThousandSteps(cpu.machine),
        percent(cpu.machine / (cpu.wall * navigator.hardwareConcurrency)),
      ];
    };
    console.log();
    console.log(table([
      [
        "CPU ms per 1,000 steps (burst)",
        "gateway",
        "workers",
        "postgres",
        "client",
        "other",
        "machine",
        "busy",
      ],
      cpuRow("graphile-worker", graphile),
      cpuRow("ours", ours),
    ]));
  }
}

// ---------------------------------------------------------------------------------------
// Kind fairness: a flood of slow jobs of one kind against another kind's jobs
// ---------------------------------------------------------------------------------------

const KIND_FLOOD = Number(Deno.env.get("BENCH_KIND_FLOOD") || 10_000);
const KIND_FLOOD_JOB_MS = 2_000;
const KIND_QUICK_ITEMS = 100;
const KIND_QUICK_PER_SECOND = 20;
const KIND_WORKER_SLOTS = 16;

interface KindFairness {
  alone: Latencies;
  capped: Latencies;
  uncapped: Latencies;
}

async function measureKindFairness(ctx: BenchContext): Promise<KindFairness> {
  // The Worker in this process reaches the stack's database through shared/platform/db.ts.
  Deno.env.set("SUPABASE_DB_URL", ctx.stack.db_url);
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations (id, name) values ('org_bench_kinds', 'Bench kinds')
    on conflict (id) do update set name = excluded.name returning id
  `;
  const kinds = ["bench_slow", "bench_quick"];
  const clear = () => ctx.db`delete from private.jobs where kind = any(${kinds})`;
  await clear();
  ctx.defer(async () => {
    await clear();
  });
  const noRetries = { maxAttempts: 1, backoff: () => 0 };
  let seen: number[] = [];
  const quick = defineJobKind({
    kind: "bench_quick",
    handler: (job) => {
      seen.push(Date.now() - Number(job.job.payload.queued_at));
      return Promise.resolve();
    },
    retry: noRetries,
    concurrency: { share: 0.75 },
  });
  const slow = (share: number) =>
    defineJobKind({
      kind: "bench_slow",
      handler: () => sleep(KIND_FLOOD_JOB_MS),
      retry: noRetries,
      concurrency: { share },
    });

  const measure = async (kinds: JobKind[], flood: boolean) => {
    seen = [];
    if (flood) {
      await ctx.db`
        insert into private.jobs (kind, ref, org_id, environment)
        select 'bench_slow', 'slow_' || n, ${org.id}, 'live'
        from generate_series(1, ${KIND_FLOOD}) as n
      `;
    }
    const worker = new Worker({ kinds, concurrency: KIND_WORKER_SLOTS, log: () => {} });
    const running = worker.run();
    try {
      // Let the flood take its slots before the quick jobs come.
      if (flood) await sleep(KIND_FLOOD_JOB_MS / 2);
      let n = 0;
      await paced(
        async () => {
          await ctx.db`
          insert into private.jobs (kind, ref, org_id, environment, payload)
          values ('bench_quick', ${`quick_${n++}`}, ${org.id}, 'live',
                  ${ctx.db.json({ queued_at: Date.now() })})
        `;
        },
        KIND_QUICK_ITEMS,
        KIND_QUICK_PER_SECOND,
      );
      const deadline = Date.now() + 60_000;
      while (seen.length < KIND_QUICK_ITEMS && Date.now() < deadline) await sleep(50);
      if (seen.length < KIND_QUICK_ITEMS) {
        throw new Error(`only ${seen.length} of ${KIND_QUICK_ITEMS} quick jobs ran in 60 s`);
      }
    } finally {
      await ctx.db`delete from private.jobs where kind = 'bench_slow' and lease_token is null`;
      await worker.stop();
      await running;
      await clear();
    }
    return latencies(seen);
  };
  return {
    alone: await measure([quick, slow(0.75)], false),
    capped: await measure([quick, slow(0.75)], true),
    uncapped: await measure([quick, slow(1)], true),
  };
}

function printKindFairness(f: KindFairness) {
  console.log(
    `\nKind fairness: ${KIND_QUICK_ITEMS} jobs of one kind at ${KIND_QUICK_PER_SECOND}/s ` +
      `(insert → handler start), alone and while ${KIND_FLOOD} jobs of another kind ` +
      `(${KIND_FLOOD_JOB_MS / 1000} s each) are queued; one worker of ${KIND_WORKER_SLOTS} slots`,
  );
  console.log(table([
    ["quick kind", "p50 / p99"],
    ["alone", pair(f.alone)],
    ["flood, slow kind capped at 3/4 of the slots", pair(f.capped)],
    ["flood, slow kind uncapped (turns only)", pair(f.uncapped)],
  ]));
}

export const workflowsSection: BenchSection = {
  name: "workflows",
  async run(ctx) {
    const ours = await setUpOurs(ctx);
    // One after the other: the first one installs graphile-worker's schema.
    const graphile: GraphileProcess[] = [];
    for (let i = 0; i < WORKER_PROCESSES; i++) graphile.push(await startGraphileProcess(ctx));
    ctx.log(
      `${INSTANCES} instances of ${STEPS.length} set steps (ours) and ${JOBS} no-op jobs ` +
        `(graphile-worker), then ${PACED_ITEMS} of each at ${PACED_PER_SECOND}/s; ` +
        `${ctx.settings.rounds} rounds, alternating`,
    );
    const results = { ours: [] as RoundResult[], graphile: [] as RoundResult[] };
    for (let round = 1; round <= ctx.settings.rounds; round++) {
      const g = await runGraphile(ctx, graphile);
      logRound(ctx, round, "graphile-worker", g);
      results.graphile.push(g);
      const o = await runOurs(ctx, ours);
      logRound(ctx, round, "ours", o);
      results.ours.push(o);
    }
    printResults(summarize(results.ours), summarize(results.graphile), ctx.settings.rounds);
    ctx.log("fairness: another organization's executes alone, then during a flood");
    const fairness = await measureFairness(ctx, ours);
    ctx.log("claim cost: fair against oldest-first");
    printFairness(fairness, await measureClaimCost(ctx));
  },
};

/** `deno task bench job-kinds`: kind fairness alone (also run after `workflows`). */
export const jobKindsSection: BenchSection = {
  name: "job-kinds",
  async run(ctx) {
    ctx.log("kind fairness: one kind's jobs alone, then during a flood of slow jobs of another");
    printKindFairness(await measureKindFairness(ctx));
  },
};
