/**
 * One graphile-worker process for the "workflows" benchmark's baseline (started twice by
 * tests/bench/workflows.ts): graphile-worker's `run()` with its defaults (LISTEN/NOTIFY
 * wake-ups, no local queue, no batched completion; a pool as large as the concurrency, as
 * it advises) and one no-op task, `noop`.
 *
 * The task does no database work of its own; the worker process notes, in memory, each
 * measured job's add time (the job row's `created_at`, PostgreSQL's clock), when the task
 * started and when graphile-worker reported the job complete (the completing query has
 * been sent then). Jobs whose payload has `warmup: true` are run but not noted.
 *
 * It talks to the benchmark a line at a time (not by signal: SIGUSR1 would open the V8
 * inspector, as in Node):
 *   stdout `ready`           the worker is connected and listening for new jobs;
 *   stdin `samples`          asks for the noted jobs, answered on stdout with
 *   stdout `samples <json>`  [added, started, completed] epoch milliseconds each, which
 *                            are then forgotten.
 * SIGTERM or the end of stdin: graceful shutdown, exit.
 *
 * Env: BENCH_DB_URL, BENCH_CONCURRENCY (jobs at once, as the stack's worker runs).
 */
import { EventEmitter } from "node:events";
import { type Job, Logger, run, type WorkerEvents } from "graphile-worker";

const env = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** [added, started, completed] per measured job, epoch milliseconds. */
const samples: [number, number, number][] = [];
const startedAt = new Map<string, number>();

const isWarmup = (job: Job) => (job.payload as { warmup?: boolean } | null)?.warmup === true;

const events: WorkerEvents = new EventEmitter();
events.on("job:complete", ({ job, error }) => {
  if (error || isWarmup(job)) return;
  const started = startedAt.get(job.id);
  startedAt.delete(job.id);
  if (started !== undefined) samples.push([job.created_at.getTime(), started, Date.now()]);
});
const listening = new Promise<void>((resolve) =>
  events.once("pool:listen:success", () => resolve())
);

// Warnings and errors only: a line per job would cost more than the job.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`[graphile-worker] ${message}`);
});

const runner = await run({
  connectionString: env("BENCH_DB_URL"),
  concurrency: Number(env("BENCH_CONCURRENCY")),
  // Its advice (a warning otherwise); 10, the default and our worker's pool, measured the same.
  maxPoolSize: Number(env("BENCH_CONCURRENCY")),
  noHandleSignals: true,
  logger,
  events,
  taskList: {
    noop: (_payload, helpers) => {
      if (!isWarmup(helpers.job)) startedAt.set(helpers.job.id, Date.now());
    },
  },
});
await listening;
console.log("ready");

let stopping: Promise<void> | undefined;
const stop = () =>
  stopping ??= (async () => {
    await runner.stop();
    Deno.exit(0);
  })();
Deno.addSignalListener("SIGTERM", stop);

let buffered = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffered += chunk;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    if (buffered.slice(0, newline) === "samples") {
      console.log(`samples ${JSON.stringify(samples)}`);
      samples.length = 0;
    }
    buffered = buffered.slice(newline + 1);
  }
}
await stop();
