/**
 * What the channels' receiver kinds call inside their `handle` (the receiver's RLS
 * transaction, acting for the integration's organization and environment): store an inbound
 * message, or move an outbound message's delivery status.
 */
import type { Tx } from "../platform/db.ts";
import type { Receiver } from "../platform/receiver.ts";
import type { InboundMessage, StatusUpdate } from "./channel.ts";

/**
 * Stores an inbound message for the integration that owns `receiver`, linked to the contact
 * it comes from (matched by normalised phone, email or Telegram user id; an unknown sender
 * becomes a new contact), and writes `message.received` in the same transaction.
 */
export async function recordInbound(
  tx: Tx,
  receiver: Receiver,
  message: InboundMessage,
): Promise<void> {
  void tx, receiver, message;
  await Promise.resolve();
  throw new Error("recordInbound: not built yet");
}

/**
 * Moves an outbound message of the receiver's integration along sent → delivered → read
 * (or failed), never backwards. An unknown provider id is ignored.
 */
export async function recordStatus(
  tx: Tx,
  receiver: Receiver,
  update: StatusUpdate,
): Promise<void> {
  void tx, receiver, update;
  await Promise.resolve();
  throw new Error("recordStatus: not built yet");
}
