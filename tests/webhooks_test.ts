/**
 * Outbound webhooks over the real stack: the API, the fan-out from the events outbox, and
 * the worker delivering to a real HTTP receiver in this process (127.0.0.1, allowed by the
 * test stack's BIVELIO_ALLOW_LOOPBACK_TARGETS=1). Time is advanced through the database
 * (the job's available_at and the delivery's next_attempt_at), never slept through.
 */
import assert from "node:assert/strict";
import { createHmac, timingSafeEqual } from "node:crypto";
import { Buffer } from "node:buffer";
import { Webhook } from "standardwebhooks";
import { RETRY_DELAYS_SECONDS } from "../shared/webhooks/delivery-job.ts";
import { MAX_WEBHOOKS_PER_ENVIRONMENT } from "../shared/webhooks/endpoints.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, duringTransaction, test, type TestOrg } from "./helpers/stack.ts";

// ---------------------------------------------------------------------------------------
// A receiver: every path answers what its route says (200 unless told otherwise) and
// keeps what it got.

interface Received {
  path: string;
  headers: Headers;
  body: string;
  at: number;
}

const received: Received[] = [];
const routes = new Map<string, (request: Request) => Response | Promise<Response>>();
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
  const path = new URL(request.url).pathname;
  const body = await request.text();
  received.push({ path, headers: request.headers, body, at: Date.now() });
  return (await routes.get(path)?.(request)) ?? new Response("ok");
});
// Left open for every test of this file; it does not keep the process alive.
server.unref();

let pathCounter = 0;
/** A fresh receiver path (and its full URL) that answers `status` until told otherwise. */
function receiverPath(status = 200) {
  const path = `/hook/${++pathCounter}-${crypto.randomUUID().slice(0, 8)}`;
  let current = status;
  routes.set(path, () => new Response(`status ${current}`, { status: current }));
  return {
    path,
    url: `http://127.0.0.1:${server.addr.port}${path}`,
    answer(next: number) {
      current = next;
    },
    requests: () => received.filter((r) => r.path === path),
    /** Waits until `count` requests have come, and returns them. */
    waitForRequests(count = 1) {
      return waitFor(`${count} request(s) at ${path}`, () => {
        const requests = received.filter((r) => r.path === path);
        return requests.length >= count ? requests : undefined;
      });
    },
  };
}

async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20;; delay = Math.min(delay * 2, 200)) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** The spec's verification snippet, as written there. */
function verifyWebhook(body: string, signature: string, secret: string) {
  const expected = createHmac("sha256", secret).update(body).digest("hex");
  return timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
}

const headersObject = (headers: Headers) => Object.fromEntries(headers.entries());

