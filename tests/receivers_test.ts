/**
 * The receiver route kind (shared/platform/receiver.ts) over real HTTP and the real
 * database: a test kind defined here, signed like WhatsApp (`X-Hub-Signature-256:
 * sha256=<hex HMAC-SHA256 of the raw body>`, a GET `hub.challenge`), served by
 * createReceiverApp in this process, with receivers registered for test organizations.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { type RequestClaims, type Tx, withClaims } from "../shared/platform/db.ts";
import { emitEvent } from "../shared/platform/events.ts";
import type { Environment } from "../shared/platform/environment.ts";
import {
  createReceiverApp,
  defineReceiverKind,
  hmacSha256Hex,
  invalidSignature,
  malformedBody,
  parseJsonBody,
  type Receiver,
  registerReceiver,
  timingSafeEqualText,
  updateReceiver,
} from "../shared/platform/receiver.ts";
import { expectError } from "./helpers/negative-cases.ts";
import { api, type ApiResponse, createTestOrg, db, stack, test } from "./helpers/stack.ts";
import { startReceiver } from "./helpers/workflows.ts";

// The shared modules read these lazily, on first use.
Deno.env.set("SUPABASE_DB_URL", stack.db_url);
Deno.env.set("SUPABASE_URL", stack.api_url);
Deno.env.set("BIVELIO_SECRETS_KEY", stack.secrets_key);

// ---------------------------------------------------------------------------------------
// The test kind: `{"messages":[{"id","text"}]}` bodies; each new message is written as a
// `message.received` event of the receiver's organization.

interface Secrets {
  app_secret: string;
  verify_token: string;
}
interface Message {
  id: string;
  text: string;
}

const BODY_LIMIT = 16 * 1024;
/** Every handle() call, to count how often each message was handled. */
const handled: { providerId: string; receiver: Receiver }[] = [];
/** Texts whose handling fails (a handler bug or an outage): the delivery must roll back. */
const failingTexts = new Set<string>();

