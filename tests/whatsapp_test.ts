/**
 * The WhatsApp channel against the stack's WhatsApp Cloud API stand-in
 * (local/stand-ins/whatsapp.ts, a separate process): the real client (shared/messages/
 * channels/whatsapp.ts) sending texts and templates, WhatsApp's errors mapped with its own
 * codes, a bad token; and inbound traffic through the stack's receivers function: Meta's GET
 * verification, callbacks signed (or not) with the app secret, duplicates, statuses.
 * Each test registers its own number in the stand-in, so tests never share scripts or logs.
 */
// The channel registry first: inbound.ts → messages.ts → channels.ts → the channel is an
// import cycle that only resolves when the registry is evaluated before the channel.
import "../shared/messages/channels.ts";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { ChannelError } from "../shared/messages/channel.ts";
import { whatsapp, type WhatsAppCredentials } from "../shared/messages/channels/whatsapp.ts";
import { ApiError } from "../shared/platform/errors.ts";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";

const standInUrl = stack.whatsapp.base_url;
// The client reads these lazily, on each call.
Deno.env.set("WHATSAPP_API_BASE_URL", standInUrl);
Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", "1");

// ---------------------------------------------------------------------------------------
// Helpers

// deno-lint-ignore no-explicit-any
async function standIn(path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${standInUrl}/_standin/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.equal(response.status, 200, `stand-in ${path}`);
  return await response.json();
}

const randomDigits = (n: number) =>
  Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => String(b % 10)).join("");

/** A number of its own in the stand-in, and credentials for it. */
async function newNumber(
  webhook?: { receiver_url: string; app_secret: string },
): Promise<WhatsAppCredentials> {
  const credentials = whatsapp.credentials.parse({
    phone_number_id: `2${randomDigits(14)}`,
    access_token: `EAAG${crypto.randomUUID().replaceAll("-", "")}`,
    app_secret: `app-${crypto.randomUUID()}`,
    verify_token: `verify-${crypto.randomUUID()}`,
    display_phone_number: `+1 555 ${randomDigits(3)} ${randomDigits(4)}`,
  });
  await standIn("numbers", {
    phone_number_id: credentials.phone_number_id,
    access_token: credentials.access_token,
    display_phone_number: credentials.display_phone_number,
    verified_name: "Test Shop",
    ...(webhook ? { webhook } : {}),
  });
  return credentials;
}

const requestsOf = async (phoneNumberId: string) =>
  (await standIn(`requests?phone_number_id=${phoneNumberId}`)).requests;

/** The ChannelError a call fails with. */
async function channelFailure(call: Promise<unknown>): Promise<ChannelError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof ChannelError, `a ChannelError, got ${error}`);
    return error;
  }
  throw new assert.AssertionError({ message: "the call succeeded" });
}

const text = (body: string) => ({ to: "34612345678", type: "text" as const, body });

// ---------------------------------------------------------------------------------------
// The client

test("whatsapp client: a text is the Cloud API's request, and its wamid comes back", async () => {
  const credentials = await newNumber();
  const sent = await whatsapp.send(credentials, text("Hola María 👋"), {});
  assert.match(sent.providerMessageId, /^wamid\.[A-Za-z0-9+/]+$/);
  assert.equal(sent.from, credentials.display_phone_number);

  const [request] = await requestsOf(credentials.phone_number_id);
  assert.equal(request.method, "POST");
  assert.equal(request.path, `/v21.0/${credentials.phone_number_id}/messages`);
  assert.equal(request.tokenAccepted, true, "the token went as Bearer");
  assert.equal(request.headers["content-type"], "application/json");
  assert.deepEqual(request.body, {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: "34612345678",
    type: "text",
    text: { preview_url: false, body: "Hola María 👋" },
  });
  const [accepted] = (await standIn(`messages?phone_number_id=${credentials.phone_number_id}`))
    .messages;
  assert.equal(accepted.id, sent.providerMessageId);
  assert.equal(accepted.to, "34612345678");
});

