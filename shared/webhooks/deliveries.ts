/**
 * Webhook deliveries as the API shows them: list_deliveries (each with its attempts),
 * redeliver, and test. Deliveries are made by the events outbox's fan-out trigger and
 * sent by the worker (delivery-job.ts); these functions take the caller's RLS transaction.
 */
import { z } from "zod";
import { type Tx, withClaims } from "../platform/db.ts";
import { notFound } from "../platform/errors.ts";
import { EVENT_TYPES } from "../platform/events.ts";
import { pageWindow, paginationInput, paginationOf } from "../platform/pagination.ts";
import type { Principal } from "../platform/principal.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  deliveryId,
  deliveryStatus,
  TEST_EVENT,
  webhookAttempt,
  webhookDelivery,
  webhookDeliveryList,
  webhookId,
} from "./schemas.ts";

export { deliveryId, TEST_EVENT };

export const listDeliveriesInput = z.strictObject({
  webhook_id: webhookId.optional(),
  status: deliveryStatus.optional(),
  event: z.enum([...EVENT_TYPES, TEST_EVENT]).optional(),
  ...paginationInput,
});
export const byDeliveryId = z.strictObject({ delivery_id: deliveryId });
export const testWebhookInput = z.strictObject({ webhook_id: webhookId });

export type ListDeliveries = z.output<typeof listDeliveriesInput>;

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string | null;
  event_type: z.output<typeof webhookDelivery>["event"];
  status: z.output<typeof deliveryStatus>;
  attempt_count: number;
  next_attempt_at: Date | null;
  last_attempt_at: Date | null;
  created_at: Date;
}

interface AttemptRow {
  delivery_id: string;
  attempt: number;
  attempted_at: Date;
  status_code: number | null;
  duration_ms: number;
  success: boolean;
  error: string | null;
  next_attempt_at: Date | null;
  manual: boolean;
}

function attemptToApi(row: AttemptRow): z.input<typeof webhookAttempt> {
  return {
    attempt: row.attempt,
    attempted_at: isoTimestamp(row.attempted_at),
    status_code: row.status_code,
    duration_ms: row.duration_ms,
    success: row.success,
    error: row.error,
    next_attempt_at: isoTimestamp(row.next_attempt_at),
    manual: row.manual,
  };
}

function deliveryToApi(row: DeliveryRow, attempts: AttemptRow[]): z.input<typeof webhookDelivery> {
  return {
    delivery_id: row.id,
    webhook_id: row.webhook_id,
    event: row.event_type,
    event_id: row.event_id,
    status: row.status,
    next_attempt_at: isoTimestamp(row.next_attempt_at),
    created_at: isoTimestamp(row.created_at),
    attempts: attempts.map(attemptToApi),
  };
}

const deliveryColumns = (tx: Tx) =>
  tx`id, webhook_id, event_id, event_type, status, attempt_count, next_attempt_at,
     last_attempt_at, created_at`;

/** The deliveries with their attempts, oldest attempt first. */
async function withAttempts(tx: Tx, rows: DeliveryRow[]) {
  if (rows.length === 0) return [];
  const attempts = await tx<AttemptRow[]>`
    select delivery_id, attempt, attempted_at, status_code, duration_ms, success, error,
           next_attempt_at, manual
    from public.webhook_attempts
    where delivery_id = any (${rows.map((row) => row.id)}::text[])
    order by delivery_id, attempt
  `;
  const byDelivery = Map.groupBy(attempts, (attempt) => attempt.delivery_id);
  return rows.map((row) => deliveryToApi(row, byDelivery.get(row.id) ?? []));
}

export async function getDelivery(tx: Tx, id: string) {
  const rows = await tx<DeliveryRow[]>`
    select ${deliveryColumns(tx)} from public.webhook_deliveries where id = ${id}
  `;
  if (rows.length === 0) throw notFound("Delivery", id);
  return (await withAttempts(tx, rows))[0];
}

export async function listDeliveries(
  tx: Tx,
  query: ListDeliveries,
): Promise<z.input<typeof webhookDeliveryList>> {
  const filters = [tx`true`];
  if (query.webhook_id) filters.push(tx`webhook_id = ${query.webhook_id}`);
  if (query.status) filters.push(tx`status = ${query.status}`);
  if (query.event) filters.push(tx`event_type = ${query.event}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const [rows, [{ total }]] = await Promise.all([
    tx<DeliveryRow[]>`
      select ${deliveryColumns(tx)} from public.webhook_deliveries
      where ${where}
      order by created_at desc, id desc
      ${pageWindow(tx, query)}
    `,
    tx<{ total: number }[]>`
      select count(*)::int as total from public.webhook_deliveries where ${where}
    `,
  ]);
  return {
    deliveries: await withAttempts(tx, rows),
    pagination: paginationOf(query, total),
  };
}

/**
 * A new attempt now: a delivery waiting for a retry has that retry moved to now; any other
 * (delivered, failed, held) gets one manual attempt, without retries. It goes out even if
 * the webhook is disabled (a held delivery that fails stays held).
 */
export async function redeliver(tx: Tx, id: string) {
  const [row] = await tx<{ previous: string | null }[]>`
    select private.redeliver_webhook_delivery(${id}) as previous
  `;
  if (row.previous === null) throw notFound("Delivery", id);
  return await getDelivery(tx, id);
}

/** Queues a signed `webhook.test` delivery to the webhook (even a disabled one). */
export async function queueTestDelivery(tx: Tx, webhook: string) {
  // Key-share locked, as the delivery's foreign key check will: a delete meanwhile either
  // commits first (a 404 here) or waits, instead of failing that check (a 500).
  const [found] = await tx`select 1 from public.webhooks where id = ${webhook} for key share`;
  if (!found) throw notFound("Webhook", webhook);
  const data = {
    test: true,
    message: "A test event from BiVelio: your endpoint received and can verify it.",
  };
  const [row] = await tx<DeliveryRow[]>`
    insert into public.webhook_deliveries (webhook_id, event_type, test_data, status, manual,
                                           next_attempt_at)
    values (${webhook}, ${TEST_EVENT}, ${tx.json(data)}, 'pending', true, now())
    returning ${deliveryColumns(tx)}
  `;
  return deliveryToApi(row, []);
}

/** How long `test` waits for its attempt: the 10 s delivery timeout and some slack. */
export const TEST_WAIT_MS = 15_000;

/** After `test` committed: waits for its one attempt and returns the delivery with it. */
export async function waitForFirstAttempt(principal: Principal, id: string) {
  const deadline = Date.now() + TEST_WAIT_MS;
  for (let delay = 25;; delay = Math.min(delay * 2, 250)) {
    const delivery = await withClaims(principal.claims, (tx) => getDelivery(tx, id));
    if (delivery.attempts.length > 0 || Date.now() >= deadline) return delivery;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
