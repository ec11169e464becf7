/**
 * Integrations: connect (credentials checked per channel, sealed, never answered; a receiver
 * per integration; Telegram's webhook set at connect, a refusal leaving it broken with the
 * provider's code), update, test (a real provider call; the sandbox simulates it),
 * disconnect (the receiver stops answering, messages kept), isolation, and inbound through
 * the receivers the integrations own.
 */
import assert from "node:assert/strict";
import { integration, integrationList } from "../shared/integrations/schemas.ts";
import { EMAIL_SIGNATURE_HEADER, signInboundEmail } from "../shared/messages/channels/email.ts";
import {
  connect,
  emailCredentials,
  newBot,
  newWhatsAppNumber,
  telegramRequests,
  whatsappCredentials,
  whatsappInbound,
} from "./helpers/messaging.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test, type TestOrg } from "./helpers/stack.ts";

const call = (key: string, action: string, data: Record<string, unknown>) =>
  api(`integrations/${action}`, { action, data }, { key });

test("connect WhatsApp: public parts and the inbound URL answered, credentials sealed and never answered", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  const response = await call(key, "connect", {
    channel: "whatsapp",
    credentials: whatsappCredentials(number),
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = integration.parse(response.body.data);
  assert.equal(data.status, "connected");
  assert.deepEqual(data.public, {
    phone_number_id: number.phone_number_id,
    display_phone_number: number.display_phone_number,
  });
  assert.match(data.inbound_url!, /\/functions\/v1\/receivers\/whatsapp\/rcv_[0-9a-f]{32}$/);
  const text = JSON.stringify(response.body);
  for (const secret of [number.access_token, number.app_secret]) {
    assert.ok(!text.includes(secret), "no credential in the answer");
  }
  const [row] = await db`select sealed_credentials from public.integrations where id = ${data.id}`;
  assert.match(row.sealed_credentials, /^v1\./);
  assert.ok(!row.sealed_credentials.includes(number.access_token), "sealed, not in clear");
  const listed = await call(key, "list", {});
  assert.ok(!JSON.stringify(listed.body).includes(number.access_token));
  integrationList.parse(listed.body.data);

  // Meta's verification: the challenge only with the verify token the user chose.
  const verify = (token: string) =>
    fetch(
      `${
        data.inbound_url!.replace(/^.*\/functions\/v1/, `${stack.api_url}/functions/v1`)
      }?${new URLSearchParams({
        "hub.mode": "subscribe",
        "hub.verify_token": token,
        "hub.challenge": "12345",
      })}`,
    );
  const good = await verify(number.verify_token);
  assert.equal(good.status, 200);
  assert.equal(await good.text(), "12345");
  const bad = await verify("wrong");
  assert.equal(bad.status, 401);
  await bad.body?.cancel();

  // A second WhatsApp in the same environment is refused.
  const again = await call(key, "connect", {
    channel: "whatsapp",
    credentials: whatsappCredentials(await newWhatsAppNumber()),
  });
  expectError(again, 400, "VALIDATION_ERROR");
  assert.equal(again.body.error.details.constraint, "already_connected");
});

test("connect: credentials are checked by the channel's schema, naming the field, never echoing the value", async () => {
  const key = await (await createTestOrg()).key();
  const response = await call(key, "connect", {
    channel: "telegram",
    credentials: { bot_token: "secret-looking-but-wrong" },
  });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "credentials.bot_token");
  assert.ok(!JSON.stringify(response.body).includes("secret-looking-but-wrong"));
  const unknown = await call(key, "connect", {
    channel: "email",
    credentials: { ...emailCredentials(), api_key: "x" },
  });
  expectError(unknown, 400, "VALIDATION_ERROR");
  assert.equal(unknown.body.error.details.field, "credentials.api_key");
});

test("connect Telegram: the webhook is set with the receiver and its secret; updates are stored and matched", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const bot = await newBot();
  const data = await connect(key, "telegram", { bot_token: bot.token });
  assert.equal(data.status, "connected");
  assert.equal(data.public.bot_id, String(bot.id));
  assert.ok(!JSON.stringify(data).includes(bot.token));
  const calls = await telegramRequests(bot.id);
  assert.ok(calls.some((c) => c.method === "setWebhook"), JSON.stringify(calls));

  const deliver = async (body: Record<string, unknown>) => {
    const response = await fetch(`${stack.telegram.base_url}/_standin/inbound`, {
      method: "POST",
      body: JSON.stringify({ bot_token: bot.token, ...body }),
    });
    return await response.json();
  };
  const first = await deliver({ chat_id: 555000111, name: "Lucía Gómez", text: "¿Hay stock?" });
  assert.equal(first.webhook_status, 200, JSON.stringify(first));
  // Telegram delivering the same update again: stored once.
  const repeat = await deliver({ update_id: first.update.update_id });
  assert.equal(repeat.webhook_status, 200, JSON.stringify(repeat));
  assert.equal(repeat.webhook_body.data.duplicates, 1);
  const rows = await db`select m.body, m."from", c.name, c.custom_fields
    from public.messages m join public.contacts c on c.id = m.contact_id
    where m.org_id = ${org.orgId}`;
  assert.equal(rows.length, 1);
  assert.equal(rows[0].body, "¿Hay stock?");
  assert.equal(rows[0].name, "Lucía Gómez");
  assert.equal(rows[0].custom_fields.telegram_user_id, "555000111");
  // The next message from that user finds the same contact.
  await deliver({ chat_id: 555000111, text: "Gracias" });
  const [{ contacts }] = await db`select count(distinct contact_id)::int as contacts
    from public.messages where org_id = ${org.orgId}`;
  assert.equal(contacts, 1);
});