test("whatsapp client: a template with its language and components", async () => {
  const credentials = await newNumber();
  const components = [{ type: "body", parameters: [{ type: "text", text: "ORD-1042" }] }];
  const sent = await whatsapp.send(credentials, {
    to: "34612345678",
    type: "template",
    template: { name: "order_update", language: "es", components },
  }, {});
  assert.match(sent.providerMessageId, /^wamid\./);
  const [request] = await requestsOf(credentials.phone_number_id);
  assert.deepEqual(request.body, {
    messaging_product: "whatsapp",
    recipient_type: "individual",
    to: "34612345678",
    type: "template",
    template: { name: "order_update", language: { code: "es" }, components },
  });
});

test("whatsapp client: WhatsApp's errors keep its code and message; rate limits are retryable", async () => {
  const credentials = await newNumber();
  const cases: [number, boolean, RegExp][] = [
    [131047, false, /Re-engagement message.*24 hours/],
    [130429, true, /Rate limit hit.*throughput/],
    [131056, true, /pair rate limit/],
    [131026, false, /Message Undeliverable/],
    [132001, false, /Template name does not exist/],
    [131000, true, /Something went wrong/], // HTTP 500
  ];
  await standIn("script", {
    phone_number_id: credentials.phone_number_id,
    errors: cases.map(([code]) => ({ code })),
  });
  for (const [code, retryable, message] of cases) {
    const error = await channelFailure(whatsapp.send(credentials, text("hi"), {}));
    assert.equal(error.channel, "whatsapp");
    assert.equal(error.providerCode, code);
    assert.equal(error.retryable, retryable, String(code));
    assert.match(error.providerMessage, message);
    const apiError = error.toApiError();
    assert.equal(apiError.status, 502);
    assert.equal(apiError.code, "INTEGRATION_ERROR");
    assert.deepEqual(apiError.options.details, {
      provider: "whatsapp",
      provider_code: code,
      provider_message: error.providerMessage,
      retryable,
    });
  }
  // The script is used up: the next send goes through.
  assert.match((await whatsapp.send(credentials, text("hi"), {})).providerMessageId, /^wamid/);
});

test("whatsapp client: a bad token is WhatsApp's 190; another number's token does not reach this one", async () => {
  const credentials = await newNumber();
  const other = await newNumber();
  const badToken = { ...credentials, access_token: "EAAGnot-a-token" };
  const refused = await channelFailure(whatsapp.send(badToken, text("hi"), {}));
  assert.equal(refused.providerCode, 190);
  assert.equal(refused.retryable, false);
  assert.match(refused.providerMessage, /access token/);
  assert.ok(!refused.providerMessage.includes("EAAGnot-a-token"));
  assert.equal((await channelFailure(whatsapp.test(badToken, {}))).providerCode, 190);

  const crossed = { ...credentials, access_token: other.access_token };
  const error = await channelFailure(whatsapp.send(crossed, text("hi"), {}));
  assert.equal(error.providerCode, 100);
  assert.match(error.providerMessage, /does not exist/);
  assert.equal(
    (await standIn(`messages?phone_number_id=${credentials.phone_number_id}`))
      .messages.length,
    0,
  );
});

test("whatsapp client: test() proves the token and reads the number", async () => {
  const credentials = await newNumber();
  assert.deepEqual(await whatsapp.test(credentials, {}), {
    phone_number_id: credentials.phone_number_id,
    display_phone_number: credentials.display_phone_number,
    verified_name: "Test Shop",
  });
  const [request] = await requestsOf(credentials.phone_number_id);
  assert.equal(request.method, "GET");
  assert.equal(request.path, `/v21.0/${credentials.phone_number_id}`);
  assert.equal(request.tokenAccepted, true);
});

