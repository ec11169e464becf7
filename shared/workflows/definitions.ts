/**
 * Workflow definitions: the schemas of a workflow and its steps, the checks a definition
 * must pass before it is saved, and list/get/create/update/archive. Steps live in
 * immutable versions (workflow_versions): editing them adds a version, and instances keep
 * running the version they started with.
 */
import { z } from "zod";
import type { Tx } from "../platform/db.ts";
import { ApiError, invalidField, notFound } from "../platform/errors.ts";
import { EVENT_TYPES } from "../platform/events.ts";
import { pageWindow, paginationInput, paginationOf } from "../platform/pagination.ts";
import {
  acceptedScopes,
  hasScope,
  type Principal,
  type RequiredScope,
  SCOPE_GROUPS,
  scopeName,
} from "../platform/principal.ts";
import { isoTimestamp } from "../platform/time.ts";
import { validationError } from "../platform/validation.ts";
import { STEP_TYPE_NAMES, STEP_TYPES } from "./step-types.ts";
import { hasTemplate, TemplateError, templateRefs } from "./templates.ts";
import { triggerType, workflow, workflowId, workflowList, workflowSummary } from "./schemas.ts";

export { workflowId };
const stepId = z.string().regex(
  /^[A-Za-z][A-Za-z0-9_-]{0,63}$/,
  "must start with a letter and use letters, digits, '_' or '-' (at most 64)",
);

export const stepDefinition = z.strictObject({
  id: stepId,
  type: z.enum(STEP_TYPE_NAMES),
  config: z.record(z.string(), z.unknown()).default({}),
  retry: z.strictObject({ max_attempts: z.number().int().min(1).max(10) }).optional(),
});
export type StepDefinition = z.output<typeof stepDefinition>;

const triggerFields = {
  trigger_type: triggerType,
  cron_expression: z.string().trim().min(1).max(100).nullable(),
  timezone: z.string().min(1).max(64).nullable(),
  trigger_events: z.array(z.enum(EVENT_TYPES)).min(1).max(EVENT_TYPES.length).nullable(),
};

const workflowFields = {
  name: z.string().trim().min(1).max(200),
  description: z.string().max(2000),
  status: z.enum(["active", "inactive"]),
  concurrency: z.enum(["single", "parallel"]),
  steps: z.array(stepDefinition).min(1).max(100),
};

export const createWorkflowInput = z.strictObject({
  ...workflowFields,
  description: workflowFields.description.default(""),
  status: workflowFields.status.default("active"),
  concurrency: workflowFields.concurrency.default("parallel"),
  trigger_type: triggerFields.trigger_type.default("manual"),
  cron_expression: triggerFields.cron_expression.optional(),
  timezone: triggerFields.timezone.optional(),
  trigger_events: triggerFields.trigger_events.optional(),
});

export const updateWorkflowInput = z.strictObject({
  workflow_id: workflowId,
  name: workflowFields.name.optional(),
  description: workflowFields.description.optional(),
  /** "active" or "inactive"; also restores an archived workflow. */
  status: workflowFields.status.optional(),
  concurrency: workflowFields.concurrency.optional(),
  trigger_type: triggerFields.trigger_type.optional(),
  cron_expression: triggerFields.cron_expression.optional(),
  timezone: triggerFields.timezone.optional(),
  trigger_events: triggerFields.trigger_events.optional(),
  steps: workflowFields.steps.optional(),
});

export const listWorkflowsInput = z.strictObject({
  /** Without it, every workflow that is not archived. */
  status: z.enum(["active", "inactive", "archived"]).optional(),
  trigger_type: triggerFields.trigger_type.optional(),
  ...paginationInput,
});

export type CreateWorkflow = z.output<typeof createWorkflowInput>;
export type UpdateWorkflow = z.output<typeof updateWorkflowInput>;

// ---------------------------------------------------------------------------------------
// Checks a definition must pass
// ---------------------------------------------------------------------------------------