const signedKind = defineReceiverKind<Secrets, Message>({
  kind: "signed_test",
  bodyLimit: BODY_LIMIT,
  verify({ url, secrets }) {
    const token = url.searchParams.get("hub.verify_token") ?? "";
    if (
      url.searchParams.get("hub.mode") !== "subscribe" ||
      !timingSafeEqualText(token, secrets.verify_token)
    ) {
      throw invalidSignature();
    }
    return new Response(url.searchParams.get("hub.challenge"), {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  },
  authenticate({ headers, rawBody, secrets }) {
    const expected = `sha256=${hmacSha256Hex(secrets.app_secret, rawBody)}`;
    return timingSafeEqualText(headers.get("x-hub-signature-256") ?? "", expected);
  },
  parse(rawBody) {
    const body = parseJsonBody(rawBody) as { messages?: unknown };
    const messages = body?.messages;
    if (
      !Array.isArray(messages) ||
      !messages.every((m) => typeof m?.id === "string" && typeof m?.text === "string")
    ) {
      throw malformedBody("Expected {messages: [{id, text}]}.");
    }
    return (messages as Message[]).map((m) => ({ providerId: m.id, payload: m }));
  },
  async handle(tx, item, receiver) {
    handled.push({ providerId: item.providerId, receiver });
    if (item.payload.text === "slow") await tx`select pg_sleep(0.2)`;
    if (failingTexts.has(item.payload.text)) throw new Error("the handler failed");
    await emitEvent(tx, "message.received", {
      message_id: item.providerId,
      text: item.payload.text,
      receiver_id: receiver.id,
    });
  },
});

/** Another kind, without GET verification: its receivers are not signed_test's. */
const otherKind = defineReceiverKind<Secrets, Message>({
  kind: "other_test",
  authenticate: () => true,
  parse: () => [],
  handle: async () => {},
});

const app = createReceiverApp([signedKind, otherKind]);
const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
// Left open for every test of this file; it does not keep the process alive.
server.unref();
const base = `http://127.0.0.1:${server.addr.port}/v1/receivers`;

// ---------------------------------------------------------------------------------------
// Helpers

const claimsOf = (orgId: string, environment: Environment = "live"): RequestClaims => ({
  role: "authenticated",
  org_id: orgId,
  environment,
});

/** Runs `fn` acting for the organization (RLS applies), as the API does. */
const asOrg = <T>(orgId: string, fn: (tx: Tx) => Promise<T>, environment: Environment = "live") =>
  withClaims(claimsOf(orgId, environment), fn);

interface TestReceiver {
  id: string;
  url: string;
  orgId: string;
  secrets: Secrets;
}

async function newReceiver(
  orgId: string,
  environment: Environment = "live",
  kind = signedKind,
): Promise<TestReceiver> {
  const secrets = {
    app_secret: `app-${crypto.randomUUID()}`,
    verify_token: `verify-${crypto.randomUUID()}`,
  };
  const { id, url } = await asOrg(
    orgId,
    (tx) => registerReceiver(tx, { kind, secrets }),
    environment,
  );
  return { id, url, orgId, secrets };
}

const sign = (secret: string, body: string | Uint8Array) =>
  `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;

async function deliver(
  path: string,
  body: BodyInit,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  const response = await fetch(`${base}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // left as text
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** POSTs `body` to the receiver, signed with its own app secret. */
const deliverSigned = (receiver: TestReceiver, body: string, kind = "signed_test") =>
  deliver(`${kind}/${receiver.id}`, body, {
    "x-hub-signature-256": sign(receiver.secrets.app_secret, body),
  });

const messages = (...list: Message[]) => JSON.stringify({ messages: list });
const uniqueId = (label: string) => `wamid.${label}.${crypto.randomUUID()}`;

/** The message.received events' data of a receiver, as its organization sees them (RLS). */
const eventsSeenBy = async (orgId: string, receiverId: string) =>
  (await asOrg(orgId, (tx) =>
    tx<{ data: { message_id: string; text: string } }[]>`
      select data from public.events
      where type = 'message.received' and data ->> 'receiver_id' = ${receiverId}
      order by seq
    `)).map((event) => event.data);

/** Dedup rows of a receiver (service connection: for inspection only). */
const dedupRows = async (receiverId: string) =>
  (await db`select provider_id from private.received_updates where receiver_id = ${receiverId}`)
    .map((row) => row.provider_id as string);

const handledCount = (providerId: string) =>
  handled.filter((h) => h.providerId === providerId).length;

// ---------------------------------------------------------------------------------------

test("receivers: a good signature is handled once, in the receiver's organization", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  assert.match(receiver.id, /^rcv_[0-9a-f]{32}$/);
  assert.equal(receiver.url, `${stack.api_url}/functions/v1/receivers/signed_test/${receiver.id}`);

  const id = uniqueId("good");
  const response = await deliverSigned(receiver, messages({ id, text: "hello" }));
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.deepEqual(response.body, {
    success: true,
    data: { updates: 1, handled: 1, duplicates: 0 },
  });
  assert.ok(response.headers.get("x-request-id"));

  const [call] = handled.filter((h) => h.providerId === id);
  assert.deepEqual(call.receiver, {
    id: receiver.id,
    kind: "signed_test",
    orgId: org.orgId,
    environment: "live",
  });
  assert.deepEqual(await eventsSeenBy(org.orgId, receiver.id), [
    { message_id: id, text: "hello", receiver_id: receiver.id },
  ]);
  assert.deepEqual(await dedupRows(receiver.id), [id]);

  // Sealed in the database: the secrets are not there in clear.
  const [row] = await db`select * from private.receivers where id = ${receiver.id}`;
  assert.match(row.sealed_secrets, /^v1\./);
  assert.ok(!JSON.stringify(row).includes(receiver.secrets.app_secret));
  assert.equal(row.org_id, org.orgId);
  assert.equal(row.status, "active");
});

test("receivers: what a handler emits reaches the organization's webhooks", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const endpoint = startReceiver();
  try {
    const created = await api("webhooks/create", {
      action: "create",
      data: { url: endpoint.url, events: ["message.received"] },
    }, { key: await org.key() });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const id = uniqueId("webhook");
    assert.equal((await deliverSigned(receiver, messages({ id, text: "hook" }))).status, 200);

    const deadline = Date.now() + 10_000;
    while (endpoint.requests.length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const [request] = endpoint.requests;
    assert.ok(request, "the webhook was called");
    const payload = JSON.parse(request.body);
    assert.equal(payload.event, "message.received");
    assert.deepEqual(payload.data, { message_id: id, text: "hook", receiver_id: receiver.id });
  } finally {
    await endpoint.close();
  }
});

test("receivers: the same update delivered twice, or twice in one body, is handled once", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const id = uniqueId("twice");
  const body = messages({ id, text: "once" });

  assert.equal((await deliverSigned(receiver, body)).body.data.handled, 1);
  const again = await deliverSigned(receiver, body);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body.data, { updates: 1, handled: 0, duplicates: 1 });

  // A batch repeating an id, beside a new one and the one already seen.
  const fresh = uniqueId("batch");
  const batch = await deliverSigned(
    receiver,
    messages({ id: fresh, text: "a" }, { id: fresh, text: "a" }, { id, text: "once" }),
  );
  assert.deepEqual(batch.body.data, { updates: 3, handled: 1, duplicates: 2 });

  assert.equal(handledCount(id), 1);
  assert.equal(handledCount(fresh), 1);
  assert.deepEqual(
    (await eventsSeenBy(org.orgId, receiver.id)).map((e) => e.message_id),
    [id, fresh],
  );
});

