/**
 * Crash safety: while 200 instances run, the worker process is killed with SIGKILL several
 * times (the stack starts it again, as a process manager would). Every instance must still
 * finish, and every create_contact step must have created exactly one contact.
 */
import assert from "node:assert/strict";
import { createTestOrg, db, stack, test } from "./helpers/stack.ts";
import { createWorkflow, execute } from "./helpers/workflows.ts";

const INSTANCES = 200;
const KILLS = 4;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function workerPid() {
  return Number(Deno.readTextFileSync(stack.worker_pid_files[0]));
}

test("SIGKILL the worker repeatedly while 200 instances run: all finish, each contact exactly once", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const tag = `crash-${crypto.randomUUID().slice(0, 8)}`;
  const id = await createWorkflow(key, {
    steps: [
      { id: "first", type: "create_contact", config: { name: "first {{input.n}}", tags: [tag] } },
      { id: "pause", type: "delay", config: { seconds: 1 } },
      { id: "second", type: "create_contact", config: { name: "second {{input.n}}", tags: [tag] } },
      { id: "done", type: "set", config: { values: { first: "{{steps.first.output.id}}" } } },
    ],
  });

  const started: string[] = [];
  const executing = (async () => {
    for (let n = 0; n < INSTANCES; n += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, i) => execute(key, id, { n: n + i })),
      );
      started.push(...batch.map((instance) => instance.instance_id));
    }
  })();

  const killed: number[] = [];
  for (let kill = 0; kill < KILLS; kill++) {
    await sleep(800);
    const pid = workerPid();
    if (killed.includes(pid)) {
      kill--; // the supervisor has not started the next one yet
      continue;
    }
    Deno.kill(pid, "SIGKILL");
    killed.push(pid);
  }
  await executing;
  assert.equal(killed.length, KILLS);

  const deadline = Date.now() + 90_000;
  let statuses: { status: string; n: number }[] = [];
  while (Date.now() < deadline) {
    statuses = await db`
      select status, count(*)::int as n from public.workflow_instances
      where workflow_id = ${id} group by status
    `;
    if (statuses.length === 1 && statuses[0].status === "completed") break;
    await sleep(250);
  }
  assert.deepEqual(statuses.map((row) => ({ ...row })), [{ status: "completed", n: INSTANCES }]);

  const contacts = await db<{ name: string; copies: number }[]>`
    select name, count(*)::int as copies from public.contacts
    where org_id = ${org.orgId} and tags @> ${[tag]}::text[]
    group by name
  `;
  assert.equal(contacts.length, INSTANCES * 2, "one 'first' and one 'second' contact per instance");
  assert.deepEqual(contacts.filter((c) => c.copies !== 1), [], "no contact created twice");
  const [{ retried }] = await db`
    select count(*)::int as retried from private.jobs where ref = any(${started})
  `;
  assert.equal(retried, 0, "no job left behind");
});
