/**
 * Sends webhook deliveries: the worker's handler for `webhook` jobs (one job per delivery,
 * so a slow receiver holds up only its own deliveries).
 *
 * One attempt: read the delivery, its webhook, its event and the signing secrets (service
 * connection: the secrets are not readable by the API role); POST the spec's body
 * `{event, timestamp, webhook_id, data}` with both signature schemes through the outbound
 * guard (the target is checked again now, pinned to the checked address, no redirects,
 * 10 s); then, in one statement, record the attempt with
 * private.record_webhook_attempt (its capability the job's lease token), which decides the
 * delivery's status: delivered; a retry at the time the kind's retry policy gives
 * (WEBHOOK_RETRY: the spec's table) and the job retried then; failed, and the webhook
 * disabled once the policy has no attempt left or on 410 Gone; held when the webhook is
 * disabled. The job is retried or finished in that same statement. A worker that dies
 * mid-attempt loses nothing: the job's lease runs out and the attempt is made again
 * (receivers deduplicate on `webhook-id`).
 */
import type { Environment } from "../platform/environment.ts";
import { serviceSql } from "../platform/db.ts";
import { OutboundBlockedError, OutboundNetworkError } from "../platform/outbound/address-guard.ts";
import { userEndpoints } from "../platform/outbound/user-endpoints.ts";
import { clientFor } from "../platform/providers.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  crashLoopError,
  type JobContext,
  nextAttemptAt,
  type RetryPolicy,
} from "../platform/worker.ts";
import { signatureHeaders } from "./signing.ts";
import { requiresHttps } from "./targets.ts";

/** Seconds before automatic attempts 2, 3, 4 and 5 (the spec's retry table); 1 is at once. */
export const RETRY_DELAYS_SECONDS = [30, 120, 600, 3600];

/**
 * The webhook job kind's retry policy: five automatic attempts, the spec's delays between
 * them. Counted by the delivery's attempts in its current cycle (a reactivation starts a
 * new cycle; manual attempts do not count), which the job's own count follows.
 */
export const WEBHOOK_RETRY: RetryPolicy = {
  maxAttempts: RETRY_DELAYS_SECONDS.length + 1,
  backoff: (attempt) => RETRY_DELAYS_SECONDS[attempt - 1] * 1000,
};
/** An attempt succeeds on a 2xx within this time. */
export const DELIVERY_TIMEOUT_MS = 10_000;
/** Bytes of a receiver's answer read (and dropped): only its status matters. */
const MAX_RESPONSE_BYTES = 1024;

const USER_AGENT = "BiVelio-Webhooks/1.0";

interface DeliveryToSend {
  id: string;
  status: string;
  manual: boolean;
  /** Automatic attempts made in the current retry cycle. */
  cycle_attempts: number;
  webhook_id: string;
  event_type: string;
  data: unknown;
  event_at: Date;
  environment: Environment;
  url: string;
  webhook_status: "active" | "disabled";
  /** Signing secrets, newest first. */
  secrets: string[];
}

async function loadDelivery(id: string) {
  const [row] = await serviceSql()<DeliveryToSend[]>`
    select d.id, d.status, d.manual, d.cycle_attempts, d.webhook_id, d.event_type,
           coalesce(d.test_data, e.data) as data, coalesce(e.created_at, d.created_at) as event_at,
           d.environment, w.url, w.status as webhook_status,
           array(select s.secret from private.webhook_secrets s
                 where s.webhook_id = w.id and (s.expires_at is null or s.expires_at > now())
                 order by s.created_at desc) as secrets
    from public.webhook_deliveries d
    join public.webhooks w on w.id = d.webhook_id
    left join public.events e on e.id = d.event_id
    where d.id = ${id}
  `;
  return row;
}

/** The exact body: the spec's payload, nothing more. */
export function deliveryBody(
  delivery: Pick<
    DeliveryToSend,
    "event_type" | "event_at" | "webhook_id" | "data"
  >,
) {
  return JSON.stringify({
    event: delivery.event_type,
    timestamp: isoTimestamp(delivery.event_at),
    webhook_id: delivery.webhook_id,
    data: delivery.data,
  });
}

interface AttemptResult {
  sent: boolean;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
}

function statusError(status: number) {
  if (status >= 200 && status < 300) return null;
  if (status >= 300 && status < 400) {
    return `The receiver answered ${status}; redirects are not followed.`;
  }
  if (status === 410) return "The receiver answered 410 Gone; the webhook was disabled.";
  return `The receiver answered ${status}.`;
}

