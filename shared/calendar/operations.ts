/**
 * The calendar's changes that reach Google, each in the three phases of
 * shared/platform/app.ts (prepare in the request's transaction → call with no transaction →
 * record in a second one), shared by the API actions (app.ts) and the jobs (jobs.ts):
 *
 * - create: the row is inserted first (`google_sync: pending` when synced), then Google's
 *   insert with `sendUpdates=all` (attendees invited by Google) under an id derived from
 *   the row's, so a repeat after a crash is Google's 409 and becomes a patch; then the
 *   Google id, attendees' answers and reminders are recorded. Google refusing deletes the
 *   row: nothing is left half made. Without Google, attendees get an email invitation
 *   with an .ics through the organization's email channel (notify.ts).
 * - update and cancel: checked first, Google's patch/delete (sendUpdates=all), then the row.
 *   Google refusing changes nothing here.
 * - sync: Google's changes since the connection's sync token (a full listing the first
 *   time, or when Google answers 410), applied and the new sync token kept.
 * A revoked grant marks the connection broken (connection.ts) and answers 502.
 */
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import type { ApiError } from "../platform/errors.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  callGoogle,
  type ConnectionRow,
  findConnection,
  type GoogleCall,
  type OpenConnection,
  openConnection,
  recordGoogleCall,
} from "./connection.ts";
import {
  type AppliedChanges,
  applyGoogleEvents,
  attendeesFromGoogle,
  cancelEventRow,
  eventOf,
  type EventRow,
  findEvent,
  googleBodyOf,
  googleInsertBodyOf,
  insertEvent,
  mergeUpdate,
  scheduleReminders,
  writeEvent,
} from "./events.ts";
import { GoogleCalendarError, type GoogleCalendarSession, type GoogleEvent } from "./google.ts";
import type { PreparedSend } from "../messages/messages.ts";
import {
  EMAIL_CHANNEL_UNAVAILABLE,
  type EmailOutcome,
  invitationEmail,
  prepareEmails,
  recordEmails,
  sendEmails,
} from "./notify.ts";
import type { CalendarEvent, CreateEvent, UpdateEvent } from "./schemas.ts";

/** Either the answer or the error to answer once the record has committed. */
export type Recorded<T> = { ok: true; value: T } | { ok: false; error: ApiError };

// ---- create ----------------------------------------------------------------------------

export interface PreparedCreate {
  row: EventRow;
  connection: OpenConnection | null;
  /** Without Google: the invitations queued through the email integration (null: none). */
  invitations: PreparedSend[] | null;
}

export interface CreateCall {
  google: GoogleCall<GoogleEvent> | null;
  /** Without Google: how each invitation's send ended. */
  invitations: EmailOutcome[] | null;
}

export async function prepareCreate(
  tx: Tx,
  input: CreateEvent,
  environment: Environment,
  requestKey?: string,
): Promise<PreparedCreate> {
  const connection = input.sync_to_google
    ? await openConnection(await findConnection(tx), environment)
    : null;
  const row = await insertEvent(tx, input, {
    calendarId: connection?.calendarId ?? "primary",
    requestKey,
  });
  const invitations = !connection && row.attendees.length > 0
    ? await prepareEmails(tx, invitationEmail(row), environment)
    : null;
  return { row, connection, invitations };
}

/** Google's insert, or its patch when the derived id is there already (a repeat). */
const insertInGoogle = (row: EventRow) => (session: GoogleCalendarSession, calendarId: string) =>
  session.insert(calendarId, googleInsertBodyOf(row)).catch((error) => {
    if (error instanceof GoogleCalendarError && error.status === 409) {
      return session.patch(calendarId, googleInsertBodyOf(row).id!, googleBodyOf(row));
    }
    throw error;
  });

export async function callCreate(
  prepared: PreparedCreate,
  signal?: AbortSignal,
): Promise<CreateCall> {
  const { row, connection, invitations } = prepared;
  if (connection) {
    return { google: await callGoogle(connection, insertInGoogle(row), signal), invitations: null };
  }
  return { google: null, invitations: invitations && await sendEmails(invitations, signal) };
}

export type CreatedEvent = CalendarEvent & { notification_error: string | null };

