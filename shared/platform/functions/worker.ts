/**
 * POST /v1/worker: runs due jobs for up to BIVELIO_WORKER_BUDGET_SECONDS (default 50) and
 * returns how many it ran. In production nothing else runs the queue: pg_cron calls this
 * every minute and new jobs call it at once through pg_net (private.tick_workers), with
 * `Authorization: Bearer <BIVELIO_WORKER_SECRET>`. Each call first runs the periodic tasks
 * whose turn has come (shared/platform/maintenance.ts). Locally the stack's worker process
 * runs the queue instead, and this endpoint answers 404 unless the secret is set.
 */
import { timingSafeEqual } from "node:crypto";
import { newApp } from "../app.ts";
import { config } from "../config.ts";
import { ApiError } from "../errors.ts";
import { JOB_KINDS } from "../../job-kinds.ts";
import { serviceSql } from "../db.ts";
import { runDueMaintenance } from "../maintenance.ts";
import { Worker } from "../worker.ts";

const encoder = new TextEncoder();

function authorized(header: string | undefined, secret: string) {
  const given = encoder.encode(header ?? "");
  const expected = encoder.encode(`Bearer ${secret}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const app = newApp("/worker");
app.post("/", async (c) => {
  const secret = config.workerSecret;
  if (!secret) throw new ApiError("RESOURCE_NOT_FOUND", "The worker endpoint is not enabled.");
  if (!authorized(c.req.header("authorization"), secret)) {
    throw new ApiError("AUTH_INVALID_TOKEN", "The worker secret is not valid.");
  }
  const budgetSeconds = config.workerBudgetSeconds;
  const worker = new Worker({ kinds: JOB_KINDS, concurrency: 8 });
  // pg_cron's minute tick also gives the periodic tasks their turn.
  await runDueMaintenance(serviceSql());
  const { processed } = await worker.drain(budgetSeconds * 1000);
  return c.json({ success: true, data: { processed } });
});

export default app;
