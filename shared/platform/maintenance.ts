/**
 * Periodic tasks the workers run (those pg_cron cannot: they need the API's own clients).
 * Each task has a period; `runDueMaintenance` runs the ones whose turn has come, and a turn
 * is claimed in PostgreSQL (private.claim_maintenance), so one worker runs it per period
 * however many are running. The local worker process calls it every minute; in production
 * the `worker` function calls it on each of pg_cron's minute ticks.
 */
import type { Sql } from "./db.ts";
import { purgeExpiredSandboxFiles } from "./storage.ts";

export interface MaintenanceTask {
  name: string;
  /** Seconds between runs. */
  everySeconds: number;
  run(sql: Sql): Promise<unknown>;
}

export const MAINTENANCE_TASKS: MaintenanceTask[] = [
  {
    // Sandbox rows go after 24 hours (private.purge_expired_data); their files go too.
    name: "purge_sandbox_files",
    everySeconds: 600,
    run: (sql) => purgeExpiredSandboxFiles(sql),
  },
];

/** Runs every task whose turn has come; a failing task is logged and tried next period. */
export async function runDueMaintenance(
  sql: Sql,
  tasks: MaintenanceTask[] = MAINTENANCE_TASKS,
  log: (entry: Record<string, unknown>) => void = (entry) => console.log(JSON.stringify(entry)),
) {
  for (const task of tasks) {
    const [turn] = await sql<{ claimed: boolean }[]>`
      select private.claim_maintenance(${task.name}, make_interval(secs => ${task.everySeconds}))
        as claimed
    `;
    if (!turn?.claimed) continue;
    try {
      const result = await task.run(sql);
      log({ level: "info", msg: "maintenance ran", task: task.name, result });
    } catch (error) {
      log({ level: "error", msg: "maintenance failed", task: task.name, error: String(error) });
    }
  }
}
