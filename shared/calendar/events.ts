/**
 * Calendar events: rows, how they read and how they are written, and their shape in
 * Google (to send and to take back from a sync). Every function takes the caller's RLS
 * transaction, so organization and environment are decided by Postgres.
 */
import type { Tx } from "../platform/db.ts";
import { invalidField, notFound } from "../platform/errors.ts";
import { pageWindow, paginationOf } from "../platform/pagination.ts";
import { isoTimestamp } from "../platform/time.ts";
import { type GoogleEvent, googleIdFor } from "./google.ts";
import {
  ATTENDEE_STATUSES,
  type CalendarEvent,
  type CreateEvent,
  type ListEvents,
  type Reminder,
  type UpdateEvent,
} from "./schemas.ts";

type AttendeeStatus = typeof ATTENDEE_STATUSES[number];
export interface Attendee {
  email: string;
  status: AttendeeStatus;
}

export interface EventRow {
  id: string;
  title: string;
  description: string | null;
  location: string | null;
  start_at: Date;
  start_offset: string;
  end_at: Date;
  end_offset: string;
  time_zone: string | null;
  attendees: Attendee[];
  reminders: Reminder[];
  source: "bivelio" | "google_calendar";
  calendar_id: string;
  google_event_id: string | null;
  google_sync: "none" | "pending" | "synced";
  attendees_notified: boolean;
  notification_error: string | null;
  status: "confirmed" | "cancelled";
  request_key: string | null;
  created_at: Date;
  updated_at: Date;
}

/** The offset an ISO 8601 time was written with: `Z` or `±hh:mm`. */
export function offsetOf(iso: string): string {
  const match = iso.match(/(Z|[+-]\d{2}:?\d{2})$/i);
  if (!match || match[1].toUpperCase() === "Z") return "Z";
  const digits = match[1].replace(":", "");
  return `${digits.slice(0, 3)}:${digits.slice(3)}`;
}

const pad = (n: number) => String(n).padStart(2, "0");

/** An instant written at `offset` (`Z`, `+02:00`), to the second: how it was given. */
export function atOffset(instant: Date, offset: string): string {
  if (offset === "Z") return isoTimestamp(instant);
  const sign = offset[0] === "-" ? -1 : 1;
  const minutes = sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  const local = new Date(instant.getTime() + minutes * 60_000);
  return `${local.getUTCFullYear()}-${pad(local.getUTCMonth() + 1)}-${pad(local.getUTCDate())}T${
    pad(local.getUTCHours())
  }:${pad(local.getUTCMinutes())}:${pad(local.getUTCSeconds())}${offset}`;
}

export const eventOf = (row: EventRow): CalendarEvent => ({
  id: row.id,
  title: row.title,
  description: row.description,
  start: atOffset(row.start_at, row.start_offset),
  end: atOffset(row.end_at, row.end_offset),
  time_zone: row.time_zone,
  location: row.location,
  attendees: row.attendees,
  reminders: row.reminders,
  source: row.source,
  calendar_id: row.calendar_id,
  google_event_id: row.google_event_id,
  status: row.status,
  attendees_notified: row.attendees_notified,
  created_at: isoTimestamp(row.created_at),
  updated_at: isoTimestamp(row.updated_at),
});

export async function findEvent(tx: Tx, id: string, options: { lock?: boolean } = {}) {
  const [row] = await tx<EventRow[]>`
    select * from public.calendar_events where id = ${id}
    ${options.lock ? tx`for update` : tx``}
  `;
  if (!row) throw notFound("Event", id);
  return row;
}

export async function listEvents(tx: Tx, query: ListEvents) {
  const where = tx`
    where true
    ${query.from ? tx`and end_at > ${query.from}` : tx``}
    ${query.to ? tx`and start_at < ${query.to}` : tx``}
    ${query.calendar_id ? tx`and calendar_id = ${query.calendar_id}` : tx``}
    ${query.include_cancelled ? tx`` : tx`and status = 'confirmed'`}
    ${query.source ? tx`and source = ${query.source}` : tx``}
  `;
  const [{ total }] = await tx<{ total: number }[]>`
    select count(*)::int as total from public.calendar_events ${where}
  `;
  const rows = await tx<EventRow[]>`
    select * from public.calendar_events ${where}
    order by start_at, id ${pageWindow(tx, query)}
  `;
  return { events: rows.map(eventOf), pagination: paginationOf(query, total) };
}

/** Phase 1 of create: the row, `pending` in Google until the call's record when synced. */
export async function insertEvent(
  tx: Tx,
  input: CreateEvent,
  options: { calendarId: string; requestKey?: string },
): Promise<EventRow> {
  const attendees: Attendee[] = input.attendees.map((email) => ({ email, status: "needs_action" }));
  const [row] = await tx<EventRow[]>`
    insert into public.calendar_events
      (title, description, location, start_at, start_offset, end_at, end_offset, time_zone,
       attendees, reminders, calendar_id, google_sync, request_key)
    values (${input.title}, ${input.description ?? null}, ${input.location ?? null},
            ${input.start}, ${offsetOf(input.start)}, ${input.end}, ${offsetOf(input.end)},
            ${input.time_zone ?? null}, ${tx.json(attendees as never)},
            ${tx.json(input.reminders as never)}, ${options.calendarId},
            ${input.sync_to_google ? "pending" : "none"}, ${options.requestKey ?? null})
    returning *
  `;
  return row;
}

