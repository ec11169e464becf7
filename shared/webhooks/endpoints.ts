/**
 * Webhook endpoints: schemas, queries and changes behind POST /v1/webhooks (create, list,
 * get, update, delete, rotate_secret). Every function takes the caller's RLS transaction.
 * Signing secrets are written through private.set_webhook_secret and are never read here:
 * the API role cannot select them, so no list or get can leak one.
 */
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError, notFound } from "../platform/errors.ts";
import { EVENT_TYPES } from "../platform/events.ts";
import { pageWindow, paginationInput, paginationOf } from "../platform/pagination.ts";
import type { Principal } from "../platform/principal.ts";
import { isoTimestamp } from "../platform/time.ts";
import { generateWebhookSecret } from "./signing.ts";
import { checkWebhookUrl } from "./targets.ts";
import {
  createdWebhook,
  deletedWebhook,
  rotatedWebhookSecret,
  webhook,
  webhookId,
  webhookList,
  webhookStatus,
} from "./schemas.ts";

export { webhookId };

const url = z.string().trim().min(1).max(2048);
const events = z.array(z.enum(EVENT_TYPES)).min(1).max(EVENT_TYPES.length * 2)
  .transform((list) => [...new Set(list)]);
const description = z.string().trim().max(500);
/** A custom secret: printable ASCII (it is an HMAC key in every language), 16-200 long. */
const secret = z.string().min(16).max(200)
  .regex(/^[\x21-\x7e]+$/, "must be printable ASCII without spaces");

export const createWebhookInput = z.strictObject({
  url,
  events,
  secret: secret.optional(),
  description: description.default(""),
});

export const listWebhooksInput = z.strictObject({
  status: webhookStatus.optional(),
  ...paginationInput,
});

export const updateWebhookInput = z.strictObject({
  webhook_id: webhookId,
  url: url.optional(),
  events: events.optional(),
  description: description.optional(),
  /** "active" reactivates a disabled webhook (and sends what it held); "disabled" pauses it. */
  status: webhookStatus.optional(),
});

export const rotateSecretInput = z.strictObject({
  webhook_id: webhookId,
  /** The new secret; generated when absent. */
  secret: secret.optional(),
});

export const byWebhookId = z.strictObject({ webhook_id: webhookId });

export type CreateWebhook = z.output<typeof createWebhookInput>;
export type ListWebhooks = z.output<typeof listWebhooksInput>;
export type UpdateWebhook = z.output<typeof updateWebhookInput>;
export type RotateSecret = z.output<typeof rotateSecretInput>;

interface WebhookRow {
  id: string;
  url: string;
  events: z.output<typeof webhook>["events"];
  description: string;
  status: z.output<typeof webhookStatus>;
  disabled_reason: z.output<typeof webhook>["disabled_reason"];
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
  last_triggered_at: Date | null;
  success_rate: number | null;
  held_deliveries: number;
}

/** The API's representation of a webhook (never its secret). */
export function webhookToApi(row: WebhookRow): z.input<typeof webhook> {
  return {
    webhook_id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    status: row.status,
    disabled_reason: row.disabled_reason,
    disabled_at: isoTimestamp(row.disabled_at),
    last_triggered_at: isoTimestamp(row.last_triggered_at),
    success_rate: row.success_rate,
    held_deliveries: row.held_deliveries,
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  };
}

/** Attempts `success_rate` is computed over (the latest ones). */
export const SUCCESS_RATE_WINDOW = 100;

/**
 * Webhook rows with their delivery statistics: the last attempt's time, the share of the
 * last 100 attempts that got a 2xx (null before the first), deliveries held while disabled.
 */
const selectWebhooks = (tx: Tx) =>
  tx`
  select w.id, w.url, w.events, w.description, w.status, w.disabled_reason, w.disabled_at,
         w.created_at, w.updated_at, s.last_triggered_at, s.success_rate,
         (select count(*)::int from public.webhook_deliveries d
          where d.webhook_id = w.id and d.status = 'held') as held_deliveries
  from public.webhooks w
  left join lateral (
    select max(a.attempted_at) as last_triggered_at,
           round(avg(a.success::int), 2)::float8 as success_rate
    from (select attempted_at, success from public.webhook_attempts a
          where a.webhook_id = w.id
          order by a.attempted_at desc limit ${SUCCESS_RATE_WINDOW}) a
  ) s on true
`;

export async function getWebhook(tx: Tx, id: string) {
  const [row] = await tx<WebhookRow[]>`${selectWebhooks(tx)} where w.id = ${id}`;
  if (!row) throw notFound("Webhook", id);
  return webhookToApi(row);
}

export async function listWebhooks(
  tx: Tx,
  query: ListWebhooks,
): Promise<z.input<typeof webhookList>> {
  const where = query.status ? tx`where w.status = ${query.status}` : tx``;
  const [rows, [{ total }]] = await Promise.all([
    tx<WebhookRow[]>`
      ${selectWebhooks(tx)} ${where}
      order by w.created_at desc, w.id desc
      ${pageWindow(tx, query)}
    `,
    tx<{ total: number }[]>`select count(*)::int as total from public.webhooks w ${where}`,
  ]);
  return {
    webhooks: rows.map(webhookToApi),
    pagination: paginationOf(query, total),
  };
}

