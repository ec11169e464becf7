/**
 * Messages: the spec's send and list examples on the demo data, sending through each
 * channel's real client to its stand-in (three phases, provider errors stored and answered
 * 502), the sandbox never reaching a stand-in, contacts linked, message.sent in the same
 * transaction, inbound stored once and matched, statuses, isolation between organizations
 * and environments.
 */
import assert from "node:assert/strict";
import { message, messageList, sentMessage } from "../shared/messages/schemas.ts";
import {
  connect,
  emailCredentials,
  newBot,
  newWhatsAppNumber,
  scriptWhatsAppErrors,
  telegramRequests,
  whatsappCredentials,
  whatsappInbound,
  whatsappRequests,
  whatsappStatus,
} from "./helpers/messaging.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";

const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;

const send = (key: string, data: Record<string, unknown>) =>
  api("messages/send", { action: "send", data }, { key });

/** A fresh organization with WhatsApp connected in live; its key, number and integration. */
async function orgWithWhatsApp() {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  const integration = await connect(key, "whatsapp", whatsappCredentials(number));
  return { org, key, number, integration };
}

test("messages/send: the spec's example works as printed on Acme's demo data", async () => {
  const response = await send(acme.keys.live_secret, {
    channel: "whatsapp",
    to: "+34 612 345 678",
    message: {
      type: "text",
      body: "Hello, your order has been processed successfully. Reference number: #ORD-2026-0451",
    },
    metadata: { workflow_id: "wf_a1b2c3d4", contact_id: "ct_abc123" },
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = sentMessage.parse(response.body.data);
  assert.equal(data.channel, "whatsapp");
  assert.equal(data.to, "+34 612 345 678");
  assert.equal(data.status, "sent");
  assert.match(data.message_id, /^msg_/);
  assert.match(data.whatsapp_message_id!, /^wamid\./);
  assert.equal(data.simulated, undefined);

  const list = await api("messages/list", {
    action: "list",
    data: { contact_id: "ct_abc123", channel: "whatsapp", page: 1, per_page: 50 },
  }, { key: acme.keys.live_secret });
  assert.equal(list.status, 200, JSON.stringify(list.body));
  const page = messageList.parse(list.body.data);
  const sent = page.messages.find((m) => m.id === data.message_id)!;
  assert.ok(sent, "the sent message is in the contact's conversation");
  assert.equal(sent.direction, "outbound");
  assert.equal(sent.to, "+34 612 345 678");
  assert.deepEqual(sent.message, {
    type: "text",
    body: "Hello, your order has been processed successfully. Reference number: #ORD-2026-0451",
  });
  assert.equal(sent.contact_id, "ct_abc123");
  assert.deepEqual(sent.metadata, { workflow_id: "wf_a1b2c3d4", contact_id: "ct_abc123" });
  assert.equal(page.pagination.page, 1);
  assert.equal(page.pagination.per_page, 50);
});

test("messages/send: the spec's sandbox example is simulated and reaches no stand-in", async () => {
  const org = await createTestOrg();
  const testKey = await org.key({ environment: "test" });
  const number = await newWhatsAppNumber();
  await connect(testKey, "whatsapp", whatsappCredentials(number));
  const before = await whatsappRequests(number.phone_number_id);

  const response = await send(testKey, {
    channel: "whatsapp",
    to: "+34 600 000 000",
    message: { type: "text", body: "Test message from sandbox" },
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  assert.equal(response.body.data.simulated, true);
  assert.match(response.body.data.whatsapp_message_id, /^sim_/);
  assert.equal(response.body.data.status, "sent");
  // The same answer a live send gets: the request went through every phase but the call.
  const after = await whatsappRequests(number.phone_number_id);
  assert.deepEqual(after, before, "the stand-in received nothing");
  const [row] = await db`select simulated, status from public.messages
    where id = ${response.body.data.message_id}`;
  assert.deepEqual({ ...row }, { simulated: true, status: "sent" });
});

test("demo data: local.json lists each demo organization's integrations, and they work", async () => {
  for (const org of stack.orgs) {
    const listed = org.integrations!;
    assert.ok(listed, `${org.org_id} has integrations in local.json`);
    for (const channel of ["whatsapp", "telegram", "email"] as const) {
      assert.match(listed[channel].inbound_url, new RegExp(`/receivers/${channel}/rcv_`));
    }
    const connected = await api("integrations/list", { action: "list", data: {} }, {
      key: org.keys.live_secret,
    });
    assert.deepEqual(
      connected.body.data.integrations.map((
        i: { provider: string; name: string; status: string },
      ) => `${i.provider}:${i.name}:${i.status}`).sort(),
      [
        "email:email:connected",
        "google_calendar:google_calendar:connected",
        "mcp:google_sheets:connected",
        "telegram:telegram:connected",
        "whatsapp:whatsapp:connected",
      ],
    );
  }
  const acmeLive = acme.integrations!;
  // A local tester signs an inbound WhatsApp message with what local.json lists.
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{
      id: "demo",
      changes: [{
        field: "messages",
        value: {
          messaging_product: "whatsapp",
          metadata: {
            display_phone_number: acmeLive.whatsapp.display_phone_number,
            phone_number_id: acmeLive.whatsapp.phone_number_id,
          },
          contacts: [{ profile: { name: "Company ABC" }, wa_id: "34612345678" }],
          messages: [{
            from: "34612345678",
            id: `wamid.local-${crypto.randomUUID()}`,
            timestamp: String(Math.floor(Date.now() / 1000)),
            type: "text",
            text: { body: "Perfect, thanks!" },
          }],
        },
      }],
    }],
  });
  const { createHmac } = await import("node:crypto");
  const signature = createHmac("sha256", acmeLive.whatsapp.app_secret).update(body).digest("hex");
  const url = acmeLive.whatsapp.inbound_url.replace(
    /^.*\/functions\/v1/,
    `${stack.api_url}/functions/v1`,
  );
  const delivered = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": `sha256=${signature}` },
    body,
  });
  assert.equal(delivered.status, 200, await delivered.text());
  const list = await api("messages/list", {
    action: "list",
    data: { contact_id: "ct_abc123", channel: "whatsapp", direction: "inbound" },
  }, { key: acme.keys.live_secret });
  assert.ok(
    list.body.data.messages.some((m: { message: { body: string } }) =>
      m.message.body === "Perfect, thanks!"
    ),
    "matched to ct_abc123 by its phone, +34 612 345 678",
  );

  // The spec's sandbox example, with Acme's sandbox key: simulated.
  const sandbox = await send(acme.keys.test_secret, {
    channel: "whatsapp",
    to: "+34 600 000 000",
    message: { type: "text", body: "Test message from sandbox" },
  });
  assert.equal(sandbox.status, 200, JSON.stringify(sandbox.body));
  assert.equal(sandbox.body.data.simulated, true);

  // Email to Acme's address reaches Acme's inbox through the mail catcher, and only Acme's.
  const bistro = stack.orgs.find((org) => org.org_id === "org_demo_bistro")!;
  const subject = `Table for two ${crypto.randomUUID().slice(0, 8)}`;
  const mailed = await send(bistro.keys.live_secret, {
    channel: "email",
    to: acmeLive.email.address,
    message: { type: "text", subject, body: "Tonight at nine?" },
  });
  assert.equal(mailed.status, 200, JSON.stringify(mailed.body));
  const inbox = await api("messages/list", {
    action: "list",
    data: { channel: "email", direction: "inbound" },
  }, { key: acme.keys.live_secret });
  const received = inbox.body.data.messages.find((m: { message: { subject?: string } }) =>
    m.message.subject === subject
  );
  assert.ok(received, "delivered to Acme's email receiver before the SMTP answer");
  assert.equal(received.from, bistro.integrations!.email.address);
  const bistroInbox = await api("messages/list", {
    action: "list",
    data: { channel: "email", direction: "inbound" },
  }, { key: bistro.keys.live_secret });
  assert.ok(
    !bistroInbox.body.data.messages.some((m: { message: { subject?: string } }) =>
      m.message.subject === subject
    ),
  );
});

