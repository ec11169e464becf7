/**
 * The calendar's job kinds (listed in shared/job-kinds.ts):
 *
 * - `calendar_reminder` (ref: a public.calendar_reminders id, due at start − minutes_before,
 *   queued and moved by the table's trigger): sends an `email` reminder once. The row goes
 *   pending → sending → sent/failed, each step committed with the job, so a crash during the
 *   send is never followed by a second send (it is recorded as failed, outcome unknown).
 *   While the organization has no email channel the reminder is recorded `not_sent` with
 *   "email channel not available".
 * - `calendar_sync` (ref: a `google_calendar` integration's id, queued every 5 minutes by
 *   pg_cron for connected live ones, private.queue_calendar_syncs): Google's changes since the
 *   sync token, the same code as the `sync` action.
 * - `calendar_event_creation` (ref: `<instance>.<step>.<attempt>`): the workflow step
 *   `create_event`; the same phases as the `create` action, its event found again by the
 *   ref after a crash (a pending Google insert is made again under the same derived id).
 */
import type { Tx } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";
import { defineJobKind, type JobContext } from "../platform/worker.ts";
import { findConnection, openConnection } from "./connection.ts";
import { eventOf, findEventByRequestKey } from "./events.ts";
import {
  EMAIL_CHANNEL_UNAVAILABLE,
  prepareEmails,
  recordEmails,
  reminderEmail,
  sendEmails,
} from "./notify.ts";
import {
  callCreate,
  callSync,
  prepareCreate,
  type PreparedCreate,
  prepareSync,
  recordCreate,
  recordSync,
} from "./operations.ts";
import type { EventRow } from "./events.ts";
import { createEventInput } from "./schemas.ts";

export const CALENDAR_EVENT_CREATION_JOB_KIND = "calendar_event_creation";

async function held(ctx: JobContext, tx: Tx) {
  const [{ held }] = await tx<{ held: boolean }[]>`select ${ctx.held(tx)} as held`;
  return held;
}

interface ReminderRow {
  id: string;
  event_id: string;
  minutes_before: number;
  due_at: Date;
  status: string;
}

async function setReminder(tx: Tx, id: string, status: string, detail: string | null) {
  await tx`
    update public.calendar_reminders
    set status = ${status}, detail = ${detail}, updated_at = now(),
        sent_at = case when ${status} = 'sent' then now() else sent_at end
    where id = ${id}
  `;
}

async function sendReminder(ctx: JobContext) {
  const prepared = await ctx.withTenant(async (tx) => {
    if (!(await held(ctx, tx))) return null;
    const [reminder] = await tx<ReminderRow[]>`
      select * from public.calendar_reminders where id = ${ctx.job.ref} for update
    `;
    if (!reminder || reminder.status !== "pending" && reminder.status !== "sending") {
      await ctx.finish(tx);
      return null;
    }
    if (reminder.status === "sending") {
      // The last attempt died during its send: it may have gone out. Never a second one.
      await setReminder(tx, reminder.id, "failed", "the send was interrupted; outcome unknown");
      await ctx.finish(tx);
      return null;
    }
    if (reminder.due_at.getTime() > Date.now()) {
      // The event moved later while this job was held.
      await ctx.reschedule(tx, reminder.due_at);
      return null;
    }
    const [event] = await tx<EventRow[]>`
      select * from public.calendar_events where id = ${reminder.event_id}
    `;
    const skip = !event || event.status === "cancelled"
      ? "the event was cancelled"
      : event.start_at.getTime() <= Date.now()
      // Late (the event was made or moved after its time) is fine; after the start, pointless.
      ? "the event has already started"
      : event.attendees.length === 0
      ? "the event has no attendees"
      : null;
    if (skip) {
      await setReminder(tx, reminder.id, "skipped", skip);
      await ctx.finish(tx);
      return null;
    }
    const emails = await prepareEmails(
      tx,
      reminderEmail(event, reminder.minutes_before),
      ctx.job.environment,
    );
    if (!emails) {
      await setReminder(tx, reminder.id, "not_sent", EMAIL_CHANNEL_UNAVAILABLE);
      await ctx.finish(tx, { status: "not_sent", detail: EMAIL_CHANNEL_UNAVAILABLE });
      return null;
    }
    await setReminder(tx, reminder.id, "sending", null);
    return { reminder, emails };
  });
  if (!prepared) return;
  const { reminder, emails } = prepared;
  const outcomes = await sendEmails(emails);
  await ctx.withTenant(async (tx) => {
    const failure = await recordEmails(tx, emails, outcomes);
    await setReminder(tx, reminder.id, failure ? "failed" : "sent", failure);
    if (!(await ctx.finish(tx))) throw new Error("calendar_reminder: lease lost before the record");
  });
}

