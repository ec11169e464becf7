/**
 * The Telegram channel's pure parts: credentials, recipients, the secret token, scrubbing the
 * bot token and the Update parser and authentication of the receiver kind. The client and
 * the receiver kind over HTTP are tested against the stand-in in tests/telegram_test.ts.
 */
// The registry first: channel → inbound.ts → messages.ts → channels.ts is an import cycle
// that only resolves when the registry is evaluated before the channel.
import "../channels.ts";
import assert from "node:assert/strict";
import { ApiError } from "../../platform/errors.ts";
import type { Receiver } from "../../platform/receiver.ts";
import {
  normalizeTelegramRecipient,
  parseTelegramUpdate,
  scrubToken,
  SECRET_TOKEN_HEADER,
  telegram,
  telegramReceiverKind,
} from "./telegram.ts";

const TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ts";
const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

const isValidationErrorOn = (field: string) => (error: unknown) =>
  error instanceof ApiError && error.code === "VALIDATION_ERROR" &&
  error.options.details?.field === field;

Deno.test("telegram credentials: a bot token of BotFather's shape, nothing else", () => {
  assert.deepEqual(telegram.credentials.parse({ bot_token: TOKEN }), { bot_token: TOKEN });
  for (
    const bad of [
      {},
      { bot_token: "" },
      { bot_token: "123456789" },
      { bot_token: "abc:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-ts" },
      { bot_token: "123456789:short" },
      { bot_token: `${TOKEN}x` }, // 36 characters
      { bot_token: "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K+ts" },
      { bot_token: TOKEN, webhook_secret: "mine" }, // strict: generated, not given
    ]
  ) {
    assert.equal(telegram.credentials.safeParse(bad).success, false, JSON.stringify(bad));
  }
  assert.deepEqual(telegram.publicPart({ bot_token: TOKEN }), {
    bot_id: "123456789",
    username: null,
    name: null,
  });
});

Deno.test("telegram recipients: chat ids and @channelusername", () => {
  assert.equal(normalizeTelegramRecipient("100200300"), "100200300");
  assert.equal(normalizeTelegramRecipient(" -1001234567890 "), "-1001234567890");
  assert.equal(normalizeTelegramRecipient("-42"), "-42");
  assert.equal(normalizeTelegramRecipient("@bivelio_demo"), "@bivelio_demo");
  assert.equal(telegram.normalizeRecipient("100200300"), "100200300");
});

Deno.test("telegram recipients: anything else is a VALIDATION_ERROR naming to", () => {
  for (
    const to of [
      "",
      "0",
      "0123",
      "1.5",
      "1e9",
      "+34612345678",
      "12345678901234567", // 17 digits: beyond Telegram's 52-bit ids
      "@abc", // too short
      "@1channel",
      "@bad-name",
      "bivelio_demo",
      "ct_abc123",
    ]
  ) {
    assert.throws(() => normalizeTelegramRecipient(to), isValidationErrorOn("to"), to);
  }
});

Deno.test("telegram send: what Telegram would refuse is a 400 before any call", async () => {
  const send = (message: Record<string, unknown>) =>
    telegram.send({ bot_token: TOKEN }, { to: "100200300", type: "text", ...message }, {});
  await assert.rejects(send({ body: "" }), isValidationErrorOn("message.body"));
  await assert.rejects(send({ body: "  \n " }), isValidationErrorOn("message.body"));
  await assert.rejects(send({ body: "x".repeat(4097) }), isValidationErrorOn("message.body"));
  await assert.rejects(
    send({ type: "template", template: { name: "hello", language: "en" } }),
    isValidationErrorOn("message.type"),
  );
});

Deno.test("telegram receiver secrets: a fresh random token setWebhook accepts, naming the bot", () => {
  const first = telegram.receiverSecrets!({ bot_token: TOKEN }) as { secret_token: string };
  const second = telegram.receiverSecrets!({ bot_token: TOKEN }) as { secret_token: string };
  assert.match(first.secret_token, /^123456789_[A-Za-z0-9_-]{43}$/);
  assert.ok(first.secret_token.length <= 256);
  assert.notEqual(first.secret_token, second.secret_token);
});