test("messages/send: a channel that is not connected is a 400 naming it", async () => {
  const { key } = await orgWithWhatsApp();
  for (const channel of ["telegram", "email"]) {
    const response = await send(key, {
      channel,
      to: channel === "email" ? "maria@example.com" : "100200300",
      message: { type: "text", body: "Hi", ...(channel === "email" ? { subject: "Hi" } : {}) },
    });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.constraint, "not_connected");
    assert.equal(response.body.error.details.field, "channel");
    assert.match(response.body.error.message, new RegExp(`No ${channel} integration`));
  }
  // Connected in live only: the sandbox has none.
  const sandbox = await send(await (await createTestOrg()).key({ environment: "test" }), {
    channel: "whatsapp",
    to: "+34 600 000 000",
    message: { type: "text", body: "Hi" },
  });
  expectError(sandbox, 400, "VALIDATION_ERROR");
  assert.match(sandbox.body.error.message, /whatsapp.*test environment/);
});

test("messages/send: 'to' is validated per channel, and nothing is stored", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  await connect(key, "whatsapp", whatsappCredentials(number));
  await connect(key, "telegram", { bot_token: (await newBot()).token });
  await connect(key, "email", emailCredentials());
  const cases = [
    { channel: "whatsapp", to: "612 345 678", constraint: "e164" },
    { channel: "whatsapp", to: "+34 abc", constraint: "e164" },
    { channel: "telegram", to: "not a chat", constraint: "format" },
    { channel: "email", to: "not-an-address", constraint: "email" },
  ];
  for (const { channel, to, constraint } of cases) {
    const response = await send(key, {
      channel,
      to,
      message: { type: "text", body: "Hi", ...(channel === "email" ? { subject: "S" } : {}) },
    });
    expectError(response, 400, "VALIDATION_ERROR");
    assert.equal(response.body.error.details.field, "to", `${channel} ${to}`);
    assert.equal(response.body.error.details.constraint, constraint);
  }
  // A contact of another organization (the demo's ct_abc123) is not one this caller has.
  const foreign = await send(key, {
    channel: "whatsapp",
    to: "+34 612 345 678",
    message: { type: "text", body: "Hi" },
    metadata: { contact_id: "ct_abc123" },
  });
  expectError(foreign, 400, "VALIDATION_ERROR");
  assert.equal(foreign.body.error.details.field, "metadata.contact_id");
  const [{ count }] =
    await db`select count(*)::int from public.messages where org_id = ${org.orgId}`;
  assert.equal(count, 0);
  // Per-channel message rules.
  const noSubject = await send(key, {
    channel: "email",
    to: "maria@example.com",
    message: { type: "text", body: "Hi" },
  });
  expectError(noSubject, 400, "VALIDATION_ERROR");
  assert.equal(noSubject.body.error.details.field, "message.subject");
  const templateOnTelegram = await send(key, {
    channel: "telegram",
    to: "100200300",
    message: { type: "template", template: { name: "x", language: "en" } },
  });
  expectError(templateOnTelegram, 400, "VALIDATION_ERROR");
  assert.equal(templateOnTelegram.body.error.details.field, "message.type");
});

