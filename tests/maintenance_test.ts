/**
 * Periodic tasks (shared/platform/maintenance.ts): one run per period however many workers
 * ask, and the sandbox files' purge removing a day-old sandbox document's file while live
 * files stay.
 */
import assert from "node:assert/strict";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";

Deno.env.set("SUPABASE_DB_URL", stack.db_url);
Deno.env.set("SUPABASE_URL", stack.api_url);
Deno.env.set("SUPABASE_SERVICE_ROLE_KEY", stack.service_role_key);
const { runDueMaintenance } = await import("../shared/platform/maintenance.ts");
const { serviceSql } = await import("../shared/platform/db.ts");

const quiet = () => {};

test("a task runs once per period, however many workers ask at once", async () => {
  const name = `probe_${crypto.randomUUID().slice(0, 8)}`;
  let runs = 0;
  const task = { name, everySeconds: 600, run: () => Promise.resolve(++runs) };
  await Promise.all(
    Array.from({ length: 8 }, () => runDueMaintenance(serviceSql(), [task], quiet)),
  );
  assert.equal(runs, 1);
  await runDueMaintenance(serviceSql(), [task], quiet);
  assert.equal(runs, 1, "not again within the period");
  await db`
    update private.maintenance_runs set last_run_at = now() - interval '601 seconds'
    where name = ${name}
  `;
  await runDueMaintenance(serviceSql(), [task], quiet);
  assert.equal(runs, 2, "again once the period has passed");
});

test("a failing task is logged and does not stop the others", async () => {
  const entries: Record<string, unknown>[] = [];
  let ran = false;
  await runDueMaintenance(serviceSql(), [
    {
      name: `fails_${crypto.randomUUID()}`,
      everySeconds: 600,
      run: () => Promise.reject(new Error("boom")),
    },
    {
      name: `runs_${crypto.randomUUID()}`,
      everySeconds: 600,
      run: () => Promise.resolve(ran = true),
    },
  ], (entry) => entries.push(entry));
  assert.ok(ran);
  assert.ok(entries.some((e) => e.level === "error" && String(e.error).includes("boom")));
});

test("the sandbox files' purge removes a day-old sandbox document's file; live files stay", async () => {
  const org = await createTestOrg();
  const upload = async (key: string) => {
    const response = await api("documents/upload", {
      action: "upload",
      data: { filename: "old.txt", content_base64: btoa("a day old") },
    }, { key });
    assert.equal(response.status, 200, JSON.stringify(response.body));
    return response.body.data as { document_id: string; url: string };
  };
  const sandbox = await upload(await org.key({ environment: "test" }));
  const live = await upload(await org.key());
  assert.equal((await fetch(sandbox.url)).status, 200);

  await db`
    update storage.objects set created_at = now() - interval '25 hours'
    where name like 'test/%' or name like 'live/%'
  `;
  await db`
    update private.maintenance_runs set last_run_at = now() - interval '1 day'
    where name = 'purge_sandbox_files'
  `;
  await runDueMaintenance(serviceSql(), undefined, quiet);

  const sandboxFile = await fetch(sandbox.url);
  await sandboxFile.body?.cancel();
  assert.notEqual(sandboxFile.status, 200, "the sandbox file is gone");
  const liveFile = await fetch(live.url);
  assert.equal(liveFile.status, 200, "the live file stays");
  assert.equal(await liveFile.text(), "a day old");
});