/** Whether the value at `path` in `value` (or any value on the way) holds a template. */
function templatedAt(value: unknown, path: PropertyKey[]): boolean {
  let current = value;
  for (const key of path) {
    if (hasTemplate(current)) return true;
    if (current === null || typeof current !== "object") return false;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return hasTemplate(current);
}

/** 403 naming `field`: the caller lacks `required`, which what `field` holds needs. */
function missingScope(principal: Principal, required: RequiredScope, field: string, what: string) {
  const who = principal.kind === "api_key" ? "The API key" : "Your role";
  const [needed, ...alsoAllowed] = acceptedScopes(required);
  return new ApiError(
    "AUTH_INSUFFICIENT_SCOPE",
    `${what} needs the '${needed}' scope, which ${who.toLowerCase()} does not have` +
      (alsoAllowed.length
        ? `; any of ${alsoAllowed.map((s) => `'${s}'`).join(", ")} would also do.`
        : "."),
    {
      details: {
        field,
        required_scope: scopeName(required),
        accepted_scopes: [needed, ...alsoAllowed],
      },
    },
  );
}

/**
 * What a workflow's steps and triggers let it do beyond workflows: each step type's scope
 * (create_contact acts on contacts: contacts:write), and reading the events it is
 * triggered by (contact.* needs contacts:read). A caller cannot define a workflow that
 * does what it could not do itself.
 */
export function checkScopes(
  principal: Principal,
  definition: { steps?: StepDefinition[]; trigger_events?: string[] | null },
) {
  definition.steps?.forEach((step, index) => {
    const required = STEP_TYPES[step.type].scope;
    if (required && !hasScope(principal, required)) {
      throw missingScope(principal, required, `steps.${index}.type`, `A '${step.type}' step`);
    }
  });
  definition.trigger_events?.forEach((event, index) => {
    // contact.created → the contacts group; events of groups without scopes need none.
    const group = `${event.slice(0, event.indexOf("."))}s`;
    if (!(SCOPE_GROUPS as readonly string[]).includes(group)) return;
    const required: RequiredScope = { group, level: "read" };
    if (!hasScope(principal, required)) {
      throw missingScope(principal, required, `trigger_events.${index}`, `The event '${event}'`);
    }
  });
}

/**
 * Every step: its config fits its type (values that are templates are checked when the
 * step runs), templates name the input or an earlier step, and conditions jump forward to
 * a step that exists or to "end" (so every run ends).
 */
export function checkSteps(steps: StepDefinition[]) {
  const positions = new Map<string, number>();
  steps.forEach((step, index) => {
    const field = `steps.${index}`;
    if (positions.has(step.id)) {
      throw invalidField(`${field}.id`, "unique", `Step id '${step.id}' is used twice.`);
    }
    positions.set(step.id, index);

    const parsed = STEP_TYPES[step.type].config.safeParse(step.config);
    const issue = parsed.error?.issues.find((i) => !templatedAt(step.config, i.path));
    if (issue) throw validationError(issue, step.config, `${field}.config`, [field, "config"]);

    let refs;
    try {
      refs = templateRefs(step.config);
    } catch (error) {
      if (error instanceof TemplateError) {
        throw invalidField(`${field}.config`, "template", error.message);
      }
      throw error;
    }
    for (const ref of refs) {
      if (
        ref.root === "steps" && !(positions.has(ref.stepId!) && positions.get(ref.stepId!)! < index)
      ) {
        throw invalidField(
          `${field}.config`,
          "template",
          `Template '{{${ref.text}}}' must name an earlier step; '${ref.stepId}' is not one.`,
        );
      }
    }
  });

  steps.forEach((step, index) => {
    if (step.type !== "condition") return;
    for (const branch of ["then", "else"] as const) {
      const goTo = step.config[branch];
      if (goTo === undefined || goTo === "end") continue;
      if (typeof goTo !== "string" || !((positions.get(goTo) ?? -1) > index)) {
        throw invalidField(
          `steps.${index}.config.${branch}`,
          "later_step",
          `A condition goes to "end" or to a later step's id; '${String(goTo)}' is not one.`,
        );
      }
    }
  });
}

interface Trigger {
  trigger_type: "manual" | "cron" | "event";
  cron_expression?: string | null;
  timezone?: string | null;
  trigger_events?: string[] | null;
}

/** The trigger fields that belong together, with the cron expression and zone checked by Postgres. */
async function checkTrigger(tx: Tx, trigger: Trigger) {
  const { trigger_type: type } = trigger;
  const unexpected = (field: string) =>
    invalidField(
      field,
      "trigger_type",
      `'${field}' only applies to trigger_type '${field === "trigger_events" ? "event" : "cron"}'.`,
    );
  if (type !== "cron") {
    if (trigger.cron_expression) throw unexpected("cron_expression");
    if (trigger.timezone) throw unexpected("timezone");
  }
  if (type !== "event" && trigger.trigger_events?.length) throw unexpected("trigger_events");
  if (type === "event" && !trigger.trigger_events?.length) {
    throw invalidField("trigger_events", "required", "An event trigger needs 'trigger_events'.");
  }
  if (type === "cron") {
    if (!trigger.cron_expression) {
      throw invalidField("cron_expression", "required", "A cron trigger needs 'cron_expression'.");
    }
    const [problems] = await tx<{ expression: string | null; zone: string | null }[]>`
      select private.cron_expression_error(${trigger.cron_expression}) as expression,
             private.cron_timezone_error(${trigger.timezone ?? "UTC"}) as zone
    `;
    if (problems.expression) {
      throw invalidField(
        "cron_expression",
        "cron",
        `Invalid cron expression: ${problems.expression}`,
      );
    }
    if (problems.zone) throw invalidField("timezone", "timezone", problems.zone);
  }
}

// ---------------------------------------------------------------------------------------
// Reading and writing
// ---------------------------------------------------------------------------------------

interface WorkflowRow {
  id: string;
  name: string;
  description: string;
  status: z.output<typeof workflow>["status"];
  trigger_type: "manual" | "cron" | "event";
  cron_expression: string | null;
  timezone: string | null;
  trigger_events: z.output<typeof workflow>["trigger_events"];
  concurrency: z.output<typeof workflow>["concurrency"];
  version: number;
  steps: StepDefinition[];
  created_at: Date;
  updated_at: Date;
}

/** A workflow as list returns it (the spec's shape). */
function summaryToApi(row: WorkflowRow): z.input<typeof workflowSummary> {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status,
    trigger_type: row.trigger_type,
    steps_count: row.steps.length,
    created_at: isoTimestamp(row.created_at),
    updated_at: isoTimestamp(row.updated_at),
  };
}