test("whatsapp client: bodies over 4096 characters are refused before anything is sent", async () => {
  const credentials = await newNumber();
  // 4096 characters (emoji count as one each, though they are two UTF-16 units) is taken.
  const longest = "👍".repeat(4096);
  await whatsapp.send(credentials, text(longest), {});
  await assert.rejects(
    whatsapp.send(credentials, text(`${longest}x`), {}),
    (error: unknown) =>
      error instanceof ApiError && error.code === "VALIDATION_ERROR" &&
      error.options.details?.field === "message.body",
  );
  await assert.rejects(
    whatsapp.send(credentials, { to: "34612345678", type: "template" }, {}),
    (error: unknown) => error instanceof ApiError && error.code === "VALIDATION_ERROR",
  );
  assert.equal((await requestsOf(credentials.phone_number_id)).length, 1);
});

test("whatsapp client: unreachable is retryable; cancelled after sending is not", async () => {
  const credentials = await newNumber();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  Deno.env.set("WHATSAPP_API_BASE_URL", `http://127.0.0.1:${closedPort}`);
  try {
    const error = await channelFailure(whatsapp.send(credentials, text("hi"), {}));
    assert.equal(error.providerCode, null);
    assert.equal(error.retryable, true);
  } finally {
    Deno.env.set("WHATSAPP_API_BASE_URL", standInUrl);
  }

  await standIn("script", {
    phone_number_id: credentials.phone_number_id,
    errors: [{ delay_ms: 5_000 }],
  });
  const controller = new AbortController();
  const call = channelFailure(
    whatsapp.send(credentials, text("slow"), { signal: controller.signal }),
  );
  // Abort once the stand-in holds the request.
  while ((await requestsOf(credentials.phone_number_id)).length === 0) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  controller.abort();
  const error = await call;
  assert.equal(error.providerCode, null);
  assert.equal(error.retryable, false, "it may have been accepted: not sent again blindly");
  assert.match(error.providerMessage, /cancelled/);
});

// ---------------------------------------------------------------------------------------
// Inbound, through the stack's receivers function

interface Connected {
  orgId: string;
  key: string;
  integrationId: string;
  inboundUrl: string;
  credentials: WhatsAppCredentials;
}

/** A test organization with a WhatsApp integration for a number of its own. */
async function connectWhatsApp(options: { autoStatuses?: boolean } = {}): Promise<Connected> {
  const org = await createTestOrg();
  const key = await org.key();
  const credentials = await newNumber();
  const connected = await api("integrations/connect", {
    action: "connect",
    data: {
      provider: "whatsapp",
      credentials: {
        phone_number_id: credentials.phone_number_id,
        access_token: credentials.access_token,
        app_secret: credentials.app_secret,
        verify_token: credentials.verify_token,
        display_phone_number: credentials.display_phone_number,
      },
    },
  }, { key });
  assert.equal(connected.status, 200, JSON.stringify(connected.body));
  const inboundUrl: string = connected.body.data.inbound_url;
  assert.match(inboundUrl, /\/receivers\/whatsapp\/rcv_[0-9a-f]{32}$/);
  if (options.autoStatuses) {
    // The same number again, now sending sent/delivered callbacks to the receiver itself.
    await standIn("numbers", {
      phone_number_id: credentials.phone_number_id,
      access_token: credentials.access_token,
      display_phone_number: credentials.display_phone_number,
      webhook: { receiver_url: inboundUrl, app_secret: credentials.app_secret },
    });
  }
  return {
    orgId: org.orgId,
    key,
    integrationId: connected.body.data.id,
    inboundUrl,
    credentials,
  };
}

const sendMessage = (key: string, data: Record<string, unknown>) =>
  api("messages/send", { action: "send", data }, { key });

/** A customer's message, delivered by the stand-in (signed with the app secret unless told). */
// deno-lint-ignore no-explicit-any
function deliverInbound(to: Connected, fields: Record<string, unknown>): Promise<any> {
  return standIn("inbound", {
    receiver_url: to.inboundUrl,
    app_secret: to.credentials.app_secret,
    phone_number_id: to.credentials.phone_number_id,
    from: "34612345678",
    name: "María García",
    ...fields,
  });
}

const storedMessages = (orgId: string) =>
  db<
    {
      provider_message_id: string;
      direction: string;
      body: string;
      from: string;
      to: string;
      status: string;
      contact_id: string | null;
    }[]
  >`
    select provider_message_id, direction, body, "from", "to", status, contact_id
    from public.messages where org_id = ${orgId} order by created_at, id
  `;

