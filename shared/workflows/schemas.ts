/**
 * What the workflows actions answer: the one definition of each response's `data`, from
 * which the mappers take their types, OpenAPI its named schemas and the tests their check.
 * (The input schemas stay in definitions.ts and instances.ts, beside their checks.)
 */
import { z } from "zod";
import { EVENT_TYPES } from "../platform/events.ts";
import { prefixedId } from "../platform/ids.ts";
import { pagination } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

export const workflowId = prefixedId("wf", "a workflow");
export const instanceId = prefixedId("wfi", "a workflow instance");

export const INSTANCE_STATUSES = [
  "pending",
  "running",
  "completed",
  "failed",
  "cancelled",
] as const;
export const triggerType = z.enum(["manual", "cron", "event"]);

/** A step as it was saved (its config as written, templates included). */
export const workflowStep = z.strictObject({
  id: z.string(),
  type: z.string(),
  config: z.record(z.string(), z.unknown()),
  retry: z.strictObject({ max_attempts: z.int() }).optional(),
}).meta({ id: "WorkflowStep" });

const summaryFields = {
  id: workflowId,
  name: z.string(),
  description: z.string(),
  status: z.enum(["active", "inactive", "archived"]),
  trigger_type: triggerType,
  steps_count: z.int().min(0),
  created_at: timestamp,
  updated_at: timestamp,
};

/** A workflow as list returns it (the spec's shape). */
export const workflowSummary = z.strictObject(summaryFields).meta({ id: "WorkflowSummary" });

/** A workflow with its trigger settings and steps (get, create, update, archive). */
export const workflow = z.strictObject({
  ...summaryFields,
  /** Cron triggers: five fields or a name like `@daily`, and the IANA zone it runs in. */
  cron_expression: z.string().nullable(),
  timezone: z.string().nullable(),
  /** Event triggers: the events that start it. */
  trigger_events: z.array(z.enum(EVENT_TYPES)).nullable(),
  concurrency: z.enum(["single", "parallel"]),
  /** Grows by one each time the steps change. */
  version: z.int().min(1),
  steps: z.array(workflowStep),
}).meta({ id: "Workflow" });

export const workflowList = z.strictObject({
  workflows: z.array(workflowSummary),
  pagination,
}).meta({ id: "WorkflowList" });

/** Why an instance or a step failed (or that it was cancelled). */
export const workflowError = z.strictObject({
  code: z.string(),
  message: z.string(),
  /** The step that failed (instances only). */
  step_id: z.string().optional(),
  /** What went wrong, e.g. an HTTP answer. */
  details: z.unknown().optional(),
}).meta({ id: "WorkflowError" });

const instanceFields = {
  instance_id: instanceId,
  workflow_id: workflowId,
  workflow_name: z.string(),
  status: z.enum(INSTANCE_STATUSES),
  /** 1-based position of the step running (total_steps + 1 once past the last). */
  current_step: z.int().min(0),
  total_steps: z.int().min(0),
  input: z.record(z.string(), z.unknown()),
  /** The last step's output, once completed. */
  output: z.unknown(),
  error: workflowError.nullable(),
  started_at: timestamp,
  updated_at: timestamp,
  finished_at: timestamp.nullable(),
};

/** An instance as execute (async), list_instances and cancel_instance return it. */
export const workflowInstance = z.strictObject(instanceFields).meta({ id: "WorkflowInstance" });

/** One step's record in an instance. */
export const workflowStepRun = z.strictObject({
  step_id: z.string(),
  position: z.int().min(0),
  type: z.string(),
  /** running: an `intent` step's call is in flight (its intent committed, no result yet). */
  status: z.enum(["running", "completed", "waiting", "retrying", "failed", "skipped"]),
  attempts: z.int().min(0),
  output: z.unknown(),
  error: workflowError.nullable(),
  started_at: timestamp.nullable(),
  finished_at: timestamp.nullable(),
  /** When a waiting or retrying step runs again. */
  next_attempt_at: timestamp.nullable(),
}).meta({ id: "WorkflowStepRun" });

/** An instance with its version, what started it and its step records (get_instance, sync execute). */
export const workflowInstanceDetail = z.strictObject({
  ...instanceFields,
  workflow_version: z.int().min(1),
  /** What started it: `{"type": "manual"}`, a cron tick or an event. */
  trigger: z.record(z.string(), z.unknown()),
  steps: z.array(workflowStepRun),
}).meta({ id: "WorkflowInstanceDetail" });

export const workflowInstanceList = z.strictObject({
  instances: z.array(workflowInstance),
  pagination,
}).meta({ id: "WorkflowInstanceList" });

/** execute: the instance at once (`async: true`), or with its steps once it ended. */
export const workflowExecution = z.union([workflowInstance, workflowInstanceDetail]);
