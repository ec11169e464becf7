/**
 * Runs workflow instances: the worker's handler for `workflow` jobs.
 *
 * A job is one instance. The worker that holds its lease runs the steps in order and
 * commits their records in transactions that act for the instance's organization and
 * environment (role `authenticated` with its claims, so RLS applies to every step):
 * - pure steps (set, condition) run in memory and are written with the next commit: they
 *   give the same result when re-run after a crash;
 * - a transactional step (create_contact) makes its change in the commit that records it,
 *   so a retried step cannot make it twice;
 * - an external step (http_request) sends an idempotency key that is the same on every
 *   attempt, then commits its response;
 * - a delay or a retry's backoff commits a `resume_at` and reschedules the job;
 * - the last commit sets the final state and writes workflow.completed/failed to the
 *   events outbox in the same transaction.
 * Each commit first checks the lease (a worker whose lease ran out stops) and then updates
 * the instance (a cancelled one stops the run): job row, then instance row, the order a
 * cancel locks them in too, so the two never deadlock.
 *
 * Data is bounded where it is made (INSTANCE_LIMITS): a rendered config, a step's output
 * and the sum of the outputs are measured (json-size.ts) before anything is stored, and a
 * step over a limit fails at once. A commit that PostgreSQL refuses for its data (a data
 * exception or a program limit, e.g. jsonb too large) fails the step that produced it,
 * with the database's message, retried only if the step has attempts left: the worker's
 * crash recovery (run the job again, WORKER_CRASHED after MAX_CLAIMS) is for crashes.
 */
import type { Environment } from "../platform/environment.ts";
import postgres from "postgres";
import { serviceSql, type Tx } from "../platform/db.ts";
import { emitEvent } from "../platform/events.ts";
import { formatBytes, jsonLargerThan, jsonSize } from "../platform/json-size.ts";
import { validationError } from "../platform/validation.ts";
import {
  crashLoopError,
  type JobContext,
  type JobError,
  type RetryPolicy,
} from "../platform/worker.ts";
import type { StepDefinition } from "./definitions.ts";
import { INSTANCE_LIMITS, isFinished } from "./instances.ts";
import { STEP_TYPES } from "./step-types.ts";
import { StepFailure, type StepIntent, type StepOutcome, type StepType } from "./steps.ts";
import { render, RenderTooLarge, TemplateError } from "./templates.ts";

interface InstanceState {
  id: string;
  org_id: string;
  environment: Environment;
  workflow_id: string;
  workflow_name: string;
  workflow_version: number;
  status: string;
  current_step: number;
  input: Record<string, unknown>;
  chain_depth: number;
  started_at: Date;
}

interface StepRecord {
  step_id: string;
  position: number;
  type: string;
  status: "running" | "completed" | "waiting" | "retrying" | "failed" | "skipped";
  attempts: number;
  output: unknown;
  error: { code: string; message: string; details?: unknown } | null;
  started_at: Date | null;
  finished_at: Date | null;
  resume_at: Date | null;
  /** What a waiting or running step waits on: a job it queued, or the call it intended. */
  waiting_on: WaitingOn | null;
}

type WaitingOn = { job: { kind: string; ref: string } } | { intent: StepIntent };

/** The outcome of a job a step waited for (private.job_outcomes). */
interface JobOutcome {
  result: unknown;
  error: { code: string; message: string; details?: Record<string, unknown> } | null;
}

/** A waiting step's job is looked at again this often, in case its wake-up was lost. */
const JOB_WAIT_RECHECK_MS = 3600_000;

/** Versions never change once written, so each worker keeps the steps it has read. */
const versionSteps = new Map<string, StepDefinition[]>();

async function loadSteps(workflowId: string, version: number) {
  const key = `${workflowId}@${version}`;
  let steps = versionSteps.get(key);
  if (!steps) {
    const [row] = await serviceSql()<{ steps: StepDefinition[] }[]>`
      select steps from public.workflow_versions
      where workflow_id = ${workflowId} and version = ${version}
    `;
    steps = row.steps;
    versionSteps.set(key, steps);
  }
  return steps;
}

