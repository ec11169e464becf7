/**
 * The calendar's workflow step, `create_event` (the `create` action's fields, templated).
 * Like `invoke_agent`, the step parks its instance on a `calendar_event_creation` job
 * (jobs.ts) that runs create's three phases as the instance's organization and environment;
 * the created event is the step's output, a refusal (no Google connection, Google's 502)
 * its failure.
 */
import { defineStep, type StepType } from "../workflows/steps.ts";
import { CALENDAR_EVENT_CREATION_JOB_KIND } from "./jobs.ts";
import { createEventInput } from "./schemas.ts";

export const CALENDAR_STEP_TYPES: Record<string, StepType> = {
  create_event: defineStep({
    // Its effect is the job's (the event row, Google's insert under a derived id).
    effect: "none",
    config: createEventInput,
    scope: { group: "calendar", level: "write" },
    run: ({ config }) => ({
      waitForJob: { kind: CALENDAR_EVENT_CREATION_JOB_KIND, payload: config },
    }),
  }),
};
