/**
 * POST /v1/calendar[/<action>]: events (the spec's `list` at /events and `create`, plus
 * get, update, cancel), and Google Calendar sync on demand. Google Calendar is connected
 * through the integrations group (provider google_calendar).
 */
import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import { eventOf, findEvent, listEvents } from "./events.ts";
import {
  callCancel,
  callCreate,
  callSync,
  callUpdate,
  prepareCancel,
  prepareCreate,
  prepareSync,
  prepareUpdate,
  recordCancel,
  recordCreate,
  type Recorded,
  recordSync,
  recordUpdate,
} from "./operations.ts";
import {
  byEventId,
  calendarEvent,
  createdEvent,
  createEventInput,
  eventList,
  listEventsInput,
  syncResult,
  updateEventInput,
} from "./schemas.ts";
import { z } from "zod";
import type { CallOutcome } from "../platform/app.ts";

/** The record phase's answer: the value, or its error once the record commits. */
async function answer<Called, T>(
  outcome: CallOutcome<Called>,
  record: (called: Called) => Promise<Recorded<T>>,
) {
  if (!outcome.ok) throw outcome.error;
  const recorded = await record(outcome.value);
  return recorded.ok ? recorded.value : new FailedAfterRecord(recorded.error);
}

export const actions = [
  defineAction({
    name: "list",
    summary: "List events in a time range (Google's included once synced)",
    paths: ["events", "list"],
    scope: "read",
    mutates: false,
    input: listEventsInput,
    output: eventList,
    handler: ({ tx, data }) => listEvents(tx, data),
  }),
  defineAction({
    name: "get",
    summary: "Get an event",
    scope: "read",
    mutates: false,
    input: byEventId,
    output: calendarEvent,
    handler: async ({ tx, data }) => eventOf(await findEvent(tx, data.id)),
  }),
  defineAction({
    name: "create",
    summary: "Create an event (in Google too with sync_to_google: attendees are invited)",
    scope: "write",
    mutates: true,
    input: createEventInput,
    output: createdEvent,
    handler: ({ tx, data, principal }) => prepareCreate(tx, data, principal.environment),
    call: (prepared, { signal }) => callCreate(prepared, signal),
    record: (outcome, { tx, prepared }) =>
      answer(outcome, (called) => recordCreate(tx, prepared, called)),
  }),
  defineAction({
    name: "update",
    summary: "Update an event (only the fields sent); Google's copy follows",
    scope: "write",
    mutates: true,
    input: updateEventInput,
    output: calendarEvent,
    handler: ({ tx, data, principal }) => prepareUpdate(tx, data, principal.environment),
    call: (prepared, { signal }) => callUpdate(prepared, signal),
    record: (outcome, { tx, prepared }) =>
      answer(outcome, (called) => recordUpdate(tx, prepared, called)),
  }),
  defineAction({
    name: "cancel",
    summary: "Cancel an event; Google's copy is deleted (attendees are told)",
    scope: "write",
    mutates: true,
    input: byEventId,
    output: calendarEvent,
    handler: ({ tx, data, principal }) => prepareCancel(tx, data.id, principal.environment),
    call: (prepared, { signal }) => callCancel(prepared, signal),
    record: (outcome, { tx, prepared }) =>
      answer(outcome, (called) => recordCancel(tx, prepared, called)),
  }),
  defineAction({
    name: "sync",
    summary: "Bring Google Calendar's changes in now (incremental, by sync token)",
    scope: "write",
    mutates: true,
    input: z.strictObject({}),
    output: syncResult,
    handler: ({ tx, principal }) => prepareSync(tx, principal.environment),
    call: (connection, { signal }) => callSync(connection, signal),
    record: (outcome, { tx, prepared }) =>
      answer(outcome, (called) => recordSync(tx, prepared, called)),
  }),
];

export default createGroupApp("calendar", actions);
