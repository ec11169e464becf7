import type { Tx } from "./db.ts";

/** The spec's event names (webhook subscriptions, event-triggered workflows). */
export const EVENT_TYPES = [
  "workflow.completed",
  "workflow.failed",
  "message.received",
  "message.sent",
  "contact.created",
  "contact.updated",
  "invoice.created",
  "invoice.paid",
  "case.created",
  "case.updated",
  "agent.executed",
  "document.processed",
] as const;
export type EventType = typeof EVENT_TYPES[number];

/**
 * Writes an event to the outbox inside the caller's transaction, so the event exists if
 * and only if the change that caused it commits. Organization and environment come from
 * the transaction's claims (column defaults), so an event cannot land in another tenant.
 */
export async function emitEvent(tx: Tx, type: EventType, data: unknown) {
  await tx`insert into public.events (type, data) values (${type}, ${tx.json(data as never)})`;
}