/**
 * Calls made in the same tick are answered by one `loadMany`: a worker starts every job of
 * a claim at once, so their instances come in one pair of queries instead of one pair each.
 */
function batched<V>(loadMany: (keys: string[]) => Promise<Map<string, V>>) {
  let waiting: {
    key: string;
    resolve(value: V | undefined): void;
    reject(error: unknown): void;
  }[] = [];
  const flush = () => {
    const batch = waiting;
    waiting = [];
    loadMany([...new Set(batch.map((w) => w.key))]).then(
      (values) => batch.forEach((w) => w.resolve(values.get(w.key))),
      (error) => batch.forEach((w) => w.reject(error)),
    );
  };
  return (key: string) =>
    new Promise<V | undefined>((resolve, reject) => {
      if (waiting.length === 0) queueMicrotask(flush);
      waiting.push({ key, resolve, reject });
    });
}

const loadInstance = batched(async (ids) => {
  const sql = serviceSql();
  const [instances, records, outcomes] = await Promise.all([
    sql<InstanceState[]>`
      select i.id, i.org_id, i.environment, i.workflow_id, w.name as workflow_name,
             i.workflow_version, i.status, i.current_step, i.input, i.chain_depth, i.started_at
      from public.workflow_instances i join public.workflows w on w.id = i.workflow_id
      where i.id = any(${ids})
    `,
    sql<(StepRecord & { instance_id: string })[]>`
      select instance_id, step_id, position, type, status, attempts, output, error, started_at,
             finished_at, resume_at, waiting_on
      from public.workflow_step_runs where instance_id = any(${ids})
      order by instance_id, position
    `,
    sql<(JobOutcome & { waiter_ref: string; kind: string; ref: string })[]>`
      select waiter_ref, kind, ref, result, error from private.job_outcomes
      where waiter_kind = 'workflow' and waiter_ref = any(${ids})
    `,
  ]);
  const loaded = new Map(
    instances.map((instance) => [instance.id, {
      instance,
      records: [] as StepRecord[],
      outcomes: new Map<string, JobOutcome>(),
    }]),
  );
  for (const { instance_id, ...record } of records) loaded.get(instance_id)?.records.push(record);
  for (const { waiter_ref, kind, ref, ...outcome } of outcomes) {
    loaded.get(waiter_ref)?.outcomes.set(`${kind}/${ref}`, outcome);
  }
  return loaded;
});

/** Backoff before a failed step's next attempt: 1 s, 2 s, 4 s … at most 10 minutes. */
export const stepRetryDelayMs = (attempt: number) => Math.min(1000 * 2 ** (attempt - 1), 600_000);

/**
 * The workflow job kind's retry policy: a step's attempts are its own `retry.max_attempts`
 * (at most 10), retried after this backoff through the job's one retry path.
 */
export const WORKFLOW_STEP_RETRY: RetryPolicy = { maxAttempts: 10, backoff: stepRetryDelayMs };

/** The commit was refused: the instance was cancelled, or another worker has the job. */
class RunStopped extends Error {}

/**
 * PostgreSQL refused a commit for its data: SQLSTATE class 22 (data exception: invalid
 * JSON text, a value out of range) or 54 (program limit exceeded: jsonb too large). The
 * same data would be refused again, so this is the step's failure, not a crash.
 */
class ResultUnstorable extends StepFailure {
  constructor(cause: postgres.PostgresError) {
    super(
      "STEP_RESULT_UNSTORABLE",
      `The step's result could not be stored: ${cause.message}`,
      true,
      { sqlstate: cause.code },
    );
  }
}

const isDataError = (error: unknown): error is postgres.PostgresError =>
  error instanceof postgres.PostgresError && /^(22|54)/.test(error.code);

/** What `#stepFailed` puts back when a step that seemed done turns out to have failed. */
interface Checkpoint {
  position: number;
  unsaved: number;
  lastOutput: unknown;
  outputsBytes: number;
}

