/** What the worker runs for each kind of job in `private.jobs`. */
import type { JobHandler, JobKind } from "./platform/worker.ts";
import { deliverWebhookJob } from "./webhooks/delivery-job.ts";
import { runWorkflowJob } from "./workflows/engine.ts";

export const JOB_HANDLERS: Partial<Record<JobKind, JobHandler>> = {
  workflow: runWorkflowJob,
  webhook: deliverWebhookJob,
};
