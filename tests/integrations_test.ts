/**
 * Integrations: connect (credentials checked per channel, sealed, never answered; a receiver
 * per integration; Telegram's webhook set at connect, a refusal leaving it broken with the
 * provider's code), update, test (a real provider call; the sandbox simulates it),
 * disconnect (the receiver stops answering, messages kept; Telegram's deleteWebhook),
 * isolation, and inbound through the receivers the integrations own. Google Calendar and MCP
 * servers are integrations too: connect, list, test and disconnect them here, several MCP
 * servers at once.
 */
import assert from "node:assert/strict";
import {
  createGoogleSheetsServer,
  SPEC_SPREADSHEET_ID,
} from "../local/stand-ins/mcp-google-sheets.ts";
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
    provider: "whatsapp",
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
    provider: "whatsapp",
    credentials: whatsappCredentials(await newWhatsAppNumber()),
  });
  expectError(again, 400, "VALIDATION_ERROR");
  assert.equal(again.body.error.details.constraint, "already_connected");
});

test("connect: credentials are checked by the channel's schema, naming the field, never echoing the value", async () => {
  const key = await (await createTestOrg()).key();
  const response = await call(key, "connect", {
    provider: "telegram",
    credentials: { bot_token: "secret-looking-but-wrong" },
  });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "credentials.bot_token");
  assert.ok(!JSON.stringify(response.body).includes("secret-looking-but-wrong"));
  const unknown = await call(key, "connect", {
    provider: "email",
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
    provider: "telegram",
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
  invalid: { data: { provider: "sms" }, field: "provider" },
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
      return { provider: "email", credentials: emailCredentials() };
    }
    const key = await org.key();
    const { integrations } = (await call(key, "list", { provider: "telegram" })).body.data;
    for (const existing of integrations) {
      await call(key, "disconnect", { integration_id: existing.id });
    }
    return { provider: "telegram", credentials: { bot_token: (await newBot()).token } };
  },
  invalid: { data: { provider: "email", credentials: { host: "x" } }, field: "credentials.port" },
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

// ---------------------------------------------------------------------------------------
// WhatsApp's verify token, Telegram's teardown
// ---------------------------------------------------------------------------------------

/** The receiver's public URL as the test reaches it. */
const reachable = (inboundUrl: string) =>
  inboundUrl.replace(/^.*\/functions\/v1/, `${stack.api_url}/functions/v1`);

/** Meta's GET verification of a WhatsApp receiver with `token`. */
const verifyWhatsApp = (inboundUrl: string, token: string) =>
  fetch(
    `${reachable(inboundUrl)}?${new URLSearchParams({
      "hub.mode": "subscribe",
      "hub.verify_token": token,
      "hub.challenge": "challenge-42",
    })}`,
  );

test("connect WhatsApp without a verify token: one is made, answered once, and answers Meta's challenge", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const number = await newWhatsAppNumber();
  const { verify_token: _given, ...credentials } = whatsappCredentials(number);
  const data = await connect(key, "whatsapp", credentials);
  const token = data.verify_token as string;
  assert.match(token, /^[0-9a-f]{48}$/);
  const good = await verifyWhatsApp(data.inbound_url, token);
  assert.equal(good.status, 200);
  assert.equal(await good.text(), "challenge-42");
  const bad = await verifyWhatsApp(data.inbound_url, "not-it");
  assert.equal(bad.status, 401);
  await bad.body?.cancel();
  // Shown once: not by get or list, not in the sealed credentials' place in clear.
  const got = await call(key, "get", { integration_id: data.id });
  assert.equal(got.body.data.verify_token, undefined);
  assert.ok(!JSON.stringify((await call(key, "list", {})).body).includes(token));

  // An update without one makes a new one; the old one stops answering.
  const updated = await call(key, "update", { integration_id: data.id, credentials });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  const next = updated.body.data.verify_token as string;
  assert.notEqual(next, token);
  const old = await verifyWhatsApp(data.inbound_url, token);
  assert.equal(old.status, 401);
  await old.body?.cancel();
  const fresh = await verifyWhatsApp(data.inbound_url, next);
  assert.equal(fresh.status, 200);
  await fresh.body?.cancel();

  // One the user gives is theirs: never answered.
  const other = await connect(
    await (await createTestOrg()).key(),
    "whatsapp",
    whatsappCredentials(await newWhatsAppNumber()),
  );
  assert.equal(other.verify_token, undefined);
});

