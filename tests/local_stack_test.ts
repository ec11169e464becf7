/**
 * `deno task start` as a newcomer uses it: it comes up with demo data and prints a working
 * curl line; a gateway that dies is started again; Ctrl-C stops the gateway and
 * PostgreSQL; starting again keeps the data.
 */
import assert from "node:assert/strict";
import { stopCluster } from "../local/postgres.ts";
import type { StackInfo } from "../local/stack.ts";

function freePort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function start(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../local/start.ts", import.meta.url).pathname],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let output = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  while (!output.includes("Press Ctrl-C to stop.")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`start exited early:\n${output}`);
    output += value;
  }
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  return { child, output };
}

async function isListening(port: number) {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "start: demo data and a working curl line; a dead gateway comes back; Ctrl-C stops everything; a restart keeps the data",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const stateDir = await Deno.makeTempDir({ prefix: "bivelio-start-" });
    const apiPort = freePort();
    const dbPort = freePort();
    const env = {
      BIVELIO_STATE_DIR: stateDir,
      BIVELIO_API_PORT: String(apiPort),
      BIVELIO_DB_PORT: String(dbPort),
    };
    const children: Deno.ChildProcess[] = [];
    try {
      const first = await start(env);
      children.push(first.child);
      const info: StackInfo = JSON.parse(await Deno.readTextFile(`${stateDir}/local.json`));
      assert.equal(info.orgs.length >= 2, true);
      assert.ok(info.orgs.some((org) => org.plan === "starter"));
      for (const org of info.orgs) {
        assert.deepEqual(Object.keys(org.keys).sort(), [
          "live_publishable",
          "live_read",
          "live_secret",
          "test_secret",
        ]);
      }
      const key = info.orgs[0].keys.live_secret;
      assert.ok(
        first.output.includes(`X-API-Key: ${key}`),
        "the printed curl line carries a real demo key",
      );

      const created = await fetch(`${info.api_url}/v1/contacts/create`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: JSON.stringify({ action: "create", data: { name: "Survives a restart" } }),
      });
      const { data } = await created.json();
      assert.equal(created.status, 200);

      // A gateway that dies is started again, as the workers are.
      const readPid = () => Number(Deno.readTextFileSync(info.gateway_pid_file));
      const crashed = readPid();
      Deno.kill(crashed, "SIGKILL");
      const deadline = Date.now() + 20_000;
      let health = 0;
      while (health !== 200 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        health = await fetch(`${info.api_url}/v1/health`).then(async (response) => {
          await response.body?.cancel();
          return response.status;
        }, () => 0);
      }
      assert.equal(health, 200, "the gateway is back");
      assert.notEqual(readPid(), crashed);

      first.child.kill("SIGINT");
      assert.equal((await first.child.status).code, 0);
      assert.equal(await isListening(apiPort), false, "the gateway stopped");
      assert.equal(await isListening(dbPort), false, "PostgreSQL stopped");

      const second = await start(env);
      children.push(second.child);
      const again = await fetch(`${info.api_url}/v1/contacts/get`, {
        method: "POST",
        headers: { "x-api-key": key, "content-type": "application/json" },
        body: JSON.stringify({ action: "get", data: { id: data.id } }),
      });
      assert.equal(again.status, 200, "the same demo key still works");
      assert.equal((await again.json()).data.name, "Survives a restart");
      second.child.kill("SIGINT");
      assert.equal((await second.child.status).code, 0);
    } finally {
      for (const child of children) {
        try {
          child.kill("SIGINT");
        } catch {
          // already stopped
        }
        await child.status;
      }
      await stopCluster(`${stateDir}/postgres`).catch(() => {});
      await Deno.remove(stateDir, { recursive: true }).catch(() => {});
    }
  },
});
