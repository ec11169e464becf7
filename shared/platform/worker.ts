/**
 * The worker: claims due jobs from `private.jobs` (see the job-queue migrations) and runs
 * them, up to `concurrency` at a time. Several workers can run side by side; one that dies
 * loses nothing, because its leases run out and the jobs become due again.
 *
 * Job kinds are declared by their domains with `defineJobKind` (handler, retry policy,
 * share of a worker's slots) and listed in shared/job-kinds.ts. A handler gets a
 * `JobContext`: the job (with its payload), `withTenant` (a transaction with row-level
 * security as the job's organization and environment, the same for every kind), and the
 * one way to end or continue the job, each in the handler's transaction so the job moves
 * on exactly when its work commits:
 * - `finish(tx, result?)`: done (a job that is waited for hands `result` to its waiter);
 * - `retry(tx, error, at?)`: a failed attempt, recorded as the job's last_error, run again
 *   at `at` (default: the kind's backoff for the attempts so far);
 * - `reschedule(tx, at)`: park until `at` without a failure (a durable delay);
 * - `waitFor(tx, kind, ref, payload)`: queue a job of another kind and park until it ends.
 * A handler that returns without ending the job has it finished with what it returned; one
 * that throws a `JobFailure` is retried by its kind's policy and failed for good when the
 * policy has no attempt left; any other error is a crash: retried after a backoff, and
 * given up (the kind's `onCrashLoop`) after MAX_CLAIMS claims in a row.
 *
 * Fairness: claims are fair across organizations and kinds (20261201000200), and each kind
 * may hold at most its share of this worker's slots, so a flood of slow jobs of one kind
 * always leaves slots for the others (the claim is told how much room each kind has).
 *
 * Wake-ups: LISTEN on `bivelio_jobs` (every insert into the queue notifies with the kinds it
 * queued), plus a short poll for jobs that become due by time (retries, delays, expired
 * leases).
 *
 * What may be due: a claim costs the database a fair-share computation (~1.4 ms), so the
 * worker claims only for kinds that may have due jobs (notified since, or not yet found
 * empty; every kind once per poll interval) and, while jobs are running, only once a kind
 * has room for a small batch (a quarter of the slots): under a steady load a claim per
 * finished job would otherwise cost the database more than the jobs themselves.
 */
import type { Environment } from "./environment.ts";
import type postgres from "postgres";
import { listenSql, serviceSql, type Sql, type Tx, withClaims } from "./db.ts";

export interface Job {
  id: number;
  kind: string;
  ref: string;
  org_id: string;
  environment: Environment;
  lease_token: string;
  /** How many times the job has been claimed, this claim included. */
  claims: number;
  /** Failed attempts so far (retries recorded through `retry`). */
  attempts: number;
  payload: Record<string, unknown>;
}

/** How a job's failure is recorded (private.jobs.last_error, a waiter's step error). */
export interface JobError {
  code: string;
  message: string;
  details?: unknown;
}

/** An expected failure: retried by the kind's policy while `retryable` and attempts remain. */
export class JobFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable = true,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "JobFailure";
  }
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Milliseconds before attempt `attempt + 1`, after attempt `attempt` (1-based) failed. */
  backoff(attempt: number): number;
}

/** When attempt `made + 1` should run after `made` attempts, or null when none is left. */
export function nextAttemptAt(policy: RetryPolicy, made: number, from = new Date()) {
  if (made >= policy.maxAttempts) return null;
  return new Date(from.getTime() + policy.backoff(made));
}

