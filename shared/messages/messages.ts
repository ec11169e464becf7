/**
 * Messages: sending through a channel (the three phases `messages/send` and the
 * `send_message` step share), the conversation list, and finding the contact an address
 * belongs to. Every function takes the caller's RLS transaction, so organization and
 * environment are decided by Postgres.
 */
import type { z } from "zod";
import { createContact } from "../contacts/contacts.ts";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { emitEvent } from "../platform/events.ts";
import { pageTotal, pageWindow, paginationOf } from "../platform/pagination.ts";
import { openSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  ChannelError,
  type ChannelName,
  type OutboundMessage,
  type SentMessage,
  type StatusUpdate,
} from "./channel.ts";
import { channelOf } from "./channels.ts";
import {
  type ListMessages,
  MAX_CHAT_BODY_LENGTH,
  type message,
  type messageList,
  type SendInput,
  type sentMessage,
} from "./schemas.ts";

// ---------------------------------------------------------------------------------------
// Rows and their API shape
// ---------------------------------------------------------------------------------------

export interface MessageRow {
  id: string;
  channel: ChannelName;
  direction: "inbound" | "outbound";
  from: string;
  to: string;
  contact_id: string | null;
  type: "text" | "template";
  body: string | null;
  subject: string | null;
  html: string | null;
  template: Record<string, unknown> | null;
  status: z.output<typeof message>["status"];
  sent_at: Date | null;
  delivered_at: Date | null;
  read_at: Date | null;
  provider_message_id: string | null;
  simulated: boolean;
  error: z.output<typeof message>["error"];
  metadata: Record<string, unknown>;
  created_at: Date;
}

export const messageColumns = (tx: Tx) =>
  tx`id, channel, direction, "from", "to", contact_id, type, body, subject, html, template,
     status, sent_at, delivered_at, read_at, provider_message_id, simulated, error, metadata,
     created_at`;

/** The API's representation of a message (list, get, and the message.* events' data). */
export function messageToApi(row: MessageRow): z.input<typeof message> {
  return {
    id: row.id,
    channel: row.channel,
    direction: row.direction,
    from: row.from,
    to: row.to,
    contact_id: row.contact_id,
    message: {
      type: row.type,
      ...(row.body !== null ? { body: row.body } : {}),
      ...(row.subject !== null ? { subject: row.subject } : {}),
      ...(row.html !== null ? { html: row.html } : {}),
      ...(row.template !== null ? { template: row.template } : {}),
    },
    status: row.status,
    sent_at: isoTimestamp(row.sent_at),
    delivered_at: isoTimestamp(row.delivered_at),
    read_at: isoTimestamp(row.read_at),
    provider_message_id: row.provider_message_id,
    simulated: row.simulated,
    error: row.error,
    metadata: row.metadata,
    created_at: isoTimestamp(row.created_at),
  };
}

