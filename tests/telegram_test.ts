/**
 * Telegram (shared/messages/channels/telegram.ts) against the stack's Bot API stand-in
 * (local/stand-ins/telegram.ts), over real HTTP: the real client sends, tests and registers
 * webhooks with it, Telegram's errors are mapped (never with the token), and the stand-in
 * delivers updates to the stack's receivers function as Telegram would, with the secret
 * token that setWebhook registered. Each test makes its own bot, so they never share one.
 */
// The registry first: channel → inbound.ts → messages.ts → channels.ts is an import cycle
// that only resolves when the registry is evaluated before the channel.
import "../shared/messages/channels.ts";
import assert from "node:assert/strict";
import { ChannelError } from "../shared/messages/channel.ts";
import {
  ALLOWED_UPDATES,
  callBotApi,
  SECRET_TOKEN_HEADER,
  telegram,
  telegramReceiverKind,
  type TelegramReceiverSecrets,
} from "../shared/messages/channels/telegram.ts";
import { withClaims } from "../shared/platform/db.ts";
import { registerReceiver } from "../shared/platform/receiver.ts";
import { sealSecrets } from "../shared/platform/secrets.ts";
import { createTestOrg, db, stack, test } from "./helpers/stack.ts";

// The shared modules read these lazily, on first use.
Deno.env.set("SUPABASE_DB_URL", stack.db_url);
Deno.env.set("SUPABASE_URL", stack.api_url);
Deno.env.set("BIVELIO_SECRETS_KEY", stack.secrets_key);
Deno.env.set("TELEGRAM_API_BASE_URL", stack.telegram.base_url);
// The stand-in listens on this machine.
Deno.env.set("BIVELIO_ALLOW_LOOPBACK_TARGETS", "1");

const standIn = stack.telegram.base_url;

