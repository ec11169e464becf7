/**
 * The calendar group's inputs and answers: the spec's `list` (suffix `events`) and `create`,
 * plus get, update, cancel and sync (Google Calendar is connected through the integrations
 * group).
 */
import { z } from "zod";
import { prefixedId } from "../platform/ids.ts";
import { pagination, paginationInput } from "../platform/pagination.ts";
import { timestamp } from "../platform/time.ts";

export const eventId = prefixedId("evt", "an event");

/** ISO 8601 with its offset (`Z` or `+02:00`), kept as given. */
export const dateTime = z.iso.datetime({ offset: true }).meta({
  description: "ISO 8601 date and time with an offset (Z or ±hh:mm); the offset is kept",
  example: "2026-04-10T15:00:00Z",
});

/** An IANA time zone name (`Europe/Madrid`), as Google keeps it for an event. */
const timeZone = z.string().min(1).max(100).refine((zone) => {
  try {
    new Intl.DateTimeFormat("en", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}, "must be an IANA time zone name (Europe/Madrid)");

export const ATTENDEE_STATUSES = ["needs_action", "accepted", "declined", "tentative"] as const;
export const attendee = z.strictObject({
  email: z.string(),
  status: z.enum(ATTENDEE_STATUSES),
});

export const reminder = z.strictObject({
  /** email: sent by BiVelio at start − minutes_before; popup: Google's, on its devices. */
  method: z.enum(["email", "popup"]),
  // Google's limit: four weeks.
  minutes_before: z.int().min(0).max(40320),
});
export type Reminder = z.output<typeof reminder>;

/** An attendee in a request: an address, or `{email}`. */
const attendeeInput = z.union([
  z.email().max(320),
  z.strictObject({ email: z.email().max(320) }).transform((a) => a.email),
]);
const attendeesInput = z.array(attendeeInput).max(100)
  .transform((list) => [...new Set(list.map((email) => email.toLowerCase()))]);
const remindersInput = z.array(reminder).max(5).refine(
  (list) => new Set(list.map((r) => `${r.method}:${r.minutes_before}`)).size === list.length,
  "the same reminder twice",
);

const eventFields = {
  title: z.string().trim().min(1).max(500),
  description: z.string().max(8000),
  start: dateTime,
  end: dateTime,
  time_zone: timeZone,
  location: z.string().max(1000),
};

/** `end` before `start` is refused, naming `end`. */
const endNotBeforeStart = (value: { start?: string; end?: string }, ctx: z.RefinementCtx) => {
  if (value.start && value.end && Date.parse(value.end) < Date.parse(value.start)) {
    ctx.addIssue({ code: "custom", path: ["end"], message: "must not be before start" });
  }
};

export const createEventInput = z.strictObject({
  title: eventFields.title,
  description: eventFields.description.optional(),
  start: eventFields.start,
  end: eventFields.end,
  time_zone: eventFields.time_zone.optional(),
  location: eventFields.location.optional(),
  attendees: attendeesInput.default([]),
  reminders: remindersInput.default([]),
  /** Create it in the connected Google Calendar too (Google invites the attendees). */
  sync_to_google: z.boolean().default(false),
}).superRefine(endNotBeforeStart);
export type CreateEvent = z.output<typeof createEventInput>;

export const updateEventInput = z.strictObject({
  id: eventId,
  title: eventFields.title.optional(),
  description: eventFields.description.nullable().optional(),
  start: eventFields.start.optional(),
  end: eventFields.end.optional(),
  time_zone: eventFields.time_zone.nullable().optional(),
  location: eventFields.location.nullable().optional(),
  attendees: attendeesInput.optional(),
  reminders: remindersInput.optional(),
}).superRefine(endNotBeforeStart);
export type UpdateEvent = z.output<typeof updateEventInput>;

export const listEventsInput = z.strictObject({
  /** Events that end after `from` and start before `to` (overlapping the range). */
  from: dateTime.optional(),
  to: dateTime.optional(),
  calendar_id: z.string().min(1).max(1024).optional(),
  include_cancelled: z.boolean().default(false),
  source: z.enum(["bivelio", "google_calendar"]).optional(),
  ...paginationInput,
}).superRefine((value, ctx) => {
  if (value.from && value.to && Date.parse(value.to) < Date.parse(value.from)) {
    ctx.addIssue({ code: "custom", path: ["to"], message: "must not be before from" });
  }
});
export type ListEvents = z.output<typeof listEventsInput>;

export const byEventId = z.strictObject({ id: eventId });

/** What `integrations/connect` takes for `provider: "google_calendar"`. */
export const googleCalendarCredentials = z.strictObject({
  /** The OAuth client the refresh token was granted to. */
  client_id: z.string().trim().min(1).max(500),
  client_secret: z.string().trim().min(1).max(500),
  /** A refresh token with the calendar scope (offline access). */
  refresh_token: z.string().trim().min(1).max(2000),
  calendar_id: z.string().min(1).max(1024).default("primary"),
});
export type GoogleCalendarCredentials = z.output<typeof googleCalendarCredentials>;

export const calendarEvent = z.strictObject({
  id: eventId,
  title: z.string(),
  description: z.string().nullable(),
  /** As given: ISO 8601 with the offset it was created with. */
  start: dateTime,
  end: dateTime,
  time_zone: z.string().nullable(),
  location: z.string().nullable(),
  attendees: z.array(attendee),
  reminders: z.array(reminder),
  source: z.enum(["bivelio", "google_calendar"]),
  calendar_id: z.string(),
  google_event_id: z.string().nullable(),
  status: z.enum(["confirmed", "cancelled"]),
  /** Attendees were invited (by Google with sendUpdates=all, or by email). */
  attendees_notified: z.boolean(),
  created_at: timestamp,
  updated_at: timestamp,
}).meta({ id: "CalendarEvent" });
export type CalendarEvent = z.input<typeof calendarEvent>;

export const createdEvent = calendarEvent.extend({
  /** Why attendees were not notified (no email channel), or null. */
  notification_error: z.string().nullable(),
}).meta({ id: "CreatedCalendarEvent" });

export const eventList = z.strictObject({
  events: z.array(calendarEvent),
  pagination,
}).meta({ id: "CalendarEventList" });

export const syncResult = z.strictObject({
  /** Events new to BiVelio, changed, and cancelled in Google since the last sync. */
  created: z.int(),
  updated: z.int(),
  cancelled: z.int(),
  /** Events whose create had stopped before Google's answer, now made there. */
  recovered: z.int(),
  /** Google asked for (or there was no earlier) full listing instead of changes. */
  full_sync: z.boolean(),
  last_synced_at: timestamp,
}).meta({ id: "CalendarSyncResult" });
