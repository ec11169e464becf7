/**
 * Telegram: a bot, through the Bot API (https://core.telegram.org/bots/api).
 *
 * - Credentials: the bot token `<bot id>:<35 characters>` from @BotFather. The token is part
 *   of every URL (`{base}/bot<token>/<method>`), so no URL is ever logged and every error
 *   message is scrubbed of it ({@link scrubToken}).
 * - Sending: `sendMessage {chat_id, text}`; a message id is unique per chat only, so the
 *   provider id is `<chat id>:<message id>`. Telegram reports no delivery statuses.
 * - Receiving: at connect, `setWebhook` with the receiver's URL and a generated secret token,
 *   which Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` with every update. One
 *   update per request; its `update_id` is the dedup key.
 *
 * The base URL is TELEGRAM_API_BASE_URL (config.telegramApiBaseUrl): Telegram's own when
 * deployed, the stand-in's (local/stand-ins/telegram.ts) locally.
 */
import { Buffer } from "node:buffer";
import { z } from "zod";
import { config } from "../../platform/config.ts";
import { ApiError } from "../../platform/errors.ts";
import { OutboundBlockedError } from "../../platform/outbound/address-guard.ts";
import { guardedFetch } from "../../platform/outbound/fetch.ts";
import {
  defineReceiverKind,
  malformedBody,
  parseJsonBody,
  timingSafeEqualText,
} from "../../platform/receiver.ts";
import { ChannelError, defineChannel, type InboundMessage } from "../channel.ts";
import { recordInbound } from "../inbound.ts";

/** Telegram's limit for one message's text (sendMessage `text`: 1-4096 characters). */
export const MAX_TEXT_LENGTH = 4096;
/** How long one Bot API call may take before its answer's head arrives. */
const REQUEST_TIMEOUT_MS = 10_000;
/** The header Telegram sends the webhook's secret token in. */
export const SECRET_TOKEN_HEADER = "x-telegram-bot-api-secret-token";
/** The updates the webhook asks for. */
export const ALLOWED_UPDATES = ["message", "edited_message"];

/** A bot token as @BotFather issues it: the bot's id, a colon, 35 characters. */
const BOT_TOKEN = /^(\d{1,20}):[A-Za-z0-9_-]{35}$/;

export const telegramCredentials = z.strictObject({
  bot_token: z.string().regex(BOT_TOKEN, "expected a bot token '<bot id>:<35 characters>'"),
});
export type TelegramCredentials = z.infer<typeof telegramCredentials>;

/** What responses show of a bot: its id (in the token) and, once getMe answered, its names. */
export interface TelegramPublic {
  bot_id: string;
  username: string | null;
  name: string | null;
}

/**
 * The receiver's secrets. The secret token is `<bot id>_<random>`: Telegram's updates do not
 * name the bot they are for, and the (authenticated) header is all the receiver kind's parse
 * sees, so the bot id rides along in it. The random part alone is the secret.
 */
export interface TelegramReceiverSecrets {
  secret_token: string;
}

const botIdOf = (token: string) => token.slice(0, token.indexOf(":"));

/** A fresh secret token (setWebhook: 1-256 characters of `[A-Za-z0-9_-]`). */
export function newSecretToken(botId: string): string {
  const random = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
  return `${botId}_${random}`;
}

/**
 * `text` with the token taken out, in any form an error could carry it (as it is, URL-encoded,
 * or any `bot<id>:<…>` path segment).
 */
export function scrubToken(text: string, token: string): string {
  let scrubbed = text;
  for (const form of [token, encodeURIComponent(token)]) {
    if (form) scrubbed = scrubbed.split(form).join("<bot_token>");
  }
  return scrubbed.replace(/bot\d+(?::|%3A)[A-Za-z0-9_-]+/gi, "bot<bot_token>");
}

// ---------------------------------------------------------------------------------------
// The Bot API client

/** A Bot API answer: `{ok: true, result}` or `{ok: false, error_code, description, …}`. */
interface BotApiAnswer<Result> {
  ok: boolean;
  result?: Result;
  error_code?: number;
  description?: string;
  parameters?: { retry_after?: number; migrate_to_chat_id?: number };
}

interface BotUser {
  id: number;
  is_bot: boolean;
  first_name: string;
  last_name?: string;
  username?: string;
}

interface SentBotMessage {
  message_id: number;
  from?: BotUser;
  chat: { id: number };
}

/** Rate limits and Telegram's own failures may pass; anything else will fail again. */
const isRetryable = (code: number) => code === 429 || code >= 500;

/**
 * Calls one Bot API method with JSON parameters and returns its `result`, or throws a
 * ChannelError with Telegram's `error_code` and `description` (never the token).
 */