Deno.test("telegram scrubToken: the token leaves in no form", () => {
  const message = `POST https://api.telegram.org/bot${TOKEN}/sendMessage failed; ` +
    `encoded bot${encodeURIComponent(TOKEN)}/getMe; bare ${TOKEN}; ` +
    `another bot987654321:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/getMe`;
  const scrubbed = scrubToken(message, TOKEN);
  assert.ok(!scrubbed.includes("AAEhBOweik6ad9r"), scrubbed);
  assert.ok(!scrubbed.includes("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), scrubbed);
  assert.match(scrubbed, /bot<bot_token>\/sendMessage/);
});

// ---------------------------------------------------------------------------------------
// Updates

const update = (message: Record<string, unknown>, updateId = 500001) => ({
  update_id: updateId,
  message: {
    message_id: 17,
    from: { id: 100200300, is_bot: false, first_name: "Demo", last_name: "Customer" },
    chat: { id: 100200300, type: "private", first_name: "Demo" },
    date: 1764633600,
    ...message,
  },
});

Deno.test("telegram updates: a text message becomes one inbound message", () => {
  const { providerId, payload } = parseTelegramUpdate(update({ text: "Hola" }), "42");
  assert.equal(providerId, "500001");
  assert.deepEqual(payload, {
    kind: "message",
    message: {
      channel: "telegram",
      providerMessageId: "100200300:17",
      from: "100200300",
      fromName: "Demo Customer",
      to: "42",
      body: "Hola",
      receivedAt: new Date(1764633600 * 1000),
    },
  });
});

Deno.test("telegram updates: the sender's name falls back to the username, then to none", () => {
  const named = (from: Record<string, unknown>) => {
    const { payload } = parseTelegramUpdate(update({ from, text: "hi" }), "42");
    assert.equal(payload.kind, "message");
    return payload.kind === "message" ? payload.message.fromName : null;
  };
  assert.equal(named({ id: 5, first_name: "Ana" }), "Ana");
  assert.equal(named({ id: 5, first_name: "", username: "ana_p" }), "ana_p");
  assert.equal(named({ id: 5 }), undefined);
});

Deno.test("telegram updates: media become a placeholder, with the caption", () => {
  const body = (message: Record<string, unknown>) => {
    const { payload } = parseTelegramUpdate(update(message), "42");
    return payload.kind === "message" ? payload.message.body : payload.kind;
  };
  assert.equal(body({ photo: [{ file_id: "a" }], caption: "Invoice" }), "[photo] Invoice");
  assert.equal(body({ photo: [{ file_id: "a" }] }), "[photo]");
  assert.equal(body({ voice: { file_id: "v" } }), "[voice]");
  assert.equal(body({ sticker: { file_id: "s" } }), "[sticker]");
  assert.equal(body({ document: { file_id: "d" }, caption: "" }), "[document]");
  // An empty text is still a text message.
  assert.equal(body({ text: "" }), "");
});

Deno.test("telegram updates: edits, service messages and other updates are acknowledged only", () => {
  const ignored = (body: unknown) => parseTelegramUpdate(body, "42").payload.kind;
  assert.equal(
    ignored({ update_id: 9, edited_message: update({ text: "fixed" }).message }),
    "ignored",
  );
  assert.equal(ignored({ update_id: 9, my_chat_member: {} }), "ignored");
  assert.equal(ignored(update({ new_chat_members: [{ id: 1 }] })), "ignored");
  assert.equal(ignored(update({ text: "no sender", from: undefined })), "ignored");
  assert.equal(parseTelegramUpdate({ update_id: 0 }, "42").providerId, "0");
});

Deno.test("telegram updates: a body that is not an Update is a 400", () => {
  for (
    const body of [
      null,
      [],
      "text",
      {},
      { update_id: "1" },
      { update_id: -1 },
      { update_id: 1.5 },
      { update_id: 1, message: { text: "no ids" } },
      { update_id: 1, message: { message_id: 1, date: 1, chat: { id: "x" } } },
    ]
  ) {
    assert.throws(
      () => parseTelegramUpdate(body, "42"),
      (error: unknown) => error instanceof ApiError && error.status === 400,
      JSON.stringify(body),
    );
  }
});

// ---------------------------------------------------------------------------------------
// The receiver kind

const receiver: Receiver = { id: "rcv_x", kind: "telegram", orgId: "org_x", environment: "live" };
const secrets = { secret_token: "123456789_s3cret-Token_value" };

const authenticate = (headers: Record<string, string>) =>
  telegramReceiverKind.authenticate({
    receiver,
    secrets,
    headers: new Headers(headers),
    url: new URL("http://localhost/receivers/telegram/rcv_x"),
    rawBody: bytes(update({ text: "hi" })),
  });

Deno.test("telegram receiver: only the receiver's own secret token authenticates", async () => {
  assert.equal(await authenticate({ [SECRET_TOKEN_HEADER]: secrets.secret_token }), true);
  assert.equal(await authenticate({}), false);
  assert.equal(await authenticate({ [SECRET_TOKEN_HEADER]: "" }), false);
  assert.equal(await authenticate({ [SECRET_TOKEN_HEADER]: `${secrets.secret_token}x` }), false);
  assert.equal(await authenticate({ [SECRET_TOKEN_HEADER]: "123456789_other" }), false);
});

Deno.test("telegram receiver: one update is one item, addressed to the bot of the token", () => {
  const items = telegramReceiverKind.parse(
    bytes(update({ text: "hi" }, 777)),
    new Headers({ [SECRET_TOKEN_HEADER]: secrets.secret_token }),
  );
  assert.equal(items.length, 1);
  assert.equal(items[0].providerId, "777");
  const payload = items[0].payload;
  assert.equal(payload.kind === "message" && payload.message.to, "123456789");
});