async function createWebhook(key: string, data: Record<string, unknown>) {
  const response = await api("webhooks/create", { action: "create", data }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data as {
    webhook_id: string;
    signing_secret: string;
    [field: string]: unknown;
  };
}

async function createContact(key: string, name = "Webhook Person") {
  const response = await api("contacts/create", { action: "create", data: { name } }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body.data as { id: string; name: string };
}

interface DeliveryState {
  id: string;
  status: string;
  attempt_count: number;
  next_attempt_at: Date | null;
}

const deliveriesOf = (webhookId: string) =>
  db<DeliveryState[]>`
    select id, status, attempt_count, next_attempt_at from public.webhook_deliveries
    where webhook_id = ${webhookId} order by created_at, id
  `;

/** The one delivery of a webhook once it has `attempts` attempts recorded. */
const afterAttempts = (webhookId: string, attempts: number) =>
  waitFor(`${attempts} attempt(s) of ${webhookId}'s delivery`, async () => {
    const [delivery] = await deliveriesOf(webhookId);
    return delivery?.attempt_count >= attempts ? delivery : undefined;
  });

/** Makes a delivery's scheduled retry due now, as if its delay had passed. */
async function advanceToRetry(deliveryId: string) {
  const moved = await db`
    update private.jobs set available_at = now()
    where kind = 'webhook' and ref = ${deliveryId} and lease_token is null
    returning id
  `;
  assert.equal(moved.length, 1, "the delivery has a job waiting for its retry");
  await db`update public.webhook_deliveries set next_attempt_at = now() where id = ${deliveryId}`;
}

const webhookStatus = async (webhookId: string) =>
  (await db<{ status: string; disabled_reason: string | null }[]>`
    select status, disabled_reason from public.webhooks where id = ${webhookId}
  `)[0];

const jobsOf = async (deliveryId: string) =>
  (await db`select id from private.jobs where kind = 'webhook' and ref = ${deliveryId}`).length;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

// ---------------------------------------------------------------------------------------
// The negative cases every action gets

const validCreate = () => ({ url: receiverPath().url, events: ["contact.created"] });
/** A webhook of the test org (for actions that need one). */
async function webhookOf(org: TestOrg) {
  return await createWebhook(await org.key(), validCreate());
}

negativeCases({
  group: "webhooks",
  action: "create",
  scope: "admin",
  valid: validCreate(),
  invalid: { data: { url: receiverPath().url, events: ["contact.deleted"] }, field: "events.0" },
});
negativeCases({
  group: "webhooks",
  action: "list",
  scope: "admin",
  valid: { per_page: 5 },
  invalid: { data: { status: "paused" }, field: "status" },
});
negativeCases({
  group: "webhooks",
  action: "get",
  scope: "admin",
  valid: async (org) => ({ webhook_id: (await webhookOf(org)).webhook_id }),
  invalid: { data: { webhook_id: "ct_abc123" }, field: "webhook_id" },
});
negativeCases({
  group: "webhooks",
  action: "update",
  scope: "admin",
  valid: async (org) => ({ webhook_id: (await webhookOf(org)).webhook_id, description: "x" }),
  invalid: { data: { webhook_id: "wh_x", url: "http://10.0.0.1/hook" }, field: "url" },
});
negativeCases({
  group: "webhooks",
  action: "delete",
  scope: "admin",
  valid: async (org) => ({ webhook_id: (await webhookOf(org)).webhook_id }),
  invalid: { data: {}, field: "webhook_id" },
});
negativeCases({
  group: "webhooks",
  action: "rotate_secret",
  scope: "admin",
  valid: async (org) => ({ webhook_id: (await webhookOf(org)).webhook_id }),
  invalid: { data: { webhook_id: "wh_x", secret: "short" }, field: "secret" },
});
negativeCases({
  group: "webhooks",
  action: "list_deliveries",
  scope: "admin",
  valid: { status: "failed" },
  invalid: { data: { status: "lost" }, field: "status" },
});
negativeCases({
  group: "webhooks",
  action: "redeliver",
  scope: "admin",
  valid: async (org) => {
    const key = await org.key();
    const webhook = await createWebhook(key, validCreate());
    await createContact(key);
    return { delivery_id: (await afterAttempts(webhook.webhook_id, 1)).id };
  },
  invalid: { data: { delivery_id: "wh_notadelivery" }, field: "delivery_id" },
});
negativeCases({
  group: "webhooks",
  action: "test",
  scope: "admin",
  valid: async (org) => ({ webhook_id: (await webhookOf(org)).webhook_id }),
  invalid: { data: { webhook_id: 42 }, field: "webhook_id" },
});

// ---------------------------------------------------------------------------------------
// Endpoints

test("create answers in the spec's shape with a generated whsec_ secret, shown only there", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  // The spec's example, with a receiver this test can reach.
  const created = await createWebhook(key, {
    url: receiver.url,
    events: ["workflow.completed", "message.received", "invoice.paid"],
    description: "Main integration webhook",
  });
  assert.match(created.webhook_id, /^wh_[0-9a-f]{32}$/);
  assert.deepEqual(
    { ...created, webhook_id: "", signing_secret: "", created_at: "" },
    {
      webhook_id: "",
      url: receiver.url,
      events: ["workflow.completed", "message.received", "invoice.paid"],
      description: "Main integration webhook",
      status: "active",
      signing_secret: "",
      created_at: "",
    },
  );
  assert.match(created.signing_secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
  assert.match(created.created_at as string, ISO);

  const list = await api("webhooks/list", { action: "list", data: {} }, { key });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.data.pagination, { page: 1, per_page: 20, total: 1, total_pages: 1 });
  const [listed] = list.body.data.webhooks;
  assert.equal(listed.webhook_id, created.webhook_id);
  assert.equal(listed.status, "active");
  assert.equal(listed.last_triggered_at, null);
  assert.equal(listed.success_rate, null);
  assert.equal(listed.created_at, created.created_at);
  const get = await api("webhooks/get", {
    action: "get",
    data: { webhook_id: created.webhook_id },
  }, { key });
  assert.deepEqual(get.body.data, listed);
  for (const response of [list, get]) {
    const text = JSON.stringify(response.body);
    assert.ok(!text.includes(created.signing_secret), "no secret in list/get");
    assert.ok(!/secret/i.test(text), "no secret field in list/get");
  }
});

test("create takes a custom secret (the spec's example) and refuses a short one", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await createWebhook(key, {
    url: receiverPath().url,
    events: ["contact.created"],
    secret: "whsec_your_verification_secret",
  });
  assert.equal(created.signing_secret, "whsec_your_verification_secret");
  const short = await api("webhooks/create", {
    action: "create",
    data: { url: receiverPath().url, events: ["contact.created"], secret: "whsec_short" },
  }, { key });
  expectError(short, 400, "VALIDATION_ERROR");
  assert.deepEqual(short.body.error.details, { field: "secret", constraint: "min" });
});

test("the signing secret cannot be stored for replay: Idempotency-Key is refused on create", async () => {
  const org = await createTestOrg();
  const response = await api("webhooks/create", { action: "create", data: validCreate() }, {
    key: await org.key(),
    headers: { "Idempotency-Key": "create-webhook-1" },
  });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "Idempotency-Key");
});