/** What a handler gets: its job, its tenant, and the ways to end or continue the job. */
export interface JobContext {
  readonly job: Job;
  readonly leaseSeconds: number;
  /** The kind's retry policy. */
  readonly retryPolicy: RetryPolicy;
  /** Whether the job was ended or continued (finish, retry, reschedule, waitFor). */
  readonly settled: boolean;
  /**
   * A SQL condition for the handler's first write: true while this worker still holds the
   * lease (and extends it), false once another worker has taken the job over. Evaluated
   * once, before the statement touches any row, so the job row is locked first.
   */
  held(tx: Tx): postgres.PendingQuery<postgres.Row[]>;
  /**
   * A transaction with row-level security as the job's organization and environment
   * (role `authenticated`), the same for every kind. `claims` and `settings` add to it
   * (a workflow's instance id, its chain depth).
   */
  withTenant<T>(
    fn: (tx: Tx) => Promise<T>,
    options?: { claims?: Record<string, unknown>; settings?: Record<string, string> },
  ): Promise<T>;
  /** In the handler's transaction: the job is done (`result` goes to a waiting job). */
  finish(tx: Tx | Sql, result?: unknown): Promise<boolean>;
  /** In the handler's transaction: the job failed for good (`error` goes to a waiter). */
  fail(tx: Tx | Sql, error: JobError): Promise<boolean>;
  /** In the handler's transaction: a failed attempt; run again at `at` (default: backoff). */
  retry(tx: Tx | Sql, error: JobError, at?: Date): Promise<boolean>;
  /** In the handler's transaction: park until `at` (no failure: a delay). */
  reschedule(tx: Tx | Sql, at: Date): Promise<boolean>;
  /**
   * The job was ended or continued by the handler's own statement calling the same
   * database functions (private.finish_job, retry_job, reschedule_job) with the job's lease,
   * for a hot path that cannot afford a transaction of several statements (webhook
   * deliveries); `ok` is what that function answered.
   */
  settledBy(ok: boolean): boolean;
  /**
   * In the handler's transaction: queue a job of `kind` (same tenant) and park this one
   * until it ends; its outcome is then in private.job_outcomes under (kind, ref).
   */
  waitFor(tx: Tx | Sql, kind: string, ref: string, payload: unknown): Promise<boolean>;
}

/** What a handler returns when it does not end the job itself: the job's result. */
export type JobHandler = (ctx: JobContext) => Promise<unknown>;

export interface JobKindDefinition {
  /** The name in private.jobs.kind: lower case, digits and '_'. */
  kind: string;
  handler: JobHandler;
  retry: RetryPolicy;
  /**
   * The share of a worker's slots jobs of this kind may hold at once (0 < share <= 1; at
   * least one slot), so other kinds always find a free slot.
   */
  concurrency: { share: number };
  /**
   * The job was claimed MAX_CLAIMS times without being ended (its worker died, or its
   * handler crashed every time): record that and end it. Default: fail the job with
   * WORKER_CRASHED.
   */
  onCrashLoop?: (ctx: JobContext) => Promise<void>;
}

export type JobKind = Readonly<JobKindDefinition>;

export function defineJobKind(definition: JobKindDefinition): JobKind {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(definition.kind)) {
    throw new Error(`Job kind '${definition.kind}': lower case letters, digits and '_'.`);
  }
  const { share } = definition.concurrency;
  if (!(share > 0 && share <= 1)) {
    throw new Error(`Job kind '${definition.kind}': concurrency.share must be in (0, 1].`);
  }
  return Object.freeze(definition);
}

/**
 * A job claimed this many times in a row without being rescheduled or finished (its worker
 * died, or its handler threw every time): it is given up (the kind's `onCrashLoop`).
 */
export const MAX_CLAIMS = 10;

/** The crash message a kind's `onCrashLoop` records. */
export const crashLoopError = (what: string): JobError => ({
  code: "WORKER_CRASHED",
  message: `The worker stopped ${MAX_CLAIMS} times while ${what}; giving up.`,
});

const NO_RETRIES: RetryPolicy = { maxAttempts: 1, backoff: () => 0 };

/**
 * The context a claim gives this worker on `job` (exported for tests that play a stale
 * worker: they pass a token the job no longer has).
 */
