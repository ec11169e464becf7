/**
 * What the channels' receiver kinds call inside their `handle` (the receiver's RLS
 * transaction, acting for the integration's organization and environment): store an inbound
 * message, or move an outbound message's delivery status. The integration is the one whose
 * `receiver_id` is the receiver the update reached, so an update can only land in that
 * integration's organization and environment.
 */
import type { Tx } from "../platform/db.ts";
import { emitEvent } from "../platform/events.ts";
import type { Receiver } from "../platform/receiver.ts";
import type { InboundMessage, StatusUpdate } from "./channel.ts";
import {
  applyStatus,
  contactForAddress,
  counterpartOf,
  lockProviderMessage,
  messageColumns,
  type MessageRow,
  messageToApi,
} from "./messages.ts";

/** The integration that owns a receiver (RLS: only the transaction's organization's). */
async function integrationOf(tx: Tx, receiver: Receiver, channel: string) {
  const [row] = await tx<{ id: string }[]>`
    select id from public.integrations
    where receiver_id = ${receiver.id} and provider = ${channel}
    order by (status = 'disconnected'), created_at desc
    limit 1
  `;
  return row?.id ?? null;
}

/** How an inbound sender is shown: WhatsApp's digits as `+<digits>`. */
const shownSender = (message: InboundMessage) =>
  message.channel === "whatsapp" && /^\d+$/.test(message.from) ? `+${message.from}` : message.from;

/**
 * Stores an inbound message for the integration that owns `receiver`, linked to the contact
 * it comes from (matched by normalised phone, email or Telegram user id; an unknown sender
 * becomes a new contact), and writes `message.received` in the same transaction. The same
 * provider message twice is stored once. A receiver no integration owns stores nothing.
 */
export async function recordInbound(
  tx: Tx,
  receiver: Receiver,
  message: InboundMessage,
): Promise<void> {
  const integrationId = await integrationOf(tx, receiver, message.channel);
  if (!integrationId) return;
  const counterpart = counterpartOf(message.channel, message.from);
  const contactId = await contactForAddress(tx, message.channel, counterpart, message.fromName);
  const [row] = await tx<MessageRow[]>`
    insert into public.messages (integration_id, contact_id, channel, direction, "from", "to",
      counterpart, type, body, subject, status, provider_message_id, sent_at, metadata)
    values (${integrationId}, ${contactId}, ${message.channel}, 'inbound',
      ${shownSender(message).slice(0, 320)}, ${message.to.slice(0, 320)}, ${counterpart},
      'text', ${message.body}, ${message.subject?.slice(0, 998) ?? null}, 'received',
      ${message.providerMessageId}, ${message.receivedAt},
      ${tx.json(message.fromName ? { from_name: message.fromName } : {})})
    on conflict (channel, integration_id, provider_message_id) do nothing
    returning ${messageColumns(tx)}
  `;
  if (row) await emitEvent(tx, "message.received", messageToApi(row));
}

/**
 * Moves an outbound message of the receiver's integration along sent → delivered → read
 * (or failed), never backwards. An update for a provider id no message has yet is kept a
 * day for the send that is still recording it (the callback overtook it); otherwise ignored.
 */
export async function recordStatus(
  tx: Tx,
  receiver: Receiver,
  update: StatusUpdate,
): Promise<void> {
  const integrationId = await integrationOf(tx, receiver, update.channel);
  if (!integrationId) return;
  await lockProviderMessage(tx, integrationId, update.providerMessageId);
  const found = await applyStatus(tx, integrationId, update);
  if (!found) {
    await tx`
      insert into private.early_message_statuses (integration_id, provider_message_id, status,
        at, error)
      values (${integrationId}, ${update.providerMessageId}, ${update.status}, ${update.at},
        ${update.error ? tx.json(update.error as never) : null})
      on conflict do nothing
    `;
  }
}