test("update changes only the fields sent; events are deduplicated; delete removes it", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await createWebhook(key, validCreate());
  const other = receiverPath();
  const updated = await api("webhooks/update", {
    action: "update",
    data: {
      webhook_id: created.webhook_id,
      url: other.url,
      events: ["contact.updated", "contact.created", "contact.updated"],
    },
  }, { key });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.equal(updated.body.data.url, other.url);
  assert.deepEqual(updated.body.data.events, ["contact.updated", "contact.created"]);
  assert.equal(updated.body.data.description, "");

  const deleted = await api("webhooks/delete", {
    action: "delete",
    data: { webhook_id: created.webhook_id },
  }, { key });
  assert.deepEqual(deleted.body.data, { webhook_id: created.webhook_id, deleted: true });
  const gone = await api("webhooks/get", {
    action: "get",
    data: { webhook_id: created.webhook_id },
  }, { key });
  expectError(gone, 404, "RESOURCE_NOT_FOUND");
  const [secrets] = await db`
    select count(*)::int as n from private.webhook_secrets where webhook_id = ${created.webhook_id}
  `;
  assert.equal(secrets.n, 0, "its secrets are deleted with it");
});

test("another organization's webhook is 404 for every action that names one", async () => {
  const owner = await createTestOrg();
  const webhook = await createWebhook(await owner.key(), validCreate());
  const otherKey = await (await createTestOrg()).key();
  for (const action of ["get", "update", "delete", "rotate_secret", "test"]) {
    const response = await api(`webhooks/${action}`, {
      action,
      data: { webhook_id: webhook.webhook_id },
    }, { key: otherKey });
    expectError(response, 404, "RESOURCE_NOT_FOUND");
  }
  assert.equal((await webhookStatus(webhook.webhook_id)).status, "active");
});

// ---------------------------------------------------------------------------------------
// Delivery, signatures, payload

test("an event is delivered: the spec's body, both signatures verify, the headers are there", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  const contact = await createContact(key, "Delivered Person");

  const [request] = await receiver.waitForRequests();
  const payload = JSON.parse(request.body);
  assert.deepEqual(Object.keys(payload), ["event", "timestamp", "webhook_id", "data"]);
  assert.equal(payload.event, "contact.created");
  assert.equal(payload.webhook_id, webhook.webhook_id);
  assert.match(payload.timestamp, ISO);
  assert.deepEqual(payload.data, contact);

  const signature = request.headers.get("x-bivelio-signature")!;
  assert.match(signature, /^[0-9a-f]{64}$/);
  assert.equal(verifyWebhook(request.body, signature, webhook.signing_secret), true);
  assert.equal(verifyWebhook(request.body, signature, "whsec_some_other_secret_value"), false);
  assert.equal(request.headers.get("x-bivelio-signature-previous"), null);
  assert.deepEqual(
    new Webhook(webhook.signing_secret).verify(request.body, headersObject(request.headers)),
    payload,
  );
  assert.equal(request.headers.get("x-bivelio-event"), "contact.created");
  assert.match(request.headers.get("x-bivelio-delivery")!, /^whd_[0-9a-f]{32}$/);
  assert.equal(request.headers.get("webhook-id"), request.headers.get("x-bivelio-delivery"));
  assert.ok(Math.abs(Number(request.headers.get("webhook-timestamp")) - Date.now() / 1000) < 60);
  assert.equal(request.headers.get("content-type"), "application/json");

  // The attempt is on record, and the list shows when and how well it went.
  const delivered = await afterAttempts(webhook.webhook_id, 1);
  assert.equal(delivered.status, "delivered");
  const deliveries = await api("webhooks/list_deliveries", {
    action: "list_deliveries",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  const [listed] = deliveries.body.data.deliveries;
  assert.equal(listed.delivery_id, request.headers.get("x-bivelio-delivery"));
  assert.equal(listed.event, "contact.created");
  assert.equal(listed.status, "delivered");
  assert.equal(listed.next_attempt_at, null);
  assert.equal(listed.attempts.length, 1);
  const [attempt] = listed.attempts;
  assert.equal(attempt.attempt, 1);
  assert.equal(attempt.status_code, 200);
  assert.equal(attempt.success, true);
  assert.equal(attempt.error, null);
  assert.equal(typeof attempt.duration_ms, "number");
  assert.match(attempt.attempted_at, ISO);
  const list = await api("webhooks/list", { action: "list", data: {} }, { key });
  assert.equal(list.body.data.webhooks[0].success_rate, 1);
  assert.equal(list.body.data.webhooks[0].last_triggered_at, attempt.attempted_at);
});

test("only subscribed events are delivered: one delivery per subscribing webhook", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await createWebhook(key, {
    url: receiverPath().url,
    events: ["contact.created"],
  });
  const updated = await createWebhook(key, {
    url: receiverPath().url,
    events: ["contact.updated"],
  });
  const both = await createWebhook(key, {
    url: receiverPath().url,
    events: ["contact.created", "contact.updated"],
  });
  const contact = await createContact(key);
  await api("contacts/update", { action: "update", data: { id: contact.id, tags: ["x"] } }, {
    key,
  });
  // Fan-out happens in the event's transaction: the rows are there once the calls return.
  const types = async (webhookId: string) =>
    (await db<{ event_type: string }[]>`
      select event_type from public.webhook_deliveries where webhook_id = ${webhookId}
      order by event_type
    `).map((row) => row.event_type);
  assert.deepEqual(await types(created.webhook_id), ["contact.created"]);
  assert.deepEqual(await types(updated.webhook_id), ["contact.updated"]);
  assert.deepEqual(await types(both.webhook_id), ["contact.created", "contact.updated"]);
});