export const findEventByRequestKey = async (tx: Tx, requestKey: string) =>
  (await tx<EventRow[]>`
    select * from public.calendar_events where request_key = ${requestKey}
  `)[0] ?? null;

/** The row an update would leave, checked (`end` not before `start`), not yet written. */
export function mergeUpdate(row: EventRow, input: UpdateEvent): EventRow {
  if (row.status === "cancelled") {
    throw invalidField("id", "cancelled", `Event '${row.id}' is cancelled; it cannot change.`);
  }
  const merged: EventRow = { ...row };
  if (input.title !== undefined) merged.title = input.title;
  if (input.description !== undefined) merged.description = input.description;
  if (input.location !== undefined) merged.location = input.location;
  if (input.time_zone !== undefined) merged.time_zone = input.time_zone;
  if (input.start !== undefined) {
    merged.start_at = new Date(input.start);
    merged.start_offset = offsetOf(input.start);
  }
  if (input.end !== undefined) {
    merged.end_at = new Date(input.end);
    merged.end_offset = offsetOf(input.end);
  }
  if (merged.end_at < merged.start_at) {
    throw invalidField("end", "after_start", "end must not be before start.");
  }
  if (input.attendees !== undefined) {
    // Attendees who stay keep their answers.
    merged.attendees = input.attendees.map((email) => ({
      email,
      status: row.attendees.find((a) => a.email === email)?.status ?? "needs_action",
    }));
  }
  if (input.reminders !== undefined) merged.reminders = input.reminders;
  return merged;
}

/** Writes the fields `mergeUpdate` may change (and Google's answer when synced). */
export async function writeEvent(tx: Tx, row: EventRow): Promise<EventRow> {
  const [written] = await tx<EventRow[]>`
    update public.calendar_events
    set title = ${row.title}, description = ${row.description}, location = ${row.location},
        start_at = ${row.start_at}, start_offset = ${row.start_offset},
        end_at = ${row.end_at}, end_offset = ${row.end_offset}, time_zone = ${row.time_zone},
        attendees = ${tx.json(row.attendees as never)},
        reminders = ${tx.json(row.reminders as never)},
        google_event_id = ${row.google_event_id}, google_sync = ${row.google_sync},
        attendees_notified = ${row.attendees_notified},
        notification_error = ${row.notification_error}, updated_at = now()
    where id = ${row.id}
    returning *
  `;
  return written;
}

export async function cancelEventRow(tx: Tx, id: string): Promise<EventRow> {
  const [row] = await tx<EventRow[]>`
    update public.calendar_events
    set status = 'cancelled', cancelled_at = coalesce(cancelled_at, now()), updated_at = now()
    where id = ${id}
    returning *
  `;
  await scheduleReminders(tx, row);
  return row;
}

/**
 * The event's email reminders as rows, each a job due at start − minutes_before: pending
 * ones follow the event's time, removed (or cancelled) ones are skipped, a reminder already
 * sent is never made again. Popup reminders are Google's.
 */
export async function scheduleReminders(tx: Tx, row: EventRow) {
  // Google sends the reminders of events made there.
  const wanted = row.status === "confirmed" && row.source === "bivelio"
    ? row.reminders.filter((r) => r.method === "email").map((r) => r.minutes_before)
    : [];
  await tx`
    update public.calendar_reminders
    set status = 'skipped', detail = 'the reminder or its event was removed', updated_at = now()
    where event_id = ${row.id} and status = 'pending'
      and not (minutes_before = any (${wanted}::int[]))
  `;
  if (wanted.length === 0) return;
  await tx`
    insert into public.calendar_reminders (event_id, minutes_before, due_at)
    select ${row.id}, m, ${row.start_at}::timestamptz - make_interval(mins => m)
    from unnest(${wanted}::int[]) m
    on conflict (event_id, minutes_before) do update
    set due_at = excluded.due_at, updated_at = now()
    where calendar_reminders.status = 'pending'
  `;
}

// ---- Google's shape ------------------------------------------------------------------

const TO_GOOGLE_STATUS: Record<AttendeeStatus, string> = {
  needs_action: "needsAction",
  accepted: "accepted",
  declined: "declined",
  tentative: "tentative",
};
const FROM_GOOGLE_STATUS: Record<string, AttendeeStatus> = {
  needsAction: "needs_action",
  accepted: "accepted",
  declined: "declined",
  tentative: "tentative",
};