export async function callBotApi<Result>(
  token: string,
  method: string,
  parameters: Record<string, unknown>,
  options: { signal?: AbortSignal } = {},
): Promise<Result> {
  // The address guard, as for every configurable base URL.
  const fetch = guardedFetch({ timeoutMs: REQUEST_TIMEOUT_MS });
  const url = `${config.telegramApiBaseUrl.replace(/\/+$/, "")}/bot${token}/${method}`;
  let status: number;
  let text: string;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(parameters),
      signal: options.signal,
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    // The caller gave up (a client that went away): not Telegram's failure.
    if (options.signal?.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new ChannelError(
      "telegram",
      null,
      scrubToken(`The Bot API could not be reached: ${message}`, token),
      // A base URL the address guard refuses will be refused again.
      !(error instanceof OutboundBlockedError),
    );
  }
  let answer: BotApiAnswer<Result> | null = null;
  try {
    answer = JSON.parse(text);
  } catch {
    // not a Bot API answer: reported below with the HTTP status
  }
  if (answer?.ok === true && answer.result !== undefined) return answer.result;
  if (answer && typeof answer.error_code === "number") {
    const retryAfter = answer.parameters?.retry_after;
    const description = typeof answer.description === "string"
      ? answer.description
      : `error ${answer.error_code}`;
    throw new ChannelError(
      "telegram",
      answer.error_code,
      scrubToken(
        retryAfter === undefined ? description : `${description} (retry_after: ${retryAfter} s)`,
        token,
      ),
      isRetryable(answer.error_code),
      // 401 Unauthorized: the bot token was revoked (BotFather) or is wrong.
      answer.error_code === 401,
    );
  }
  throw new ChannelError(
    "telegram",
    status,
    `The Bot API answered HTTP ${status} without a Bot API body.`,
    isRetryable(status),
  );
}

// ---------------------------------------------------------------------------------------
// Recipients

/** A chat id: an integer (negative for groups and channels). */
const CHAT_ID = /^-?[1-9]\d{0,15}$/;
/** A public channel or supergroup's username: `@` and 5-32 of `[A-Za-z0-9_]`. */
const CHAT_USERNAME = /^@[A-Za-z][A-Za-z0-9_]{4,31}$/;

export function normalizeTelegramRecipient(to: string): string {
  const trimmed = typeof to === "string" ? to.trim() : "";
  if (CHAT_ID.test(trimmed) || CHAT_USERNAME.test(trimmed)) return trimmed;
  throw new ApiError(
    "VALIDATION_ERROR",
    "The 'to' field is invalid: a Telegram chat id (an integer, negative for groups) or " +
      "@channelusername is expected.",
    { details: { field: "to", constraint: "format" } },
  );
}

const bodyError = (message: string) =>
  new ApiError("VALIDATION_ERROR", `The 'message.body' field is invalid: ${message}`, {
    details: { field: "message.body", constraint: "format" },
  });

// ---------------------------------------------------------------------------------------
// Inbound: the receiver kind

/** What a Telegram message carries instead of text, shown as `[photo]` and the like. */
const CONTENT_KINDS = [
  "photo",
  "video",
  "animation",
  "audio",
  "voice",
  "video_note",
  "document",
  "sticker",
  "location",
  "venue",
  "contact",
  "poll",
  "dice",
] as const;

const userSchema = z.looseObject({
  id: z.number().int(),
  first_name: z.string().optional(),
  last_name: z.string().optional(),
  username: z.string().optional(),
});

const messageSchema = z.looseObject({
  message_id: z.number().int(),
  date: z.number().int(),
  chat: z.looseObject({ id: z.number().int() }),
  from: userSchema.optional(),
  text: z.string().optional(),
  caption: z.string().optional(),
});

const updateSchema = z.looseObject({
  update_id: z.number().int().nonnegative(),
  message: messageSchema.optional(),
});

/** One update: a message to store, or one acknowledged and ignored. */
export type TelegramUpdatePayload =
  | { kind: "message"; message: InboundMessage }
  | { kind: "ignored"; reason: string };

/** The sender's name as Telegram shows it: first and last name, else the username. */
function displayName(user: z.infer<typeof userSchema>): string | undefined {
  const name = [user.first_name, user.last_name].filter(Boolean).join(" ").trim();
  return name || user.username || undefined;
}

/** The message's text, or a placeholder for what it carries instead (a caption kept). */
function bodyOf(message: z.infer<typeof messageSchema>): string | null {
  if (typeof message.text === "string") return message.text;
  const kind = CONTENT_KINDS.find((name) => message[name] !== undefined);
  if (!kind) return null;
  return message.caption ? `[${kind}] ${message.caption}` : `[${kind}]`;
}

/**
 * One update as the receiver stores it. `botId` is the bot it was sent to (from the secret
 * token). Edits and service messages (members joining, pins) are acknowledged, not stored.
 */