test("connect email: the inbound signing secret is answered once; signed inbound email is stored and matched", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const data = await connect(key, "email", emailCredentials());
  const secret = data.inbound_signing_secret as string;
  assert.match(secret, /^[0-9a-f]{64}$/);
  const got = await call(key, "get", { integration_id: data.id });
  assert.equal(got.body.data.inbound_signing_secret, undefined, "shown once");
  const listed = await call(key, "list", {});
  assert.ok(!JSON.stringify(listed.body).includes(secret));

  const contact = await api("contacts/create", {
    action: "create",
    data: { name: "María", email: "Maria@Example.com" },
  }, { key });
  const url = data.inbound_url.replace(/^.*\/functions\/v1/, `${stack.api_url}/functions/v1`);
  const deliver = (body: string, signature: string) =>
    fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", [EMAIL_SIGNATURE_HEADER]: signature },
      body,
    });
  const body = JSON.stringify({
    from: "María <maria@example.com>",
    to: data.public.from,
    subject: "Invoice question",
    text: "Could you resend it?",
    message_id: `<${crypto.randomUUID()}@example.com>`,
    date: new Date().toISOString(),
  });
  const forged = await deliver(body, signInboundEmail("not-the-secret", body));
  assert.equal(forged.status, 401);
  await forged.body?.cancel();
  const [{ none }] = await db`select count(*)::int as none from public.messages
    where org_id = ${org.orgId}`;
  assert.equal(none, 0, "a bad signature stores nothing");
  const signed = await deliver(body, signInboundEmail(secret, body));
  assert.equal(signed.status, 200, await signed.text());
  const [row] = await db`select contact_id, subject, "from" from public.messages
    where org_id = ${org.orgId}`;
  assert.equal(row.contact_id, contact.body.data.id, "matched by address, case-insensitively");
  assert.equal(row.subject, "Invoice question");

  // A secret the user gives is a credential: never answered.
  const other = await createTestOrg();
  const given = "x".repeat(40);
  const own = await connect(await other.key(), "email", {
    ...emailCredentials(),
    inbound_secret: given,
  });
  assert.equal(own.inbound_signing_secret, undefined);
  assert.ok(!JSON.stringify(own).includes(given));
});

test("connect Telegram: the provider refusing setWebhook leaves it broken with its code (502); update fixes it", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const bot = await newBot();
  // A token of the right shape that the Bot API does not know.
  const unknownToken = `${bot.id + 1}:${"A".repeat(35)}`;
  const response = await call(key, "connect", {
    channel: "telegram",
    credentials: { bot_token: unknownToken },
  });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.provider, "telegram");
  assert.equal(response.body.error.details.provider_code, 401);
  assert.equal(response.body.error.details.integration_status, "broken");
  assert.ok(!JSON.stringify(response.body).includes(unknownToken));
  const id = response.body.error.details.integration_id;
  const got = await call(key, "get", { integration_id: id });
  assert.equal(got.body.data.status, "broken");
  assert.equal(got.body.data.error.provider_code, 401);

  const fixed = await call(key, "update", {
    integration_id: id,
    credentials: { bot_token: bot.token },
  });
  assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
  assert.equal(fixed.body.data.status, "connected");
  assert.equal(fixed.body.data.error, null);
  assert.ok((await telegramRequests(bot.id)).some((c) => c.method === "setWebhook"));
});

test("test: a real call in live; simulated in the sandbox, reaching no stand-in", async () => {
  const org = await createTestOrg();
  const bot = await newBot();
  const live = await connect(await org.key(), "telegram", { bot_token: bot.token });
  const tested = await call(await org.key(), "test", { integration_id: live.id });
  assert.equal(tested.status, 200, JSON.stringify(tested.body));
  assert.equal(tested.body.data.simulated, false);
  assert.equal(tested.body.data.integration.public.username, bot.username);
  assert.ok((await telegramRequests(bot.id)).some((c) => c.method === "getMe"));

  const sandboxKey = await org.key({ environment: "test" });
  const sandboxBot = await newBot();
  const sandbox = await connect(sandboxKey, "telegram", { bot_token: sandboxBot.token });
  const sandboxTest = await call(sandboxKey, "test", { integration_id: sandbox.id });
  assert.equal(sandboxTest.status, 200);
  assert.equal(sandboxTest.body.data.simulated, true);
  assert.deepEqual(await telegramRequests(sandboxBot.id), [], "neither setWebhook nor getMe");
});

