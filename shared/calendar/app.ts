/**
 * POST /v1/calendar[/<action>]: events (the spec's `list` at /events and `create`, plus
 * get, update, cancel), Google Calendar sync on demand, and the Google connection.
 */
import { createGroupApp, defineAction, FailedAfterRecord } from "../platform/app.ts";
import {
  callGoogle,
  connectionOf,
  findConnection,
  type GoogleCall,
  saveConnection,
} from "./connection.ts";
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
  connectInput,
  connectionStatus,
  createdEvent,
  createEventInput,
  eventList,
  listEventsInput,
  syncResult,
  updateEventInput,
} from "./schemas.ts";
import { z } from "zod";
import { ApiError } from "../platform/errors.ts";
import type { GoogleCalendarError } from "./google.ts";
import type { CallOutcome } from "../platform/app.ts";

/**
 * Google refusing what `connect` was given is the caller's input (400 naming the field);
 * Google unreachable or failing stays 502. Nothing is stored either way.
 */
function connectRefusal(error: GoogleCalendarError): ApiError {
  const field = error.revoked || error.status === 400 || error.status === 401
    ? "refresh_token"
    : error.status === 404 || error.status === 403
    ? "calendar_id"
    : null;
  if (!field) return error.toApiError();
  return new ApiError(
    "VALIDATION_ERROR",
    field === "refresh_token"
      ? "Google refused the refresh token (or the OAuth client it was granted to): " +
        `${error.providerMessage}`
      : `Google refused access to the calendar: ${error.providerMessage}`,
    {
      details: {
        field,
        constraint: "refused_by_google",
        provider: "google_calendar",
        provider_code: error.reason ?? error.status,
      },
    },
  );
}

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
  defineAction({
    name: "connect",
    summary: "Connect Google Calendar with an OAuth refresh token (checked with Google first)",
    scope: "admin",
    mutates: true,
    input: connectInput,
    output: connectionStatus,
    handler: ({ data, principal }) =>
      Promise.resolve({
        id: "new",
        calendarId: data.calendar_id,
        environment: principal.environment,
        credentials: data,
        cached: null,
        syncToken: null,
      }),
    // A real call proves the grant and the calendar before anything is stored.
    call: (connection, { signal }) =>
      callGoogle(
        connection,
        async (session, calendarId) => {
          const now = new Date().toISOString();
          await session.list(calendarId, { timeMin: now, timeMax: now });
        },
        signal,
      ),
    record: async (outcome, { tx, data }) => {
      if (!outcome.ok) throw outcome.error;
      const call = outcome.value as GoogleCall<void>;
      if (!call.outcome.ok) return new FailedAfterRecord(connectRefusal(call.outcome.error));
      const row = await saveConnection(tx, data, call.token);
      return { connection: connectionOf(row) };
    },
  }),
  defineAction({
    name: "connection",
    summary: "The Google Calendar connection of this environment (never its credentials)",
    scope: "read",
    mutates: false,
    input: z.strictObject({}),
    output: connectionStatus,
    handler: async ({ tx }) => {
      const row = await findConnection(tx);
      return { connection: row ? connectionOf(row) : null };
    },
  }),
];

export default createGroupApp("calendar", actions);
