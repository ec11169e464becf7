/**
 * The contract every messaging channel (WhatsApp, Telegram, email) implements, so the
 * messages group (send, list, inbound, statuses) and the integrations group (connect, test)
 * are written once for all of them. Each channel lives in `shared/messages/channels/<name>.ts`
 * with its real client (base URL from shared/platform/config.ts), its receiver kind for
 * inbound traffic, and a local stand-in in `local/stand-ins/` that speaks its wire protocol.
 *
 * The integrations group connects a channel as one of its kinds (shared/integrations/kinds.ts
 * adapts this contract).
 *
 * Sandbox callers never reach a provider: the messages group answers them with a simulated
 * provider id (`simulated: true`) without calling `send`.
 */
import type { z } from "zod";
import { ApiError } from "../platform/errors.ts";
import type { ReceiverKind } from "../platform/receiver.ts";

export const CHANNELS = ["whatsapp", "telegram", "email"] as const;
export type ChannelName = typeof CHANNELS[number];

/** What `messages/send` asks a channel to deliver (after validation and templating). */
export interface OutboundMessage {
  /** The recipient as the channel wants it (`normalizeRecipient`'s result). */
  to: string;
  type: "text" | "template";
  /** The text (`type: "text"`); for email the plain-text body. */
  body?: string;
  /** Email only. */
  subject?: string;
  /** Email only: an HTML alternative to `body`. */
  html?: string;
  /** WhatsApp only (`type: "template"`): required outside the 24-hour window. */
  template?: { name: string; language: string; components?: unknown[] };
  /** Email only: files to attach (invoices send their PDF). */
  attachments?: { filename: string; contentType: string; content: Uint8Array }[];
}

/** The provider's acceptance of a message. */
export interface SentMessage {
  /** WhatsApp's `wamid.…`, Telegram's message_id (as text), the email's Message-ID. */
  providerMessageId: string;
  /** The sender as the channel shows it (the business number, the bot, the from address). */
  from: string;
}

/**
 * The provider refused or failed a message. The API answers 502 INTEGRATION_ERROR carrying
 * the provider's own code and message (`toApiError`), stores the message as `failed`, and
 * retries nothing blindly.
 */
export class ChannelError extends Error {
  constructor(
    readonly channel: ChannelName,
    /** WhatsApp's error code, Telegram's error_code, SMTP's reply code; null for network. */
    readonly providerCode: string | number | null,
    /** The provider's message (never a credential). */
    readonly providerMessage: string,
    /** Whether trying again later may succeed (rate limits, 5xx, timeouts). */
    readonly retryable: boolean,
    /**
     * The provider refused the credentials themselves (a revoked Gmail grant, an invalid
     * WhatsApp access token, a Telegram bot token no longer valid): nothing will work until
     * the integration is updated, so it is marked `broken`.
     */
    readonly credentialsRefused = false,
  ) {
    super(`${channel} refused the message: ${providerMessage}`);
    this.name = "ChannelError";
  }

  toApiError(): ApiError {
    return new ApiError("INTEGRATION_ERROR", this.message, {
      details: {
        provider: this.channel,
        provider_code: this.providerCode,
        provider_message: this.providerMessage,
        retryable: this.retryable,
      },
    });
  }
}

/** What an inbound update becomes, for the messages group to store (`recordInbound`). */
export interface InboundMessage {
  channel: ChannelName;
  /** The provider's id of the message (dedup with the receiver's provider id). */
  providerMessageId: string;
  /** The sender as the channel names them (E.164 digits, Telegram user id, email address). */
  from: string;
  /** The sender's display name when the provider gives one (WhatsApp profile, Telegram). */
  fromName?: string;
  /** The integration's own address (the business number, the bot, the mailbox). */
  to: string;
  body: string;
  subject?: string;
  receivedAt: Date;
}

/** A delivery status the provider reports for a message it accepted. */
export interface StatusUpdate {
  channel: ChannelName;
  providerMessageId: string;
  status: "sent" | "delivered" | "read" | "failed";
  at: Date;
  error?: { code: string | number | null; message: string };
}

/**
 * One channel. `Credentials` is what `integrations/connect` takes (sealed at rest, never
 * returned); `Public` what responses may show.
 */
export interface Channel<Credentials = unknown, Public = unknown> {
  channel: ChannelName;
  /** The credentials `connect` accepts (zod, strict). */
  credentials: z.ZodType<Credentials>;
  /** The parts of the credentials that responses may show (number, bot name, from address). */
  publicPart(credentials: Credentials): Public;
  /**
   * `to` as the channel needs it (E.164 digits for WhatsApp, a chat id for Telegram, an
   * address for email), or an ApiError VALIDATION_ERROR naming `to`.
   */
  normalizeRecipient(to: string): string;
  /** Sends through the real client. Throws ChannelError when the provider refuses. */
  send(
    credentials: Credentials,
    message: OutboundMessage,
    options: { signal?: AbortSignal },
  ): Promise<SentMessage>;
  /** A real call that proves the credentials (`integrations/test`); ChannelError if not. */
  test(credentials: Credentials, options: { signal?: AbortSignal }): Promise<Public>;
  /**
   * Runs once the integration and its receiver exist (Telegram's setWebhook with the
   * receiver URL and its secret token). Absent for channels whose webhook the user pastes.
   */
  onConnect?(
    credentials: Credentials,
    receiver: { url: string; secrets: unknown },
    options: { signal?: AbortSignal },
  ): Promise<void>;
  /**
   * Runs after the integration is disconnected (Telegram's deleteWebhook), so the provider
   * stops delivering. A refusal is recorded; the integration stays disconnected.
   */
  onDisconnect?(credentials: Credentials, options: { signal?: AbortSignal }): Promise<void>;
  /**
   * The receiver's secrets made from the credentials at connect (WhatsApp: app secret and
   * verify token, generated when not given; Telegram: a generated secret token).
   */
  receiverSecrets?(credentials: Credentials): unknown;
  /** The receiver kind for inbound traffic; its `handle` calls the messages group's record. */
  receiverKind?: ReceiverKind;
}

/** Declares a channel, typed by its credentials. */
export const defineChannel = <Credentials, Public>(
  channel: Channel<Credentials, Public>,
): Channel<Credentials, Public> => channel;