export async function listMessages(
  tx: Tx,
  query: ListMessages,
): Promise<z.input<typeof messageList>> {
  const filters = [tx`true`];
  if (query.contact_id) filters.push(tx`contact_id = ${query.contact_id}`);
  if (query.channel) filters.push(tx`channel = ${query.channel}`);
  if (query.direction) filters.push(tx`direction = ${query.direction}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const rows = await tx<(MessageRow & { total: number })[]>`
    select ${messageColumns(tx)}, count(*) over ()::int as total
    from public.messages
    where ${where}
    order by created_at desc, id desc
    ${pageWindow(tx, query)}
  `;
  const total = await pageTotal(tx, query, rows[0]?.total, tx`public.messages where ${where}`);
  return { messages: rows.map(messageToApi), pagination: paginationOf(query, total) };
}

export async function getMessage(tx: Tx, id: string) {
  const [row] = await tx<MessageRow[]>`
    select ${messageColumns(tx)} from public.messages where id = ${id}
  `;
  if (!row) throw notFound("Message", id);
  return messageToApi(row);
}

// ---------------------------------------------------------------------------------------
// Contacts of addresses
// ---------------------------------------------------------------------------------------

/**
 * The other party's address as conversations are keyed: E.164 digits (WhatsApp), a chat or
 * user id (Telegram), a lower-case address (email).
 */
export function counterpartOf(channel: ChannelName, address: string): string {
  if (channel === "whatsapp") return address.replace(/[^0-9]/g, "");
  if (channel === "email") return address.trim().toLowerCase();
  return address.trim();
}

/**
 * The contact an address belongs to: the one an earlier message with that address was
 * linked to, else a contact with that phone (digits compared), email (case-insensitive) or
 * Telegram user id (custom_fields.telegram_user_id); else a new contact (contact.created).
 * Serialized per address, so two messages from a new sender at once make one contact.
 */
export async function contactForAddress(
  tx: Tx,
  channel: ChannelName,
  counterpart: string,
  name?: string,
): Promise<string> {
  await tx`
    select pg_advisory_xact_lock(hashtextextended(
      'bivelio.contact_of:' || private.request_org_id() || ':' || private.request_environment()
        || ':' || ${channel} || ':' || ${counterpart}, 0))
  `;
  const [seen] = await tx<{ contact_id: string }[]>`
    select contact_id from public.messages
    where channel = ${channel} and counterpart = ${counterpart} and contact_id is not null
    order by created_at desc limit 1
  `;
  if (seen) return seen.contact_id;

  const match = channel === "whatsapp"
    ? tx`regexp_replace(phone, '[^0-9]', '', 'g') = ${counterpart} and phone is not null`
    : channel === "email"
    ? tx`lower(email) = ${counterpart} and email is not null`
    : tx`custom_fields ->> 'telegram_user_id' = ${counterpart}
         and custom_fields ? 'telegram_user_id'`;
  const [known] = await tx<{ id: string }[]>`
    select id from public.contacts where ${match} order by created_at, id limit 1
  `;
  if (known) return known.id;

  const created = await createContact(tx, {
    type: "person",
    name: (name?.trim() || (channel === "whatsapp" ? `+${counterpart}` : counterpart)).slice(
      0,
      200,
    ),
    email: channel === "email" ? counterpart : undefined,
    phone: channel === "whatsapp" ? `+${counterpart}` : undefined,
    tags: [],
    custom_fields: channel === "telegram" && /^\d+$/.test(counterpart)
      ? { telegram_user_id: counterpart }
      : {},
  });
  return created.id;
}

// ---------------------------------------------------------------------------------------
// Integrations as messages need them
// ---------------------------------------------------------------------------------------

export interface ChannelIntegration {
  id: string;
  sealed_credentials: string;
  public: Record<string, unknown>;
}

/** The sender a channel's messages show, from its integration's public part. */
export function senderShown(channel: ChannelName, publicPart: Record<string, unknown>): string {
  const pick = (...keys: string[]) =>
    keys.map((key) => publicPart[key]).find((v): v is string => typeof v === "string" && !!v);
  const shown = channel === "whatsapp"
    ? pick("display_phone_number", "phone_number_id")
    : channel === "telegram"
    ? pick("bot_id", "username")
    : pick("from");
  return shown ?? channel;
}

/** The connected (or broken) integration of a channel, or a 400 naming the channel. */
export async function integrationForChannel(
  tx: Tx,
  channel: ChannelName,
  environment: Environment,
): Promise<ChannelIntegration> {
  const [row] = await tx<ChannelIntegration[]>`
    select id, sealed_credentials, public from public.integrations
    where provider = ${channel} and status <> 'disconnected'
  `;
  if (!row) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `No ${channel} integration is connected in the ${environment} environment. Connect ` +
        `one in settings/integrations (POST /v1/integrations/connect) and try again.`,
      { details: { field: "channel", constraint: "not_connected", channel } },
    );
  }
  return row;
}

// ---------------------------------------------------------------------------------------
// Sending, in three phases
// ---------------------------------------------------------------------------------------

/** What the first phase hands the call. */
export interface PreparedSend {
  messageId: string;
  channel: ChannelName;
  integrationId: string;
  sealedCredentials: string;
  outbound: OutboundMessage;
  /** `to` as the caller wrote it (the answer repeats it). */
  toShown: string;
  fromShown: string;
  /** Sandbox: nothing is sent. */
  simulated: boolean;
}

/** What the message needs per channel, beyond its schema: a VALIDATION_ERROR naming the field. */
function checkMessage(channel: ChannelName, message: SendInput["message"]) {
  const { type, body, subject, html, template } = message;
  if (type === "template") {
    if (channel !== "whatsapp") {
      throw invalidField(
        "message.type",
        "enum",
        `Template messages are WhatsApp's; ${channel} sends type 'text'.`,
      );
    }
    if (!template) {
      throw invalidField(
        "message.template",
        "required",
        "A template message needs 'template' {name, language, components}.",
      );
    }
    if (body !== undefined) {
      throw invalidField(
        "message.body",
        "unknown_field",
        "A template message has no 'body': its text is the template's.",
      );
    }
  } else {
    if (template) {
      throw invalidField(
        "message.template",
        "unknown_field",
        "'template' goes with type 'template'.",
      );
    }
    if (body === undefined && !(channel === "email" && html !== undefined)) {
      throw invalidField("message.body", "required", "A text message needs 'body'.");
    }
  }
  if (channel === "email") {
    if (!subject) throw invalidField("message.subject", "required", "An email needs 'subject'.");
  } else {
    if (subject !== undefined) {
      throw invalidField(
        "message.subject",
        "unknown_field",
        "Only email messages have a 'subject'.",
      );
    }
    if (html !== undefined) {
      throw invalidField("message.html", "unknown_field", "Only email messages have 'html'.");
    }
    if (body !== undefined && body.length > MAX_CHAT_BODY_LENGTH) {
      throw invalidField(
        "message.body",
        "max",
        `A ${channel} message's body has at most ${MAX_CHAT_BODY_LENGTH} characters.`,
      );
    }
  }
}