test("retries follow the spec's table exactly; the 5th failure disables the webhook", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath(500);
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  await createContact(key);

  const expectedDelays = [30, 120, 600, 3600];
  assert.deepEqual(RETRY_DELAYS_SECONDS, expectedDelays);
  for (let attempt = 1; attempt <= 5; attempt++) {
    const delivery = await afterAttempts(webhook.webhook_id, attempt);
    const [row] = await db<
      { attempted_at: Date; next_attempt_at: Date | null; status_code: number }[]
    >`
      select attempted_at, next_attempt_at, status_code from public.webhook_attempts
      where delivery_id = ${delivery.id} and attempt = ${attempt}
    `;
    assert.equal(row.status_code, 500);
    if (attempt < 5) {
      assert.equal(delivery.status, "pending");
      assert.equal(
        row.next_attempt_at!.getTime() - row.attempted_at.getTime(),
        expectedDelays[attempt - 1] * 1000,
        `attempt ${attempt + 1} is ${expectedDelays[attempt - 1]} s after attempt ${attempt}`,
      );
      assert.equal(delivery.next_attempt_at!.getTime(), row.next_attempt_at!.getTime());
      const [job] = await db<{ available_at: Date }[]>`
        select available_at from private.jobs where kind = 'webhook' and ref = ${delivery.id}
      `;
      assert.equal(job.available_at.getTime(), row.next_attempt_at!.getTime());
      assert.equal((await webhookStatus(webhook.webhook_id)).status, "active");
      await advanceToRetry(delivery.id);
    } else {
      assert.equal(row.next_attempt_at, null);
      assert.equal(delivery.status, "failed");
      assert.equal(await jobsOf(delivery.id), 0, "no job left after the last attempt");
    }
  }
  assert.equal(receiver.requests().length, 5);
  assert.equal(new Set(receiver.requests().map((r) => r.headers.get("webhook-id"))).size, 1);
  assert.deepEqual(await webhookStatus(webhook.webhook_id), {
    status: "disabled",
    disabled_reason: "failing",
  });
  const listed = await api("webhooks/get", {
    action: "get",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(listed.body.data.status, "disabled");
  assert.equal(listed.body.data.success_rate, 0);
});

test("a disabled webhook holds what it misses and sends it when reactivated; redeliver sends a failed one", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath(503);
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  await createContact(key, "First");
  // Five failures, advanced through the database.
  for (let attempt = 1; attempt <= 5; attempt++) {
    const delivery = await afterAttempts(webhook.webhook_id, attempt);
    if (attempt < 5) await advanceToRetry(delivery.id);
  }
  const [failed] = await deliveriesOf(webhook.webhook_id);
  assert.equal(failed.status, "failed");
  assert.equal((await webhookStatus(webhook.webhook_id)).status, "disabled");

  // Missed while disabled: held, no job, nothing sent.
  const missed = await createContact(key, "Missed");
  const [, held] = await deliveriesOf(webhook.webhook_id);
  assert.equal(held.status, "held");
  assert.equal(await jobsOf(held.id), 0);
  const got = await api("webhooks/get", {
    action: "get",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(got.body.data.held_deliveries, 1);
  const heldList = await api("webhooks/list_deliveries", {
    action: "list_deliveries",
    data: { webhook_id: webhook.webhook_id, status: "held" },
  }, { key });
  assert.deepEqual(
    heldList.body.data.deliveries.map((d: { delivery_id: string }) => d.delivery_id),
    [
      held.id,
    ],
  );
  assert.equal(receiver.requests().length, 5);

  // The receiver is fixed and the webhook reactivated: the held delivery goes out now.
  receiver.answer(200);
  const reactivated = await api("webhooks/update", {
    action: "update",
    data: { webhook_id: webhook.webhook_id, status: "active" },
  }, { key });
  assert.equal(reactivated.status, 200, JSON.stringify(reactivated.body));
  assert.equal(reactivated.body.data.status, "active");
  assert.equal(reactivated.body.data.disabled_reason, null);
  const sent = await waitFor(
    "the held delivery",
    () => receiver.requests().find((r) => JSON.parse(r.body).data.id === missed.id),
  );
  assert.equal(sent.headers.get("webhook-id"), held.id);
  await waitFor(
    "held → delivered",
    async () => (await deliveriesOf(webhook.webhook_id))[1].status === "delivered",
  );

  // The delivery that failed five times is sent again on request, once.
  const redelivered = await api("webhooks/redeliver", {
    action: "redeliver",
    data: { delivery_id: failed.id },
  }, { key });
  assert.equal(redelivered.status, 200, JSON.stringify(redelivered.body));
  assert.equal(redelivered.body.data.status, "pending");
  const again = await afterAttempts(webhook.webhook_id, 6);
  assert.equal(again.status, "delivered");
  const [sixth] = await db`
    select status_code, manual from public.webhook_attempts where delivery_id = ${failed.id}
    and attempt = 6
  `;
  assert.deepEqual({ ...sixth }, { status_code: 200, manual: true });
  assert.equal(
    receiver.requests().filter((r) => r.headers.get("webhook-id") === failed.id).length,
    6,
  );
});

test("410 Gone disables the webhook at once, without retries", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath(410);
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  await createContact(key);
  const delivery = await afterAttempts(webhook.webhook_id, 1);
  assert.equal(delivery.status, "failed");
  assert.equal(delivery.next_attempt_at, null);
  assert.equal(await jobsOf(delivery.id), 0);
  assert.deepEqual(await webhookStatus(webhook.webhook_id), {
    status: "disabled",
    disabled_reason: "gone",
  });
  await createContact(key, "After gone");
  const [, held] = await deliveriesOf(webhook.webhook_id);
  assert.equal(held.status, "held");
  assert.equal(receiver.requests().length, 1);
});

test("a receiver slower than 10 s is a failed attempt (timeout), retried on schedule", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  routes.set(receiver.path, async () => {
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    return new Response("too late");
  });
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  await createContact(key);
  const delivery = await waitFor(
    "the timed-out attempt",
    async () => {
      const [row] = await deliveriesOf(webhook.webhook_id);
      return row?.attempt_count >= 1 ? row : undefined;
    },
    20_000,
  );
  assert.equal(delivery.status, "pending", "a timeout is retried");
  const [attempt] = await db`
    select status_code, duration_ms, error, success from public.webhook_attempts
    where delivery_id = ${delivery.id}
  `;
  assert.equal(attempt.success, false);
  assert.equal(attempt.status_code, null);
  assert.ok(attempt.duration_ms >= 9_900 && attempt.duration_ms < 12_000, `${attempt.duration_ms}`);
  assert.match(attempt.error, /within 10000 ms/);
});

