/**
 * What the webhooks actions answer: the one definition of each response's `data`, from
 * which the mappers take their types, OpenAPI its named schemas and the tests their check.
 * (The input schemas stay in endpoints.ts and deliveries.ts, beside their queries.)
 */
import { z } from "zod";
import { EVENT_TYPES } from "../platform/events.ts";
import { prefixedId } from "../platform/ids.ts";
import { pagination } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

export const webhookId = prefixedId("wh", "a webhook");
export const deliveryId = prefixedId("whd", "a delivery");

/** The event name of test deliveries (`test`); never an outbox event, never subscribed to. */
export const TEST_EVENT = "webhook.test";

export const webhookStatus = z.enum(["active", "disabled"]);
export const deliveryStatus = z.enum(["pending", "delivered", "failed", "held"]);
const events = z.array(z.enum(EVENT_TYPES));

/** A webhook with its delivery statistics (never its secret). */
export const webhook = z.strictObject({
  webhook_id: webhookId,
  url: z.string(),
  events,
  description: z.string(),
  status: webhookStatus,
  /** Why it is disabled: `manual` (update), `failing` (attempts ran out), `gone` (410). */
  disabled_reason: z.enum(["manual", "failing", "gone"]).nullable(),
  disabled_at: timestamp.nullable(),
  last_triggered_at: timestamp.nullable(),
  /** Share of the last 100 attempts answered with a 2xx; null before the first. */
  success_rate: z.number().min(0).max(1).nullable(),
  /** Deliveries held while disabled, sent when it is reactivated. */
  held_deliveries: z.int().min(0),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "Webhook" });

/** create's answer: the spec's shape, with the signing secret shown this once. */
export const createdWebhook = z.strictObject({
  webhook_id: webhookId,
  url: z.string(),
  events,
  description: z.string(),
  status: webhookStatus,
  signing_secret: z.string(),
  created_at: timestamp,
}).meta({ id: "CreatedWebhook" });

export const webhookList = z.strictObject({
  webhooks: z.array(webhook),
  pagination,
}).meta({ id: "WebhookList" });

export const deletedWebhook = z.strictObject({
  webhook_id: webhookId,
  deleted: z.literal(true),
}).meta({ id: "DeletedWebhook" });

/** rotate_secret's answer: the new secret, shown once; the old one signs until the time given. */
export const rotatedWebhookSecret = z.strictObject({
  webhook_id: webhookId,
  signing_secret: z.string(),
  previous_secret_expires_at: timestamp.nullable(),
}).meta({ id: "RotatedWebhookSecret" });

export const webhookAttempt = z.strictObject({
  attempt: z.int().min(1),
  attempted_at: timestamp,
  /** The endpoint's HTTP status; null when no answer came (timeout, refused address). */
  status_code: z.int().nullable(),
  duration_ms: z.int().min(0),
  success: z.boolean(),
  error: z.string().nullable(),
  /** When the next retry goes out; null when none follows. */
  next_attempt_at: timestamp.nullable(),
  /** Made by redeliver or test. */
  manual: z.boolean(),
}).meta({ id: "WebhookAttempt" });

export const webhookDelivery = z.strictObject({
  delivery_id: deliveryId,
  webhook_id: webhookId,
  event: z.enum([...EVENT_TYPES, TEST_EVENT]),
  /** The outbox event; null for test deliveries. */
  event_id: z.string().nullable(),
  status: deliveryStatus,
  next_attempt_at: timestamp.nullable(),
  created_at: timestamp,
  /** Oldest first. */
  attempts: z.array(webhookAttempt),
}).meta({ id: "WebhookDelivery" });

export const webhookDeliveryList = z.strictObject({
  deliveries: z.array(webhookDelivery),
  pagination,
}).meta({ id: "WebhookDeliveryList" });
