/**
 * Actions in three phases (shared/platform/app.ts): read in a transaction, call another
 * system holding no connection, record in a second transaction; the final answer is what
 * an Idempotency-Key replays. Binary answers. The probe app runs in its own process with a
 * database pool of ONE connection, so a second request is served during the first one's
 * external call only if that call holds no connection.
 */
import assert from "node:assert/strict";
import { createTestOrg, db, stack, test } from "./helpers/stack.ts";
import { PROBE_PDF } from "./helpers/phases-probe-server.ts";

/** A provider in this process whose answers each wait until the test releases them. */
function blockingProvider() {
  const waiting: { label: string; release: (status: number) => void }[] = [];
  let arrived = () => {};
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const label = new URL(req.url).pathname.slice(1);
    const status = await new Promise<number>((release) => {
      waiting.push({ label, release });
      arrived();
    });
    return new Response(`provider answer for ${label}`, { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    /** The next request for `label` once it has arrived (it waits for its release). */
    async next(label: string) {
      while (!waiting.some((w) => w.label === label)) {
        await new Promise<void>((resolve) => (arrived = resolve));
      }
      return waiting.splice(waiting.findIndex((w) => w.label === label), 1)[0];
    },
    close: () => server.shutdown(),
  };
}

async function startProbe(providerUrl: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./helpers/phases-probe-server.ts", import.meta.url).pathname],
    env: {
      SUPABASE_DB_URL: stack.db_url,
      SUPABASE_URL: stack.api_url,
      BIVELIO_JWT_SECRET: stack.jwt_secret,
      BIVELIO_DB_POOL_SIZE: "1",
      PROBE_PROVIDER_URL: providerUrl,
    },
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  while (!buffered.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the probe server exited before listening");
    buffered += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const { port } = JSON.parse(buffered.split("\n")[0]);
  return {
    call: async (action: string, data: unknown, key: string, headers: HeadersInit = {}) => {
      const response = await fetch(`http://127.0.0.1:${port}/probe/${action}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": key, ...headers },
        body: JSON.stringify({ action, data }),
      });
      return response;
    },
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

test("an action's external call holds no database connection; the record phase gives the answer and its replay", async () => {
  const provider = blockingProvider();
  const probe = await startProbe(provider.url);
  try {
    const key = await (await createTestOrg()).key();
    const first = probe.call("call_provider", { label: "a" }, key, { "idempotency-key": "k-a" });
    const atProvider = await provider.next("a");

    // The pool has one connection and the call is waiting at the provider: this read is
    // served only because the call holds none.
    const read = await Promise.race([
      probe.call("read", {}, key),
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error("the read waited: the external call holds the only connection")),
          15_000,
        )
      ),
    ]);
    assert.equal(read.status, 200);
    assert.deepEqual((await read.json()).data, { ok: true });

    atProvider.release(200);
    const answered = await (await first).json();
    assert.equal(answered.success, true, JSON.stringify(answered));
    assert.equal(answered.data.label, "a");
    assert.equal(answered.data.read, 1, "phase 1's read reached the record phase");
    assert.equal(answered.data.provider_said, "provider answer for a");

    // The same key replays the final answer (the record phase's), not phase 1's.
    const replay = await probe.call("call_provider", { label: "a" }, key, {
      "idempotency-key": "k-a",
    });
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
    assert.deepEqual((await replay.json()).data, answered.data);
  } finally {
    await probe.stop();
    await provider.close();
  }
});

test("a failed call is recorded, then answered as its error; the key is free for a retry", async () => {
  const provider = blockingProvider();
  const probe = await startProbe(provider.url);
  try {
    const org = await createTestOrg();
    const key = await org.key();
    const failing = probe.call("call_provider", { label: "b" }, key, { "idempotency-key": "k-b" });
    (await provider.next("b")).release(503);
    const failed = await failing;
    assert.equal(failed.status, 502);
    assert.equal((await failed.json()).error.code, "INTEGRATION_ERROR");
    const [recorded] = await db<{ data: { probe: string; ok: boolean } }[]>`
      select data from public.events where org_id = ${org.orgId} and data->>'probe' = 'b'
    `;
    assert.deepEqual(recorded.data, { probe: "b", ok: false }, "the failure's record committed");

    const retry = probe.call("call_provider", { label: "b" }, key, { "idempotency-key": "k-b" });
    (await provider.next("b")).release(200);
    const retried = await retry;
    assert.equal(retried.status, 200, "not a replay of the failure");
    assert.equal(retried.headers.get("idempotent-replayed"), null);
    await retried.body?.cancel();
  } finally {
    await probe.stop();
    await provider.close();
  }
});

test("an action can answer bytes (a PDF) instead of the JSON envelope", async () => {
  const probe = await startProbe("http://127.0.0.1:9");
  try {
    const key = await (await createTestOrg()).key();
    const response = await probe.call("pdf", {}, key);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/pdf");
    assert.match(response.headers.get("content-disposition") ?? "", /filename="probe.pdf"/);
    assert.ok(response.headers.get("x-request-id"), "the request id is still there");
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), PROBE_PDF);
  } finally {
    await probe.stop();
  }
});