/** Makes `secret` the webhook's signing secret; the replaced one signs 24 h more. */
async function setSecret(tx: Tx, id: string, secret: string) {
  const [row] = await tx<{ previous_expires_at: Date | null }[]>`
    select previous_expires_at from private.set_webhook_secret(${id}, ${secret})
  `;
  if (!row) throw notFound("Webhook", id);
  return row.previous_expires_at;
}

/**
 * Webhooks an organization may have per environment (Stripe allows 16 too): every event is
 * sent once per subscribed webhook, so without a bound one create could fan out to any
 * number of POSTs.
 */
export const MAX_WEBHOOKS_PER_ENVIRONMENT = 16;

/**
 * Refuses a webhook beyond the maximum. Creates of one organization and environment take
 * turns (a transaction-scoped advisory lock), so concurrent creates cannot all see room
 * for one more.
 */
async function checkWebhookRoom(tx: Tx, principal: Principal) {
  await tx`
    select pg_advisory_xact_lock(
      hashtextextended(${`bivelio.webhooks.${principal.orgId}.${principal.environment}`}, 0))
  `;
  const [{ count }] = await tx<{ count: number }[]>`
    select count(*)::int as count from public.webhooks
  `;
  if (count >= MAX_WEBHOOKS_PER_ENVIRONMENT) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `An organization can have at most ${MAX_WEBHOOKS_PER_ENVIRONMENT} webhooks per environment; ` +
        "delete one, or subscribe an existing one to more events.",
      { details: { constraint: "max_webhooks", max: MAX_WEBHOOKS_PER_ENVIRONMENT } },
    );
  }
}

/** The spec's create; `signing_secret` is in this response and nowhere else, ever. */
export async function createWebhook(
  tx: Tx,
  principal: Principal,
  input: CreateWebhook,
): Promise<z.input<typeof createdWebhook>> {
  await checkWebhookUrl(input.url, principal.environment);
  await checkWebhookRoom(tx, principal);
  const [row] = await tx<
    Pick<WebhookRow, "id" | "url" | "events" | "description" | "status" | "created_at">[]
  >`
    insert into public.webhooks (url, events, description)
    values (${input.url}, ${input.events}::text[], ${input.description})
    returning id, url, events, description, status, created_at
  `;
  const signingSecret = input.secret ?? generateWebhookSecret();
  await setSecret(tx, row.id, signingSecret);
  return {
    webhook_id: row.id,
    url: row.url,
    events: row.events,
    description: row.description,
    status: row.status,
    signing_secret: signingSecret,
    created_at: isoTimestamp(row.created_at),
  };
}

export async function updateWebhook(tx: Tx, principal: Principal, patch: UpdateWebhook) {
  const { webhook_id: id } = patch;
  if (patch.url !== undefined) await checkWebhookUrl(patch.url, principal.environment);
  const sets = [];
  if (patch.url !== undefined) sets.push(tx`url = ${patch.url}`);
  if (patch.events !== undefined) sets.push(tx`events = ${patch.events}::text[]`);
  if (patch.description !== undefined) sets.push(tx`description = ${patch.description}`);
  if (patch.status === "active") {
    // Reactivation: the status trigger queues every delivery held meanwhile.
    sets.push(tx`status = 'active', disabled_reason = null, disabled_at = null`);
  } else if (patch.status === "disabled") {
    sets.push(tx`
      status = 'disabled',
      disabled_reason = case when status = 'disabled' then disabled_reason else 'manual' end,
      disabled_at = coalesce(disabled_at, now())
    `);
  }
  if (sets.length > 0) {
    const [row] = await tx`
      update public.webhooks
      set ${sets.reduce((all, next) => tx`${all}, ${next}`)}, updated_at = now()
      where id = ${id}
      returning id
    `;
    if (!row) throw notFound("Webhook", id);
  }
  return await getWebhook(tx, id);
}

export async function deleteWebhook(
  tx: Tx,
  id: string,
): Promise<z.input<typeof deletedWebhook>> {
  const [row] = await tx`delete from public.webhooks where id = ${id} returning id`;
  if (!row) throw notFound("Webhook", id);
  return { webhook_id: id, deleted: true };
}

/** A new signing secret, shown once; the previous one keeps signing for 24 hours. */
export async function rotateWebhookSecret(
  tx: Tx,
  input: RotateSecret,
): Promise<z.input<typeof rotatedWebhookSecret>> {
  const signingSecret = input.secret ?? generateWebhookSecret();
  const previousExpiresAt = await setSecret(tx, input.webhook_id, signingSecret);
  return {
    webhook_id: input.webhook_id,
    signing_secret: signingSecret,
    previous_secret_expires_at: isoTimestamp(previousExpiresAt),
  };
}