test("disconnect Telegram: deleteWebhook is called after the receiver is off, and the bot's updates stop", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const bot = await newBot();
  const data = await connect(key, "telegram", { bot_token: bot.token });
  const off = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.data.status, "disconnected");
  assert.equal(off.body.data.error, null);
  const methods = (await telegramRequests(bot.id)).map((c) => c.method);
  assert.deepEqual(methods.filter((m) => m.endsWith("Webhook")), ["setWebhook", "deleteWebhook"]);
  // The stand-in has no webhook for the bot any more: nothing is delivered.
  const response = await fetch(`${stack.telegram.base_url}/_standin/inbound`, {
    method: "POST",
    body: JSON.stringify({ bot_token: bot.token, chat_id: 555000111, text: "¿Sigue ahí?" }),
  });
  assert.equal(response.status, 409, await response.text());
  // Disconnecting again changes nothing and calls nothing.
  const again = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(again.status, 200);
  assert.equal((await telegramRequests(bot.id)).length, methods.length);
});

test("disconnect Telegram: a refused deleteWebhook is recorded and answered; the disconnect stands", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const bot = await newBot();
  const data = await connect(key, "telegram", { bot_token: bot.token });
  const scripted = await fetch(`${stack.telegram.base_url}/_standin/script`, {
    method: "POST",
    body: JSON.stringify({
      bot_id: bot.id,
      answers: [{ method: "deleteWebhook", error_code: 500, description: "Internal error" }],
    }),
  });
  assert.equal(scripted.status, 200, await scripted.text());
  const off = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.equal(off.body.data.status, "disconnected");
  assert.equal(off.body.data.error.during, "disconnect");
  assert.equal(off.body.data.error.provider_code, 500);
  assert.equal(off.body.data.inbound_url, null);
  const got = await call(key, "get", { integration_id: data.id });
  assert.equal(got.body.data.error.during, "disconnect");
  // The receiver is off even though Telegram would still deliver.
  const response = await fetch(`${stack.telegram.base_url}/_standin/inbound`, {
    method: "POST",
    body: JSON.stringify({ bot_token: bot.token, chat_id: 555000111, text: "hola" }),
  });
  const delivered = await response.json();
  assert.equal(delivered.webhook_status, 404, JSON.stringify(delivered));
});

test("disconnect in the sandbox reaches no provider", async () => {
  const org = await createTestOrg();
  const key = await org.key({ environment: "test" });
  const bot = await newBot();
  const data = await connect(key, "telegram", { bot_token: bot.token });
  const off = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(off.status, 200, JSON.stringify(off.body));
  assert.deepEqual(await telegramRequests(bot.id), []);
});

// ---------------------------------------------------------------------------------------
// Google Calendar and MCP servers are integrations
// ---------------------------------------------------------------------------------------