/** The event as Google's API takes it: popup reminders go to Google, email ones stay here. */
export function googleBodyOf(row: EventRow): GoogleEvent {
  const boundary = (instant: Date, offset: string) => ({
    dateTime: atOffset(instant, offset),
    ...(row.time_zone ? { timeZone: row.time_zone } : {}),
  });
  return {
    summary: row.title,
    description: row.description,
    location: row.location,
    start: boundary(row.start_at, row.start_offset),
    end: boundary(row.end_at, row.end_offset),
    attendees: row.attendees.map((a) => ({ email: a.email })),
    reminders: {
      useDefault: false,
      overrides: row.reminders.filter((r) => r.method === "popup")
        .map((r) => ({ method: "popup", minutes: r.minutes_before })),
    },
    extendedProperties: { private: { bivelio_event_id: row.id } },
  };
}

/** The body of a new event in Google, with the id derived from BiVelio's (see googleIdFor). */
export const googleInsertBodyOf = (row: EventRow): GoogleEvent => ({
  ...googleBodyOf(row),
  id: googleIdFor(row.id),
});

export const attendeesFromGoogle = (event: GoogleEvent): Attendee[] =>
  (event.attendees ?? []).filter((a) => a.email).map((a) => ({
    email: a.email!.toLowerCase(),
    status: FROM_GOOGLE_STATUS[a.responseStatus ?? "needsAction"] ?? "needs_action",
  }));

export const attendeeStatusToGoogle = (status: AttendeeStatus) => TO_GOOGLE_STATUS[status];

/** A Google boundary as an instant and its offset (an all-day date: midnight UTC). */
function boundaryOf(boundary: GoogleEvent["start"]): { at: Date; offset: string } | null {
  if (boundary?.dateTime) {
    return { at: new Date(boundary.dateTime), offset: offsetOf(boundary.dateTime) };
  }
  if (boundary?.date) return { at: new Date(`${boundary.date}T00:00:00Z`), offset: "Z" };
  return null;
}

/** What a sync did with Google's changes. */
export interface AppliedChanges {
  created: number;
  updated: number;
  cancelled: number;
}

/**
 * Applies events listed by Google (a full listing or the changes since a sync token):
 * new ones appear with source google_calendar, known ones take Google's fields and
 * attendees' answers, deleted ones are cancelled here.
 */
export async function applyGoogleEvents(
  tx: Tx,
  calendarId: string,
  items: GoogleEvent[],
): Promise<AppliedChanges> {
  const applied: AppliedChanges = { created: 0, updated: 0, cancelled: 0 };
  for (const item of items) {
    if (!item.id) continue;
    const ownId = item.extendedProperties?.private?.bivelio_event_id;
    const [known] = await tx<EventRow[]>`
      select * from public.calendar_events
      where google_event_id = ${item.id}
         or (${ownId ?? null}::text is not null and id = ${
      ownId ?? null
    } and google_event_id is null)
      order by (google_event_id = ${item.id}) desc nulls last
      limit 1
      for update
    `;
    if (item.status === "cancelled") {
      if (known && known.status === "confirmed") {
        await cancelEventRow(tx, known.id);
        applied.cancelled++;
      }
      continue;
    }
    const start = boundaryOf(item.start);
    const end = boundaryOf(item.end);
    if (!start || !end || end.at < start.at) continue;
    const fields = {
      title: (item.summary ?? "").trim().slice(0, 500) || "(no title)",
      description: item.description?.slice(0, 8000) ?? null,
      location: item.location?.slice(0, 1000) ?? null,
      start_at: start.at,
      start_offset: start.offset,
      end_at: end.at,
      end_offset: end.offset,
      time_zone: item.start?.timeZone ?? null,
      attendees: attendeesFromGoogle(item),
    };
    if (known) {
      const row = await writeEvent(tx, {
        ...known,
        ...fields,
        google_event_id: item.id,
        google_sync: "synced",
        // A cancelled event made again in Google comes back.
      });
      if (known.status === "cancelled") {
        await tx`
          update public.calendar_events set status = 'confirmed', cancelled_at = null
          where id = ${known.id}
        `;
      }
      await scheduleReminders(tx, { ...row, status: "confirmed" });
      applied.updated++;
    } else {
      const reminders: Reminder[] = (item.reminders?.overrides ?? [])
        .filter((r) => (r.method === "popup" || r.method === "email") && r.minutes !== undefined)
        .map((r) => ({ method: r.method as "email" | "popup", minutes_before: r.minutes! }));
      await tx`
        insert into public.calendar_events
          (title, description, location, start_at, start_offset, end_at, end_offset,
           time_zone, attendees, reminders, source, calendar_id, google_event_id, google_sync)
        values (${fields.title}, ${fields.description}, ${fields.location}, ${fields.start_at},
                ${fields.start_offset}, ${fields.end_at}, ${fields.end_offset},
                ${fields.time_zone}, ${tx.json(fields.attendees as never)},
                ${tx.json(reminders as never)}, 'google_calendar', ${calendarId}, ${item.id},
                'synced')
      `;
      // Google sends the reminders of events made there: no BiVelio reminder rows.
      applied.created++;
    }
  }
  return applied;
}