export async function recordCreate(
  tx: Tx,
  prepared: PreparedCreate,
  call: CreateCall,
): Promise<Recorded<CreatedEvent>> {
  let row = await findEvent(tx, prepared.row.id, { lock: true });
  if (call.google) {
    const failure = await recordGoogleCall(tx, prepared.connection!, call.google);
    if (failure || !call.google.outcome.ok) {
      await tx`delete from public.calendar_events where id = ${row.id}`;
      return { ok: false, error: failure! };
    }
    const created = call.google.outcome.value;
    row = await writeEvent(tx, {
      ...row,
      google_event_id: created.id!,
      google_sync: "synced",
      attendees: created.attendees ? attendeesFromGoogle(created) : row.attendees,
      // sendUpdates=all: Google invites them.
      attendees_notified: row.attendees.length > 0,
      notification_error: null,
    });
  } else if (row.attendees.length > 0) {
    const failure = prepared.invitations && call.invitations
      ? await recordEmails(tx, prepared.invitations, call.invitations)
      : EMAIL_CHANNEL_UNAVAILABLE;
    row = await writeEvent(tx, {
      ...row,
      attendees_notified: failure === null,
      notification_error: failure,
    });
  }
  await scheduleReminders(tx, row);
  return { ok: true, value: { ...eventOf(row), notification_error: row.notification_error } };
}

// ---- update and cancel -----------------------------------------------------------------

export interface PreparedChange {
  row: EventRow;
  /** The connection when the event is in Google and this environment has one. */
  connection: OpenConnection | null;
}

/** The connection for an event that is in Google (a broken one refuses the change). */
async function connectionFor(tx: Tx, row: EventRow, environment: Environment) {
  if (!row.google_event_id) return null;
  const found = await findConnection(tx);
  return found ? await openConnection(found, environment, "id") : null;
}

export async function prepareUpdate(
  tx: Tx,
  input: UpdateEvent,
  environment: Environment,
): Promise<PreparedChange> {
  const row = mergeUpdate(await findEvent(tx, input.id), input);
  return { row, connection: await connectionFor(tx, row, environment) };
}

export async function callUpdate(
  prepared: PreparedChange,
  signal?: AbortSignal,
): Promise<GoogleCall<GoogleEvent> | null> {
  const { row, connection } = prepared;
  if (!connection) return null;
  return await callGoogle(
    connection,
    (session, calendarId) => session.patch(calendarId, row.google_event_id!, googleBodyOf(row)),
    signal,
  );
}

export async function recordUpdate(
  tx: Tx,
  prepared: PreparedChange,
  call: GoogleCall<GoogleEvent> | null,
): Promise<Recorded<CalendarEvent>> {
  let merged = prepared.row;
  if (call) {
    const failure = await recordGoogleCall(tx, prepared.connection!, call);
    if (failure || !call.outcome.ok) return { ok: false, error: failure! };
    if (call.outcome.value.attendees) {
      merged = { ...merged, attendees: attendeesFromGoogle(call.outcome.value) };
    }
  }
  await findEvent(tx, merged.id, { lock: true });
  const row = await writeEvent(tx, merged);
  await scheduleReminders(tx, row);
  return { ok: true, value: eventOf(row) };
}

export async function prepareCancel(
  tx: Tx,
  id: string,
  environment: Environment,
): Promise<PreparedChange> {
  const row = await findEvent(tx, id);
  // Cancelling twice answers the cancelled event; Google is not asked again.
  if (row.status === "cancelled") return { row, connection: null };
  return { row, connection: await connectionFor(tx, row, environment) };
}

export async function callCancel(
  prepared: PreparedChange,
  signal?: AbortSignal,
): Promise<GoogleCall<void> | null> {
  const { row, connection } = prepared;
  if (!connection) return null;
  return await callGoogle(
    connection,
    (session, calendarId) => session.remove(calendarId, row.google_event_id!),
    signal,
  );
}

export async function recordCancel(
  tx: Tx,
  prepared: PreparedChange,
  call: GoogleCall<void> | null,
): Promise<Recorded<CalendarEvent>> {
  if (call) {
    const failure = await recordGoogleCall(tx, prepared.connection!, call);
    if (failure) return { ok: false, error: failure };
  }
  await findEvent(tx, prepared.row.id, { lock: true });
  return { ok: true, value: eventOf(await cancelEventRow(tx, prepared.row.id)) };
}

// ---- sync ------------------------------------------------------------------------------

/** At most this many pages (250 events each) per sync; the rest comes with the next one. */
const MAX_SYNC_PAGES = 40;

export interface PulledChanges {
  items: GoogleEvent[];
  /** Google's token for the next sync; null when the pages ran out first. */
  nextSyncToken: string | null;
  full: boolean;
}

