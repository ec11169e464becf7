/**
 * What the messages actions take and answer (the spec's "Communications" shapes): the one
 * definition of each, from which the mappers take their types, OpenAPI its named schemas
 * and the tests their check.
 */
import { z } from "zod";
import { contactId } from "../contacts/schemas.ts";
import { prefixedId } from "../platform/ids.ts";
import { KiB } from "../platform/json-size.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";
import { CHANNELS } from "./channel.ts";

export const messageId = prefixedId("msg", "a message");
export const channelName = z.enum(CHANNELS);

/** Longest text WhatsApp and Telegram take in one message. */
export const MAX_CHAT_BODY_LENGTH = 4096;
/** Longest email body (text or HTML) accepted. */
export const MAX_EMAIL_BODY_BYTES = 512 * KiB;

export const templateInput = z.strictObject({
  name: z.string().trim().min(1).max(512),
  language: z.string().trim().min(2).max(20),
  components: z.array(z.unknown()).max(50).optional(),
});

export const sendInput = z.strictObject({
  channel: channelName,
  /** E.164 for WhatsApp (spaces allowed), a chat id for Telegram, an address for email. */
  to: z.string().trim().min(1).max(320),
  message: z.strictObject({
    type: z.enum(["text", "template"]).default("text"),
    body: z.string().min(1).max(MAX_EMAIL_BODY_BYTES).optional(),
    /** Email only (required there). */
    subject: z.string().trim().min(1).max(998).optional(),
    /** Email only: an HTML alternative to `body`. */
    html: z.string().min(1).max(MAX_EMAIL_BODY_BYTES).optional(),
    /** WhatsApp only, with `type: "template"`. */
    template: templateInput.optional(),
  }),
  /** Kept with the message; `contact_id` links it to that contact. */
  metadata: z.looseObject({ contact_id: contactId.optional() }).default({}),
});
export type SendInput = z.output<typeof sendInput>;

export const sentMessage = z.strictObject({
  message_id: messageId,
  channel: channelName,
  to: z.string(),
  status: z.literal("sent"),
  sent_at: timestamp,
  whatsapp_message_id: z.string().optional(),
  telegram_message_id: z.string().optional(),
  email_message_id: z.string().optional(),
  /** Sandbox: nothing reached the provider; the provider id is a `sim_…` one. */
  simulated: z.literal(true).optional(),
}).meta({ id: "SentMessage" });

export const messageStatus = z.enum(["queued", "sent", "delivered", "read", "failed", "received"]);

export const messageError = z.strictObject({
  code: z.string(),
  message: z.string(),
  provider_code: z.union([z.string(), z.number()]).nullable().optional(),
  provider_message: z.string().optional(),
});

export const message = z.strictObject({
  id: messageId,
  channel: channelName,
  direction: z.enum(["inbound", "outbound"]),
  from: z.string(),
  to: z.string(),
  contact_id: contactId.nullable(),
  message: z.strictObject({
    type: z.enum(["text", "template"]),
    body: z.string().optional(),
    subject: z.string().optional(),
    html: z.string().optional(),
    template: z.record(z.string(), z.unknown()).optional(),
  }),
  status: messageStatus,
  /** Outbound: when the provider accepted it; inbound: when it was received. */
  sent_at: timestamp.nullable(),
  delivered_at: timestamp.nullable(),
  read_at: timestamp.nullable(),
  provider_message_id: z.string().nullable(),
  simulated: z.boolean(),
  error: messageError.nullable(),
  metadata: z.record(z.string(), z.unknown()),
  created_at: timestamp,
}).meta({ id: "Message" });

export const messageList = z.strictObject({
  messages: z.array(message),
  pagination,
}).meta({ id: "MessageList" });

export const listMessagesInput = z.strictObject({
  contact_id: contactId.optional(),
  channel: channelName.optional(),
  direction: z.enum(["inbound", "outbound"]).optional(),
  ...paginationInput,
});
export type ListMessages = z.output<typeof listMessagesInput>;

export const byMessageId = z.strictObject({ message_id: messageId });