const receivedEvents = (orgId: string) =>
  db<{ data: { id: string; body: string } }[]>`
    select data from public.events where org_id = ${orgId} and type = 'message.received'
    order by seq
  `;

test("whatsapp receiver: Meta's GET verification answers the challenge only with the verify token", async () => {
  const connected = await connectWhatsApp();
  const verify = (params: Record<string, string>) =>
    fetch(`${connected.inboundUrl}?${new URLSearchParams(params)}`);

  const ok = await verify({
    "hub.mode": "subscribe",
    "hub.verify_token": connected.credentials.verify_token!,
    "hub.challenge": "1158201444",
  });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await ok.text(), "1158201444");

  for (
    const params of <Record<string, string>[]> [
      { "hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1" },
      { "hub.mode": "subscribe", "hub.challenge": "1" },
      {
        "hub.mode": "subscribe",
        "hub.verify_token": connected.credentials.app_secret,
        "hub.challenge": "1",
      },
      {
        "hub.mode": "unsubscribe",
        "hub.verify_token": connected.credentials.verify_token!,
        "hub.challenge": "1",
      },
    ]
  ) {
    const response = await verify(params);
    assert.equal(response.status, 401, JSON.stringify(params));
    const body = await response.json();
    assert.equal(body.error.code, "AUTH_INVALID_TOKEN");
  }
});

test("whatsapp receiver: a signed message is stored once with its sender, even delivered twice", async () => {
  const connected = await connectWhatsApp();
  const messageId = `wamid.inbound-${crypto.randomUUID()}`;
  const first = await deliverInbound(connected, { message_id: messageId, text: "¿Abrís hoy?" });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.deepEqual(first.body.data, { updates: 1, handled: 1, duplicates: 0 });
  // Meta delivers again (it retries whatever it thinks was not taken).
  const again = await deliverInbound(connected, { message_id: messageId, text: "¿Abrís hoy?" });
  assert.deepEqual(again.body.data, { updates: 1, handled: 0, duplicates: 1 });

  const stored = await storedMessages(connected.orgId);
  assert.equal(stored.length, 1);
  assert.equal(stored[0].provider_message_id, messageId);
  assert.equal(stored[0].direction, "inbound");
  assert.equal(stored[0].body, "¿Abrís hoy?");
  assert.equal(stored[0].from, "+34612345678");
  assert.equal(stored[0].to, connected.credentials.display_phone_number!.replace(/\D/g, ""));
  assert.ok(stored[0].contact_id, "linked to a contact (a new one for an unknown sender)");
  assert.equal((await receivedEvents(connected.orgId)).length, 1);

  // A picture: stored with a placeholder body.
  const image = await deliverInbound(connected, { type: "image", text: "my receipt" });
  assert.equal(image.status, 200);
  assert.equal((await storedMessages(connected.orgId))[1].body, "[image] my receipt");
});