/** A Google account at the stack's stand-in; its refresh token and address. */
async function googleAccount() {
  const refreshToken = `rt-${crypto.randomUUID()}`;
  const email = `int-${crypto.randomUUID().slice(0, 8)}@test.example`;
  const response = await fetch(`${stack.google.base_url}/_standin/accounts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refresh_token: refreshToken, email }),
  });
  assert.equal(response.status, 200, await response.text());
  return { refreshToken, email };
}

async function googleRequests(email: string): Promise<{ path: string }[]> {
  const response = await fetch(
    `${stack.google.base_url}/_standin/requests?account=${encodeURIComponent(email)}`,
  );
  return (await response.json()).requests;
}

const googleCredentials = (refreshToken: string, calendarId?: string) => ({
  client_id: "int-client.apps.googleusercontent.com",
  client_secret: "int-client-secret",
  refresh_token: refreshToken,
  ...(calendarId ? { calendar_id: calendarId } : {}),
});

test("google_calendar: connect proves the grant, list/get show it, test calls Google, disconnect ends calendar sync", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const { refreshToken, email } = await googleAccount();
  const data = integration.parse(
    await connect(key, "google_calendar", googleCredentials(refreshToken)),
  );
  assert.equal(data.provider, "google_calendar");
  assert.equal(data.name, "google_calendar");
  assert.equal(data.status, "connected");
  assert.deepEqual(data.public, { calendar_id: "primary" });
  assert.equal(data.inbound_url, null);
  const paths = (await googleRequests(email)).map((r) => r.path);
  assert.ok(paths.includes("/token"), JSON.stringify(paths));
  assert.ok(paths.some((p) => p.startsWith("/calendar/v3/calendars/primary/events")));
  const text = JSON.stringify(data);
  assert.ok(!text.includes(refreshToken) && !text.includes("int-client-secret"));
  const [row] = await db`select sealed_credentials from public.integrations where id = ${data.id}`;
  assert.ok(!row.sealed_credentials.includes(refreshToken), "sealed");

  const listed = await call(key, "list", { provider: "google_calendar" });
  assert.deepEqual(listed.body.data.integrations.map((i: { id: string }) => i.id), [data.id]);
  const again = await call(key, "connect", {
    provider: "google_calendar",
    credentials: googleCredentials(refreshToken),
  });
  expectError(again, 400, "VALIDATION_ERROR");
  assert.equal(again.body.error.details.constraint, "already_connected");

  const before = (await googleRequests(email)).length;
  const tested = await call(key, "test", { integration_id: data.id });
  assert.equal(tested.status, 200, JSON.stringify(tested.body));
  assert.equal(tested.body.data.simulated, false);
  assert.ok((await googleRequests(email)).length > before, "test reached Google");

  // Calendar calls use it; once disconnected they name integrations/connect.
  assert.equal((await api("calendar/sync", { action: "sync", data: {} }, { key })).status, 200);
  const off = await call(key, "disconnect", { integration_id: data.id });
  assert.equal(off.body.data.status, "disconnected");
  const sync = await api("calendar/sync", { action: "sync", data: {} }, { key });
  expectError(sync, 400, "VALIDATION_ERROR");
  assert.match(sync.body.error.message, /integrations\/connect with provider google_calendar/);
  const [{ states }] = await db`select count(*)::int as states from public.calendar_sync_state
    where integration_id = ${data.id}`;
  assert.equal(states, 1, "its sync state stays with the disconnected integration");
  // Connected again: a fresh one.
  const back = await connect(key, "google_calendar", googleCredentials(refreshToken));
  assert.notEqual(back.id, data.id);
});

test("google_calendar: a name is refused; the calendar id is shown; the removed calendar actions are gone", async () => {
  const key = await (await createTestOrg()).key({ environment: "test" });
  const named = await call(key, "connect", {
    provider: "google_calendar",
    name: "work",
    credentials: googleCredentials("rt-x"),
  });
  expectError(named, 400, "VALIDATION_ERROR");
  assert.equal(named.body.error.details.field, "name");
  // Sandbox: stored without a call to Google.
  const data = await connect(key, "google_calendar", googleCredentials("rt-x", "team@group"));
  assert.deepEqual(data.public, { calendar_id: "team@group" });
  for (const path of ["calendar/connect", "calendar/connection", "mcp/connect", "mcp/disconnect"]) {
    const gone = await api(path, { action: path.split("/")[1], data: {} }, { key });
    expectError(gone, 404, "RESOURCE_NOT_FOUND");
  }
});

/** An MCP server of the test's own (the demo Google Sheets one) on a free port. */
function startMcpServer() {
  const bearerToken = `token-${crypto.randomUUID()}`;
  const server = createGoogleSheetsServer({ bearerToken });
  const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, server.handler);
  return {
    credentials: { url: `http://127.0.0.1:${http.addr.port}/mcp`, bearer_token: bearerToken },
    calls: server.calls,
    async close() {
      await server.close();
      await http.shutdown();
    },
  };
}

const READ = { spreadsheet_id: SPEC_SPREADSHEET_ID, range: "A1:B2" };
const execute = (key: string, provider: string) =>
  api("mcp/execute", {
    action: "execute",
    data: { provider, tool: "read_range", parameters: READ },
  }, { key });

test("mcp: two servers at once, each by its name; test lists tools; disconnect one, the other stays", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const first = startMcpServer();
  const second = startMcpServer();
  try {
    const a = await connect(key, "mcp", first.credentials, "sheets_a");
    const b = await connect(key, "mcp", second.credentials, "sheets_b");
    for (const [data, server] of [[a, first], [b, second]] as const) {
      assert.equal(data.provider, "mcp");
      assert.equal(data.status, "connected");
      assert.deepEqual(data.public, { url: server.credentials.url });
      assert.ok(!JSON.stringify(data).includes(server.credentials.bearer_token));
    }
    assert.deepEqual(
      (await call(key, "list", { provider: "mcp" })).body.data.integrations
        .map((i: { name: string }) => i.name).sort(),
      ["sheets_a", "sheets_b"],
    );
    const providers = await api("mcp/providers", { action: "providers", data: {} }, { key });
    assert.deepEqual(
      providers.body.data.providers.map((p: { name: string; credentials: string[] }) => [
        p.name,
        p.credentials,
      ]),
      [["sheets_a", ["bearer_token"]], ["sheets_b", ["bearer_token"]]],
    );

    assert.equal((await execute(key, "sheets_a")).status, 200);
    assert.equal((await execute(key, "sheets_b")).status, 200);
    assert.equal(first.calls.length, 1);
    assert.equal(second.calls.length, 1);

    // test: initialize and tools/list through the SDK client (no tool is called).
    const tested = await call(key, "test", { integration_id: a.id });
    assert.equal(tested.status, 200, JSON.stringify(tested.body));
    assert.ok(tested.body.data.integration.public.tools_count >= 1);
    assert.equal(first.calls.length, 1);

    // The same name twice is refused; the other's name is free in another environment.
    const twice = await call(key, "connect", {
      provider: "mcp",
      name: "sheets_a",
      credentials: second.credentials,
    });
    expectError(twice, 400, "VALIDATION_ERROR");
    assert.equal(twice.body.error.details.field, "name");
    assert.equal(twice.body.error.details.constraint, "already_connected");

    const off = await call(key, "disconnect", { integration_id: a.id });
    assert.equal(off.body.data.status, "disconnected");
    expectError(await execute(key, "sheets_a"), 404, "RESOURCE_NOT_FOUND");
    assert.equal((await execute(key, "sheets_b")).status, 200);
    // The name is free again.
    await connect(key, "mcp", first.credentials, "sheets_a");
    assert.equal((await execute(key, "sheets_a")).status, 200);
  } finally {
    await first.close();
    await second.close();
  }
});