test("receivers: concurrent deliveries of the same update are handled once", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const id = uniqueId("concurrent");
  // A slow handler keeps the first transaction open while the others arrive.
  const body = messages({ id, text: "slow" });
  const answers = await Promise.all(
    Array.from({ length: 6 }, () => deliverSigned(receiver, body)),
  );
  for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answers.reduce((sum, a) => sum + a.body.data.handled, 0), 1);
  assert.equal(answers.reduce((sum, a) => sum + a.body.data.duplicates, 0), 5);
  assert.equal(handledCount(id), 1);
  assert.equal((await eventsSeenBy(org.orgId, receiver.id)).length, 1);

  // Two batches sharing ids in opposite orders, at once: no deadlock, each id once.
  const [x, y] = [uniqueId("x"), uniqueId("y")];
  const both = await Promise.all([
    deliverSigned(receiver, messages({ id: x, text: "slow" }, { id: y, text: "b" })),
    deliverSigned(receiver, messages({ id: y, text: "slow" }, { id: x, text: "b" })),
  ]);
  for (const answer of both) assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(both.reduce((sum, a) => sum + a.body.data.handled, 0), 2);
  assert.equal(handledCount(x) + handledCount(y), 2);
});

test("receivers: a bad, missing or reused signature is 401 and stores nothing", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const other = await newReceiver(org.orgId);
  const id = uniqueId("unsigned");
  const body = messages({ id, text: "forged" });
  const altered = messages({ id, text: "forgeD" });

  const attempts: [string, Record<string, string>][] = [
    ["missing", {}],
    ["empty", { "x-hub-signature-256": "" }],
    ["garbage", { "x-hub-signature-256": "sha256=nothex" }],
    ["another receiver's secret", {
      "x-hub-signature-256": sign(other.secrets.app_secret, body),
    }],
    ["the verify token as key", {
      "x-hub-signature-256": sign(receiver.secrets.verify_token, body),
    }],
    ["without the sha256= prefix", {
      "x-hub-signature-256": sign(receiver.secrets.app_secret, body).slice(7),
    }],
  ];
  for (const [label, headers] of attempts) {
    const response = await deliver(`signed_test/${receiver.id}`, body, headers);
    expectError(response, 401, "AUTH_INVALID_TOKEN");
    assert.ok(!JSON.stringify(response.body).includes(receiver.secrets.app_secret), label);
  }
  // Checked before the body is parsed: an unsigned malformed body is a 401, not a 400.
  expectError(await deliver(`signed_test/${receiver.id}`, "not json"), 401, "AUTH_INVALID_TOKEN");
  // A captured signature replayed with an altered body.
  const replayed = await deliver(`signed_test/${receiver.id}`, altered, {
    "x-hub-signature-256": sign(receiver.secrets.app_secret, body),
  });
  expectError(replayed, 401, "AUTH_INVALID_TOKEN");

  assert.equal(handledCount(id), 0);
  assert.deepEqual(await dedupRows(receiver.id), []);
  assert.deepEqual(await eventsSeenBy(org.orgId, receiver.id), []);
  // The genuine delivery afterwards is still new.
  assert.equal((await deliverSigned(receiver, body)).body.data.handled, 1);
});