export function contextFor(
  job: Job,
  seconds: number,
  retryPolicy: RetryPolicy = NO_RETRIES,
): JobContext {
  let settled = false;
  const settle = (ok: boolean) => {
    if (ok) settled = true;
    return ok;
  };
  const claims = {
    role: "authenticated" as const,
    org_id: job.org_id,
    environment: job.environment,
  };
  // postgres.js serialises a jsonb parameter itself: pass the value, never a JSON string.
  const json = (tx: Tx | Sql, value: unknown) =>
    value === undefined || value === null ? null : tx.json(value as postgres.JSONValue);
  return {
    job,
    leaseSeconds: seconds,
    retryPolicy,
    get settled() {
      return settled;
    },
    held(tx) {
      return tx`(select private.hold_lease(${job.id}, ${job.lease_token}, ${seconds}))`;
    },
    withTenant(fn, options = {}) {
      return withClaims({ ...options.claims, ...claims }, fn, options.settings);
    },
    async finish(tx, result) {
      const [row] = await tx<{ ok: boolean }[]>`
        select private.finish_job(${job.id}, ${job.lease_token}, ${json(tx, result)}::jsonb) as ok
      `;
      return settle(row.ok);
    },
    async fail(tx, error) {
      const [row] = await tx<{ ok: boolean }[]>`
        select private.finish_job(${job.id}, ${job.lease_token}, null, ${json(tx, error)}::jsonb)
          as ok
      `;
      return settle(row.ok);
    },
    async retry(tx, error, at) {
      at ??= new Date(Date.now() + retryPolicy.backoff(job.attempts + 1));
      const [row] = await tx<{ ok: boolean }[]>`
        select private.retry_job(${job.id}, ${job.lease_token}, ${at}, ${json(tx, error)}::jsonb)
          as ok
      `;
      return settle(row.ok);
    },
    async reschedule(tx, at) {
      const [row] = await tx<{ ok: boolean }[]>`
        select private.reschedule_job(${job.id}, ${job.lease_token}, ${at}) as ok
      `;
      return settle(row.ok);
    },
    settledBy: settle,
    async waitFor(tx, kind, ref, payload) {
      const [row] = await tx<{ id: string | null }[]>`
        select private.queue_waited_job(${job.id}, ${job.lease_token}, ${kind}, ${ref},
                                        ${json(tx, payload ?? {})}::jsonb) as id
      `;
      return settle(row.id !== null);
    },
  };
}

/** Backoff for a job whose handler crashed: 1 s, 2 s, 4 s … at most 1 minute. */
const crashBackoffMs = (claims: number) => Math.min(1000 * 2 ** (claims - 1), 60_000);

const errorOf = (error: unknown): JobError =>
  error instanceof JobFailure
    ? {
      code: error.code,
      message: error.message,
      ...(error.details ? { details: error.details } : {}),
    }
    : {
      code: "JOB_CRASHED",
      message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    };

/**
 * Jobs run at once by a worker unless told otherwise. Jobs mostly wait on the network, and a
 * kind may hold only its share of the slots (webhooks 3/4): with 16, deliveries had 12 slots
 * per worker and a burst drained at 484-618/s with the CPU half idle; with 32, 1,067/s.
 */
export const DEFAULT_CONCURRENCY = 32;

export interface WorkerOptions {
  /** The job kinds this worker runs (shared/job-kinds.ts, or a test's own). */
  kinds: readonly JobKind[];
  /** Jobs run at once by this worker. */
  concurrency?: number;
  leaseSeconds?: number;
  /** Longest wait between polls when no notification arrives. */
  pollMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

export class Worker {
  readonly concurrency: number;
  readonly leaseSeconds: number;
  readonly pollMs: number;
  #kinds: Map<string, JobKind>;
  /** Per kind, the most of this worker's slots its jobs may hold at once. */
  #kindSlots: Map<string, number>;
  #log: NonNullable<WorkerOptions["log"]>;
  #running = new Map<number, { job: Job; done: Promise<void> }>();
  /** Kinds that may have due jobs: notified, or not found empty by the last claim. */
  #maybeDue = new Set<string>();
  /** Counts notifications, so a claim does not forget one that arrived while it ran. */
  #notices = 0;
  #lastNoticeOf = new Map<string, number>();
  #lastPollAt = -Infinity;
  /** While jobs run, a kind is claimed for once it has room for this many (or its cap). */
  #batch: number;
  #stopping = false;
  #wake: (() => void) | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  processed = 0;