test("disconnect: the receiver stops answering, messages are kept, the channel can be connected again", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  const data = await connect(key, "whatsapp", whatsappCredentials(number));
  const inbound = await whatsappInbound(number, data.inbound_url, {
    from: "34612000333",
    text: "Hola",
    message_id: `wamid.${crypto.randomUUID()}`,
  });
  assert.equal(inbound.status, 200);

  const off = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.data.status, "disconnected");
  assert.equal(off.body.data.inbound_url, null);
  const after = await whatsappInbound(number, data.inbound_url, {
    from: "34612000333",
    text: "Hola otra vez",
    message_id: `wamid.${crypto.randomUUID()}`,
  });
  assert.equal(after.status, 404, "the receiver is gone");
  const list = await api("messages/list", { action: "list", data: {} }, { key });
  assert.equal(list.body.data.messages.length, 1, "messages kept");
  const send = await api("messages/send", {
    action: "send",
    data: { channel: "whatsapp", to: "+34 612 000 333", message: { type: "text", body: "x" } },
  }, { key });
  expectError(send, 400, "VALIDATION_ERROR");
  assert.equal(send.body.error.details.constraint, "not_connected");
  const listed = await call(key, "list", {});
  assert.equal(listed.body.data.integrations.length, 0);
  const all = await call(key, "list", { include_disconnected: true });
  assert.equal(all.body.data.integrations.length, 1);
  await connect(key, "whatsapp", whatsappCredentials(number));
});

test("isolation: another organization's or environment's integration is not found", async () => {
  const a = await createTestOrg();
  const b = await createTestOrg();
  const aKey = await a.key();
  const data = await connect(aKey, "email", emailCredentials());
  for (const key of [await b.key(), await a.key({ environment: "test" })]) {
    for (const action of ["get", "test", "disconnect"]) {
      expectError(await call(key, action, { integration_id: data.id }), 404, "RESOURCE_NOT_FOUND");
    }
    const listed = await call(key, "list", {});
    assert.equal(listed.body.data.integrations.length, 0);
  }
  // Admin scope: a write key may send but not connect.
  const writer = await a.key({ scopes: ["write"] });
  expectError(await call(writer, "list", {}), 403, "AUTH_INSUFFICIENT_SCOPE");
});

const connectedOrgs = new Map<string, string>();
const connectBodies = new Set<string>();

/** An email integration of the org (made once), for the actions that need one. */
async function emailIntegration(org: TestOrg) {
  if (!connectedOrgs.has(org.orgId)) {
    const data = await connect(await org.key(), "email", emailCredentials());
    connectedOrgs.set(org.orgId, data.id);
  }
  return { integration_id: connectedOrgs.get(org.orgId)! };
}

negativeCases({
  group: "integrations",
  action: "list",
  scope: "admin",
  otherSuffix: "get",
  valid: {},
  invalid: { data: { channel: "sms" }, field: "channel" },
});
negativeCases({
  group: "integrations",
  action: "get",
  scope: "admin",
  valid: emailIntegration,
  invalid: { data: { integration_id: "ct_1" }, field: "integration_id" },
});
negativeCases({
  group: "integrations",
  action: "connect",
  scope: "admin",
  // The first body (kept by the helper for most cases) connects email; each further one
  // connects a new bot instead, so the kept body still connects at the end.
  valid: async (org) => {
    if (!connectBodies.has(org.orgId)) {
      connectBodies.add(org.orgId);
      return { channel: "email", credentials: emailCredentials() };
    }
    const key = await org.key();
    const { integrations } = (await call(key, "list", { channel: "telegram" })).body.data;
    for (const existing of integrations) {
      await call(key, "disconnect", { integration_id: existing.id });
    }
    return { channel: "telegram", credentials: { bot_token: (await newBot()).token } };
  },
  invalid: { data: { channel: "email", credentials: { host: "x" } }, field: "credentials.port" },
});
negativeCases({
  group: "integrations",
  action: "update",
  scope: "admin",
  valid: async (org) => ({ ...(await emailIntegration(org)), credentials: emailCredentials() }),
  invalid: { data: { integration_id: "int_1", credentials: "x" }, field: "credentials" },
});
negativeCases({
  group: "integrations",
  action: "test",
  scope: "admin",
  valid: emailIntegration,
  invalid: { data: {}, field: "integration_id" },
});
negativeCases({
  group: "integrations",
  action: "disconnect",
  scope: "admin",
  valid: emailIntegration,
  invalid: { data: { integration_id: 5 }, field: "integration_id" },
});