/** A workflow with its trigger settings and steps (get, create, update). */
function workflowToApi(row: WorkflowRow): z.input<typeof workflow> {
  const { created_at, updated_at, ...summary } = summaryToApi(row);
  return {
    ...summary,
    cron_expression: row.cron_expression,
    timezone: row.timezone,
    trigger_events: row.trigger_events,
    concurrency: row.concurrency,
    version: row.version,
    steps: row.steps,
    created_at,
    updated_at,
  };
}

const selectWorkflows = (tx: Tx) =>
  tx`
    select w.id, w.name, w.description, w.status, w.trigger_type, w.cron_expression, w.timezone,
           w.trigger_events, w.concurrency, w.version, v.steps, w.created_at, w.updated_at
    from public.workflows w
    join public.workflow_versions v on v.workflow_id = w.id and v.version = w.version
  `;

export async function listWorkflows(
  tx: Tx,
  query: z.output<typeof listWorkflowsInput>,
): Promise<z.input<typeof workflowList>> {
  const status = query.status ? tx`w.status = ${query.status}` : tx`w.status <> 'archived'`;
  const type = query.trigger_type ? tx`and w.trigger_type = ${query.trigger_type}` : tx``;
  const rows = await tx<(WorkflowRow & { total: number })[]>`
    ${selectWorkflows(tx)}
    where ${status} ${type}
    order by w.created_at desc, w.id desc
    ${pageWindow(tx, query)}
  `;
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.workflows w where ${status} ${type}
  `;
  return {
    workflows: rows.map(summaryToApi),
    pagination: paginationOf(query, total),
  };
}

async function findWorkflow(tx: Tx, id: string) {
  const [row] = await tx<WorkflowRow[]>`${selectWorkflows(tx)} where w.id = ${id}`;
  if (!row) throw notFound("Workflow", id);
  return row;
}

export async function getWorkflow(tx: Tx, id: string) {
  return workflowToApi(await findWorkflow(tx, id));
}

/** The checks `create` makes, without saving anything (generated drafts). */
export async function checkWorkflowDefinition(tx: Tx, input: CreateWorkflow) {
  checkSteps(input.steps);
  await checkTrigger(tx, input);
}

export async function createWorkflow(tx: Tx, input: CreateWorkflow, principal?: Principal) {
  checkSteps(input.steps);
  if (principal) checkScopes(principal, input);
  const timezone = input.trigger_type === "cron" ? input.timezone ?? "UTC" : null;
  await checkTrigger(tx, input);
  const [{ id }] = await tx<{ id: string }[]>`
    insert into public.workflows (name, description, status, trigger_type, cron_expression,
      timezone, trigger_events, concurrency)
    values (${input.name}, ${input.description}, ${input.status}, ${input.trigger_type},
      ${input.cron_expression ?? null}, ${timezone}, ${input.trigger_events ?? null},
      ${input.concurrency})
    returning id
  `;
  await tx`
    insert into public.workflow_versions (workflow_id, version, steps)
    values (${id}, 1, ${tx.json(input.steps as never)})
  `;
  return await getWorkflow(tx, id);
}

export async function updateWorkflow(tx: Tx, patch: UpdateWorkflow, principal?: Principal) {
  if (principal) checkScopes(principal, patch);
  // Locked before it is read: a concurrent update (or archive) then commits first and is
  // seen below, instead of both adding the same version (a 500 on workflow_versions' key)
  // or this one writing back fields read before the other's commit (an archive undone).
  // A statement of its own: a locking read joined to versions would drop the row when
  // the other update moved it to a new version.
  await tx`select from public.workflows where id = ${patch.workflow_id} for no key update`;
  const current = await findWorkflow(tx, patch.workflow_id);
  const trigger: Trigger = {
    trigger_type: patch.trigger_type ?? current.trigger_type,
    cron_expression: patch.cron_expression !== undefined
      ? patch.cron_expression
      : current.cron_expression,
    timezone: patch.timezone !== undefined ? patch.timezone : current.timezone,
    trigger_events: patch.trigger_events !== undefined
      ? patch.trigger_events
      : current.trigger_events,
  };
  if (patch.trigger_type !== undefined && patch.trigger_type !== current.trigger_type) {
    // Switching trigger type drops the old type's settings unless they are sent again.
    if (trigger.trigger_type !== "cron") {
      if (patch.cron_expression === undefined) trigger.cron_expression = null;
      if (patch.timezone === undefined) trigger.timezone = null;
    }
    if (trigger.trigger_type !== "event" && patch.trigger_events === undefined) {
      trigger.trigger_events = null;
    }
  }
  if (trigger.trigger_type === "cron") trigger.timezone ??= "UTC";
  await checkTrigger(tx, trigger);

  let version = current.version;
  if (patch.steps !== undefined) {
    checkSteps(patch.steps);
    if (JSON.stringify(patch.steps) !== JSON.stringify(current.steps)) {
      version += 1;
      await tx`
        insert into public.workflow_versions (workflow_id, version, steps)
        values (${current.id}, ${version}, ${tx.json(patch.steps as never)})
      `;
    }
  }
  await tx`
    update public.workflows set
      name = ${patch.name ?? current.name},
      description = ${patch.description ?? current.description},
      status = ${patch.status ?? current.status},
      concurrency = ${patch.concurrency ?? current.concurrency},
      trigger_type = ${trigger.trigger_type},
      cron_expression = ${trigger.cron_expression ?? null},
      timezone = ${trigger.timezone ?? null},
      trigger_events = ${trigger.trigger_events ?? null},
      version = ${version},
      updated_at = now()
    where id = ${current.id}
  `;
  return await getWorkflow(tx, current.id);
}

export async function archiveWorkflow(tx: Tx, id: string) {
  const [row] = await tx`
    update public.workflows set status = 'archived', updated_at = now()
    where id = ${id} returning id
  `;
  if (!row) throw notFound("Workflow", id);
  return await getWorkflow(tx, id);
}