type Ending =
  | { kind: "continue" }
  | { kind: "reschedule"; at: Date }
  | { kind: "retry"; at: Date; error: JobError }
  | { kind: "wait_for_job"; job: { kind: string; ref: string; payload: unknown } }
  | { kind: "completed"; output: unknown }
  | { kind: "failed"; error: NonNullable<StepRecord["error"]> & { step_id?: string } };

/**
 * Runs the instance the job names with the registry's step types (`stepTypes`: a test's
 * own registry, to drive the engine with step types of its own).
 */
export const runWorkflowJob = (ctx: JobContext, stepTypes = STEP_TYPES) =>
  withInstance(ctx, stepTypes, (run) => run.run());

/** The worker died MAX_CLAIMS times on this instance: it fails with WORKER_CRASHED. */
export const giveUpWorkflowJob = (ctx: JobContext) =>
  withInstance(ctx, STEP_TYPES, (run) => run.giveUp());

async function withInstance(
  ctx: JobContext,
  stepTypes: Record<string, StepType>,
  go: (run: InstanceRun) => Promise<void>,
) {
  const loaded = await loadInstance(ctx.job.ref);
  if (!loaded || isFinished(loaded.instance.status)) {
    await ctx.finish(serviceSql());
    return;
  }
  const steps = await loadSteps(loaded.instance.workflow_id, loaded.instance.workflow_version);
  try {
    await go(
      new InstanceRun(loaded.instance, steps, loaded.records, loaded.outcomes, ctx, stepTypes),
    );
  } catch (error) {
    if (!(error instanceof RunStopped)) throw error;
  }
}

class InstanceRun {
  /** Outputs of the steps that completed, for templates. */
  #outputs: Record<string, unknown> = {};
  #records = new Map<string, StepRecord>();
  /** Records not yet committed. */
  #unsaved: StepRecord[] = [];
  #position: number;
  #lastOutput: unknown = null;
  /** The stored outputs' sizes added up (INSTANCE_LIMITS.stepOutputsTotalBytes). */
  #outputsBytes = 0;

  constructor(
    readonly instance: InstanceState,
    readonly steps: StepDefinition[],
    records: StepRecord[],
    readonly outcomes: Map<string, JobOutcome>,
    readonly job: JobContext,
    readonly stepTypes: Record<string, StepType>,
  ) {
    for (const record of records) {
      this.#records.set(record.step_id, record);
      if (record.status === "completed") {
        this.#outputs[record.step_id] = record.output;
        this.#lastOutput = record.output;
        this.#outputsBytes += jsonSize(record.output);
      }
    }
    this.#position = instance.current_step;
  }

