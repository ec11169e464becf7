/**
 * GET /v1/health: liveness (the function answers; no auth, no database).
 * GET /v1/ready: readiness: the database answers, the migrations this code needs are
 * applied, and pg_cron is scheduling our jobs. 503 SERVICE_UNAVAILABLE otherwise.
 */
import { z } from "zod";
import { serviceSql } from "./db.ts";
import { ApiError } from "./errors.ts";
import { envelope, newApp } from "./app.ts";
import { REQUIRED_MIGRATION } from "./schema-version.ts";

export const API_VERSION = "1.0.0";
const CRON_JOB = "bivelio-purge-expired-data";

/** GET /v1/health's `data`. */
export const healthResponse = z.strictObject({
  status: z.literal("ok"),
  version: z.string(),
  /** The function's clock (ISO 8601, milliseconds). */
  time: z.iso.datetime(),
}).meta({ id: "Health" });

/** GET /v1/ready's `data` when every check passed (otherwise 503 with the checks in details). */
export const readyResponse = z.strictObject({
  status: z.literal("ready"),
  version: z.string(),
  checks: z.strictObject({
    database: z.strictObject({ ok: z.literal(true), latency_ms: z.int().min(0) }),
    migrations: z.strictObject({ ok: z.literal(true), latest: z.string(), required: z.string() }),
    pg_cron: z.strictObject({
      ok: z.literal(true),
      job_scheduled: z.literal(true),
      scheduler_running: z.literal(true),
    }),
  }),
}).meta({ id: "Readiness" });

interface Check {
  ok: boolean;
  [detail: string]: unknown;
}

async function check(fn: () => Promise<Check>): Promise<Check> {
  try {
    return await fn();
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

async function readiness() {
  const started = performance.now();
  const database = await check(async () => {
    await serviceSql()`select 1`;
    return { ok: true, latency_ms: Math.round(performance.now() - started) };
  });
  if (!database.ok) return { database };
  const [migrations, pgCron] = await Promise.all([
    check(async () => {
      const [{ latest }] = await serviceSql()<{ latest: string | null }[]>`
        select max(version) as latest from supabase_migrations.schema_migrations
      `;
      return {
        ok: latest !== null && latest >= REQUIRED_MIGRATION,
        latest,
        required: REQUIRED_MIGRATION,
      };
    }),
    check(async () => {
      const [row] = await serviceSql()<{ job: boolean; scheduler: boolean }[]>`
        select exists (select from cron.job where jobname = ${CRON_JOB} and active) as job,
               exists (select from pg_stat_activity where backend_type = 'pg_cron launcher')
                 as scheduler
      `;
      return {
        ok: row.job && row.scheduler,
        job_scheduled: row.job,
        scheduler_running: row.scheduler,
      };
    }),
  ]);
  return { database, migrations, pg_cron: pgCron };
}

/** Serves /health and /ready (functions `health` and `ready` on Supabase). */
export function createHealthApp() {
  const app = newApp("/");
  app.get(
    "/health",
    (c) => c.json(envelope({ status: "ok", version: API_VERSION, time: new Date().toISOString() })),
  );
  app.get("/ready", async (c) => {
    const checks = await readiness();
    if (Object.values(checks).every((check) => check.ok)) {
      return c.json(envelope({ status: "ready", version: API_VERSION, checks }));
    }
    throw new ApiError("SERVICE_UNAVAILABLE", "The service is not ready.", { details: { checks } });
  });
  return app;
}