test("receivers: the raw bytes are what is signed, not a re-serialisation of the JSON", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const id = uniqueId("raw");
  // Spaces, a newline, key order and an escape that JSON.stringify would write otherwise.
  const raw = `{ "messages" : [ { "text" : "caf\\u00e9 ✓", "id" : "${id}" } ]\n}`;
  const reserialised = JSON.stringify(JSON.parse(raw));
  assert.notEqual(raw, reserialised);

  const wrong = await deliver(`signed_test/${receiver.id}`, raw, {
    "x-hub-signature-256": sign(receiver.secrets.app_secret, reserialised),
  });
  expectError(wrong, 401, "AUTH_INVALID_TOKEN");

  const right = await deliverSigned(receiver, raw);
  assert.equal(right.status, 200, JSON.stringify(right.body));
  assert.equal(right.body.data.handled, 1);
  assert.deepEqual((await eventsSeenBy(org.orgId, receiver.id))[0].text, "café ✓");
});

test("receivers: a malformed body with a good signature is 400 and stores nothing", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  for (
    const body of [
      "not json",
      '{"messages":"nope"}',
      '{"messages":[{"id":"","text":"x"}]}',
      '{"messages":[{"id":"a\\u0000b","text":"x"}]}',
      '{"messages":[{"id":"\\ud800","text":"x"}]}',
      JSON.stringify({ messages: [{ id: "x".repeat(1001), text: "x" }] }),
    ]
  ) {
    expectError(await deliverSigned(receiver, body), 400, "VALIDATION_ERROR");
  }
  const invalidUtf8 = new Uint8Array([0x7b, 0xff, 0x7d]) as Uint8Array<ArrayBuffer>;
  expectError(
    await deliver(`signed_test/${receiver.id}`, invalidUtf8, {
      "x-hub-signature-256": sign(receiver.secrets.app_secret, invalidUtf8),
    }),
    400,
    "VALIDATION_ERROR",
  );
  assert.deepEqual(await dedupRows(receiver.id), []);
});

test("receivers: a failing handler is a 500 and its update is not marked received", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const text = `fails-${crypto.randomUUID()}`;
  failingTexts.add(text);
  const id = uniqueId("failing");
  const body = messages({ id: uniqueId("before"), text: "ok" }, { id, text });

  const failed = await deliverSigned(receiver, body);
  expectError(failed, 500, "INTERNAL_ERROR");
  // Both updates rolled back, the one handled before the failure too.
  assert.deepEqual(await dedupRows(receiver.id), []);
  assert.deepEqual(await eventsSeenBy(org.orgId, receiver.id), []);

  // The provider's retry, once the handler works, is handled.
  failingTexts.delete(text);
  const retried = await deliverSigned(receiver, body);
  assert.deepEqual(retried.body.data, { updates: 2, handled: 2, duplicates: 0 });
  assert.equal((await eventsSeenBy(org.orgId, receiver.id)).length, 2);
});

test("receivers: GET verification answers the challenge only with the right verify token", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const query = (token: string | null, mode = "subscribe") => {
    const params = new URLSearchParams({ "hub.mode": mode, "hub.challenge": "1158201444" });
    if (token !== null) params.set("hub.verify_token", token);
    return `${base}/signed_test/${receiver.id}?${params}`;
  };

  const ok = await fetch(query(receiver.secrets.verify_token));
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.ok(ok.headers.get("x-request-id"));
  assert.equal(await ok.text(), "1158201444");

  for (
    const url of [
      query("wrong"),
      query(null),
      query(""),
      query(receiver.secrets.app_secret),
      query(receiver.secrets.verify_token, "unsubscribe"),
    ]
  ) {
    const response = await fetch(url);
    const body = await response.json();
    assert.equal(response.status, 401);
    assert.equal(body.error.code, "AUTH_INVALID_TOKEN");
    assert.ok(!JSON.stringify(body).includes("1158201444"));
  }

  // Another organization's receiver does not accept this one's token.
  const stranger = await newReceiver((await createTestOrg()).orgId);
  const cross = await fetch(
    `${base}/signed_test/${stranger.id}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=${receiver.secrets.verify_token}`,
  );
  assert.equal(cross.status, 401);
  await cross.body?.cancel();

  // A kind without verification: 405, and no challenge is answered.
  const plain = await newReceiver(org.orgId, "live", otherKind);
  const noVerify = await fetch(`${base}/other_test/${plain.id}?hub.challenge=1`);
  assert.equal(noVerify.status, 405);
  assert.equal((await noVerify.json()).error.code, "METHOD_NOT_ALLOWED");
});