  async giveUp() {
    const step = this.steps[this.#position - 1];
    await this.#commit({
      kind: "failed",
      error: crashLoopError(`running step '${step?.id}'`),
    });
  }

  async run() {
    let step: StepDefinition | undefined;
    while (this.#position <= this.steps.length) {
      step = this.steps[this.#position - 1];
      const ending = await this.#runStep(step);
      if (ending.kind !== "continue") return;
    }
    // Pure steps' records ride along here: one of them may be what cannot be stored. Pure
    // steps give the same result every time, so there is nothing to retry.
    await this.#commitOrFail({ kind: "completed", output: this.#lastOutput }, step?.id);
  }

  async #runStep(step: StepDefinition): Promise<Ending> {
    const previous = this.#records.get(step.id);
    if (previous?.status === "completed" || previous?.status === "skipped") {
      this.#position++;
      return { kind: "continue" };
    }
    const now = new Date();
    const record: StepRecord = {
      step_id: step.id,
      position: this.#position,
      type: step.type,
      status: "completed",
      attempts: previous?.attempts ?? 0,
      output: null,
      error: null,
      started_at: previous?.started_at ? new Date(previous.started_at) : now,
      finished_at: null,
      resume_at: null,
      waiting_on: null,
    };

    // Parked until a time (a delay): done once its time has come.
    if (previous?.status === "waiting" && previous.resume_at && !previous.waiting_on) {
      const resumeAt = new Date(previous.resume_at);
      if (resumeAt > now) return await this.#commit({ kind: "reschedule", at: resumeAt });
      return this.#stepDone(record, { output: { waited_until: resumeAt.toISOString() } });
    }
    const checkpoint: Checkpoint = {
      position: this.#position,
      unsaved: this.#unsaved.length,
      lastOutput: this.#lastOutput,
      outputsBytes: this.#outputsBytes,
    };
    // Parked until a job it queued ended: its result is the output, its error the failure.
    const waitedJob = previous?.status === "waiting" && previous.waiting_on &&
      "job" in previous.waiting_on && previous.waiting_on.job;
    if (waitedJob) {
      const outcome = this.outcomes.get(`${waitedJob.kind}/${waitedJob.ref}`);
      if (!outcome) {
        // Woken without an outcome: look again later (the job's end wakes it before that).
        return await this.#commit({
          kind: "reschedule",
          at: new Date(Date.now() + JOB_WAIT_RECHECK_MS),
        });
      }
      if (outcome.error) {
        const { code, message, details } = outcome.error;
        const failure = new StepFailure(code, message, false, details);
        return await this.#stepFailed(step, record, failure, checkpoint);
      }
      return await this.#settle(step, record, { output: outcome.result }, checkpoint, true);
    }

    const type = this.stepTypes[step.type];
    // An intent committed without a result: the worker died during the call. Never call
    // again blindly: the type reconciles it with the provider, or the step fails.
    const intent = previous?.status === "running" && previous.waiting_on &&
      "intent" in previous.waiting_on && previous.waiting_on.intent;
    if (intent) {
      let outcome: StepOutcome;
      try {
        if (!type.reconcile) {
          throw new StepFailure(
            "OUTCOME_UNKNOWN",
            `Step '${step.id}': the worker stopped during its call (attempt ${intent.attempt}, ` +
              `key ${intent.key}) and whether the call took effect cannot be known; it is ` +
              `not made a second time.`,
            false,
            { intent_key: intent.key, attempt: intent.attempt },
          );
        }
        const config = this.#renderConfig(step);
        outcome = await type.reconcile(this.#stepContext(step, config, record.attempts, intent));
        if ("output" in outcome) this.#checkOutput(outcome.output);
      } catch (error) {
        return await this.#stepFailed(step, record, error, checkpoint);
      }
      return await this.#settle(step, record, outcome, checkpoint, true);
    }

    record.attempts++;
    let outcome: StepOutcome;
    try {
      const config = this.#renderConfig(step);
      const context = this.#stepContext(step, config, record.attempts);
      if (type.effect === "transactional") {
        // The change and its record commit together (or not at all).
        let transactional!: StepOutcome;
        await this.#commit({ kind: "continue" }, async (tx) => {
          transactional = await type.run({ ...context, tx });
          if ("output" in transactional) {
            this.#checkOutput(transactional.output);
            this.#complete(record, transactional);
          }
          return [record];
        });
        this.#afterCommitted(record, transactional);
        return { kind: "continue" };
      }
      if (type.effect === "intent") {
        // The intent commits before the call (with the records before it).
        record.status = "running";
        record.waiting_on = { intent: context.intent };
        await this.#commit({ kind: "continue" }, () => Promise.resolve([{ ...record }]));
        checkpoint.unsaved = 0; // the records before it are committed with the intent
        record.status = "completed";
        record.waiting_on = null;
      }
      outcome = await type.run(context);
      if ("output" in outcome) this.#checkOutput(outcome.output);
    } catch (error) {
      return await this.#stepFailed(step, record, error, checkpoint);
    }
    return await this.#settle(step, record, outcome, checkpoint, type.effect !== "none");
  }

  /** The context a step type's run or reconcile gets. */
  #stepContext(step: StepDefinition, config: unknown, attempt: number, intent?: StepIntent) {
    const idempotencyKey = `${this.instance.id}.${step.id}`;
    return {
      config,
      idempotencyKey,
      environment: this.instance.environment,
      attempt,
      intent: intent ?? { attempt, key: `${idempotencyKey}.${attempt}` },
      tx: undefined as never,
    };
  }

  /**
   * What a step's outcome does: park until a time, park until a queued job ends, or
   * complete (committed now when `commitNow`; a pure step's record rides with the next).
   */
  async #settle(
    step: StepDefinition,
    record: StepRecord,
    outcome: StepOutcome,
    checkpoint: Checkpoint,
    commitNow: boolean,
  ): Promise<Ending> {
    try {
      if ("waitUntil" in outcome) {
        if (outcome.waitUntil > new Date()) {
          record.status = "waiting";
          record.resume_at = outcome.waitUntil;
          this.#unsaved.push(record);
          return await this.#commit({ kind: "reschedule", at: outcome.waitUntil });
        }
        return this.#stepDone(record, {
          output: { waited_until: outcome.waitUntil.toISOString() },
        });
      }
      if ("waitForJob" in outcome) {
        const job = {
          kind: outcome.waitForJob.kind,
          ref: `${this.instance.id}.${step.id}.${record.attempts}`,
        };
        record.status = "waiting";
        record.waiting_on = { job };
        this.#unsaved.push(record);
        return await this.#commit({
          kind: "wait_for_job",
          job: { ...job, payload: outcome.waitForJob.payload },
        });
      }
      this.#stepDone(record, outcome);
      if (commitNow) await this.#commit({ kind: "continue" });
      return { kind: "continue" };
    } catch (error) {
      // Only the commit's refusal of the data is the step's failure; anything else (the
      // database went away) is the worker's to retry, as a crash.
      if (!(error instanceof ResultUnstorable)) throw error;
      return await this.#stepFailed(step, record, error, checkpoint);
    }
  }

  #renderConfig(step: StepDefinition) {
    const limit = INSTANCE_LIMITS.renderedConfigBytes;
    const tooLarge = () =>
      new StepFailure(
        "RENDERED_CONFIG_TOO_LARGE",
        `Step '${step.id}': its config with templates filled in is larger than ${
          formatBytes(limit)
        } as JSON.`,
        false,
        { limit_bytes: limit },
      );
    let rendered: unknown;
    try {
      rendered = render(
        step.config,
        { input: this.instance.input, steps: this.#outputs },
        limit,
      );
    } catch (error) {
      if (error instanceof TemplateError) {
        throw new StepFailure("TEMPLATE_ERROR", error.message, false);
      }
      if (error instanceof RenderTooLarge) throw tooLarge();
      throw error;
    }
    // Whole-value templates share the values they name, so the JSON can be far larger
    // than the memory: measured, never written out.
    if (jsonLargerThan(rendered, limit)) throw tooLarge();
    const parsed = this.stepTypes[step.type].config.safeParse(rendered);
    if (!parsed.success) {
      const problem = validationError(parsed.error.issues[0], rendered, "config", ["config"]);
      throw new StepFailure("INVALID_STEP_CONFIG", problem.message, false, problem.options.details);
    }
    return parsed.data;
  }

  /** A step's output within the step limit and, with the outputs before it, the total. */
  #checkOutput(output: unknown) {
    const { stepOutputBytes, stepOutputsTotalBytes } = INSTANCE_LIMITS;
    const size = jsonSize(output, stepOutputBytes);
    if (size > stepOutputBytes) {
      throw new StepFailure(
        "STEP_OUTPUT_TOO_LARGE",
        `The step's output is larger than ${formatBytes(stepOutputBytes)} as JSON.`,
        false,
        { limit_bytes: stepOutputBytes },
      );
    }
    if (this.#outputsBytes + size > stepOutputsTotalBytes) {
      throw new StepFailure(
        "INSTANCE_DATA_TOO_LARGE",
        `With this step's output the instance would store more than ${
          formatBytes(stepOutputsTotalBytes)
        } of step outputs.`,
        false,
        { limit_bytes: stepOutputsTotalBytes },
      );
    }
  }

  #complete(record: StepRecord, outcome: { output: unknown }) {
    record.status = "completed";
    record.waiting_on = null;
    record.output = outcome.output ?? null;
    record.finished_at = new Date();
  }

  /** Marks a step completed, queues its record for the next commit and moves on. */
  #stepDone(record: StepRecord, outcome: { output: unknown; goTo?: string }): Ending {
    this.#complete(record, outcome);
    this.#unsaved.push(record);
    this.#afterCommitted(record, outcome);
    return { kind: "continue" };
  }

  /** Moves past a completed step: to the next one, or where a condition sends the run. */
  #afterCommitted(record: StepRecord, outcome: StepOutcome) {
    if (!("output" in outcome)) return;
    this.#records.set(record.step_id, record);
    this.#outputs[record.step_id] = record.output;
    this.#lastOutput = record.output;
    this.#outputsBytes += jsonSize(record.output);
    const goTo = outcome.goTo;
    if (goTo === undefined) {
      this.#position++;
      return;
    }
    const target = goTo === "end"
      ? this.steps.length + 1
      : this.steps.findIndex((s) => s.id === goTo) + 1;
    for (let position = this.#position + 1; position < target; position++) {
      const skipped = this.steps[position - 1];
      this.#unsaved.push({
        step_id: skipped.id,
        position,
        type: skipped.type,
        status: "skipped",
        attempts: 0,
        output: null,
        error: null,
        started_at: null,
        finished_at: null,
        resume_at: null,
        waiting_on: null,
      });
    }
    this.#position = target;
  }

  async #stepFailed(
    step: StepDefinition,
    record: StepRecord,
    error: unknown,
    checkpoint: Checkpoint,
  ): Promise<Ending> {
    if (error instanceof RunStopped) throw error;
    // The step may have been taken as done before its commit failed: undo that.
    this.#position = checkpoint.position;
    this.#unsaved.length = checkpoint.unsaved;
    this.#lastOutput = checkpoint.lastOutput;
    this.#outputsBytes = checkpoint.outputsBytes;
    delete this.#outputs[step.id];
    record.output = null;
    record.waiting_on = null;
    const failure = error instanceof StepFailure
      ? error
      : isDataError(error)
      ? new ResultUnstorable(error)
      : new StepFailure(
        "STEP_ERROR",
        error instanceof Error ? error.message : String(error),
        true,
      );
    // Details hold what went wrong (an HTTP answer): kept only while of a storable size.
    const details = failure.details &&
        jsonLargerThan(failure.details, INSTANCE_LIMITS.stepOutputBytes)
      ? { omitted: `larger than ${formatBytes(INSTANCE_LIMITS.stepOutputBytes)}` }
      : failure.details;
    record.error = {
      code: failure.code,
      message: failure.message,
      ...(details ? { details } : {}),
    };
    record.finished_at = new Date();
    const maxAttempts = step.retry?.max_attempts ?? 1;
    if (failure.retryable && record.attempts < maxAttempts) {
      record.status = "retrying";
      record.resume_at = new Date(Date.now() + stepRetryDelayMs(record.attempts));
      this.#unsaved.push(record);
      return await this.#commitOrFail(
        { kind: "retry", at: record.resume_at, error: record.error },
        step.id,
      );
    }
    record.status = "failed";
    record.resume_at = null;
    this.#unsaved.push(record);
    return await this.#commitOrFail({
      kind: "failed",
      error: { ...record.error, step_id: step.id },
    }, step.id);
  }

  /**
   * Commits `ending`; if PostgreSQL refuses its data (the records of pure steps that ran
   * since the last commit, or a failure's details), ends the instance with that cause and
   * nothing else, which can always be stored.
   */
  async #commitOrFail(ending: Ending, stepId: string | undefined): Promise<Ending> {
    try {
      return await this.#commit(ending);
    } catch (error) {
      if (!(error instanceof ResultUnstorable)) throw error;
      this.#unsaved = [];
      return await this.#commit({
        kind: "failed",
        error: { code: error.code, message: error.message, step_id: stepId },
      });
    }
  }

  /**
   * One transaction for the instance: the lease check, its new position or final state,
   * an optional transactional step (`effect`, whose records are added), the unsaved step
   * records, the final event, and the job's next run.
   */
  async #commit(ending: Ending, effect?: (tx: Tx) => Promise<StepRecord[]>): Promise<Ending> {
    try {
      await this.#write(ending, this.#unsaved, effect);
    } catch (error) {
      if (isDataError(error)) throw new ResultUnstorable(error);
      throw error;
    }
    this.#unsaved = [];
    return ending;
  }

  async #write(
    ending: Ending,
    records: StepRecord[],
    effect?: (tx: Tx) => Promise<StepRecord[]>,
  ) {
    const finished = ending.kind === "completed" || ending.kind === "failed";
    await this.job.withTenant(
      async (tx) => {
        // The lease first (the job row, then the instance, the order a cancel takes too):
        // a final commit ends the job, any other holds the lease in the update below.
        if (finished && !(await this.job.finish(tx))) {
          throw new RunStopped("lease lost");
        }
        const [updated] = await tx<{ finished_at: Date | null }[]>`
          update public.workflow_instances set
            current_step = ${Math.min(this.#position, this.steps.length)},
            status = ${finished ? ending.kind : "running"},
            output = ${ending.kind === "completed" ? tx.json(ending.output as never) : null},
            error = ${ending.kind === "failed" ? tx.json(ending.error as never) : null},
            finished_at = ${finished ? tx`clock_timestamp()` : null},
            updated_at = clock_timestamp()
          where ${finished ? tx`true` : this.job.held(tx)} and id = ${this.instance.id}
            and status = 'running'
          returning finished_at
        `;
        if (!updated) throw new RunStopped("lease lost or instance cancelled");
        const all = effect ? [...records, ...(await effect(tx))] : records;
        if (all.length > 0) await saveRecords(tx, this.instance, all);
        if (ending.kind === "reschedule") await this.job.reschedule(tx, ending.at);
        if (ending.kind === "retry") await this.job.retry(tx, ending.error, ending.at);
        if (ending.kind === "wait_for_job") {
          const { kind, ref, payload } = ending.job;
          await this.job.waitFor(tx, kind, ref, payload);
        }
        if (finished) {
          await emitEvent(
            tx,
            ending.kind === "completed" ? "workflow.completed" : "workflow.failed",
            {
              instance_id: this.instance.id,
              workflow_id: this.instance.workflow_id,
              workflow_name: this.instance.workflow_name,
              status: ending.kind,
              duration_ms: updated.finished_at!.getTime() -
                new Date(this.instance.started_at).getTime(),
              ...(ending.kind === "completed"
                ? { output: ending.output }
                : { error: ending.error }),
            },
          );
        }
      },
      {
        claims: { workflow_instance_id: this.instance.id },
        settings: { "bivelio.chain_depth": String(this.instance.chain_depth) },
      },
    );
  }
}

/** Upserts step records. The tenant is given, not left to the per-row claim defaults. */
async function saveRecords(tx: Tx, instance: InstanceState, records: StepRecord[]) {
  await tx`
    insert into public.workflow_step_runs as r (instance_id, org_id, environment, step_id,
      position, type, status, attempts, output, error, started_at, finished_at, resume_at,
      waiting_on)
    select ${instance.id}, ${instance.org_id}, ${instance.environment}, x.step_id, x.position, x.type, x.status, x.attempts, x.output, x.error,
           x.started_at, x.finished_at, x.resume_at, x.waiting_on
    from jsonb_to_recordset(${tx.json(records as never)}) as x(step_id text, position int,
      type text, status text, attempts int, output jsonb, error jsonb, started_at timestamptz,
      finished_at timestamptz, resume_at timestamptz, waiting_on jsonb)
    on conflict (instance_id, step_id) do update set
      status = excluded.status, attempts = excluded.attempts, output = excluded.output,
      error = excluded.error, started_at = coalesce(r.started_at, excluded.started_at),
      finished_at = excluded.finished_at, resume_at = excluded.resume_at,
      waiting_on = excluded.waiting_on
  `;
}