async function control(path: string, body?: unknown) {
  const response = await fetch(`${standIn}/_standin/${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // deno-lint-ignore no-explicit-any
  return { status: response.status, body: await response.json() as any };
}

interface Bot {
  id: number;
  token: string;
  username: string;
  first_name: string;
}

/** A bot of this test's own in the stand-in. */
const newBot = async (): Promise<Bot> => (await control("bots", {})).body.bot;

/** The stand-in's answers for the bot's next calls. */
const script = (bot: Bot, ...answers: Record<string, unknown>[]) =>
  control("script", { bot_id: bot.id, answers });

const callsOf = async (bot: Bot) =>
  (await control(`requests?bot_id=${bot.id}`)).body.requests as {
    method: string;
    parameters: Record<string, unknown>;
    status: number;
    token_accepted: boolean;
  }[];

const sendText = (token: string, to: string, body: string) =>
  telegram.send({ bot_token: token }, { to, type: "text", body }, {});

/** The ChannelError `promise` rejects with, checked to carry no part of `token`. */
async function channelErrorOf(promise: Promise<unknown>, token: string): Promise<ChannelError> {
  const error = await promise.then(() => null, (error) => error);
  assert.ok(error instanceof ChannelError, `expected a ChannelError, got ${error}`);
  const secretPart = token.slice(token.indexOf(":") + 1);
  const everything = JSON.stringify({
    message: error.message,
    providerMessage: error.providerMessage,
    api: error.toApiError().toBody(),
  });
  assert.ok(!everything.includes(secretPart), `the token leaked: ${everything}`);
  return error;
}

// ---------------------------------------------------------------------------------------
// Sending

test("telegram send: the real client gets message ids per chat, prefixed with the chat", async () => {
  const bot = await newBot();
  const first = await sendText(bot.token, "100200300", "Hola, Demo");
  const second = await sendText(bot.token, "100200300", "¿Todo bien?");
  const group = await sendText(bot.token, "-1001234567890", "To the group");
  assert.deepEqual(first, { providerMessageId: "100200300:1", from: String(bot.id) });
  assert.equal(second.providerMessageId, "100200300:2");
  assert.equal(group.providerMessageId, "-1001234567890:1");
  // A channel by its username: the id is the chat's number, as inbound messages have it.
  const channel = await sendText(bot.token, "@bivelio_demo", "News");
  assert.equal(channel.providerMessageId, "-1009876543210:1");

  const calls = await callsOf(bot);
  assert.deepEqual(
    calls.map((call) => [call.method, call.parameters, call.status]),
    [
      ["sendMessage", { chat_id: "100200300", text: "Hola, Demo" }, 200],
      ["sendMessage", { chat_id: "100200300", text: "¿Todo bien?" }, 200],
      ["sendMessage", { chat_id: "-1001234567890", text: "To the group" }, 200],
      ["sendMessage", { chat_id: "@bivelio_demo", text: "News" }, 200],
    ],
  );
  // The stand-in's log never holds a token either.
  const log = JSON.stringify((await control("requests")).body);
  assert.ok(!log.includes(bot.token.split(":")[1]));
});

test("telegram send: Telegram's refusals are ChannelErrors with error_code and description", async () => {
  const bot = await newBot();
  const unknownChat = await channelErrorOf(sendText(bot.token, "555", "hi"), bot.token);
  assert.equal(unknownChat.channel, "telegram");
  assert.equal(unknownChat.providerCode, 400);
  assert.equal(unknownChat.providerMessage, "Bad Request: chat not found");
  assert.equal(unknownChat.retryable, false);
  assert.deepEqual(unknownChat.toApiError().toBody().error.details, {
    provider: "telegram",
    provider_code: 400,
    provider_message: "Bad Request: chat not found",
    retryable: false,
  });
  assert.equal(unknownChat.toApiError().status, 502);

  await script(
    bot,
    { error_code: 429, retry_after: 7 },
    { error_code: 403 },
    { error_code: 500 },
    { http_status: 502, body: "<html><body>502 Bad Gateway</body></html>" },
  );
  const limited = await channelErrorOf(sendText(bot.token, "100200300", "a"), bot.token);
  assert.equal(limited.providerCode, 429);
  assert.equal(limited.providerMessage, "Too Many Requests: retry after 7 (retry_after: 7 s)");
  assert.equal(limited.retryable, true);
  const blocked = await channelErrorOf(sendText(bot.token, "100200300", "b"), bot.token);
  assert.deepEqual(
    [blocked.providerCode, blocked.providerMessage, blocked.retryable],
    [403, "Forbidden: bot was blocked by the user", false],
  );
  const failing = await channelErrorOf(sendText(bot.token, "100200300", "c"), bot.token);
  assert.deepEqual([failing.providerCode, failing.retryable], [500, true]);
  const proxy = await channelErrorOf(sendText(bot.token, "100200300", "d"), bot.token);
  assert.equal(proxy.providerCode, 502);
  assert.equal(proxy.providerMessage, "The Bot API answered HTTP 502 without a Bot API body.");
  assert.equal(proxy.retryable, true);
});

test("telegram send: a wrong token is Telegram's 401, and no error carries a token", async () => {
  const bot = await newBot();
  // The right shape, but a token the stand-in never issued.
  const wrong = `${bot.id}:${"x".repeat(35)}`;
  const unauthorized = await channelErrorOf(sendText(wrong, "100200300", "hi"), wrong);
  assert.deepEqual(
    [unauthorized.providerCode, unauthorized.providerMessage, unauthorized.retryable],
    [401, "Unauthorized", false],
  );
  const calls = await callsOf(bot);
  assert.deepEqual(calls.map((call) => [call.token_accepted, call.status]), [[false, 401]]);

  // A provider message that quotes the request's URL (a proxy, a future error) is scrubbed.
  await script(bot, {
    error_code: 400,
    description: `Bad Request: invalid url ${standIn}/bot${bot.token}/sendMessage (${bot.token})`,
  });
  const quoted = await channelErrorOf(sendText(bot.token, "100200300", "hi"), bot.token);
  assert.equal(
    quoted.providerMessage,
    `Bad Request: invalid url ${standIn}/bot<bot_token>/sendMessage (<bot_token>)`,
  );
});

test("telegram send: an unreachable Bot API is a retryable ChannelError without the URL", async () => {
  const bot = await newBot();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (listener.addr as Deno.NetAddr).port;
  listener.close();
  Deno.env.set("TELEGRAM_API_BASE_URL", `http://127.0.0.1:${closedPort}`);
  try {
    const error = await channelErrorOf(sendText(bot.token, "100200300", "hi"), bot.token);
    assert.equal(error.providerCode, null);
    assert.equal(error.retryable, true);
    assert.match(error.providerMessage, /^The Bot API could not be reached/);
  } finally {
    Deno.env.set("TELEGRAM_API_BASE_URL", standIn);
  }
});

// ---------------------------------------------------------------------------------------
// Test and connect