test("redirects are not followed: a 302 is a failed attempt, retried on schedule", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const target = receiverPath();
  const receiver = receiverPath();
  routes.set(receiver.path, () => Response.redirect(target.url, 302));
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  await createContact(key);
  const delivery = await afterAttempts(webhook.webhook_id, 1);
  assert.equal(delivery.status, "pending");
  const [attempt] = await db`
    select status_code, error from public.webhook_attempts where delivery_id = ${delivery.id}
  `;
  assert.equal(attempt.status_code, 302);
  assert.match(attempt.error, /redirects are not followed/);
  assert.equal(target.requests().length, 0, "the Location was not requested");
});

test("the target is checked again at every delivery: a URL changed to a private address is refused", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const webhook = await createWebhook(key, validCreate());
  // As if DNS now answered differently, or the row were changed past the API.
  await db`update public.webhooks set url = 'http://10.0.0.1/hook' where id = ${webhook.webhook_id}`;
  await createContact(key);
  const delivery = await afterAttempts(webhook.webhook_id, 1);
  const [attempt] = await db`
    select status_code, success, error from public.webhook_attempts where delivery_id = ${delivery.id}
  `;
  assert.equal(attempt.status_code, null);
  assert.equal(attempt.success, false);
  assert.match(attempt.error, /private address \(10\.0\.0\.1\), which is not allowed/);
  assert.equal(delivery.status, "pending", "retried on schedule like any failure");
});