/**
 * Phase 1: the channel's integration, the recipient, the contact, and the message stored
 * `queued` (with `requestKey` when a workflow step sends it).
 */
export async function prepareSend(
  tx: Tx,
  input: SendInput,
  options: { environment: Environment; requestKey?: string },
): Promise<PreparedSend> {
  const { channel, message } = input;
  const integration = await integrationForChannel(tx, channel, options.environment);
  const to = channelOf(channel).normalizeRecipient(input.to);
  checkMessage(channel, message);

  const counterpart = counterpartOf(channel, to);
  let contactId: string;
  if (input.metadata.contact_id) {
    const [contact] = await tx<{ id: string }[]>`
      select id from public.contacts where id = ${input.metadata.contact_id} for share
    `;
    if (!contact) {
      throw invalidField(
        "metadata.contact_id",
        "exists",
        `Contact '${input.metadata.contact_id}' was not found.`,
      );
    }
    contactId = contact.id;
  } else {
    contactId = await contactForAddress(tx, channel, counterpart, input.to);
  }

  const fromShown = senderShown(channel, integration.public);
  const template = message.template ?? null;
  const [{ id }] = await tx<{ id: string }[]>`
    insert into public.messages (integration_id, contact_id, channel, direction, "from", "to",
      counterpart, type, body, subject, html, template, status, simulated, metadata,
      request_key)
    values (${integration.id}, ${contactId}, ${channel}, 'outbound', ${fromShown}, ${input.to},
      ${counterpart}, ${message.type}, ${message.body ?? null}, ${message.subject ?? null},
      ${message.html ?? null}, ${template === null ? null : tx.json(template as never)}, 'queued',
      ${options.environment === "test"}, ${tx.json(input.metadata as never)},
      ${options.requestKey ?? null})
    returning id
  `;
  return {
    messageId: id,
    channel,
    integrationId: integration.id,
    sealedCredentials: integration.sealed_credentials,
    outbound: {
      to,
      type: message.type,
      ...(message.body !== undefined ? { body: message.body } : {}),
      ...(message.subject !== undefined ? { subject: message.subject } : {}),
      ...(message.html !== undefined ? { html: message.html } : {}),
      ...(message.template ? { template: message.template } : {}),
    },
    toShown: input.to,
    fromShown,
    simulated: options.environment === "test",
  };
}