test("telegram test: getMe proves the token and names the bot", async () => {
  const bot = await newBot();
  assert.deepEqual(await telegram.test({ bot_token: bot.token }, {}), {
    bot_id: String(bot.id),
    username: bot.username,
    name: bot.first_name,
  });
  const wrong = `${bot.id}:${"y".repeat(35)}`;
  const error = await channelErrorOf(telegram.test({ bot_token: wrong }, {}), wrong);
  assert.equal(error.providerCode, 401);
});

test("telegram connect: setWebhook registers the receiver URL, its secret token and the updates", async () => {
  const bot = await newBot();
  const secrets = telegram.receiverSecrets!({ bot_token: bot.token }) as TelegramReceiverSecrets;
  const url = `${stack.api_url}/functions/v1/receivers/telegram/rcv_${"0".repeat(32)}`;
  await telegram.onConnect!({ bot_token: bot.token }, { url, secrets }, {});

  const info = await callBotApi<{ url: string; allowed_updates: string[] }>(
    bot.token,
    "getWebhookInfo",
    {},
  );
  assert.equal(info.url, url);
  assert.deepEqual(info.allowed_updates, ALLOWED_UPDATES);
  const [setWebhook] = await callsOf(bot);
  assert.equal(setWebhook.method, "setWebhook");
  assert.deepEqual(setWebhook.parameters, {
    url,
    // The stand-in logs a secret token's length only.
    secret_token: `<${secrets.secret_token.length} characters>`,
    allowed_updates: ["message", "edited_message"],
  });

  // Telegram refusing it (a bad URL, a revoked token) is a ChannelError too.
  await script(bot, {
    method: "setWebhook",
    error_code: 400,
    description: "Bad Request: bad webhook: HTTPS url must be provided for webhook",
  });
  const error = await channelErrorOf(
    telegram.onConnect!({ bot_token: bot.token }, { url, secrets }, {}),
    bot.token,
  );
  assert.deepEqual(
    [error.providerCode, error.providerMessage],
    [400, "Bad Request: bad webhook: HTTPS url must be provided for webhook"],
  );
});

// ---------------------------------------------------------------------------------------
// Receiving: the stand-in delivers to the stack's receivers function

interface ConnectedBot {
  bot: Bot;
  orgId: string;
  receiverId: string;
  receiverUrl: string;
  integrationId: string;
  secrets: TelegramReceiverSecrets;
}

/**
 * A test organization with a Telegram integration as `integrations/connect` leaves it: the
 * receiver with its secret token, the integration row pointing at it, and the bot's webhook
 * set to the receiver's URL.
 */
async function connectedBot(): Promise<ConnectedBot> {
  const bot = await newBot();
  const org = await createTestOrg();
  const credentials = { bot_token: bot.token };
  const secrets = telegram.receiverSecrets!(credentials) as TelegramReceiverSecrets;
  const sealed = await sealSecrets(credentials);
  const { receiver, integrationId } = await withClaims(
    { role: "authenticated", org_id: org.orgId, environment: "live" },
    async (tx) => {
      const receiver = await registerReceiver(tx, { kind: telegramReceiverKind, secrets });
      const [{ id }] = await tx<{ id: string }[]>`
        insert into public.integrations (provider, name, sealed_credentials, public, receiver_id)
        values ('telegram', 'telegram', ${sealed}, ${
        tx.json({ bot_id: String(bot.id) })
      }, ${receiver.id})
        returning id
      `;
      return { receiver, integrationId: id };
    },
  );
  await telegram.onConnect!(credentials, { url: receiver.url, secrets }, {});
  return {
    bot,
    orgId: org.orgId,
    receiverId: receiver.id,
    receiverUrl: receiver.url,
    integrationId,
    secrets,
  };
}

const dedupRows = async (receiverId: string) =>
  (await db`select provider_id from private.received_updates where receiver_id = ${receiverId}`)
    .map((row) => row.provider_id as string);

const storedMessages = async (integrationId: string) => [
  ...await db<
    {
      direction: string;
      from: string;
      to: string;
      counterpart: string;
      body: string;
      provider_message_id: string;
      contact_id: string | null;
      org_id: string;
    }[]
  >`
    select direction, "from", "to", counterpart, body, provider_message_id, contact_id, org_id
    from public.messages where integration_id = ${integrationId} order by created_at
  `,
];