test("rotate_secret: a new secret once, both signatures present and verifying for 24 h", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  const rotated = await api("webhooks/rotate_secret", {
    action: "rotate_secret",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
  const { signing_secret: newSecret, previous_secret_expires_at: expiresAt } = rotated.body.data;
  assert.match(newSecret, /^whsec_/);
  assert.notEqual(newSecret, webhook.signing_secret);
  const hoursLeft = (Date.parse(expiresAt) - Date.now()) / 3_600_000;
  assert.ok(hoursLeft > 23.9 && hoursLeft <= 24, `previous secret expires in ${hoursLeft} h`);

  await createContact(key);
  const [request] = await receiver.waitForRequests();
  const headers = headersObject(request.headers);
  assert.equal(verifyWebhook(request.body, headers["x-bivelio-signature"], newSecret), true);
  assert.equal(
    verifyWebhook(request.body, headers["x-bivelio-signature-previous"], webhook.signing_secret),
    true,
  );
  assert.equal(headers["webhook-signature"].split(" ").length, 2);
  new Webhook(newSecret).verify(request.body, headers);
  new Webhook(webhook.signing_secret).verify(request.body, headers);

  // Once the 24 hours are over, only the new secret signs.
  await db`
    update private.webhook_secrets set expires_at = now() - interval '1 second'
    where webhook_id = ${webhook.webhook_id} and expires_at is not null
  `;
  await createContact(key, "After the grace period");
  const [, later] = await receiver.waitForRequests(2);
  const laterHeaders = headersObject(later.headers);
  assert.equal(laterHeaders["x-bivelio-signature-previous"], undefined);
  assert.equal(laterHeaders["webhook-signature"].split(" ").length, 1);
  assert.equal(verifyWebhook(later.body, laterHeaders["x-bivelio-signature"], newSecret), true);
  assert.throws(() => new Webhook(webhook.signing_secret).verify(later.body, laterHeaders));

  // A second rotation ends the previous secret at once: at most two ever sign.
  const third = await api("webhooks/rotate_secret", {
    action: "rotate_secret",
    data: { webhook_id: webhook.webhook_id, secret: "a-custom-secret-of-mine!" },
  }, { key });
  assert.equal(third.body.data.signing_secret, "a-custom-secret-of-mine!");
  const [{ n }] = await db`
    select count(*)::int as n from private.webhook_secrets where webhook_id = ${webhook.webhook_id}
  `;
  assert.equal(n, 2);
});

test("test sends a signed webhook.test event, even to a disabled webhook, and returns its attempt", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  const webhook = await createWebhook(key, { url: receiver.url, events: ["invoice.paid"] });
  await api("webhooks/update", {
    action: "update",
    data: { webhook_id: webhook.webhook_id, status: "disabled" },
  }, { key });
  const response = await api("webhooks/test", {
    action: "test",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const delivery = response.body.data;
  assert.equal(delivery.event, "webhook.test");
  assert.equal(delivery.event_id, null);
  assert.equal(delivery.status, "delivered");
  assert.equal(delivery.attempts.length, 1);
  assert.equal(delivery.attempts[0].status_code, 200);
  assert.equal(delivery.attempts[0].manual, true);

  const [request] = receiver.requests();
  const payload = JSON.parse(request.body);
  assert.deepEqual(Object.keys(payload), ["event", "timestamp", "webhook_id", "data"]);
  assert.equal(payload.event, "webhook.test");
  assert.equal(payload.webhook_id, webhook.webhook_id);
  assert.equal(payload.data.test, true);
  assert.equal(request.headers.get("x-bivelio-event"), "webhook.test");
  assert.equal(
    verifyWebhook(
      request.body,
      request.headers.get("x-bivelio-signature")!,
      webhook.signing_secret,
    ),
    true,
  );
  new Webhook(webhook.signing_secret).verify(request.body, headersObject(request.headers));
  assert.equal((await webhookStatus(webhook.webhook_id)).status, "disabled", "still disabled");

  // A failing test answers with the failure and schedules no retry.
  receiver.answer(500);
  const failing = await api("webhooks/test", {
    action: "test",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(failing.body.data.attempts[0].status_code, 500);
  assert.equal(failing.body.data.next_attempt_at, null);
  assert.equal(await jobsOf(failing.body.data.delivery_id), 0);
});

// ---------------------------------------------------------------------------------------
// Targets

test("refused targets at creation: private, link-local, metadata, CGNAT, unique-local, mapped; non-http", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const cases: [string, string, RegExp][] = [
    ["http://10.0.0.1/hook", "forbidden_address", /private address/],
    ["http://192.168.1.10/hook", "forbidden_address", /private address/],
    ["http://169.254.169.254/latest/meta-data", "forbidden_address", /metadata/],
    ["http://169.254.10.1/hook", "forbidden_address", /link-local/],
    ["http://100.64.0.1/hook", "forbidden_address", /CGNAT/],
    ["http://[fd00::1]/hook", "forbidden_address", /unique-local/],
    ["http://[fd00:ec2::254]/", "forbidden_address", /metadata/],
    ["http://[::ffff:10.0.0.1]/hook", "forbidden_address", /private address/],
    ["http://0.0.0.0/hook", "forbidden_address", /unspecified/],
    ["ftp://127.0.0.1/hook", "scheme", /scheme 'ftp'/],
    ["file:///etc/passwd", "scheme", /scheme 'file'/],
    ["http://user:pw@127.0.0.1/hook", "credentials", /credentials/],
    ["not a url", "invalid_url", /not valid/],
  ];
  for (const [url, constraint, message] of cases) {
    const response = await api("webhooks/create", {
      action: "create",
      data: { url, events: ["contact.created"] },
    }, { key });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.deepEqual(response.body.error.details, { field: "url", constraint }, url);
    assert.match(response.body.error.message, message, url);
  }
  // And on update.
  const webhook = await createWebhook(key, validCreate());
  const update = await api("webhooks/update", {
    action: "update",
    data: { webhook_id: webhook.webhook_id, url: "http://169.254.169.254/" },
  }, { key });
  expectError(update, 400, "VALIDATION_ERROR");
  assert.equal(update.body.error.details.field, "url");
  const [{ count }] = await db`
    select count(*)::int as count from public.webhooks where org_id = ${org.orgId}
  `;
  assert.equal(count, 1, "nothing refused was saved");
});

test("live webhooks need https (loopback aside); sandbox ones may use http", async () => {
  const org = await createTestOrg();
  const live = await org.key();
  const sandbox = await org.key({ environment: "test" });
  // A public address, never contacted (no event reaches these webhooks).
  const data = { url: "http://93.184.215.14/hook", events: ["invoice.paid"] };
  const refused = await api("webhooks/create", { action: "create", data }, { key: live });
  expectError(refused, 400, "VALIDATION_ERROR");
  assert.deepEqual(refused.body.error.details, { field: "url", constraint: "https_required" });
  assert.match(refused.body.error.message, /https/);
  const accepted = await api("webhooks/create", { action: "create", data }, { key: sandbox });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
  // The test stack allows loopback targets, over http even for live (BIVELIO_ALLOW_LOOPBACK_TARGETS).
  await createWebhook(live, validCreate());
});

// ---------------------------------------------------------------------------------------
// Isolation

test("isolation: another organization's and the sandbox's events never reach a live webhook", async () => {
  const orgA = await createTestOrg();
  const orgB = await createTestOrg();
  const liveA = await orgA.key();
  const sandboxA = await orgA.key({ environment: "test" });
  const liveB = await orgB.key();
  const receiverLive = receiverPath();
  const receiverSandbox = receiverPath();
  const receiverB = receiverPath();
  const webhookLive = await createWebhook(liveA, {
    url: receiverLive.url,
    events: ["contact.created"],
  });
  const webhookSandbox = await createWebhook(sandboxA, {
    url: receiverSandbox.url,
    events: ["contact.created"],
  });
  const webhookB = await createWebhook(liveB, { url: receiverB.url, events: ["contact.created"] });

  const fromB = await createContact(liveB, "Org B person");
  const fromSandbox = await createContact(sandboxA, "Sandbox person");
  const fromLive = await createContact(liveA, "Live person");

  // Fan-out is in the event's transaction: the deliveries are final once the calls return.
  const eventsFor = async (webhookId: string) =>
    (await db<{ id: string }[]>`
      select e.data ->> 'id' as id from public.webhook_deliveries d
      join public.events e on e.id = d.event_id where d.webhook_id = ${webhookId}
    `).map((row) => row.id);
  assert.deepEqual(await eventsFor(webhookLive.webhook_id), [fromLive.id]);
  assert.deepEqual(await eventsFor(webhookSandbox.webhook_id), [fromSandbox.id]);
  assert.deepEqual(await eventsFor(webhookB.webhook_id), [fromB.id]);

  for (
    const [receiver, expected] of [
      [receiverLive, fromLive],
      [receiverSandbox, fromSandbox],
      [receiverB, fromB],
    ] as const
  ) {
    await receiver.waitForRequests();
    assert.deepEqual(receiver.requests().map((r) => JSON.parse(r.body).data.id), [expected.id]);
  }

  // The API shows each caller only its own webhooks and deliveries.
  const sandboxList = await api("webhooks/list", { action: "list", data: {} }, { key: sandboxA });
  assert.deepEqual(
    sandboxList.body.data.webhooks.map((w: { webhook_id: string }) => w.webhook_id),
    [webhookSandbox.webhook_id],
  );
  const liveDeliveries = await api("webhooks/list_deliveries", {
    action: "list_deliveries",
    data: {},
  }, { key: liveA });
  assert.deepEqual(
    liveDeliveries.body.data.deliveries.map((d: { webhook_id: string }) => d.webhook_id),
    [webhookLive.webhook_id],
  );
  const crossGet = await api("webhooks/get", {
    action: "get",
    data: { webhook_id: webhookLive.webhook_id },
  }, { key: sandboxA });
  expectError(crossGet, 404, "RESOURCE_NOT_FOUND");
  const [liveDelivery] = await deliveriesOf(webhookLive.webhook_id);
  const crossRedeliver = await api("webhooks/redeliver", {
    action: "redeliver",
    data: { delivery_id: liveDelivery.id },
  }, { key: liveB });
  expectError(crossRedeliver, 404, "RESOURCE_NOT_FOUND");
});

test("no response but create's and rotate_secret's holds a secret", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const receiver = receiverPath();
  const webhook = await createWebhook(key, { url: receiver.url, events: ["contact.created"] });
  const rotated = await api("webhooks/rotate_secret", {
    action: "rotate_secret",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  const secrets = [webhook.signing_secret, rotated.body.data.signing_secret];
  await createContact(key);
  const delivery = await afterAttempts(webhook.webhook_id, 1);
  const byId = { webhook_id: webhook.webhook_id };
  const responses = [
    await api("webhooks/list", { action: "list", data: {} }, { key }),
    await api("webhooks/get", { action: "get", data: byId }, { key }),
    await api("webhooks/update", { action: "update", data: { ...byId, description: "d" } }, {
      key,
    }),
    await api("webhooks/list_deliveries", { action: "list_deliveries", data: byId }, { key }),
    await api("webhooks/redeliver", { action: "redeliver", data: { delivery_id: delivery.id } }, {
      key,
    }),
    await api("webhooks/test", { action: "test", data: byId }, { key }),
  ];
  for (const response of responses) {
    assert.equal(response.status, 200, JSON.stringify(response.body));
    const text = JSON.stringify(response.body);
    for (const secret of secrets) assert.ok(!text.includes(secret), text);
    assert.ok(!text.includes("whsec_"), text);
  }
});

test("list and list_deliveries page and filter", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const ok = await createWebhook(key, validCreate());
  const failing = await createWebhook(key, {
    url: receiverPath(500).url,
    events: ["contact.created"],
  });
  await createWebhook(key, validCreate());
  const page = await api("webhooks/list", { action: "list", data: { per_page: 2, page: 2 } }, {
    key,
  });
  assert.deepEqual(page.body.data.pagination, { page: 2, per_page: 2, total: 3, total_pages: 2 });
  assert.equal(page.body.data.webhooks.length, 1);

  await createContact(key);
  await afterAttempts(ok.webhook_id, 1);
  await afterAttempts(failing.webhook_id, 1);
  const pending = await api("webhooks/list_deliveries", {
    action: "list_deliveries",
    data: { status: "pending" },
  }, { key });
  assert.deepEqual(
    pending.body.data.deliveries.map((d: { webhook_id: string }) => d.webhook_id),
    [failing.webhook_id],
  );
  const [retry] = pending.body.data.deliveries;
  assert.equal(retry.attempts[0].status_code, 500);
  assert.equal(retry.next_attempt_at, retry.attempts[0].next_attempt_at);
  const byWebhook = await api("webhooks/list_deliveries", {
    action: "list_deliveries",
    data: { webhook_id: ok.webhook_id, event: "contact.created", per_page: 1 },
  }, { key });
  assert.equal(byWebhook.body.data.pagination.total, 1);
  assert.equal(byWebhook.body.data.deliveries[0].status, "delivered");

  // redeliver on a delivery waiting for its retry moves that retry to now.
  const redelivered = await api("webhooks/redeliver", {
    action: "redeliver",
    data: { delivery_id: retry.delivery_id },
  }, { key });
  assert.equal(redelivered.status, 200);
  const second = await afterAttempts(failing.webhook_id, 2);
  const [attempt] = await db`
    select manual, next_attempt_at - attempted_at as delay from public.webhook_attempts
    where delivery_id = ${second.id} and attempt = 2
  `;
  assert.equal(attempt.manual, false, "still the automatic cycle: attempt 2 of 5");
  assert.equal(attempt.delay, "00:02:00");
});

test("deleting a webhook deletes its deliveries and their queued jobs", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const webhook = await createWebhook(key, {
    url: receiverPath(500).url,
    events: ["contact.created"],
  });
  await createContact(key);
  const delivery = await afterAttempts(webhook.webhook_id, 1);
  assert.equal(await jobsOf(delivery.id), 1, "waiting for its retry");
  const deleted = await api("webhooks/delete", {
    action: "delete",
    data: { webhook_id: webhook.webhook_id },
  }, { key });
  assert.equal(deleted.status, 200);
  assert.equal((await deliveriesOf(webhook.webhook_id)).length, 0);
  assert.equal(await jobsOf(delivery.id), 0);
});

// ---------------------------------------------------------------------------------------
// Concurrent changes: a request that meets a change another transaction is making

test("test on a webhook deleted meanwhile is 404, never a 500", async () => {
  const key = await (await createTestOrg()).key();
  const receiver = receiverPath();
  const webhook = await createWebhook(key, { url: receiver.url, events: ["invoice.paid"] });
  const response = await duringTransaction(
    (tx) => tx`delete from public.webhooks where id = ${webhook.webhook_id}`,
    () =>
      api("webhooks/test", { action: "test", data: { webhook_id: webhook.webhook_id } }, { key }),
  );
  expectError(response, 404, "RESOURCE_NOT_FOUND");
  assert.equal(receiver.requests().length, 0);
});

test("at most 16 webhooks per organization and environment, even when created at once", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const attempts = await Promise.all(
    Array.from(
      { length: MAX_WEBHOOKS_PER_ENVIRONMENT + 4 },
      () => api("webhooks/create", { action: "create", data: validCreate() }, { key }),
    ),
  );
  const created = attempts.filter((r) => r.status === 200);
  assert.equal(created.length, MAX_WEBHOOKS_PER_ENVIRONMENT);
  for (const refused of attempts.filter((r) => r.status !== 200)) {
    expectError(refused, 400, "VALIDATION_ERROR");
    assert.equal(refused.body.error.details.constraint, "max_webhooks");
    assert.equal(refused.body.error.details.max, MAX_WEBHOOKS_PER_ENVIRONMENT);
  }

  // The sandbox has a room of its own.
  await createWebhook(await org.key({ environment: "test" }), validCreate());

  // Deleting one makes room for one.
  await api("webhooks/delete", {
    action: "delete",
    data: { webhook_id: created[0].body.data.webhook_id },
  }, { key });
  await createWebhook(key, validCreate());
  expectError(
    await api("webhooks/create", { action: "create", data: validCreate() }, { key }),
    400,
    "VALIDATION_ERROR",
  );
});