test("mcp: the name is required; wrong credentials fail test with 502 and leave it broken", async () => {
  const key = await (await createTestOrg()).key();
  const server = startMcpServer();
  try {
    const unnamed = await call(key, "connect", {
      provider: "mcp",
      credentials: server.credentials,
    });
    expectError(unnamed, 400, "VALIDATION_ERROR");
    assert.equal(unnamed.body.error.details.field, "name");
    const noUrl = await call(key, "connect", {
      provider: "mcp",
      name: "x",
      credentials: { bearer_token: "t" },
    });
    expectError(noUrl, 400, "VALIDATION_ERROR");
    assert.equal(noUrl.body.error.details.field, "credentials.url");
    const wrong = await connect(key, "mcp", {
      ...server.credentials,
      bearer_token: "not-the-token",
    }, "sheets");
    const tested = await call(key, "test", { integration_id: wrong.id });
    expectError(tested, 502, "INTEGRATION_ERROR");
    assert.equal(tested.body.error.details.reason, "unauthorized");
    assert.ok(!JSON.stringify(tested.body).includes("not-the-token"));
    assert.equal((await call(key, "get", { integration_id: wrong.id })).body.data.status, "broken");
  } finally {
    await server.close();
  }
});

test("concurrent connects of one provider (and of one MCP name) give one integration and 400s, never a 500", async () => {
  const org = await createTestOrg();
  // The sandbox: nothing reaches Google, so the race is on the store alone.
  const key = await org.key({ environment: "test" });
  const server = startMcpServer();
  try {
    const race = (data: Record<string, unknown>) =>
      Promise.all(Array.from({ length: 6 }, () => call(key, "connect", data)));
    for (
      const data of [
        { provider: "google_calendar", credentials: googleCredentials("rt-race") },
        { provider: "mcp", name: "raced", credentials: server.credentials },
      ]
    ) {
      const answers = await race(data);
      const statuses = answers.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 400, 400, 400, 400, 400], JSON.stringify(statuses));
      for (const refused of answers.filter((r) => r.status === 400)) {
        assert.equal(refused.body.error.details.constraint, "already_connected");
      }
    }
  } finally {
    await server.close();
  }
});

test("isolation: Google Calendar and MCP integrations of another organization or environment are invisible", async () => {
  const owner = await createTestOrg();
  const other = await createTestOrg();
  const ownerKey = await owner.key();
  const server = startMcpServer();
  try {
    const { refreshToken } = await googleAccount();
    const google = await connect(ownerKey, "google_calendar", googleCredentials(refreshToken));
    const mcp = await connect(ownerKey, "mcp", server.credentials, "sheets");
    for (const key of [await other.key(), await owner.key({ environment: "test" })]) {
      assert.deepEqual((await call(key, "list", {})).body.data.integrations, []);
      for (const id of [google.id, mcp.id]) {
        for (const action of ["get", "test", "disconnect"]) {
          expectError(await call(key, action, { integration_id: id }), 404, "RESOURCE_NOT_FOUND");
        }
      }
      expectError(await execute(key, "sheets"), 404, "RESOURCE_NOT_FOUND");
      const sync = await api("calendar/sync", { action: "sync", data: {} }, { key });
      expectError(sync, 400, "VALIDATION_ERROR");
      // The other side connects its own under the same names without a conflict.
      await connect(key, "mcp", server.credentials, "sheets");
    }
    assert.equal((await execute(ownerKey, "sheets")).status, 200);
  } finally {
    await server.close();
  }
});