async function send(delivery: DeliveryToSend, attemptedAt: Date): Promise<AttemptResult> {
  const body = deliveryBody(delivery);
  const headers = {
    "Content-Type": "application/json",
    "User-Agent": USER_AGENT,
    "X-BiVelio-Event": delivery.event_type,
    "X-BiVelio-Delivery": delivery.id,
    ...signatureHeaders({
      secrets: delivery.secrets,
      id: delivery.id,
      timestamp: Math.floor(attemptedAt.getTime() / 1000),
      body,
    }),
  };
  const started = performance.now();
  try {
    const response = await clientFor(userEndpoints, delivery.environment).send(
      { method: "POST", url: delivery.url, headers, body },
      {
        timeoutMs: DELIVERY_TIMEOUT_MS,
        requireHttps: requiresHttps(delivery.environment),
        maxResponseBytes: MAX_RESPONSE_BYTES,
      },
    );
    return {
      sent: true,
      statusCode: response.status,
      durationMs: response.durationMs,
      error: statusError(response.status),
    };
  } catch (error) {
    // The guard's and the network's messages name the host, never headers or the body.
    if (error instanceof OutboundBlockedError || error instanceof OutboundNetworkError) {
      return {
        sent: true,
        statusCode: null,
        durationMs: Math.round(performance.now() - started),
        error: error.message,
      };
    }
    throw error;
  }
}

export async function deliverWebhookJob(ctx: JobContext) {
  const delivery = await loadDelivery(ctx.job.ref);
  // Gone (webhook deleted), already settled, or held meanwhile: nothing to send.
  if (!delivery || delivery.status !== "pending") {
    await ctx.finish(serviceSql());
    return;
  }
  const attemptedAt = new Date();
  const result = delivery.webhook_status === "disabled" && !delivery.manual
    ? { sent: false, statusCode: null, durationMs: 0, error: null }
    : await send(delivery, attemptedAt);
  await recordAttempt(ctx, delivery, attemptedAt, result);
}

/** The worker died MAX_CLAIMS times on this delivery: recorded as a failed attempt. */
export async function giveUpWebhookJob(ctx: JobContext) {
  const delivery = await loadDelivery(ctx.job.ref);
  if (!delivery || delivery.status !== "pending") {
    await ctx.finish(serviceSql());
    return;
  }
  await recordAttempt(ctx, delivery, new Date(), {
    sent: true,
    statusCode: null,
    durationMs: 0,
    error: crashLoopError("sending this delivery").message,
  });
}

/**
 * Records the attempt and retries or finishes the job in one statement: the delivery is the
 * hottest job there is, and a tenant transaction (begin, claims, record, finish, commit)
 * cost the database and the worker about twice the CPU of this statement per delivery
 * (docs/benchmarks.md, 2026-12-02). private.record_webhook_attempt is a security definer
 * function whose capability is the job's lease token: it touches only that job's delivery.
 * The job then moves on through the queue's own functions, as `ctx.finish`/`retry` would.
 */
async function recordAttempt(
  ctx: JobContext,
  delivery: DeliveryToSend,
  attemptedAt: Date,
  result: AttemptResult,
) {
  const retryAt = nextAttemptAt(WEBHOOK_RETRY, delivery.cycle_attempts + 1, attemptedAt);
  const { id, lease_token: token } = ctx.job;
  const sql = serviceSql();
  const error = { code: "DELIVERY_FAILED", message: result.error ?? "" };
  // 'lease_lost': another worker holds the job now (this one's lease ran out); its attempt
  // is the one on record. Not sent (the webhook looked disabled) but active again: now.
  const [{ settled }] = await sql<{ settled: boolean }[]>`
    select case
      when status = 'lease_lost' then false
      when status <> 'pending' then private.finish_job(${id}, ${token}, null)
      when ${result.sent} then private.retry_job(${id}, ${token}, ${retryAt}, ${sql.json(error)})
      else private.reschedule_job(${id}, ${token}, now())
    end as settled
    from private.record_webhook_attempt(
      ${id}, ${token}, ${result.sent}, ${attemptedAt}, ${result.statusCode},
      ${result.durationMs}, ${result.error}, ${retryAt}
    ) as status
  `;
  ctx.settledBy(settled);
}