test("receivers: unknown, malformed, other kind's and disabled receivers are 404 alike", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const ofOtherKind = await newReceiver(org.orgId, "live", otherKind);
  const body = messages({ id: uniqueId("nf"), text: "x" });
  const signature = { "x-hub-signature-256": sign(receiver.secrets.app_secret, body) };
  const notFound = async (path: string) => {
    const response = await deliver(path, body, signature);
    expectError(response, 404, "RESOURCE_NOT_FOUND");
    assert.equal(response.body.error.details, undefined, "no detail leaked");
    return response.body.error.message;
  };

  await notFound(`signed_test/rcv_${crypto.randomUUID().replaceAll("-", "")}`);
  await notFound(`signed_test/not-an-id`);
  await notFound(`signed_test/${receiver.id}x`);
  await notFound(`unknown_kind/${receiver.id}`);
  await notFound(`signed_test/${ofOtherKind.id}`);
  await notFound(`signed_test`);
  // The other kind's URL does not reach this receiver either.
  await notFound(`other_test/${receiver.id}`);

  // Disabled: 404 for POST and GET, with nothing stored; enabled again: received.
  assert.equal(
    await asOrg(org.orgId, (tx) => updateReceiver(tx, receiver.id, { status: "disabled" })),
    true,
  );
  await notFound(`signed_test/${receiver.id}`);
  const verify = await fetch(
    `${base}/signed_test/${receiver.id}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=${receiver.secrets.verify_token}`,
  );
  assert.equal(verify.status, 404);
  await verify.body?.cancel();
  assert.deepEqual(await dedupRows(receiver.id), []);

  // Only the receiver's own organization can change it.
  const stranger = await createTestOrg();
  assert.equal(
    await asOrg(stranger.orgId, (tx) => updateReceiver(tx, receiver.id, { status: "active" })),
    false,
  );
  await notFound(`signed_test/${receiver.id}`);
  await asOrg(org.orgId, (tx) => updateReceiver(tx, receiver.id, { status: "active" }));
  assert.equal((await deliver(`signed_test/${receiver.id}`, body, signature)).status, 200);

  // Other methods: 405.
  const put = await fetch(`${base}/signed_test/${receiver.id}`, { method: "PUT", body });
  assert.equal(put.status, 405);
  await put.body?.cancel();
});

test("receivers: new secrets replace the old ones at once", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const secrets = { app_secret: `new-${crypto.randomUUID()}`, verify_token: "v" };
  await asOrg(org.orgId, (tx) => updateReceiver(tx, receiver.id, { secrets }));
  const body = messages({ id: uniqueId("rotated"), text: "x" });
  expectError(await deliverSigned(receiver, body), 401, "AUTH_INVALID_TOKEN");
  const response = await deliverSigned({ ...receiver, secrets }, body);
  assert.equal(response.status, 200);
});

test("receivers: a body over the kind's limit is 413, declared or chunked", async () => {
  const org = await createTestOrg();
  const receiver = await newReceiver(org.orgId);
  const big = messages({ id: uniqueId("big"), text: "x".repeat(BODY_LIMIT) });
  const declared = await deliverSigned(receiver, big);
  expectError(declared, 413, "PAYLOAD_TOO_LARGE");
  assert.equal(declared.body.error.details.limit_bytes, BODY_LIMIT);

  const bytes = new TextEncoder().encode(big);
  const chunked = new ReadableStream<Uint8Array>({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 1024) controller.enqueue(bytes.slice(i, i + 1024));
      controller.close();
    },
  });
  expectError(
    await deliver(`signed_test/${receiver.id}`, chunked, {
      "x-hub-signature-256": sign(receiver.secrets.app_secret, bytes),
    }),
    413,
    "PAYLOAD_TOO_LARGE",
  );
  assert.deepEqual(await dedupRows(receiver.id), []);

  // Just under the limit is taken.
  const text = "x".repeat(BODY_LIMIT - 200);
  const fits = messages({ id: uniqueId("fits"), text });
  assert.ok(new TextEncoder().encode(fits).length <= BODY_LIMIT);
  assert.equal((await deliverSigned(receiver, fits)).status, 200);
});

