/**
 * The worker as a long-running process: what `deno task start` runs beside the gateway
 * (and restarts if it dies). It LISTENs for new jobs, so work starts at once. Settings:
 * SUPABASE_DB_URL, BIVELIO_WORKER_CONCURRENCY (default
 * DEFAULT_CONCURRENCY of shared/platform/worker.ts: 32), BIVELIO_WORKER_LEASE_SECONDS
 * (default 30). Every minute it also runs the periodic tasks whose turn has come
 * (shared/platform/maintenance.ts). SIGTERM/SIGINT: stop claiming, finish running jobs, exit.
 */
import { closeDb, serviceSql } from "../shared/platform/db.ts";
import { runDueMaintenance } from "../shared/platform/maintenance.ts";
import { JOB_KINDS } from "../shared/job-kinds.ts";
import { DEFAULT_CONCURRENCY, Worker } from "../shared/platform/worker.ts";

const setting = (name: string, fallback: number) => Number(Deno.env.get(name) ?? fallback);

const worker = new Worker({
  kinds: JOB_KINDS,
  concurrency: setting("BIVELIO_WORKER_CONCURRENCY", DEFAULT_CONCURRENCY),
  leaseSeconds: setting("BIVELIO_WORKER_LEASE_SECONDS", 30),
});

const maintenance = setInterval(() => runDueMaintenance(serviceSql()).catch(() => {}), 60_000);

const stop = async () => {
  clearInterval(maintenance);
  await worker.stop();
  await closeDb();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);

await worker.run();
