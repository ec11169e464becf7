/**
 * Webhook signing and target checks without the stack: the two signature schemes against
 * the spec's Node snippet and the `standardwebhooks` library, and the API's answer for
 * refused targets when loopback is not allowed (production's default).
 */
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { Webhook } from "standardwebhooks";
import { ApiError } from "../shared/platform/errors.ts";
import {
  generateWebhookSecret,
  signatureHeaders,
  standardWebhooksKey,
} from "../shared/webhooks/signing.ts";
import { checkWebhookUrl } from "../shared/webhooks/targets.ts";
import { deliveryBody } from "../shared/webhooks/delivery-job.ts";

/** The spec's verification snippet, as written there. */
function verifyWebhook(body: string, signature: string, secret: string) {
  const expected = createHmac("sha256", secret).update(body).digest("hex");
  return timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}

const body = deliveryBody({
  event_type: "contact.created",
  event_at: new Date("2026-04-07T13:05:00.250Z"),
  webhook_id: "wh_unit",
  data: { id: "ct_1", name: "Ana" },
});
const now = () => Math.floor(Date.now() / 1000);

Deno.test("the body is exactly {event, timestamp, webhook_id, data}", () => {
  assert.deepEqual(JSON.parse(body), {
    event: "contact.created",
    timestamp: "2026-04-07T13:05:00Z",
    webhook_id: "wh_unit",
    data: { id: "ct_1", name: "Ana" },
  });
  assert.deepEqual(Object.keys(JSON.parse(body)), ["event", "timestamp", "webhook_id", "data"]);
});

Deno.test("generated secrets are whsec_ + base64 of 32 random bytes, all different", () => {
  const secrets = new Set(Array.from({ length: 50 }, generateWebhookSecret));
  assert.equal(secrets.size, 50);
  for (const secret of secrets) {
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    assert.equal(standardWebhooksKey(secret).length, 32);
  }
});

Deno.test("one secret: the spec's snippet and standardwebhooks both verify", () => {
  const secret = generateWebhookSecret();
  const headers = signatureHeaders({ secrets: [secret], id: "whd_1", timestamp: now(), body });
  assert.match(headers["X-BiVelio-Signature"], /^[0-9a-f]{64}$/);
  assert.equal(verifyWebhook(body, headers["X-BiVelio-Signature"], secret), true);
  assert.equal("X-BiVelio-Signature-Previous" in headers, false);
  assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
  assert.match(headers["webhook-signature"], /^v1,[A-Za-z0-9+/]{43}=$/);

  // And they can fail: another secret, another body, another id.
  const other = generateWebhookSecret();
  assert.equal(verifyWebhook(body, headers["X-BiVelio-Signature"], other), false);
  assert.equal(verifyWebhook(`${body} `, headers["X-BiVelio-Signature"], secret), false);
  assert.throws(() => new Webhook(other).verify(body, headers), /No matching signature/);
  assert.throws(
    () => new Webhook(secret).verify(body, { ...headers, "webhook-id": "whd_2" }),
    /No matching signature/,
  );
});

Deno.test("two secrets (rotation): each header carries one, and each secret verifies", () => {
  const [newest, previous] = [generateWebhookSecret(), generateWebhookSecret()];
  const headers = signatureHeaders({
    secrets: [newest, previous],
    id: "whd_1",
    timestamp: now(),
    body,
  });
  assert.equal(verifyWebhook(body, headers["X-BiVelio-Signature"], newest), true);
  assert.equal(verifyWebhook(body, headers["X-BiVelio-Signature-Previous"]!, previous), true);
  assert.equal(headers["webhook-signature"].split(" ").length, 2);
  assert.deepEqual(new Webhook(newest).verify(body, headers), JSON.parse(body));
  assert.deepEqual(new Webhook(previous).verify(body, headers), JSON.parse(body));
});

Deno.test("a custom secret that is not whsec_<base64> verifies with format raw", () => {
  const secret = "whsec_your_verification_secret"; // the spec's example
  const headers = signatureHeaders({ secrets: [secret], id: "whd_1", timestamp: now(), body });
  assert.equal(verifyWebhook(body, headers["X-BiVelio-Signature"], secret), true);
  assert.deepEqual(
    new Webhook(secret, { format: "raw" }).verify(body, headers),
    JSON.parse(body),
  );
  const plain = "a plain secret without prefix!";
  const plainHeaders = signatureHeaders({
    secrets: [plain],
    id: "whd_1",
    timestamp: now(),
    body,
  });
  assert.deepEqual(
    new Webhook(plain, { format: "raw" }).verify(body, plainHeaders),
    JSON.parse(body),
  );
  // A custom whsec_<canonical base64> secret works with the library's default, like ours.
  const custom = `whsec_${Buffer.from("sixteen byte key").toString("base64")}`;
  const customHeaders = signatureHeaders({
    secrets: [custom],
    id: "whd_1",
    timestamp: now(),
    body,
  });
  assert.deepEqual(new Webhook(custom).verify(body, customHeaders), JSON.parse(body));
});

/** The VALIDATION_ERROR a refused URL gets. */
async function refused(
  url: string,
  environment: "live" | "test",
  resolve?: Record<string, string[]>,
) {
  const error = await checkWebhookUrl(url, environment, {
    allowLoopback: false,
    resolve: (host) =>
      resolve?.[host] ? Promise.resolve(resolve[host]) : Promise.reject(new Error("ENOTFOUND")),
  }).then(() => assert.fail(`${url} was accepted`), (e) => e);
  assert.ok(error instanceof ApiError, String(error));
  assert.equal(error.code, "VALIDATION_ERROR");
  assert.equal(error.options.details?.field, "url");
  return error;
}

Deno.test("without the loopback setting, loopback and private names are refused naming url", async () => {
  for (const url of ["http://127.0.0.1:8080/hook", "http://[::1]:8080/hook"]) {
    const error = await refused(url, "test");
    assert.equal(error.options.details?.constraint, "forbidden_address");
    assert.match(error.message, /loopback/);
  }
  const named = await refused("https://hooks.internal.example/in", "live", {
    "hooks.internal.example": ["10.1.2.3"],
  });
  assert.equal(named.options.details?.constraint, "forbidden_address");
  assert.match(named.message, /hooks\.internal\.example.*private.*10\.1\.2\.3/);
  const unresolvable = await refused("https://nowhere.example/", "live");
  assert.equal(unresolvable.options.details?.constraint, "resolvable");
  const scheme = await refused("ftp://93.184.215.14/", "test");
  assert.equal(scheme.options.details?.constraint, "scheme");
  const http = await refused("http://93.184.215.14/hook", "live");
  assert.equal(http.options.details?.constraint, "https_required");
  // The same public http URL is fine for the sandbox.
  await checkWebhookUrl("http://93.184.215.14/hook", "test", { allowLoopback: false });
});
