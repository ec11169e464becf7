/**
 * The worker: claims due jobs from `private.jobs` (see the job-queue migration) and runs
 * them, up to `concurrency` at a time. Several workers can run side by side; one that dies
 * loses nothing, because its leases run out and the jobs become due again.
 *
 * A job's handler does its writes in transactions that call `private.hold_lease` (through
 * `Lease.hold`), so a worker whose lease ran out cannot overwrite the one that took over,
 * and finishes or reschedules the job in the same transaction as its last write.
 *
 * Wake-ups: LISTEN on `bivelio_jobs` (every insert into the queue notifies), plus a short
 * poll for jobs that become due by time (retries, delays, expired leases).
 */
import type { Environment } from "./environment.ts";
import type postgres from "postgres";
import { listenSql, serviceSql, type Sql, type Tx } from "./db.ts";

export type JobKind = "workflow" | "webhook";

export interface Job {
  id: number;
  kind: JobKind;
  ref: string;
  org_id: string;
  environment: Environment;
  lease_token: string;
  /** How many times the job has been claimed, this claim included. */
  claims: number;
}

/** What a handler gets to keep its claim on a job valid and to end it. */
export interface Lease {
  readonly job: Job;
  readonly seconds: number;
  /**
   * A SQL condition for the handler's first write: true while this worker still holds the
   * lease (and extends it), false once another worker has taken the job over. Evaluated
   * once, before the statement touches any row, so the job row is locked first.
   */
  held(tx: Tx): postgres.PendingQuery<postgres.Row[]>;
  /** In the handler's transaction: run the job again at `at` (a delay, a retry's backoff). */
  reschedule(tx: Tx | Sql, at: Date, afterCrash?: boolean): Promise<boolean>;
  /** In the handler's transaction: the job is done. */
  finish(tx: Tx | Sql): Promise<boolean>;
}

export type JobHandler = (lease: Lease) => Promise<void>;

export interface WorkerOptions {
  handlers: Partial<Record<JobKind, JobHandler>>;
  /** Jobs run at once by this worker. */
  concurrency?: number;
  leaseSeconds?: number;
  /** Longest wait between polls when no notification arrives. */
  pollMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

/**
 * A job claimed this many times in a row without being rescheduled or finished (its worker
 * died, or its handler threw every time): its handler gives up on it.
 */
export const MAX_CLAIMS = 10;

/** The lease a claim gave this worker on `job` (exported for tests that play a stale worker). */
export function leaseFor(job: Job, seconds: number): Lease {
  return {
    job,
    seconds,
    held(tx) {
      return tx`(select private.hold_lease(${job.id}, ${job.lease_token}, ${seconds}))`;
    },
    async reschedule(tx, at, afterCrash = false) {
      const [row] = await tx<{ ok: boolean }[]>`
        select private.reschedule_job(${job.id}, ${job.lease_token}, ${at}, ${afterCrash}) as ok
      `;
      return row.ok;
    },
    async finish(tx) {
      const [row] = await tx<{ ok: boolean }[]>`
        select private.finish_job(${job.id}, ${job.lease_token}) as ok
      `;
      return row.ok;
    },
  };
}

/** Backoff for a job whose handler threw: 1 s, 2 s, 4 s … at most 1 minute. */
const crashBackoffMs = (claims: number) => Math.min(1000 * 2 ** (claims - 1), 60_000);

export class Worker {
  readonly concurrency: number;
  readonly leaseSeconds: number;
  readonly pollMs: number;
  #handlers: WorkerOptions["handlers"];
  #kinds: JobKind[];
  #log: NonNullable<WorkerOptions["log"]>;
  #running = new Map<number, { job: Job; done: Promise<void> }>();
  #stopping = false;
  #wake: (() => void) | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  processed = 0;

  constructor(options: WorkerOptions) {
    this.#handlers = options.handlers;
    this.#kinds = Object.keys(options.handlers) as JobKind[];
    this.concurrency = options.concurrency ?? 16;
    this.leaseSeconds = options.leaseSeconds ?? 30;
    this.pollMs = options.pollMs ?? 500;
    this.#log = options.log ?? ((entry) => console.log(JSON.stringify(entry)));
  }

  /** Runs until `stop()`: listens, claims, runs. */
  async run() {
    const listener = await listenSql().listen("bivelio_jobs", () => this.#wakeUp());
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

  async #claimAndStart(): Promise<number> {
    const free = this.concurrency - this.#running.size;
    if (free <= 0) return 0;
    let jobs: Job[];
    try {
      jobs = await serviceSql()<Job[]>`
        select id::int, kind, ref, org_id, environment, lease_token, claims
        from private.claim_jobs(${this.#kinds}, ${free}, ${this.leaseSeconds})
      `;
    } catch (error) {
      this.#log({ level: "error", msg: "claiming jobs failed", error: String(error) });
      await this.#sleep(this.pollMs);
      return 0;
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
    const lease = leaseFor(job, this.leaseSeconds);
    try {
      await this.#handlers[job.kind]!(lease);
    } catch (error) {
      // A bug or an outage (the handler records expected failures itself): try again later.
      this.#log({
        level: "error",
        msg: "job failed unexpectedly; retrying later",
        job_id: job.id,
        kind: job.kind,
        ref: job.ref,
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      });
      const retryAt = new Date(Date.now() + crashBackoffMs(job.claims));
      await lease.reschedule(serviceSql(), retryAt, true).catch(() => {});
    }
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