test("whatsapp receiver: missing, bad and replayed signatures are 401 and store nothing", async () => {
  const connected = await connectWhatsApp();
  const stranger = await connectWhatsApp();
  const messageId = `wamid.unsigned-${crypto.randomUUID()}`;
  const signatures = [
    "", // none
    "sha256=", // empty
    `sha256=${"0".repeat(64)}`,
    "garbage",
  ];
  for (const signature of signatures) {
    const answer = await deliverInbound(connected, { message_id: messageId, text: "x", signature });
    assert.equal(answer.status, 401, JSON.stringify(signature));
    assert.equal(answer.body.error.code, "AUTH_INVALID_TOKEN");
  }
  // Signed with another integration's app secret, or with the verify token.
  for (const secret of [stranger.credentials.app_secret, connected.credentials.verify_token!]) {
    const answer = await standIn("inbound", {
      receiver_url: connected.inboundUrl,
      app_secret: secret,
      phone_number_id: connected.credentials.phone_number_id,
      from: "34612345678",
      message_id: messageId,
      text: "x",
    });
    assert.equal(answer.status, 401);
  }
  // A captured delivery replayed with its body altered keeps a signature that no longer fits.
  const genuine = await deliverInbound(stranger, { message_id: messageId, text: "genuine" });
  assert.equal(genuine.status, 200);
  const captured = JSON.stringify(genuine.payload);
  const signature = `sha256=${
    createHmac("sha256", connected.credentials.app_secret).update(captured).digest("hex")
  }`;
  const altered = captured.replace("genuine", "altered");
  const replayed = await fetch(connected.inboundUrl, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body: altered,
  });
  assert.equal(replayed.status, 401);
  await replayed.body?.cancel();

  assert.equal((await storedMessages(connected.orgId)).length, 0);
  assert.equal((await receivedEvents(connected.orgId)).length, 0);
  // The stranger's genuine message is the stranger's only.
  assert.equal((await storedMessages(stranger.orgId)).length, 1);
});

test("whatsapp receiver: status callbacks move a sent message to delivered and read, never back", async () => {
  const connected = await connectWhatsApp();
  const sent = await sendMessage(connected.key, {
    channel: "whatsapp",
    to: "+34 612 345 678",
    message: { type: "text", body: "Your order has shipped" },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const wamid: string = sent.body.data.whatsapp_message_id;
  assert.match(wamid, /^wamid\./);

  const status = (value: string, extra: Record<string, unknown> = {}) =>
    standIn("status", {
      receiver_url: connected.inboundUrl,
      app_secret: connected.credentials.app_secret,
      phone_number_id: connected.credentials.phone_number_id,
      message_id: wamid,
      status: value,
      ...extra,
    });
  const statusNow = async () =>
    (await storedMessages(connected.orgId)).find((m) => m.provider_message_id === wamid)?.status;

  assert.equal(await statusNow(), "sent");
  assert.deepEqual((await status("delivered")).body.data, {
    updates: 1,
    handled: 1,
    duplicates: 0,
  });
  assert.equal(await statusNow(), "delivered");
  assert.deepEqual((await status("delivered")).body.data, {
    updates: 1,
    handled: 0,
    duplicates: 1,
  });
  assert.equal((await status("read")).status, 200);
  assert.equal(await statusNow(), "read");
  // A late `sent` (Meta does not promise order) does not move it back.
  assert.equal((await status("sent")).status, 200);
  assert.equal(await statusNow(), "read");

  // A failure, with WhatsApp's code, on another message.
  const second = await sendMessage(connected.key, {
    channel: "whatsapp",
    to: "+34612345678",
    message: { type: "text", body: "second" },
  });
  const failedId: string = second.body.data.whatsapp_message_id;
  const failed = await standIn("status", {
    receiver_url: connected.inboundUrl,
    app_secret: connected.credentials.app_secret,
    phone_number_id: connected.credentials.phone_number_id,
    message_id: failedId,
    status: "failed",
    error: { code: 131026, title: "Message undeliverable", details: "Not a WhatsApp user." },
  });
  assert.equal(failed.status, 200);
  const [row] = await db<{ status: string; error: Record<string, unknown> }[]>`
    select status, error from public.messages where provider_message_id = ${failedId}
  `;
  assert.equal(row.status, "failed");
  assert.equal(row.error.provider_code, 131026);
});

test("whatsapp receiver: the stand-in's own sent/delivered callbacks reach the stored message", async () => {
  const connected = await connectWhatsApp({ autoStatuses: true });
  const sent = await sendMessage(connected.key, {
    channel: "whatsapp",
    to: "+34612345678",
    message: { type: "text", body: "tracked" },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const wamid = sent.body.data.whatsapp_message_id;
  const deadline = Date.now() + 10_000;
  let status: string | undefined;
  while (Date.now() < deadline) {
    [{ status }] = await db<{ status: string }[]>`
      select status from public.messages where provider_message_id = ${wamid}
    `;
    if (status === "delivered") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.equal(status, "delivered");
});