export const CALENDAR_REMINDER_JOB = defineJobKind({
  kind: "calendar_reminder",
  handler: sendReminder,
  // Never retried after a send began (see above); a crash before it is retried by the worker.
  retry: { maxAttempts: 1, backoff: () => 1000 },
  concurrency: { share: 0.5 },
});

async function syncCalendar(ctx: JobContext) {
  const prepared = await ctx.withTenant(async (tx) => {
    if (!(await held(ctx, tx))) return null;
    const row = await findConnection(tx);
    if (!row || row.id !== ctx.job.ref || row.status !== "connected") {
      await ctx.finish(tx);
      return null;
    }
    return await prepareSync(tx, ctx.job.environment, row);
  });
  if (!prepared) return;
  const call = await callSync(prepared);
  await ctx.withTenant(async (tx) => {
    const recorded = await recordSync(tx, prepared, call);
    const ended = recorded.ok
      ? await ctx.finish(tx, recorded.value)
      : await ctx.fail(tx, recorded.error.toRecord());
    if (!ended) throw new Error("calendar_sync: lease lost before the record");
  });
}

export const CALENDAR_SYNC_JOB = defineJobKind({
  kind: "calendar_sync",
  handler: syncCalendar,
  // The next scheduled sync tries again; no retries piling up behind it.
  retry: { maxAttempts: 1, backoff: () => 30_000 },
  concurrency: { share: 0.25 },
});

async function createEventForStep(ctx: JobContext) {
  const input = createEventInput.parse(ctx.job.payload);
  const environment = ctx.job.environment;
  const prepared = await ctx.withTenant(async (tx): Promise<PreparedCreate | null> => {
    if (!(await held(ctx, tx))) return null;
    try {
      const existing = await findEventByRequestKey(tx, ctx.job.ref);
      if (existing && existing.google_sync !== "pending") {
        await ctx.finish(tx, {
          ...eventOf(existing),
          notification_error: existing.notification_error,
        });
        return null;
      }
      if (existing) {
        // The last attempt stopped during Google's insert: make it again (same derived id).
        const connection = await openConnection(await findConnection(tx), environment);
        return { row: existing, connection, invitations: null };
      }
      return await prepareCreate(tx, input, environment, ctx.job.ref);
    } catch (error) {
      if (
        !(error instanceof ApiError) || error.status >= 500 && error.code !== "INTEGRATION_ERROR"
      ) {
        throw error;
      }
      await ctx.fail(tx, error.toRecord());
      return null;
    }
  });
  if (!prepared) return;
  const call = await callCreate(prepared);
  await ctx.withTenant(async (tx) => {
    const recorded = await recordCreate(tx, prepared, call);
    const ended = recorded.ok
      ? await ctx.finish(tx, recorded.value)
      : await ctx.fail(tx, recorded.error.toRecord());
    if (!ended) throw new Error("calendar_event_creation: lease lost before the record");
  });
}

export const CALENDAR_EVENT_CREATION_JOB = defineJobKind({
  kind: CALENDAR_EVENT_CREATION_JOB_KIND,
  handler: createEventForStep,
  retry: { maxAttempts: 1, backoff: () => 1000 },
  concurrency: { share: 0.5 },
});