test("receivers: org A's receiver never writes into org B, nor live into the sandbox", async () => {
  const [a, b] = [await createTestOrg(), await createTestOrg()];
  const receiverA = await newReceiver(a.orgId);
  const receiverB = await newReceiver(b.orgId);
  const sandboxA = await newReceiver(a.orgId, "test");

  const idA = uniqueId("a");
  const idB = uniqueId("b");
  const idSandbox = uniqueId("sandbox");
  assert.equal((await deliverSigned(receiverA, messages({ id: idA, text: "for A" }))).status, 200);
  assert.equal((await deliverSigned(receiverB, messages({ id: idB, text: "for B" }))).status, 200);
  assert.equal(
    (await deliverSigned(sandboxA, messages({ id: idSandbox, text: "sandbox" }))).status,
    200,
  );
  // The same provider id at two receivers is two updates (ids are per receiver).
  assert.equal(
    (await deliverSigned(receiverB, messages({ id: idA, text: "for B too" }))).body.data.handled,
    1,
  );

  const seen = async (orgId: string, environment: Environment) =>
    (await asOrg(orgId, (tx) =>
      tx<{ data: { message_id: string } }[]>`
        select data from public.events where type = 'message.received' order by seq
      `, environment)).map((e) => e.data.message_id);
  assert.deepEqual(await seen(a.orgId, "live"), [idA]);
  assert.deepEqual(await seen(a.orgId, "test"), [idSandbox]);
  assert.deepEqual(await seen(b.orgId, "live"), [idB, idA]);
  assert.deepEqual(await seen(b.orgId, "test"), []);
  assert.deepEqual(
    handled.filter((h) => h.providerId === idSandbox).map((h) => h.receiver.environment),
    ["test"],
  );

  // Dedup rows are the organization's own too: B cannot see A's.
  const visible = await asOrg(
    b.orgId,
    (tx) =>
      tx`select provider_id from private.received_updates where receiver_id = ${receiverA.id}`,
  );
  assert.equal(visible.length, 0);
  // ... nor record one for A's receiver (the foreign key keeps org and receiver together).
  await assert.rejects(
    asOrg(b.orgId, (tx) =>
      tx`insert into private.received_updates (receiver_id, provider_id)
         values (${receiverA.id}, 'forged')`),
    /violates foreign key constraint/,
  );
});

test("receivers: registering needs a caller acting for an organization; rows are service-only", async () => {
  const org = await createTestOrg();
  // As `authenticated` the table itself is out of reach: only the functions act on it.
  await assert.rejects(
    asOrg(org.orgId, (tx) => tx`select * from private.receivers`),
    /permission denied/,
  );
  await assert.rejects(
    db.begin(async (tx) => {
      await tx`set local role authenticated`;
      await tx`select private.register_receiver('signed_test', 'v1.a.b')`;
    }),
    /acting for an organization/,
  );
});

test("receivers: dedup rows are purged after 7 days, sandbox receivers after 24 hours with the sandbox data, all with their organization", async () => {
  const org = await createTestOrg();
  const live = await newReceiver(org.orgId);
  const sandbox = await newReceiver(org.orgId, "test");
  const [oldId, recentId] = [uniqueId("old"), uniqueId("recent")];
  await deliverSigned(live, messages({ id: oldId, text: "old" }, { id: recentId, text: "new" }));
  await db`update private.received_updates set received_at = now() - interval '7 days 1 minute'
           where receiver_id = ${live.id} and provider_id = ${oldId}`;
  await db`update private.receivers set created_at = now() - interval '25 hours'
           where id in (${live.id}, ${sandbox.id})`;

  await db`select private.purge_receiver_data()`;
  await db`select private.purge_expired_data()`;
  assert.deepEqual(await dedupRows(live.id), [recentId]);
  const left = await db`select id from private.receivers where id in (${live.id}, ${sandbox.id})`;
  assert.deepEqual(left.map((r) => r.id), [live.id]);
  const [job] = await db`select schedule from cron.job
                         where jobname = 'bivelio-purge-receiver-data'`;
  assert.equal(job.schedule, "*/10 * * * *");

  await db`delete from public.organizations where id = ${org.orgId}`;
  assert.equal((await db`select from private.receivers where id = ${live.id}`).length, 0);
  assert.deepEqual(await dedupRows(live.id), []);
});

test("receivers: the receivers function is deployed behind the gateway", async () => {
  const response = await fetch(
    `${stack.api_url}/v1/receivers/whatsapp/rcv_${"0".repeat(32)}`,
    { method: "POST", body: "{}" },
  );
  assert.equal(response.status, 404);
  const body = await response.json();
  assert.equal(body.error.code, "RESOURCE_NOT_FOUND");
  assert.match(body.error.message, /No receiver at/);
});