test("telegram inbound: an update from the stand-in is stored once, in the bot's organization", async () => {
  const connected = await connectedBot();
  const delivered = await control("inbound", {
    bot_token: connected.bot.token,
    chat_id: 100200300,
    from_id: 100200300,
    name: "Demo Customer",
    text: "Hola, ¿tenéis cita el martes?",
  });
  assert.equal(delivered.status, 200, JSON.stringify(delivered.body));
  assert.equal(delivered.body.webhook_status, 200, JSON.stringify(delivered.body));
  assert.deepEqual(delivered.body.webhook_body.data, { updates: 1, handled: 1, duplicates: 0 });
  const updateId = String(delivered.body.update.update_id);
  const messageId = delivered.body.update.message.message_id;

  // Telegram delivers the same update again (it got no answer in time): stored once.
  const again = await control("inbound", {
    bot_token: connected.bot.token,
    update_id: Number(updateId),
  });
  assert.deepEqual(again.body.webhook_body.data, { updates: 1, handled: 0, duplicates: 1 });

  assert.deepEqual(await dedupRows(connected.receiverId), [updateId]);
  const stored = await storedMessages(connected.integrationId);
  assert.equal(stored.length, 1);
  assert.deepEqual(
    { ...stored[0], contact_id: stored[0].contact_id !== null },
    {
      direction: "inbound",
      from: "100200300",
      to: String(connected.bot.id),
      counterpart: "100200300",
      body: "Hola, ¿tenéis cita el martes?",
      provider_message_id: `100200300:${messageId}`,
      contact_id: true,
      org_id: connected.orgId,
    },
  );
});

test("telegram inbound: a photo is stored as a placeholder with its caption", async () => {
  const connected = await connectedBot();
  const delivered = await control("inbound", {
    bot_token: connected.bot.token,
    chat_id: 100200301,
    name: "Ana",
    photo: true,
    text: "My invoice",
  });
  assert.equal(delivered.body.webhook_status, 200, JSON.stringify(delivered.body));
  const [stored] = await storedMessages(connected.integrationId);
  assert.equal(stored.body, "[photo] My invoice");
  assert.equal(stored.from, "100200301");
});

test("telegram inbound: a wrong or missing secret token is 401 and stores nothing", async () => {
  const connected = await connectedBot();
  const update = {
    update_id: 900001,
    message: {
      message_id: 1,
      from: { id: 100200300, is_bot: false, first_name: "Mallory" },
      chat: { id: 100200300, type: "private" },
      date: Math.floor(Date.now() / 1000),
      text: "forged",
    },
  };
  const post = (headers: Record<string, string>) =>
    fetch(connected.receiverUrl, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(update),
    }).then(async (response) => ({ status: response.status, body: await response.json() }));

  const missing = await post({});
  const wrong = await post({ [SECRET_TOKEN_HEADER]: `${connected.bot.id}_not-the-secret` });
  // Another receiver's secret token (another bot's) does not open this one.
  const other = await connectedBot();
  const borrowed = await post({ [SECRET_TOKEN_HEADER]: other.secrets.secret_token });
  for (const answer of [missing, wrong, borrowed]) {
    assert.equal(answer.status, 401);
    assert.equal(answer.body.error.code, "AUTH_INVALID_TOKEN");
  }
  assert.deepEqual(await dedupRows(connected.receiverId), []);
  assert.deepEqual(await storedMessages(connected.integrationId), []);

  // The right one is taken (so the 401s were the secret's doing).
  const good = await post({ [SECRET_TOKEN_HEADER]: connected.secrets.secret_token });
  assert.equal(good.status, 200);
  assert.equal((await storedMessages(connected.integrationId)).length, 1);
});

test("telegram inbound: edits and other updates are acknowledged without a message", async () => {
  const connected = await connectedBot();
  const post = (body: unknown) =>
    fetch(connected.receiverUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        [SECRET_TOKEN_HEADER]: connected.secrets.secret_token,
      },
      body: JSON.stringify(body),
    }).then(async (response) => ({ status: response.status, body: await response.json() }));
  const edited = await post({
    update_id: 1,
    edited_message: {
      message_id: 1,
      from: { id: 5, is_bot: false, first_name: "A" },
      chat: { id: 5, type: "private" },
      date: 1,
      edit_date: 2,
      text: "edited",
    },
  });
  const member = await post({ update_id: 2, my_chat_member: { chat: { id: 5 } } });
  const malformed = await post({ message: { text: "no update_id" } });
  assert.deepEqual([edited.status, member.status, malformed.status], [200, 200, 400]);
  assert.deepEqual(edited.body.data, { updates: 1, handled: 1, duplicates: 0 });
  assert.deepEqual((await dedupRows(connected.receiverId)).sort(), ["1", "2"]);
  assert.deepEqual(await storedMessages(connected.integrationId), []);
});
