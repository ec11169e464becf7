import assert from "node:assert/strict";
import { expectError } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, test } from "./helpers/stack.ts";

const list = { action: "list", data: { per_page: 1 } };

/**
 * Sets an organization's windows as if `minute` requests had come this minute and `second`
 * this second: their bases that far below the last number of its request sequence.
 */
async function fillWindows(orgId: string, minute: number, second: number) {
  await db`
    insert into private.rate_limit_counters as c
      select ${orgId}, date_trunc('minute', clock_timestamp()), n - ${minute},
             date_trunc('second', clock_timestamp()), n - ${second}
      from nextval(private.request_sequence(${orgId})) n
    on conflict (org_id) do update
      set minute_start = excluded.minute_start, minute_base = excluded.minute_base,
          second_start = excluded.second_start, second_base = excluded.second_base
  `;
}

test("every authenticated response carries X-RateLimit-Limit/Remaining/Reset of the plan", async () => {
  const key = await (await createTestOrg({ plan: "starter" })).key();
  const first = await api("contacts", list, { key });
  const second = await api("contacts", list, { key });
  assert.equal(first.headers.get("x-ratelimit-limit"), "100");
  const remaining = [first, second].map((r) => Number(r.headers.get("x-ratelimit-remaining")));
  assert.ok(remaining[0] <= 99 && remaining[1] < remaining[0], `remaining decreases: ${remaining}`);
  const reset = Number(first.headers.get("x-ratelimit-reset"));
  const now = Date.now() / 1000;
  assert.ok(reset > now && reset <= now + 61, `reset is the end of the current minute: ${reset}`);
  // Errors after authentication carry them too.
  const invalid = await api("contacts", { action: "list", data: { per_page: 0 } }, { key });
  assert.equal(invalid.status, 400);
  assert.equal(invalid.headers.get("x-ratelimit-limit"), "100");
  const pro = await api("contacts", list, {
    key: await (await createTestOrg({ plan: "pro" })).key(),
  });
  assert.equal(pro.headers.get("x-ratelimit-limit"), "500");
});

test("over the per-minute limit: 429 with the spec's body, Retry-After and rate-limit headers", async () => {
  const org = await createTestOrg({ plan: "starter" });
  const key = await org.key();
  // Fill this minute's window as 100 earlier requests would have. Should the minute roll
  // over between that and the request (the window restarts), fill it again.
  const fillAndCall = async () => {
    await fillWindows(org.orgId, 100, 0);
    return await api("contacts", list, { key });
  };
  let response = await fillAndCall();
  for (let attempt = 0; response.status === 200 && attempt < 2; attempt++) {
    response = await fillAndCall();
  }
  expectError(response, 429, "RATE_LIMIT_EXCEEDED");
  const { error } = response.body;
  assert.equal(error.message, "You have exceeded the limit of 100 requests per minute.");
  assert.ok(
    Number.isInteger(error.retry_after) && error.retry_after >= 1 && error.retry_after <= 60,
  );
  assert.deepEqual(Object.keys(response.body).sort(), ["error", "success"]);
  assert.deepEqual(Object.keys(error).sort(), ["code", "message", "retry_after"]);
  assert.equal(response.headers.get("retry-after"), String(error.retry_after));
  assert.equal(response.headers.get("x-ratelimit-limit"), "100");
  assert.equal(response.headers.get("x-ratelimit-remaining"), "0");
});

test("over the burst limit (Starter: 20 requests in one second) is 429 with Retry-After: 1", async () => {
  const org = await createTestOrg({ plan: "starter" });
  const key = await org.key();
  const burst = async () => {
    const responses = await Promise.all(
      Array.from({ length: 30 }, () => api("contacts", list, { key })),
    );
    return responses.filter((r) => r.status === 429);
  };
  // 30 requests at once land in at most two one-second windows, so one of them holds more
  // than 20 unless the machine is very slow; try a few times rather than flake.
  let limited = await burst();
  for (let attempt = 0; limited.length === 0 && attempt < 3; attempt++) {
    await db`delete from private.rate_limit_counters where org_id = ${org.orgId}`;
    limited = await burst();
  }
  assert.ok(limited.length > 0, "some requests over the burst are refused");
  const [response] = limited;
  expectError(response, 429, "RATE_LIMIT_EXCEEDED");
  assert.equal(
    response.body.error.message,
    "You have exceeded the burst limit of 20 requests per second.",
  );
  assert.equal(response.body.error.retry_after, 1);
  assert.equal(response.headers.get("retry-after"), "1");
});

test("limits are per organization: one org over its limit does not affect another", async () => {
  const busy = await createTestOrg({ plan: "starter" });
  const calm = await createTestOrg({ plan: "starter" });
  await fillWindows(busy.orgId, 1000, 0);
  const response = await api("contacts", list, { key: await calm.key() });
  assert.equal(response.status, 200);
});

test("Enterprise is unlimited: no counting and no rate-limit headers", async () => {
  const org = await createTestOrg({ plan: "enterprise" });
  const response = await api("contacts", list, { key: await org.key() });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-ratelimit-limit"), null);
  const rows = await db`select 1 from private.rate_limit_counters where org_id = ${org.orgId}`;
  assert.equal(rows.length, 0);
});
