/**
 * Workflow instances through the API: execute, list, get (with per-step records), cancel,
 * and waiting for an instance to end (sync execute).
 */
import { z } from "zod";
import { listenSql, type Tx } from "../platform/db.ts";
import { ApiError, notFound } from "../platform/errors.ts";
import { formatBytes, jsonLargerThan, KiB, MiB } from "../platform/json-size.ts";
import { pageWindow, paginationInput, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import { workflowId } from "./definitions.ts";
import {
  INSTANCE_STATUSES,
  instanceId,
  workflowInstance,
  workflowInstanceDetail,
  workflowInstanceList,
  workflowStepRun,
} from "./schemas.ts";

export { instanceId };
export type InstanceStatus = typeof INSTANCE_STATUSES[number];
export const isFinished = (status: string) => !["pending", "running"].includes(status);

/**
 * How much data an instance may hold, measured as JSON (UTF-8 bytes). Each is checked
 * where the data is made, and a step over one fails at once with the code named (not
 * retried: the same data would fail again). Sized so that real payloads (an API answer,
 * a contact, a document's extracted fields) fit with room to spare, while one instance
 * cannot hold more than a few MiB in a worker's memory, in its rows or in its events.
 */
export const INSTANCE_LIMITS = {
  /** An execute's `input` (400 VALIDATION_ERROR, constraint `max_bytes`). Event-triggered
   * instances get the event as input, bounded by the event limit (events.ts). */
  inputBytes: 256 * KiB,
  /** A step's config after templates are rendered: RENDERED_CONFIG_TOO_LARGE. */
  renderedConfigBytes: 256 * KiB,
  /** A step's output (and so the instance's output, the last one): STEP_OUTPUT_TOO_LARGE. */
  stepOutputBytes: 256 * KiB,
  /** All the step outputs an instance stores, added up: INSTANCE_DATA_TOO_LARGE. */
  stepOutputsTotalBytes: 4 * MiB,
} as const;

export const executeInput = z.strictObject({
  workflow_id: workflowId,
  input: z.record(z.string(), z.unknown()).default({}),
  /** true: answer at once; false: wait for the end (at most 60 s). */
  async: z.boolean().default(true),
});

export const listInstancesInput = z.strictObject({
  workflow_id: workflowId.optional(),
  status: z.enum(INSTANCE_STATUSES).optional(),
  ...paginationInput,
});

export const byInstanceId = z.strictObject({ instance_id: instanceId });

/** How long a sync execute waits before answering with the instance as it stands. */
export const SYNC_EXECUTE_TIMEOUT_MS = 60_000;

interface InstanceRow {
  id: string;
  workflow_id: string;
  workflow_name: string;
  workflow_version: number;
  status: InstanceStatus;
  current_step: number;
  total_steps: number;
  input: Record<string, unknown>;
  output: unknown;
  error: z.output<typeof workflowInstance>["error"];
  trigger: Record<string, unknown>;
  started_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

interface StepRunRow {
  step_id: string;
  position: number;
  type: string;
  status: z.output<typeof workflowStepRun>["status"];
  attempts: number;
  output: unknown;
  error: z.output<typeof workflowStepRun>["error"];
  started_at: Date | null;
  finished_at: Date | null;
  resume_at: Date | null;
}

/** An instance as execute, list_instances and get_instance return it (the spec's fields first). */
function instanceToApi(row: InstanceRow): z.input<typeof workflowInstance> {
  return {
    instance_id: row.id,
    workflow_id: row.workflow_id,
    workflow_name: row.workflow_name,
    status: row.status,
    current_step: row.current_step,
    total_steps: row.total_steps,
    input: row.input,
    output: row.output,
    error: row.error,
    started_at: isoTimestamp(row.started_at),
    updated_at: isoTimestamp(row.updated_at),
    finished_at: isoTimestamp(row.finished_at),
  };
}

function stepRunToApi(row: StepRunRow): z.input<typeof workflowStepRun> {
  return {
    step_id: row.step_id,
    position: row.position,
    type: row.type,
    status: row.status,
    attempts: row.attempts,
    output: row.output,
    error: row.error,
    started_at: isoTimestamp(row.started_at),
    finished_at: isoTimestamp(row.finished_at),
    next_attempt_at: isoTimestamp(row.resume_at),
  };
}

const selectInstances = (tx: Tx) =>
  tx`
    select i.id, i.workflow_id, w.name as workflow_name, i.workflow_version, i.status,
           i.current_step, i.total_steps, i.input, i.output, i.error, i.trigger,
           i.started_at, i.updated_at, i.finished_at
    from public.workflow_instances i
    join public.workflows w on w.id = i.workflow_id
  `;

async function findInstance(tx: Tx, id: string) {
  const [row] = await tx<InstanceRow[]>`${selectInstances(tx)} where i.id = ${id}`;
  if (!row) throw notFound("Workflow instance", id);
  return row;
}

/** Why start_workflow_instance started nothing: a 404 or WORKFLOW_INACTIVE. */
async function explainNotStarted(tx: Tx, workflowId: string): Promise<never> {
  const [workflow] = await tx<{ status: string }[]>`
    select status from public.workflows where id = ${workflowId}
  `;
  if (!workflow) throw notFound("Workflow", workflowId);
  throw new ApiError(
    "WORKFLOW_INACTIVE",
    `Workflow '${workflowId}' is ${workflow.status}; only active workflows can be executed.`,
    { details: { status: workflow.status } },
  );
}

export async function executeWorkflow(tx: Tx, input: z.output<typeof executeInput>) {
  if (jsonLargerThan(input.input, INSTANCE_LIMITS.inputBytes)) {
    throw new ApiError(
      "VALIDATION_ERROR",
      `The 'input' field is larger than ${formatBytes(INSTANCE_LIMITS.inputBytes)} as JSON.`,
      {
        details: { field: "input", constraint: "max_bytes", max_bytes: INSTANCE_LIMITS.inputBytes },
      },
    );
  }
  let started: InstanceRow[];
  try {
    started = await tx<InstanceRow[]>`
      select i.*, w.name as workflow_name
      from private.start_workflow_instance(
        ${input.workflow_id}, ${tx.json(input.input as never)}, '{"type": "manual"}') i
      join public.workflows w on w.id = i.workflow_id
    `;
  } catch (error) {
    if (
      (error as { constraint_name?: string }).constraint_name === "workflow_instances_single_idx"
    ) {
      throw new ApiError(
        "WORKFLOW_ALREADY_RUNNING",
        `Workflow '${input.workflow_id}' runs one instance at a time and one is still running.`,
      );
    }
    throw error;
  }
  // No instance: the workflow is not visible to the caller, or not active.
  if (started.length === 0) await explainNotStarted(tx, input.workflow_id);
  return instanceToApi(started[0]);
}

export async function listInstances(
  tx: Tx,
  query: z.output<typeof listInstancesInput>,
): Promise<z.input<typeof workflowInstanceList>> {
  const filters = [tx`true`];
  if (query.workflow_id) filters.push(tx`i.workflow_id = ${query.workflow_id}`);
  if (query.status) filters.push(tx`i.status = ${query.status}`);
  const where = filters.reduce((all, next) => tx`${all} and ${next}`);
  const rows = await tx<InstanceRow[]>`
    ${selectInstances(tx)}
    where ${where}
    order by i.created_at desc, i.id desc
    ${pageWindow(tx, query)}
  `;
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.workflow_instances i where ${where}
  `;
  return {
    instances: rows.map(instanceToApi),
    pagination: paginationOf(query, total),
  };
}

/** The instance with its version, trigger and one record per step that ran. */
export async function getInstance(
  tx: Tx,
  id: string,
): Promise<z.input<typeof workflowInstanceDetail>> {
  const row = await findInstance(tx, id);
  const steps = await tx<StepRunRow[]>`
    select step_id, position, type, status, attempts, output, error, started_at, finished_at,
           resume_at
    from public.workflow_step_runs where instance_id = ${id}
    order by position
  `;
  return {
    ...instanceToApi(row),
    workflow_version: row.workflow_version,
    trigger: row.trigger,
    steps: steps.map(stepRunToApi),
  };
}

const instanceFinished = (id: string, status: string) =>
  new ApiError("INSTANCE_FINISHED", `Instance '${id}' already ended (${status}).`, {
    details: { status },
  });

export async function cancelInstance(tx: Tx, id: string) {
  const row = await findInstance(tx, id);
  if (isFinished(row.status)) throw instanceFinished(id, row.status);
  // Lock the job before the instance, the order the worker locks them in (no deadlock).
  await tx`select private.lock_workflow_job(${id})`;
  const [cancelled] = await tx`
    update public.workflow_instances
    set status = 'cancelled', finished_at = clock_timestamp(), updated_at = clock_timestamp(),
        error = ${tx.json({ code: "CANCELLED", message: "Cancelled through the API." })}
    where id = ${id} and status in ('pending', 'running')
    returning id
  `;
  const after = await findInstance(tx, id);
  // The run ended between the check above and the update (the worker committed first).
  if (!cancelled) throw instanceFinished(id, after.status);
  return instanceToApi(after);
}

// ---------------------------------------------------------------------------------------
// Waiting for an instance to end (sync execute)
// ---------------------------------------------------------------------------------------

const waiters = new Map<string, Set<() => void>>();
let listening: Promise<unknown> | undefined;

/** One LISTEN per process on the channel the instance-finished trigger notifies. */
function listenForFinishedInstances() {
  listening ??= listenSql().listen("bivelio_instance_finished", (id) => {
    for (const wake of waiters.get(id) ?? []) wake();
  }).catch((error) => {
    listening = undefined;
    throw error;
  });
  return listening;
}

/**
 * Resolves when instance `id` has ended or after `timeoutMs`, whichever is first. `ended`
 * reads the instance's current state (checked after listening, so an end in between is
 * not missed).
 */
export async function waitForInstanceEnd(
  id: string,
  timeoutMs: number,
  ended: () => Promise<boolean>,
) {
  try {
    await listenForFinishedInstances();
  } catch {
    // No LISTEN here (e.g. a transaction pooler): poll instead.
    const deadline = Date.now() + timeoutMs;
    while (!(await ended()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return;
  }
  let wake!: () => void;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  const set = waiters.get(id) ?? new Set();
  set.add(wake);
  waiters.set(id, set);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    if (await ended()) return;
    await Promise.race([woken, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
  } finally {
    clearTimeout(timer);
    set.delete(wake);
    if (set.size === 0) waiters.delete(id);
  }
}