/** Phase 2: the provider's call, or (sandbox) a simulated acceptance that reaches no one. */
export async function callSend(
  prepared: PreparedSend,
  options: { signal?: AbortSignal },
): Promise<SentMessage> {
  if (prepared.simulated) {
    return { providerMessageId: `sim_${crypto.randomUUID()}`, from: prepared.fromShown };
  }
  const credentials = await openSecrets(prepared.sealedCredentials);
  return await channelOf(prepared.channel).send(credentials, prepared.outbound, options);
}

/** The answer of a sent message (`messages/send`, and the step's output). */
export function sentAnswer(row: MessageRow): z.input<typeof sentMessage> {
  return {
    message_id: row.id,
    channel: row.channel,
    to: row.to,
    status: "sent",
    sent_at: isoTimestamp(row.sent_at!),
    [`${row.channel}_message_id`]: row.provider_message_id!,
    ...(row.simulated ? { simulated: true as const } : {}),
  };
}

/** How a failed call is stored on the message: the provider's code and message, no secret. */
export function storedErrorOf(error: ApiError) {
  const details = error.options.details ?? {};
  return {
    code: error.code,
    message: error.message,
    ...("provider_code" in details
      ? { provider_code: details.provider_code as string | number | null }
      : {}),
    ...(typeof details.provider_message === "string"
      ? { provider_message: details.provider_message }
      : {}),
  };
}

/** An error of the call as the API answers it (a ChannelError: 502 with the provider's code). */
export function apiErrorOfCall(error: unknown): ApiError {
  if (error instanceof ChannelError) return error.toApiError();
  if (error instanceof ApiError) return error;
  // A bug, not the provider's answer: logged by name only (its message may quote a request
  // that carried a credential).
  console.error(JSON.stringify({
    level: "error",
    where: "provider call",
    error: error instanceof Error ? error.name : typeof error,
  }));
  return new ApiError(
    "INTEGRATION_ERROR",
    "The provider's call failed unexpectedly; nothing was retried.",
  );
}

export type RecordedSend =
  | { ok: true; answer: z.input<typeof sentMessage>; row: MessageRow }
  | { ok: false; error: ApiError };

/**
 * Phase 3: the message `sent` with the provider's id and `message.sent`, in one transaction;
 * or `failed` with the provider's code and message (nothing is retried).
 */
export async function recordSend(
  tx: Tx,
  prepared: PreparedSend,
  outcome: { ok: true; value: SentMessage } | { ok: false; error: unknown },
): Promise<RecordedSend> {
  if (!outcome.ok) {
    const error = apiErrorOfCall(outcome.error);
    const stored = tx.json(storedErrorOf(error) as never);
    await tx`
      update public.messages set status = 'failed', error = ${stored}
      where id = ${prepared.messageId} and status = 'queued'
    `;
    // Credentials the provider refused will fail every send: the integration shows it.
    if (outcome.error instanceof ChannelError && outcome.error.credentialsRefused) {
      await tx`
        update public.integrations set status = 'broken', error = ${stored}, updated_at = now()
        where id = ${prepared.integrationId} and status = 'connected'
      `;
    }
    return { ok: false, error };
  }
  const [row] = await tx<MessageRow[]>`
    update public.messages
    set status = 'sent', provider_message_id = ${outcome.value.providerMessageId},
        "from" = ${outcome.value.from}, sent_at = now()
    where id = ${prepared.messageId} and status = 'queued'
    returning ${messageColumns(tx)}
  `;
  if (!row) throw new Error(`Message ${prepared.messageId} is no longer queued.`);
  await emitEvent(tx, "message.sent", messageToApi(row));
  await applyEarlyStatuses(tx, prepared.integrationId, row);
  return { ok: true, answer: sentAnswer(row), row };
}

