import type { Tx } from "./db.ts";
import { ApiError } from "./errors.ts";
import { formatBytes, jsonLargerThan, KiB } from "./json-size.ts";

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
 * The largest event `data`, as JSON. Each event is stored, fanned out to every subscribed
 * webhook (whose body is this plus a few fields) and becomes the input of event-triggered
 * workflows, so its size is paid many times over. It is above what can reach it: a
 * workflow's output (a step's, 256 KiB) with the instance's fields.
 */
export const MAX_EVENT_PAYLOAD_BYTES = 512 * KiB;

/**
 * Writes an event to the outbox inside the caller's transaction, so the event exists if
 * and only if the change that caused it commits. Organization and environment come from
 * the transaction's claims (column defaults), so an event cannot land in another tenant.
 * Data over MAX_EVENT_PAYLOAD_BYTES is refused (413 PAYLOAD_TOO_LARGE, which a workflow
 * step reports as its failure), and with it the change.
 */
export async function emitEvent(tx: Tx, type: EventType, data: unknown) {
  if (jsonLargerThan(data, MAX_EVENT_PAYLOAD_BYTES)) {
    throw new ApiError(
      "PAYLOAD_TOO_LARGE",
      `The ${type} event this change would send is larger than ${
        formatBytes(MAX_EVENT_PAYLOAD_BYTES)
      } (its data as JSON); nothing was changed.`,
      { details: { event: type, limit_bytes: MAX_EVENT_PAYLOAD_BYTES } },
    );
  }
  await tx`insert into public.events (type, data) values (${type}, ${tx.json(data as never)})`;
}