export function parseTelegramUpdate(
  body: unknown,
  botId: string,
): { providerId: string; payload: TelegramUpdatePayload } {
  const parsed = updateSchema.safeParse(body);
  if (!parsed.success) {
    throw malformedBody("The body is not a Telegram Update (an object with an update_id).");
  }
  const update = parsed.data;
  const providerId = String(update.update_id);
  const message = update.message;
  if (!message) {
    const kind = Object.keys(update).find((key) => key !== "update_id") ?? "empty";
    return { providerId, payload: { kind: "ignored", reason: kind } };
  }
  const text = bodyOf(message);
  if (text === null || !message.from) {
    return { providerId, payload: { kind: "ignored", reason: "service message" } };
  }
  return {
    providerId,
    payload: {
      kind: "message",
      message: {
        channel: "telegram",
        providerMessageId: `${message.chat.id}:${message.message_id}`,
        from: String(message.from.id),
        fromName: displayName(message.from),
        to: botId,
        body: text,
        receivedAt: new Date(message.date * 1000),
      },
    },
  };
}

export const telegramReceiverKind = defineReceiverKind<
  TelegramReceiverSecrets,
  TelegramUpdatePayload
>({
  kind: "telegram",
  // An update is text and metadata (media are references): 1 MiB is plenty.
  bodyLimit: 1024 * 1024,
  authenticate({ headers, secrets }) {
    const given = headers.get(SECRET_TOKEN_HEADER);
    return given !== null && timingSafeEqualText(given, secrets.secret_token);
  },
  parse(rawBody, headers) {
    // Authenticated already: the header is the receiver's own secret token.
    const secretToken = headers.get(SECRET_TOKEN_HEADER) ?? "";
    const botId = /^(\d+)_/.exec(secretToken)?.[1] ?? "bot";
    return [parseTelegramUpdate(parseJsonBody(rawBody), botId)];
  },
  async handle(tx, item, receiver) {
    if (item.payload.kind === "message") await recordInbound(tx, receiver, item.payload.message);
  },
});

// ---------------------------------------------------------------------------------------
// The channel

/** getMe's bot as responses show it. */
async function getMe(token: string, signal?: AbortSignal): Promise<TelegramPublic> {
  const me = await callBotApi<BotUser>(token, "getMe", {}, { signal });
  const name = [me.first_name, me.last_name].filter(Boolean).join(" ").trim();
  return { bot_id: String(me.id), username: me.username ?? null, name: name || null };
}

export const telegram = defineChannel<TelegramCredentials, TelegramPublic>({
  channel: "telegram",
  credentials: telegramCredentials,
  publicPart: (credentials) => ({
    bot_id: botIdOf(credentials.bot_token),
    username: null,
    name: null,
  }),
  normalizeRecipient: normalizeTelegramRecipient,
  async send(credentials, message, { signal }) {
    if (message.type !== "text") {
      throw new ApiError(
        "VALIDATION_ERROR",
        "The 'message.type' field is invalid: Telegram sends text messages only.",
        { details: { field: "message.type", constraint: "enum" } },
      );
    }
    const text = message.body ?? "";
    if (text.trim().length === 0) throw bodyError("Telegram does not send an empty message.");
    if (text.length > MAX_TEXT_LENGTH) {
      throw bodyError(`Telegram sends at most ${MAX_TEXT_LENGTH} characters in one message.`);
    }
    const chatId = normalizeTelegramRecipient(message.to);
    const sent = await callBotApi<SentBotMessage>(
      credentials.bot_token,
      "sendMessage",
      // As text: the Bot API takes either, and ids may exceed a double's exact integers.
      { chat_id: chatId, text },
      { signal },
    );
    return {
      // The chat's numeric id even when sent to @channelusername, as inbound ids have it.
      providerMessageId: `${sent.chat?.id ?? chatId}:${sent.message_id}`,
      // The bot's id, as inbound messages name it in `to`.
      from: botIdOf(credentials.bot_token),
    };
  },
  test: (credentials, { signal }) => getMe(credentials.bot_token, signal),
  receiverSecrets: (credentials): TelegramReceiverSecrets => ({
    secret_token: newSecretToken(botIdOf(credentials.bot_token)),
  }),
  async onConnect(credentials, receiver, { signal }) {
    const secrets = receiver.secrets as TelegramReceiverSecrets;
    await callBotApi<boolean>(credentials.bot_token, "setWebhook", {
      url: receiver.url,
      secret_token: secrets.secret_token,
      allowed_updates: ALLOWED_UPDATES,
    }, { signal });
  },
  async onDisconnect(credentials, { signal }) {
    // Telegram stops delivering to the (now disabled) receiver.
    await callBotApi<boolean>(credentials.bot_token, "deleteWebhook", {}, { signal });
  },
  receiverKind: telegramReceiverKind,
});