// ---------------------------------------------------------------------------------------
// Delivery statuses
// ---------------------------------------------------------------------------------------

/** The statuses a message may be in for an update to move it there: never backwards. */
const MOVES_FROM: Record<StatusUpdate["status"], string[]> = {
  sent: ["queued"],
  delivered: ["queued", "sent"],
  read: ["queued", "sent", "delivered"],
  failed: ["queued", "sent", "delivered"],
};

/**
 * Moves the integration's outbound message with the update's provider id forward (never
 * backwards). False when no message has that provider id.
 */
export async function applyStatus(
  tx: Tx,
  integrationId: string,
  update: Pick<StatusUpdate, "channel" | "providerMessageId" | "status" | "at" | "error">,
): Promise<boolean> {
  const error = update.status === "failed"
    ? {
      code: "INTEGRATION_ERROR",
      message: update.error?.message ?? `${update.channel} could not deliver the message.`,
      provider_code: update.error?.code ?? null,
      ...(update.error ? { provider_message: update.error.message } : {}),
    }
    : null;
  const [row] = await tx<{ found: boolean }[]>`
    with target as (
      select id, status = any(${MOVES_FROM[update.status]}::text[]) as movable
      from public.messages
      where integration_id = ${integrationId} and channel = ${update.channel}
        and provider_message_id = ${update.providerMessageId} and direction = 'outbound'
      for update
    ), moved as (
      update public.messages m
      set status = ${update.status},
          sent_at = case when ${update.status} = 'failed' then m.sent_at
                         else coalesce(m.sent_at, ${update.at}) end,
          delivered_at = case when ${update.status} in ('delivered', 'read')
                              then coalesce(m.delivered_at, ${update.at}) else m.delivered_at end,
          read_at = case when ${update.status} = 'read' then ${update.at} else m.read_at end,
          error = coalesce(${error === null ? null : tx.json(error)}::jsonb, m.error)
      from target where m.id = target.id and target.movable
      returning m.id
    )
    select exists (select from target) as found
  `;
  return row.found;
}

/**
 * Serialises, for one provider message id, the send recording it and a status callback
 * for it (until their commits). Without it each could miss the other's uncommitted row: the
 * callback finds no message yet and keeps its status aside while the send has already looked
 * for statuses kept aside, and the status is lost.
 */
export async function lockProviderMessage(tx: Tx, integrationId: string, providerId: string) {
  await tx`
    select pg_advisory_xact_lock(
      hashtextextended(${`bivelio.message.${integrationId}.${providerId}`}, 0))
  `;
}

/** Statuses that arrived before the send recorded its provider id, applied in order. */
async function applyEarlyStatuses(tx: Tx, integrationId: string, message: MessageRow) {
  await lockProviderMessage(tx, integrationId, message.provider_message_id!);
  const early = await tx<
    { status: StatusUpdate["status"]; at: Date; error: StatusUpdate["error"] | null }[]
  >`
    delete from private.early_message_statuses
    where integration_id = ${integrationId}
      and provider_message_id = ${message.provider_message_id}
    returning status, at, error
  `;
  const order = ["sent", "delivered", "read", "failed"];
  early.sort((a, b) => order.indexOf(a.status) - order.indexOf(b.status));
  for (const update of early) {
    await applyStatus(tx, integrationId, {
      channel: message.channel,
      providerMessageId: message.provider_message_id!,
      status: update.status,
      at: update.at,
      error: update.error ?? undefined,
    });
  }
}
