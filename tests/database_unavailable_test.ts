/**
 * With the database unreachable the API answers 503 SERVICE_UNAVAILABLE in the envelope,
 * with Retry-After, and /v1/ready says which check failed; nothing crashes.
 * The app is run in this process against a port where no database listens.
 */
import assert from "node:assert/strict";
import { generateApiKey } from "../shared/api-keys/format.ts";

function closedPort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test({
  name: "an unreachable database is 503 SERVICE_UNAVAILABLE with Retry-After, and /ready says so",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    Deno.env.set("SUPABASE_DB_URL", `postgresql://postgres:x@127.0.0.1:${closedPort()}/postgres`);
    const { default: contacts } = await import("../shared/contacts/app.ts");
    const { createHealthApp } = await import("../shared/platform/health.ts");
    const { closeDb } = await import("../shared/platform/db.ts");
    try {
      const response = await contacts.request("http://local/contacts/list", {
        method: "POST",
        headers: {
          "x-api-key": generateApiKey("live", "secret").key,
          "content-type": "application/json",
        },
        body: JSON.stringify({ action: "list" }),
      });
      const body = await response.json();
      assert.equal(response.status, 503, JSON.stringify(body));
      assert.equal(body.error.code, "SERVICE_UNAVAILABLE");
      assert.equal(response.headers.get("retry-after"), "5");
      assert.ok(response.headers.get("x-request-id"));

      const ready = await createHealthApp().request("http://local/ready");
      const readyBody = await ready.json();
      assert.equal(ready.status, 503);
      assert.equal(readyBody.error.details.checks.database.ok, false);
    } finally {
      await closeDb();
    }
  },
});

Deno.test("a lost connection's rejection left unhandled inside postgres.js does not end the process", async () => {
  await import("../shared/platform/db.ts");
  const lost = Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), {
    code: "CONNECTION_CLOSED",
    errno: "CONNECTION_CLOSED",
  });
  // What postgres.js's array-type lookup does when its new connection is ended.
  Promise.reject(lost);
  await new Promise((resolve) => setTimeout(resolve, 50));
});
