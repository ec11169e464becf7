/**
 * PostgreSQL ending the API's sessions under load (a failover, a pooler restart,
 * pg_terminate_backend): requests in flight fail with 503 SERVICE_UNAVAILABLE in the
 * envelope, no request hangs, the gateway keeps running, and the next requests succeed.
 * postgres.js 3.4 crashes the process when a dead reserved connection is written to again
 * (porsager/postgres#1208); `withClaims` must not do that.
 */
import assert from "node:assert/strict";
import { stack } from "./helpers/stack.ts";
import { createTestOrg, db } from "./helpers/stack.ts";

const CONCURRENT_CLIENTS = 40;
const LOAD_MS = 4_000;
const KILL_EVERY_MS = 400;

async function listContacts(key: string) {
  const response = await fetch(`${stack.api_url}/v1/contacts`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": key },
    body: JSON.stringify({ action: "list", data: { per_page: 5 } }),
    // A request the driver lost would hang: fail it instead of the whole test run.
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

Deno.test("terminated database sessions under load give 503s, never a hang or a crash", async () => {
  const org = await createTestOrg({ plan: "enterprise" });
  const key = await org.key();
  await db`
    insert into public.contacts (org_id, environment, type, name)
    select ${org.orgId}, 'live', 'person', 'Person ' || n from generate_series(1, 10) as n
  `;

  const statuses = new Map<string, number>();
  const count = (outcome: string) => statuses.set(outcome, (statuses.get(outcome) ?? 0) + 1);
  const stopAt = Date.now() + LOAD_MS;
  const client = async () => {
    while (Date.now() < stopAt) {
      const { status, headers, body } = await listContacts(key);
      if (status === 503) {
        assert.equal(body.error.code, "SERVICE_UNAVAILABLE", JSON.stringify(body));
        assert.equal(headers.get("retry-after"), "5");
      } else {
        assert.equal(status, 200, JSON.stringify(body));
        assert.equal(body.data.contacts.length, 5);
      }
      count(String(status));
    }
  };
  let sessionsEnded = 0;
  const killer = async () => {
    while (Date.now() < stopAt) {
      await new Promise((resolve) => setTimeout(resolve, KILL_EVERY_MS));
      const [{ ended }] = await db<{ ended: number }[]>`
        select count(pg_terminate_backend(pid))::int as ended from pg_stat_activity
        where application_name = 'bivelio-api'
      `;
      sessionsEnded += ended;
    }
  };
  await Promise.all([killer(), ...Array.from({ length: CONCURRENT_CLIENTS }, client)]);

  assert.ok(sessionsEnded > 0, "no API session was there to end");
  assert.ok((statuses.get("200") ?? 0) > 0, JSON.stringify([...statuses]));
  // The gateway is still up and its pool has reconnected.
  const after = await listContacts(key);
  assert.equal(after.status, 200, JSON.stringify(after.body));
  assert.equal(after.body.data.pagination.total, 10);
});
