/** The workflows group's job kind: one `workflow` job per running instance. */
import { defineJobKind } from "../platform/worker.ts";
import { giveUpWorkflowJob, runWorkflowJob, WORKFLOW_STEP_RETRY } from "./engine.ts";

export const WORKFLOW_JOB = defineJobKind({
  kind: "workflow",
  handler: runWorkflowJob,
  // A failed step is retried by the engine (the step's own max_attempts), with this backoff.
  retry: WORKFLOW_STEP_RETRY,
  // Instances of slow steps may hold three quarters of a worker, never all of it.
  concurrency: { share: 0.75 },
  onCrashLoop: giveUpWorkflowJob,
});