  constructor(options: WorkerOptions) {
    this.#kinds = new Map(options.kinds.map((kind) => [kind.kind, kind]));
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#kindSlots = new Map(
      options.kinds.map((
        kind,
      ) => [kind.kind, Math.max(1, Math.floor(kind.concurrency.share * this.concurrency))]),
    );
    this.#batch = Math.max(1, Math.floor(this.concurrency / 4));
    this.leaseSeconds = options.leaseSeconds ?? 30;
    this.pollMs = options.pollMs ?? 500;
    this.#log = options.log ?? ((entry) => console.log(JSON.stringify(entry)));
  }

  /** Runs until `stop()`: listens, claims, runs. */
  async run() {
    const listener = await listenSql().listen("bivelio_jobs", (kinds) => this.#queued(kinds));
    this.#unlisten = () => listener.unlisten();
    this.#heartbeat = setInterval(() => this.#extendLeases(), (this.leaseSeconds * 1000) / 3);
    try {
      while (!this.#stopping) {
        const claimed = await this.#claimAndStart();
        if (claimed > 0 && this.#running.size < this.concurrency) continue;
        await this.#sleep(this.pollMs);
      }
    } finally {
      await this.#shutdown();
    }
  }

  /**
   * Runs due jobs until none is left or `budgetMs` has passed, then returns (the `worker`
   * edge function in production, woken by pg_cron and by new jobs).
   */
  async drain(budgetMs: number) {
    const deadline = Date.now() + budgetMs;
    this.#heartbeat = setInterval(() => this.#extendLeases(), (this.leaseSeconds * 1000) / 3);
    try {
      while (Date.now() < deadline) {
        const claimed = await this.#claimAndStart();
        if (claimed === 0 && this.#running.size === 0) break;
        if (claimed === 0 || this.#running.size >= this.concurrency) {
          await Promise.race([...this.#running.values()].map((r) => r.done));
        }
      }
    } finally {
      await this.#shutdown();
    }
    return { processed: this.processed };
  }

  /** Stops claiming, lets running jobs finish, and returns when they have. */
  async stop() {
    this.#stopping = true;
    this.#wakeUp();
    await Promise.all([...this.#running.values()].map((r) => r.done));
  }

  async #shutdown() {
    clearInterval(this.#heartbeat);
    await Promise.all([...this.#running.values()].map((r) => r.done));
    await this.#unlisten?.().catch(() => {});
  }

  /** A notification: jobs of these kinds (comma-separated; empty: any kind) were queued. */
  #queued(kinds: string) {
    this.#notices++;
    for (const kind of kinds ? kinds.split(",") : this.#kinds.keys()) {
      if (!this.#kinds.has(kind)) continue;
      this.#maybeDue.add(kind);
      this.#lastNoticeOf.set(kind, this.#notices);
    }
    this.#wakeUp();
  }

  #wakeUp() {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #sleep(ms: number) {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Jobs of each kind this worker runs now. */
  #runningByKind() {
    const counts = new Map<string, number>();
    for (const { job } of this.#running.values()) {
      counts.set(job.kind, (counts.get(job.kind) ?? 0) + 1);
    }
    return counts;
  }

  async #claimAndStart(): Promise<number> {
    const free = this.concurrency - this.#running.size;
    if (free <= 0) return 0;
    // Jobs that became due by time (retries, delays) notify nobody: every kind, once a poll.
    if (performance.now() - this.#lastPollAt >= this.pollMs) {
      this.#lastPollAt = performance.now();
      this.#queued("");
    }
    // Each kind may start as many as its cap leaves room for: a kind at its cap is left
    // out, so its backlog cannot take the slots kept for the others.
    const running = this.#runningByKind();
    const kinds: string[] = [];
    const rooms: number[] = [];
    let batchReady = this.#running.size === 0;
    for (const kind of this.#maybeDue) {
      const slots = this.#kindSlots.get(kind)!;
      const room = Math.min(free, slots - (running.get(kind) ?? 0));
      if (room > 0) {
        kinds.push(kind);
        rooms.push(room);
        batchReady ||= room >= Math.min(this.#batch, slots);
      }
    }
    if (kinds.length === 0 || !batchReady) return 0;
    const noticesBefore = this.#notices;
    let jobs: Job[];
    try {
      jobs = await serviceSql()<Job[]>`
        select id::int, kind, ref, org_id, environment, lease_token, claims, attempts, payload
        from private.claim_jobs(${kinds}, ${free}, ${this.leaseSeconds}, ${rooms}::int[])
      `;
    } catch (error) {
      this.#log({ level: "error", msg: "claiming jobs failed", error: String(error) });
      await this.#sleep(this.pollMs);
      return 0;
    }
    // Fewer jobs than asked for: each kind that got less than its room has none due left
    // (unless notified meanwhile), so it is not claimed for again until it is notified.
    if (jobs.length < free) {
      const got = new Map<string, number>();
      for (const job of jobs) got.set(job.kind, (got.get(job.kind) ?? 0) + 1);
      kinds.forEach((kind, i) => {
        const notifiedSince = (this.#lastNoticeOf.get(kind) ?? 0) > noticesBefore;
        if ((got.get(kind) ?? 0) < rooms[i] && !notifiedSince) this.#maybeDue.delete(kind);
      });
    }
    for (const job of jobs) {
      const done = this.#runJob(job).finally(() => {
        this.#running.delete(job.id);
        this.processed++;
        this.#wakeUp();
      });
      this.#running.set(job.id, { job, done });
    }
    return jobs.length;
  }

  async #runJob(job: Job) {
    const kind = this.#kinds.get(job.kind)!;
    const ctx = contextFor(job, this.leaseSeconds, kind.retry);
    try {
      if (job.claims > MAX_CLAIMS) {
        if (kind.onCrashLoop) await kind.onCrashLoop(ctx);
        else await ctx.fail(serviceSql(), crashLoopError(`running this ${job.kind} job`));
        return;
      }
      const result = await kind.handler(ctx);
      if (!ctx.settled) await ctx.finish(serviceSql(), result);
    } catch (error) {
      await this.#failed(ctx, error).catch((recordError) =>
        this.#log({
          level: "error",
          msg: "recording a job's failure failed; its lease will run out",
          job_id: job.id,
          error: String(recordError),
        })
      );
    }
  }

  /**
   * The one place a thrown error becomes a retry or the end of the job: a JobFailure by the
   * kind's policy, anything else (a bug, an outage) as a crash.
   */
  async #failed(ctx: JobContext, error: unknown) {
    const { job } = ctx;
    const recorded = errorOf(error);
    if (error instanceof JobFailure) {
      const at = error.retryable ? nextAttemptAt(ctx.retryPolicy, job.attempts + 1) : null;
      if (at) await ctx.retry(serviceSql(), recorded, at);
      else await ctx.fail(serviceSql(), recorded);
      return;
    }
    this.#log({
      level: "error",
      msg: "job failed unexpectedly; retrying later",
      job_id: job.id,
      kind: job.kind,
      ref: job.ref,
      error: recorded.message,
    });
    const retryAt = new Date(Date.now() + crashBackoffMs(job.claims));
    await serviceSql()`
      select private.retry_job(${job.id}, ${job.lease_token}, ${retryAt},
                               ${serviceSql().json(recorded as never)}::jsonb, true)
    `;
  }

  /**
   * Long steps (an HTTP call) must not lose their lease: extend every held one. Rows that
   * another transaction has locked are skipped, never waited for: most often it is the
   * job's own handler committing a step (its `hold_lease` extends the lease anyway), or a
   * worker or sweep that took over an expired lease (no longer ours). Waiting there, while
   * holding the locks of the rows already updated, is what deadlocked with the lease sweep
   * and with transactions deleting several jobs. A skipped row is tried again at the next
   * beat, a third of a lease later.
   */
  async #extendLeases() {
    const held = [...this.#running.values()].map((r) => r.job);
    if (held.length === 0) return;
    await serviceSql()`
      update private.jobs j
      set available_at = greatest(j.available_at, now() + make_interval(secs => ${this.leaseSeconds}))
      from (
        select j.id from private.jobs j
        join unnest(${held.map((j) => j.id)}::bigint[], ${held.map((j) => j.lease_token)}::uuid[])
          as h(id, token) on j.id = h.id and j.lease_token = h.token
        for no key update of j skip locked
      ) unlocked
      where j.id = unlocked.id
    `.catch((error) =>
      this.#log({ level: "error", msg: "extending leases failed", error: String(error) })
    );
  }
}
