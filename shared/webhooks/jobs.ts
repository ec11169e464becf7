/** The webhooks group's job kind: one `webhook` job per pending delivery. */
import { defineJobKind } from "../platform/worker.ts";
import { deliverWebhookJob, giveUpWebhookJob, WEBHOOK_RETRY } from "./delivery-job.ts";

export const WEBHOOK_JOB = defineJobKind({
  kind: "webhook",
  handler: deliverWebhookJob,
  retry: WEBHOOK_RETRY,
  // Slow receivers (10 s timeouts) may hold three quarters of a worker, never all of it.
  concurrency: { share: 0.75 },
  onCrashLoop: giveUpWebhookJob,
});