test("messages/send: through each channel's real client to its stand-in", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  const bot = await newBot();
  const from = `shop-${crypto.randomUUID().slice(0, 8)}@test.example`;
  await connect(key, "whatsapp", whatsappCredentials(number));
  await connect(key, "telegram", { bot_token: bot.token });
  await connect(key, "email", emailCredentials(from));

  const template = await send(key, {
    channel: "whatsapp",
    to: "+34 611 000 001",
    message: {
      type: "template",
      template: { name: "order_update", language: "es", components: [] },
    },
  });
  assert.equal(template.status, 200, JSON.stringify(template.body));
  const sentBody = (await whatsappRequests(number.phone_number_id))
    .find((r) => r.method === "POST")!.body as Record<string, unknown>;
  assert.equal(sentBody.to, "34611000001");
  assert.equal(sentBody.type, "template");

  const tg = await send(key, {
    channel: "telegram",
    to: "100200300",
    message: { type: "text", body: "Hola" },
  });
  assert.equal(tg.status, 200, JSON.stringify(tg.body));
  assert.match(tg.body.data.telegram_message_id, /^100200300:\d+$/);
  assert.ok((await telegramRequests(bot.id)).some((r) => r.method === "sendMessage"));

  const to = `maria-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const mail = await send(key, {
    channel: "email",
    to,
    message: { type: "text", subject: "Your order", body: "Shipped.", html: "<p>Shipped.</p>" },
  });
  assert.equal(mail.status, 200, JSON.stringify(mail.body));
  assert.ok(mail.body.data.email_message_id);
  const caught = await (await fetch(`${stack.mail.http_url}/messages?to=${to}`)).json();
  assert.equal(caught.messages.length, 1);
  assert.equal(caught.messages[0].subject, "Your order");

  // Each send linked to a contact: new recipients became contacts, with their address.
  const contacts = await db<{ phone: string | null; email: string | null }[]>`
    select c.phone, c.email from public.messages m join public.contacts c on c.id = m.contact_id
    where m.org_id = ${org.orgId} order by m.created_at`;
  assert.equal(contacts.length, 3);
  assert.equal(contacts[0].phone, "+34611000001");
  assert.equal(contacts[2].email, to);
});

test("messages/send: a provider error is a 502 with its code, the message stored failed", async () => {
  const { org, key, number } = await orgWithWhatsApp();
  await scriptWhatsAppErrors(number.phone_number_id, [{ code: 131047 }]);
  const response = await send(key, {
    channel: "whatsapp",
    to: "+34 611 000 002",
    message: { type: "text", body: "Outside the window" },
  });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.provider, "whatsapp");
  assert.equal(response.body.error.details.provider_code, 131047);
  assert.ok(response.body.error.details.provider_message);
  const rows = await db`select status, error, sent_at from public.messages
    where org_id = ${org.orgId}`;
  assert.equal(rows.length, 1);
  assert.equal(rows[0].status, "failed");
  assert.equal(rows[0].error.provider_code, 131047);
  assert.equal(rows[0].sent_at, null);
  // Nothing retried: one POST reached the stand-in.
  const posts = (await whatsappRequests(number.phone_number_id)).filter((r) => r.method === "POST");
  assert.equal(posts.length, 1);
  const [{ count }] = await db`select count(*)::int from public.events
    where org_id = ${org.orgId} and type = 'message.sent'`;
  assert.equal(count, 0);
});

test("messages/send: credentials the provider refuses mark the integration broken; other errors do not", async () => {
  const { key, number } = await orgWithWhatsApp();
  const [integration] = (await api("integrations/list", { action: "list", data: {} }, { key }))
    .body.data.integrations;
  const statusNow = async () =>
    (await api("integrations/get", {
      action: "get",
      data: { integration_id: integration.id },
    }, { key })).body.data;
  const sendOne = () =>
    send(key, {
      channel: "whatsapp",
      to: "+34 611 000 004",
      message: { type: "text", body: "Hi" },
    });

  // A refusal of this message (outside the window): the integration stays connected.
  await scriptWhatsAppErrors(number.phone_number_id, [{ code: 131047 }]);
  expectError(await sendOne(), 502, "INTEGRATION_ERROR");
  assert.equal((await statusNow()).status, "connected");

  // WhatsApp refuses the access token itself (190): broken, with WhatsApp's code.
  await scriptWhatsAppErrors(number.phone_number_id, [{ code: 190 }]);
  const refused = await sendOne();
  expectError(refused, 502, "INTEGRATION_ERROR");
  assert.equal(refused.body.error.details.provider_code, 190);
  const broken = await statusNow();
  assert.equal(broken.status, "broken");
  assert.equal(broken.error.provider_code, 190);
});

test("messages/send: message.sent is written with the sent message, in the same commit", async () => {
  const { org, key } = await orgWithWhatsApp();
  const response = await send(key, {
    channel: "whatsapp",
    to: "+34 611 000 003",
    message: { type: "text", body: "Hi" },
  });
  assert.equal(response.status, 200);
  const [event] = await db`select e.data, e.created_at, m.sent_at, e.xmin::text as ex,
      m.xmin::text as mx
    from public.events e join public.messages m on m.id = e.data ->> 'id'
    where e.org_id = ${org.orgId} and e.type = 'message.sent'`;
  assert.equal(event.data.id, response.body.data.message_id);
  assert.equal(event.data.status, "sent");
  assert.equal(event.ex, event.mx, "written by the same transaction");
  message.parse(event.data);
});

test("inbound WhatsApp: stored once, matched to the contact, message.received; statuses move forward", async () => {
  const { org, key, number, integration } = await orgWithWhatsApp();
  const contact = await api("contacts/create", {
    action: "create",
    data: { name: "María", phone: "+34 612 000 111" },
  }, { key });
  const inbound = { from: "34612000111", text: "Perfect, thanks!", message_id: "wamid.in-1" };
  const first = await whatsappInbound(number, integration.inbound_url, inbound);
  assert.equal(first.status, 200, JSON.stringify(first));
  const again = await whatsappInbound(number, integration.inbound_url, inbound);
  assert.equal(again.status, 200);

  const list = await api("messages/list", {
    action: "list",
    data: { contact_id: contact.body.data.id },
  }, { key });
  assert.equal(list.body.data.messages.length, 1, "stored once");
  const received = list.body.data.messages[0];
  assert.equal(received.direction, "inbound");
  assert.equal(received.status, "received");
  assert.equal(received.from, "+34612000111");
  assert.deepEqual(received.message, { type: "text", body: "Perfect, thanks!" });
  const [{ count }] = await db`select count(*)::int from public.events
    where org_id = ${org.orgId} and type = 'message.received'`;
  assert.equal(count, 1);

  // An unknown sender becomes a contact.
  await whatsappInbound(number, integration.inbound_url, {
    from: "34699000222",
    name: "Nuevo Cliente",
    text: "Hola",
    message_id: "wamid.in-2",
  });
  const [created] = await db`select name, phone from public.contacts
    where org_id = ${org.orgId} and phone = '+34699000222'`;
  assert.equal(created.name, "Nuevo Cliente");

  // Statuses: delivered, read, then a late `sent` and `failed` change nothing.
  const sent = await send(key, {
    channel: "whatsapp",
    to: "+34 612 000 111",
    message: { type: "text", body: "Your order shipped" },
  });
  const wamid = sent.body.data.whatsapp_message_id;
  for (const status of ["delivered", "read", "sent", "failed"]) {
    const answer = await whatsappStatus(number, integration.inbound_url, {
      message_id: wamid,
      status,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer));
  }
  const got = await api("messages/get", {
    action: "get",
    data: { message_id: sent.body.data.message_id },
  }, { key });
  assert.equal(got.body.data.status, "read");
  assert.ok(got.body.data.delivered_at && got.body.data.read_at);
  assert.equal(got.body.data.contact_id, contact.body.data.id, "matched by phone digits");
  // A status for a message no one sent is ignored.
  const unknown = await whatsappStatus(number, integration.inbound_url, {
    message_id: "wamid.unknown",
    status: "delivered",
  });
  assert.equal(unknown.status, 200);
});

test("statuses that overtake the send's own record are applied when it records", async () => {
  const { org, key, number, integration } = await orgWithWhatsApp();
  // The stand-in reports sent and delivered as soon as it accepts a message.
  await fetch(`${stack.whatsapp.base_url}/_standin/numbers`, {
    method: "POST",
    body: JSON.stringify({
      phone_number_id: number.phone_number_id,
      access_token: number.access_token,
      webhook: { receiver_url: integration.inbound_url, app_secret: number.app_secret },
    }),
  }).then((r) => r.body?.cancel());
  const deliveriesTo = async () => {
    const { deliveries } = await (await fetch(`${stack.whatsapp.base_url}/_standin/deliveries`))
      .json();
    return (deliveries as { receiver_url: string; status: number }[])
      .filter((d) => d.receiver_url === integration.inbound_url);
  };
  await scriptWhatsAppErrors(number.phone_number_id, [{ delay_ms: 300 }]);
  const sending = send(key, {
    channel: "whatsapp",
    to: "+34 611 000 020",
    message: { type: "text", body: "Fast callbacks" },
  });
  const deadline = Date.now() + 10_000;
  while ((await db`select 1 from public.messages where org_id = ${org.orgId}`).length === 0) {
    assert.ok(Date.now() < deadline, "the message was stored queued");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  // The send's record waits on this lock while both callbacks are handled.
  await db.begin(async (tx) => {
    await tx`select from public.messages where org_id = ${org.orgId} for update`;
    while ((await deliveriesTo()).length < 2) {
      assert.ok(Date.now() < deadline, "both callbacks were delivered");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok((await deliveriesTo()).every((d) => d.status === 200));
  });
  const sent = await sending;
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  const got = await api("messages/get", {
    action: "get",
    data: { message_id: sent.body.data.message_id },
  }, { key });
  assert.equal(got.body.data.status, "delivered");
  assert.ok(got.body.data.delivered_at);
  const [{ left }] = await db`select count(*)::int as left from private.early_message_statuses
    where integration_id = ${integration.id}`;
  assert.equal(left, 0);
});

test("isolation: an inbound message reaches only its integration's organization and environment", async () => {
  const a = await orgWithWhatsApp();
  const b = await orgWithWhatsApp();
  const bTest = await b.org.key({ environment: "test" });
  await connect(bTest, "whatsapp", whatsappCredentials(await newWhatsAppNumber()));
  await whatsappInbound(a.number, a.integration.inbound_url, {
    from: "34612000999",
    text: "for A",
    message_id: `wamid.${crypto.randomUUID()}`,
  });
  const seenByA = await api("messages/list", { action: "list", data: {} }, { key: a.key });
  assert.equal(seenByA.body.data.messages.length, 1);
  for (const key of [b.key, bTest]) {
    const seen = await api("messages/list", { action: "list", data: {} }, { key });
    assert.equal(seen.body.data.messages.length, 0);
  }
  const aTest = await a.org.key({ environment: "test" });
  const seenInSandbox = await api("messages/list", { action: "list", data: {} }, { key: aTest });
  assert.equal(seenInSandbox.body.data.messages.length, 0);
  // Another organization's message is a 404.
  const other = await api("messages/get", {
    action: "get",
    data: { message_id: seenByA.body.data.messages[0].id },
  }, { key: b.key });
  expectError(other, 404, "RESOURCE_NOT_FOUND");
  // A's number signed with B's app secret is refused, nothing stored.
  const forged = await whatsappInbound(
    { ...a.number, app_secret: b.number.app_secret },
    a.integration.inbound_url,
    { from: "34612000999", text: "forged", message_id: "wamid.forged" },
  );
  assert.equal(forged.status, 401);
});

const connectedOrgs = new Set<string>();

test("step send_message: the send data, templated; its output is send's answer", async () => {
  const { org, key, number } = await orgWithWhatsApp();
  const workflowId = await createWorkflow(key, {
    steps: [{
      id: "notify",
      type: "send_message",
      config: {
        channel: "whatsapp",
        to: "{{input.phone}}",
        message: { type: "text", body: "Order {{input.order}} shipped" },
      },
    }],
  });
  const started = await execute(key, workflowId, { phone: "+34 611 000 010", order: "#42" });
  const instance = await waitForInstance(key, started.instance_id);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  const output = sentMessage.parse(instance.steps[0].output);
  assert.match(output.whatsapp_message_id!, /^wamid\./);
  const [row] = await db`select body, request_key, status from public.messages
    where org_id = ${org.orgId}`;
  assert.equal(row.body, "Order #42 shipped");
  assert.equal(row.status, "sent");
  assert.ok(row.request_key.startsWith(`${started.instance_id}.notify.`));
  const posts = (await whatsappRequests(number.phone_number_id)).filter((r) => r.method === "POST");
  assert.equal(posts.length, 1);

  // A provider error fails the step with the provider's code; a missing channel, with 400's.
  await scriptWhatsAppErrors(number.phone_number_id, [{ code: 131026 }]);
  const refused = await waitForInstance(
    key,
    (await execute(key, workflowId, { phone: "+34 611 000 011", order: "#43" })).instance_id,
  );
  assert.equal(refused.status, "failed");
  assert.equal(refused.error.code, "INTEGRATION_ERROR", JSON.stringify(refused.error));
  const telegramFlow = await createWorkflow(key, {
    steps: [{
      id: "tg",
      type: "send_message",
      config: { channel: "telegram", to: "100200300", message: { type: "text", body: "Hi" } },
    }],
  });
  const unconnected = await waitForInstance(key, (await execute(key, telegramFlow)).instance_id);
  assert.equal(unconnected.error.code, "VALIDATION_ERROR", JSON.stringify(unconnected.error));
});

test("step send_message: putting it in a workflow needs messages:write", async () => {
  const org = await createTestOrg();
  const key = await org.key({ scopes: ["workflows:write"] });
  const response = await api("workflows/create", {
    action: "create",
    data: {
      name: "No messages scope",
      steps: [{
        id: "send",
        type: "send_message",
        config: { channel: "telegram", to: "1", message: { type: "text", body: "Hi" } },
      }],
    },
  }, { key });
  expectError(response, 403, "AUTH_INSUFFICIENT_SCOPE");
  assert.equal(response.body.error.details.required_scope, "messages:write");
});

test("step send_message: a worker killed during the send never sends again (OUTCOME_UNKNOWN)", async () => {
  const { org, key, number } = await orgWithWhatsApp();
  // The send hangs; the worker is killed meanwhile.
  await scriptWhatsAppErrors(number.phone_number_id, [{ delay_ms: 20_000 }]);
  const workflowId = await createWorkflow(key, {
    steps: [{
      id: "notify",
      type: "send_message",
      config: { channel: "whatsapp", to: "+34 611 000 012", message: { type: "text", body: "Hi" } },
    }],
  });
  const started = await execute(key, workflowId);
  const deadline = Date.now() + 10_000;
  // The message is committed queued, with its request key, before the provider is called.
  while ((await db`select 1 from public.messages where org_id = ${org.orgId}`).length === 0) {
    assert.ok(Date.now() < deadline, "the job stored its message");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  Deno.kill(Number(Deno.readTextFileSync(stack.worker_pid_files[0])), "SIGKILL");

  // The stack starts the worker again; the job's lease runs out and the job runs again.
  const instance = await waitForInstance(key, started.instance_id, undefined, 30_000);
  assert.equal(instance.status, "failed", JSON.stringify(instance));
  assert.equal(instance.error.code, "OUTCOME_UNKNOWN", JSON.stringify(instance.error));
  const rows = await db`select status, error from public.messages where org_id = ${org.orgId}`;
  assert.equal(rows.length, 1, "one message, found again by its request key");
  assert.equal(rows[0].status, "queued");
  assert.equal(rows[0].error.code, "OUTCOME_UNKNOWN");
  const posts = (await whatsappRequests(number.phone_number_id)).filter((r) => r.method === "POST");
  assert.ok(posts.length <= 1, "never sent a second time");
});

async function validSend(org: TestOrg) {
  if (!connectedOrgs.has(org.orgId)) {
    connectedOrgs.add(org.orgId);
    await connect(await org.key(), "whatsapp", whatsappCredentials(await newWhatsAppNumber()));
  }
  return { channel: "whatsapp", to: "+34 611 000 009", message: { type: "text", body: "Hi" } };
}

negativeCases({
  group: "messages",
  action: "send",
  scope: "write",
  valid: validSend,
  invalid: {
    data: { channel: "sms", to: "+34 611 000 009", message: { body: "x" } },
    field: "channel",
  },
});
negativeCases({
  group: "messages",
  action: "list",
  scope: "read",
  otherSuffix: "get",
  valid: {},
  invalid: { data: { per_page: 500 }, field: "per_page" },
});
negativeCases({
  group: "messages",
  action: "get",
  scope: "read",
  valid: async (org) => {
    const data = await validSend(org);
    const sent = await send(await org.key(), data);
    return { message_id: sent.body.data.message_id };
  },
  invalid: { data: { message_id: "ct_123" }, field: "message_id" },
});