/** Google's changes since `syncToken` (all events without one, or when Google says 410). */
export function pullChanges(syncToken: string | null) {
  return async (
    session: GoogleCalendarSession,
    calendarId: string,
  ): Promise<PulledChanges> => {
    let token = syncToken;
    while (true) {
      const items: GoogleEvent[] = [];
      let pageToken: string | undefined;
      try {
        for (let page = 0; page < MAX_SYNC_PAGES; page++) {
          const listed = await session.list(calendarId, {
            ...(token ? { syncToken: token } : {}),
            ...(pageToken ? { pageToken } : {}),
          });
          items.push(...listed.items);
          if (!listed.nextPageToken) {
            return { items, nextSyncToken: listed.nextSyncToken ?? null, full: !token };
          }
          pageToken = listed.nextPageToken;
        }
        return { items, nextSyncToken: token, full: !token };
      } catch (error) {
        // The sync token expired: Google wants a full listing.
        if (token && error instanceof GoogleCalendarError && error.status === 410) {
          token = null;
          continue;
        }
        throw error;
      }
    }
  };
}

export interface SyncResult extends AppliedChanges {
  recovered: number;
  full_sync: boolean;
  last_synced_at: string;
}

export interface PreparedSync {
  connection: OpenConnection;
  /**
   * Events whose create stopped between its phases (the process died during Google's
   * insert): inserted again under the same derived id (a 409 becomes a patch).
   */
  pending: EventRow[];
}

/** How long a create's call may take before its pending event counts as abandoned. */
const PENDING_AFTER = "2 minutes";

export async function prepareSync(
  tx: Tx,
  environment: Environment,
  connectionRow?: ConnectionRow,
): Promise<PreparedSync> {
  const connection = await openConnection(
    connectionRow ?? await findConnection(tx),
    environment,
    "calendar",
  );
  const pending = await tx<EventRow[]>`
    select * from public.calendar_events
    where google_sync = 'pending' and status = 'confirmed'
      and created_at < now() - ${PENDING_AFTER}::interval
    order by created_at limit 50
  `;
  return { connection, pending };
}

export interface SyncCall extends PulledChanges {
  /** The pending events now in Google (those Google refused stay pending). */
  recovered: { row: EventRow; event: GoogleEvent }[];
}

export const callSync = ({ connection, pending }: PreparedSync, signal?: AbortSignal) =>
  callGoogle(connection, async (session, calendarId): Promise<SyncCall> => {
    const recovered: SyncCall["recovered"] = [];
    for (const row of pending) {
      try {
        recovered.push({ row, event: await insertInGoogle(row)(session, calendarId) });
      } catch (error) {
        if (!(error instanceof GoogleCalendarError) || error.revoked) throw error;
      }
    }
    return { ...(await pullChanges(connection.syncToken)(session, calendarId)), recovered };
  }, signal);

export async function recordSync(
  tx: Tx,
  { connection }: PreparedSync,
  call: GoogleCall<SyncCall>,
): Promise<Recorded<SyncResult>> {
  // One sync records at a time per connection.
  await tx`select 1 from public.integrations where id = ${connection.id} for update`;
  const failure = await recordGoogleCall(tx, connection, call);
  if (failure || !call.outcome.ok) return { ok: false, error: failure! };
  const pulled = call.outcome.value;
  for (const { row, event } of pulled.recovered) {
    const written = await writeEvent(tx, {
      ...(await findEvent(tx, row.id, { lock: true })),
      google_event_id: event.id!,
      google_sync: "synced",
      attendees: event.attendees ? attendeesFromGoogle(event) : row.attendees,
      attendees_notified: row.attendees.length > 0,
    });
    await scheduleReminders(tx, written);
  }
  const applied = await applyGoogleEvents(tx, connection.calendarId, pulled.items);
  const [{ last_synced_at }] = await tx<{ last_synced_at: Date }[]>`
    insert into public.calendar_sync_state
      (integration_id, calendar_id, sync_token, last_synced_at)
    values (${connection.id}, ${connection.calendarId}, ${pulled.nextSyncToken}, now())
    on conflict (integration_id) do update
    set sync_token = excluded.sync_token, last_synced_at = now(), updated_at = now()
    returning last_synced_at
  `;
  return {
    ok: true,
    value: {
      ...applied,
      recovered: pulled.recovered.length,
      full_sync: pulled.full,
      last_synced_at: isoTimestamp(last_synced_at),
    },
  };
}
