/**
 * Calendar: the spec's list and create examples on Acme's demo data (its Google Calendar is
 * connected to the stack's Google stand-in), times and offsets kept, `end` before `start`,
 * Google sync both ways through the real client against the stand-in (insert with
 * sendUpdates=all, patch, delete, events made in Google and attendees' answers brought in by
 * sync tokens, on demand and by the pg_cron job), the access token cached and refreshed,
 * a revoked grant, email reminders sent once through the job queue, invitations by email
 * without Google, the workflow step, the sandbox, isolation and the negative cases.
 */
import assert from "node:assert/strict";
import { createGoogleStandIn } from "../local/stand-ins/google.ts";
import { connect, emailCredentials } from "./helpers/messaging.ts";
import { expectError, negativeCases } from "./helpers/negative-cases.ts";
import { api, createTestOrg, db, stack, test } from "./helpers/stack.ts";
import { createWorkflow, execute, waitForInstance } from "./helpers/workflows.ts";

const acme = stack.orgs.find((org) => org.org_id === "org_demo_acme")!;
const GOOGLE = stack.google.base_url;

const call = (key: string, action: string, data: Record<string, unknown>, suffix = action) =>
  api(`calendar/${suffix}`, { action, data }, { key });

/** Connects Google Calendar as an integration (the one way to connect it). */
const connectGoogle = (key: string, credentials: Record<string, unknown>) =>
  api("integrations/connect", {
    action: "connect",
    data: { provider: "google_calendar", credentials },
  }, { key });

/** The environment's google_calendar integration as integrations/list shows it, or null. */
async function googleIntegration(key: string) {
  const listed = await api("integrations/list", {
    action: "list",
    data: { provider: "google_calendar" },
  }, { key });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  return listed.body.data.integrations[0] ?? null;
}

async function standIn(control: string, body?: unknown) {
  const response = await fetch(`${GOOGLE}/_standin/${control}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  assert.ok(response.ok, JSON.stringify(answer));
  return answer;
}

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  // deno-lint-ignore no-explicit-any
  body: any;
  status: number;
}
const googleRequests = async (email: string): Promise<Recorded[]> =>
  (await standIn(`requests?account=${encodeURIComponent(email)}`)).requests;
const tokenGrants = async (email: string) =>
  (await googleRequests(email)).filter((r) => r.path === "/token");
const apiCalls = async (email: string) =>
  (await googleRequests(email)).filter((r) => r.path.startsWith("/calendar/v3/"));

/** Polls until `check` gives a value (a positive outcome: never a fixed sleep as proof). */
async function eventually<T>(check: () => Promise<T | undefined | null | false>, what: string) {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const value = await check();
    if (value) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A fresh organization whose live Google Calendar is connected to its own stand-in account. */
async function orgWithGoogle(options: { ttl?: number } = {}) {
  const org = await createTestOrg();
  const key = await org.key();
  const refreshToken = `rt-${crypto.randomUUID()}`;
  const email = `cal-${crypto.randomUUID().slice(0, 8)}@test.example`;
  await standIn("accounts", {
    refresh_token: refreshToken,
    email,
    ...(options.ttl ? { access_token_ttl: options.ttl } : {}),
  });
  const connected = await connectGoogle(key, {
    client_id: "test-client.apps.googleusercontent.com",
    client_secret: "test-client-secret",
    refresh_token: refreshToken,
  });
  assert.equal(connected.status, 200, JSON.stringify(connected.body));
  return { org, key, refreshToken, email };
}

const event = (fields: Record<string, unknown> = {}) => ({
  title: "Planning",
  start: "2026-05-04T09:00:00Z",
  end: "2026-05-04T10:00:00Z",
  ...fields,
});

// ---- the spec's examples ----------------------------------------------------------------

test("calendar/events: the spec's list example works as printed on Acme's demo data", async () => {
  const response = await call(acme.keys.live_secret, "list", {
    from: "2026-04-07T00:00:00Z",
    to: "2026-04-14T23:59:59Z",
    calendar_id: "primary",
    include_cancelled: false,
  }, "events");
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const meeting = response.body.data.events.find((e: { id: string }) => e.id === "evt_u8v9w0x1");
  assert.ok(meeting, JSON.stringify(response.body.data));
  assert.deepEqual(
    {
      id: meeting.id,
      title: meeting.title,
      description: meeting.description,
      start: meeting.start,
      end: meeting.end,
      location: meeting.location,
      attendees: meeting.attendees,
      source: meeting.source,
      google_event_id: meeting.google_event_id,
    },
    {
      id: "evt_u8v9w0x1",
      title: "Meeting with Company ABC",
      description: "Quarterly project review",
      start: "2026-04-08T10:00:00Z",
      end: "2026-04-08T11:00:00Z",
      location: "Google Meet",
      attendees: [
        { email: "contact@companyabc.com", status: "accepted" },
        { email: "team@bivelio.com", status: "accepted" },
      ],
      source: "google_calendar",
      google_event_id: "abc123def456",
    },
  );
});

test("calendar/create: the spec's example works as printed (Google invites the attendees)", async () => {
  const response = await call(acme.keys.live_secret, "create", {
    title: "Product demo",
    description: "New features presentation for Company XYZ",
    start: "2026-04-10T15:00:00Z",
    end: "2026-04-10T16:00:00Z",
    location: "https://meet.google.com/abc-defg-hij",
    attendees: ["client@xyz.com", "team@bivelio.com"],
    reminders: [
      { method: "email", minutes_before: 60 },
      { method: "popup", minutes_before: 15 },
    ],
    sync_to_google: true,
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  const data = response.body.data;
  assert.match(data.id, /^evt_/);
  assert.equal(data.title, "Product demo");
  assert.equal(data.start, "2026-04-10T15:00:00Z");
  assert.equal(data.end, "2026-04-10T16:00:00Z");
  assert.equal(data.attendees_notified, true);
  assert.equal(typeof data.google_event_id, "string");
  assert.match(data.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  // In Google: sendUpdates=all, the popup reminder only (email ones are BiVelio's).
  const insert = (await googleRequests("calendar-live@org-demo-acme.example")).find((r) =>
    r.method === "POST" && r.body?.id === data.google_event_id
  );
  assert.ok(insert, "the insert reached the Google stand-in");
  assert.equal(insert.query.sendUpdates, "all");
  assert.deepEqual(insert.body.reminders, {
    useDefault: false,
    overrides: [{ method: "popup", minutes: 15 }],
  });
  assert.deepEqual(insert.body.attendees, [{ email: "client@xyz.com" }, {
    email: "team@bivelio.com",
  }]);
  // The email reminder is BiVelio's, due an hour before the start (its job is tested below).
  const [reminder] = await db`
    select due_at from public.calendar_reminders where event_id = ${data.id}
  `;
  assert.equal(reminder.due_at.toISOString(), "2026-04-10T14:00:00.000Z");
});

// ---- times ------------------------------------------------------------------------------

test("calendar/create: end before start is 400 VALIDATION_ERROR naming end", async () => {
  const org = await createTestOrg();
  const response = await call(
    await org.key(),
    "create",
    event({
      start: "2026-05-04T10:00:00Z",
      end: "2026-05-04T09:59:59Z",
    }),
  );
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "end");
  const [{ count }] = await db`
    select count(*)::int from public.calendar_events where org_id = ${org.orgId}
  `;
  assert.equal(count, 0);
});

test("calendar/update: moving end before the stored start is 400 naming end", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await call(key, "create", event());
  const response = await call(key, "update", {
    id: created.body.data.id,
    end: "2026-05-04T08:00:00Z",
  });
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "end");
});

test("calendar: times keep the offset they were given; a time without one is refused", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await call(
    key,
    "create",
    event({
      start: "2026-05-04T11:00:00+02:00",
      end: "2026-05-04T12:30:00+02:00",
      time_zone: "Europe/Madrid",
    }),
  );
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.equal(created.body.data.start, "2026-05-04T11:00:00+02:00");
  assert.equal(created.body.data.end, "2026-05-04T12:30:00+02:00");
  assert.equal(created.body.data.time_zone, "Europe/Madrid");
  const [row] =
    await db`select start_at from public.calendar_events where id = ${created.body.data.id}`;
  assert.equal(row.start_at.toISOString(), "2026-05-04T09:00:00.000Z");
  // The range filter compares instants: 09:00Z is inside [08:30Z, 09:30Z).
  const listed = await call(key, "list", {
    from: "2026-05-04T08:30:00Z",
    to: "2026-05-04T09:30:00Z",
  }, "events");
  assert.deepEqual(listed.body.data.events.map((e: { id: string }) => e.id), [
    created.body.data.id,
  ]);

  const local = await call(key, "create", event({ start: "2026-05-04T11:00:00" }));
  expectError(local, 400, "VALIDATION_ERROR");
  assert.equal(local.body.error.details.field, "start");
  const badZone = await call(key, "create", event({ time_zone: "Mars/Olympus" }));
  expectError(badZone, 400, "VALIDATION_ERROR");
  assert.equal(badZone.body.error.details.field, "time_zone");
});

// ---- Google, both ways --------------------------------------------------------------------

test("calendar: sync_to_google without a Google integration is 400 naming sync_to_google and integrations/connect", async () => {
  const org = await createTestOrg();
  const response = await call(await org.key(), "create", event({ sync_to_google: true }));
  expectError(response, 400, "VALIDATION_ERROR");
  assert.equal(response.body.error.details.field, "sync_to_google");
  assert.match(response.body.error.message, /integrations\/connect with provider google_calendar/);
  const sync = await call(await org.key(), "sync", {});
  expectError(sync, 400, "VALIDATION_ERROR");
  assert.match(sync.body.error.message, /integrations\/connect/);
});

test("calendar: create, update and cancel follow in Google; Google's events and answers come back by sync tokens", async () => {
  const { key, refreshToken, email } = await orgWithGoogle();
  const created = await call(
    key,
    "create",
    event({
      attendees: ["Ana@Example.com", { email: "bo@example.com" }],
      sync_to_google: true,
    }),
  );
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.data.id;
  const googleId = created.body.data.google_event_id;
  assert.equal(created.body.data.attendees_notified, true);
  assert.deepEqual(created.body.data.attendees, [
    { email: "ana@example.com", status: "needs_action" },
    { email: "bo@example.com", status: "needs_action" },
  ]);

  // Update: Google's copy is patched, attendees told.
  const updated = await call(key, "update", { id, title: "Planning (moved)", location: "Room 2" });
  assert.equal(updated.status, 200, JSON.stringify(updated.body));
  assert.equal(updated.body.data.title, "Planning (moved)");
  const patch = (await apiCalls(email)).find((r) => r.method === "PATCH");
  assert.ok(patch);
  assert.equal(patch.path, `/calendar/v3/calendars/primary/events/${googleId}`);
  assert.equal(patch.query.sendUpdates, "all");
  assert.equal(patch.body.summary, "Planning (moved)");
  assert.equal(patch.body.location, "Room 2");

  // In Google: Ana accepts, and someone makes an event there.
  await standIn("respond", {
    refresh_token: refreshToken,
    event_id: googleId,
    email: "ana@example.com",
    response_status: "accepted",
  });
  const made = await standIn("events", {
    refresh_token: refreshToken,
    event: {
      summary: "Made in Google",
      start: { dateTime: "2026-05-05T08:00:00-05:00", timeZone: "America/Bogota" },
      end: { dateTime: "2026-05-05T09:00:00-05:00", timeZone: "America/Bogota" },
      attendees: [{ email: "carla@example.com", responseStatus: "tentative" }],
    },
  });

  const first = await call(key, "sync", {});
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.data.full_sync, true);
  assert.equal(first.body.data.created, 1);

  const listed = await call(key, "list", {
    from: "2026-05-01T00:00:00Z",
    to: "2026-05-31T00:00:00Z",
  }, "events");
  const byGoogleId = new Map(
    listed.body.data.events.map((e: { google_event_id: string }) => [e.google_event_id, e]),
  );
  // deno-lint-ignore no-explicit-any
  const ours = byGoogleId.get(googleId) as any;
  assert.equal(ours.id, id);
  assert.equal(ours.source, "bivelio");
  assert.deepEqual(ours.attendees, [
    { email: "ana@example.com", status: "accepted" },
    { email: "bo@example.com", status: "needs_action" },
  ]);
  // deno-lint-ignore no-explicit-any
  const theirs = byGoogleId.get(made.id) as any;
  assert.equal(theirs.source, "google_calendar");
  assert.equal(theirs.title, "Made in Google");
  assert.equal(theirs.start, "2026-05-05T08:00:00-05:00");
  assert.equal(theirs.time_zone, "America/Bogota");
  assert.deepEqual(theirs.attendees, [{ email: "carla@example.com", status: "tentative" }]);

  // The next sync asks for changes only, with the sync token: Carla declines, and the
  // event is deleted in Google afterwards.
  await standIn("respond", {
    refresh_token: refreshToken,
    event_id: made.id,
    email: "carla@example.com",
    response_status: "declined",
  });
  const second = await call(key, "sync", {});
  assert.equal(second.body.data.full_sync, false);
  assert.deepEqual([second.body.data.created, second.body.data.updated], [0, 1]);
  const lists = (await apiCalls(email)).filter((r) => r.method === "GET");
  assert.match(lists.at(-1)!.query.syncToken, /^sync_/);
  const carla = await call(key, "get", { id: theirs.id });
  assert.deepEqual(carla.body.data.attendees, [{ email: "carla@example.com", status: "declined" }]);

  await standIn("events", {
    refresh_token: refreshToken,
    event: { id: made.id, status: "cancelled" },
  });
  const third = await call(key, "sync", {});
  assert.equal(third.body.data.cancelled, 1);
  const gone = await call(key, "get", { id: theirs.id });
  assert.equal(gone.body.data.status, "cancelled");

  // Cancel: Google's copy is deleted with sendUpdates=all.
  const cancelled = await call(key, "cancel", { id });
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.data.status, "cancelled");
  const deletion = (await apiCalls(email)).find((r) => r.method === "DELETE");
  assert.ok(deletion);
  assert.equal(deletion.path, `/calendar/v3/calendars/primary/events/${googleId}`);
  assert.equal(deletion.query.sendUpdates, "all");
  // Cancelled events are left out of list unless asked for.
  const active = await call(key, "list", {}, "events");
  assert.equal(active.body.data.events.length, 0);
  const all = await call(key, "list", { include_cancelled: true }, "events");
  assert.equal(all.body.data.events.length, 2);
  // Cancelling again answers the same, without asking Google again.
  const deletes = (await apiCalls(email)).filter((r) => r.method === "DELETE").length;
  const again = await call(key, "cancel", { id });
  assert.equal(again.body.data.status, "cancelled");
  assert.equal((await apiCalls(email)).filter((r) => r.method === "DELETE").length, deletes);
});

test("calendar: pg_cron's sync job brings Google's new events in through the worker", async () => {
  const { org, refreshToken } = await orgWithGoogle();
  const made = await standIn("events", {
    refresh_token: refreshToken,
    event: {
      summary: "Booked in Google",
      start: { dateTime: "2026-06-01T10:00:00Z" },
      end: { dateTime: "2026-06-01T10:30:00Z" },
    },
  });
  // What the schedule runs every 5 minutes (cron.job 'bivelio-calendar-sync').
  const [{ command }] =
    await db`select command from cron.job where jobname = 'bivelio-calendar-sync'`;
  assert.equal(command, "select private.queue_calendar_syncs()");
  await db`select private.queue_calendar_syncs()`;
  const row = await eventually(async () =>
    (await db`
      select source, title from public.calendar_events
      where org_id = ${org.orgId} and google_event_id = ${made.id}
    `)[0], "the synced event");
  assert.deepEqual({ ...row }, { source: "google_calendar", title: "Booked in Google" });
  const [connection] = await db`
    select sync_token, last_synced_at from public.calendar_sync_state where org_id = ${org.orgId}
  `;
  assert.match(connection.sync_token, /^sync_/);
  assert.ok(connection.last_synced_at);
});

// ---- tokens ----------------------------------------------------------------------------

test("calendar: the access token is cached sealed, refreshed when it expires and when Google refuses it", async () => {
  const { org, key, refreshToken, email } = await orgWithGoogle();
  // connect proved the grant with one refresh (not kept: connect holds no transaction then).
  assert.equal((await tokenGrants(email)).length, 1);
  await call(key, "create", event({ sync_to_google: true }));
  assert.equal((await tokenGrants(email)).length, 2);
  const [stored] = await db`
    select i.sealed_credentials, s.sealed_access_token, s.access_token_expires_at
    from public.integrations i join public.calendar_sync_state s on s.integration_id = i.id
    where i.org_id = ${org.orgId} and i.provider = 'google_calendar'
  `;
  assert.match(stored.sealed_credentials, /^v1\./);
  assert.match(stored.sealed_access_token, /^v1\./);
  assert.ok(!stored.sealed_credentials.includes(refreshToken));
  assert.ok(stored.access_token_expires_at > new Date());

  // The cached token is used: no further grant.
  await call(key, "create", event({ sync_to_google: true }));
  assert.equal((await tokenGrants(email)).length, 2);

  // Expired (time moved in the database): refreshed before the call, and cached again.
  await db`
    update public.calendar_sync_state set access_token_expires_at = now() - interval '1 minute'
    where org_id = ${org.orgId}
  `;
  const second = await call(key, "create", event({ sync_to_google: true }));
  assert.equal(second.status, 200, JSON.stringify(second.body));
  const grants = await tokenGrants(email);
  assert.equal(grants.length, 3);
  assert.deepEqual(grants[2].body, {
    grant_type: "refresh_token",
    client_id: "test-client.apps.googleusercontent.com",
  });
  const [refreshed] = await db`
    select sealed_access_token, access_token_expires_at from public.calendar_sync_state
    where org_id = ${org.orgId}
  `;
  assert.notEqual(refreshed.sealed_access_token, stored.sealed_access_token);
  assert.ok(refreshed.access_token_expires_at > new Date());

  // Google stops accepting the token before its expiry: one refresh and the call again.
  await standIn("expire_tokens", { refresh_token: refreshToken });
  const third = await call(key, "sync", {});
  assert.equal(third.status, 200, JSON.stringify(third.body));
  assert.equal((await tokenGrants(email)).length, 4);
});

test("calendar: a revoked grant is 502 INTEGRATION_ERROR, marks the integration broken (integrations/list) and leaves no event", async () => {
  const { org, key, refreshToken, email } = await orgWithGoogle();
  await standIn("revoke", { refresh_token: refreshToken });
  await standIn("expire_tokens", { refresh_token: refreshToken });

  const response = await call(key, "create", event({ sync_to_google: true }));
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.match(response.body.error.message, /invalid_grant/);
  assert.equal(response.body.error.details.provider, "google_calendar");
  assert.equal(response.body.error.details.provider_code, "invalid_grant");
  assert.equal(response.body.error.details.connection_status, "broken");
  const [{ count }] = await db`
    select count(*)::int from public.calendar_events where org_id = ${org.orgId}
  `;
  assert.equal(count, 0, "the event is not left half made");

  const broken = await googleIntegration(key);
  assert.equal(broken.status, "broken");
  assert.equal(broken.error.code, "INVALID_GRANT");
  assert.equal(broken.error.provider_code, "invalid_grant");

  // Broken: refused at once, without asking Google.
  const before = (await googleRequests(email)).length;
  const again = await call(key, "sync", {});
  expectError(again, 502, "INTEGRATION_ERROR");
  assert.equal(again.body.error.details.connection_status, "broken");
  assert.equal((await googleRequests(email)).length, before);
  // Events without Google still work.
  const local = await call(key, "create", event());
  assert.equal(local.status, 200, JSON.stringify(local.body));

  // A working grant given to the integration repairs it.
  const fresh = `rt-${crypto.randomUUID()}`;
  await standIn("accounts", { refresh_token: fresh, email });
  const repaired = await api("integrations/update", {
    action: "update",
    data: {
      integration_id: broken.id,
      credentials: { client_id: "c", client_secret: "s", refresh_token: fresh },
    },
  }, { key });
  assert.equal(repaired.status, 200, JSON.stringify(repaired.body));
  assert.equal(repaired.body.data.status, "connected");
  assert.equal(repaired.body.data.error, null);
  assert.equal((await call(key, "sync", {})).status, 200);
});

test("integrations/connect google_calendar: a refused refresh token leaves it broken (502) with Google's answer; credentials are never answered", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const response = await connectGoogle(key, {
    client_id: "c",
    client_secret: "s",
    refresh_token: "never-issued",
  });
  expectError(response, 502, "INTEGRATION_ERROR");
  assert.equal(response.body.error.details.provider, "google_calendar");
  assert.equal(response.body.error.details.provider_code, "invalid_grant");
  assert.equal(response.body.error.details.integration_status, "broken");
  assert.ok(!JSON.stringify(response.body).includes("never-issued"));
  const listed = await googleIntegration(key);
  assert.equal(listed.status, "broken");
  assert.equal(listed.id, response.body.error.details.integration_id);
  // Calendar calls say it is broken, without asking Google.
  const sync = await call(key, "sync", {});
  expectError(sync, 502, "INTEGRATION_ERROR");
  assert.equal(sync.body.error.details.connection_status, "broken");

  const { key: connectedKey, refreshToken } = await orgWithGoogle();
  const shown = await googleIntegration(connectedKey);
  assert.equal(shown.status, "connected");
  assert.equal(shown.name, "google_calendar");
  assert.deepEqual(shown.public, { calendar_id: "primary" });
  assert.ok(!JSON.stringify(shown).includes(refreshToken));
  assert.ok(!JSON.stringify(shown).includes("test-client-secret"));
});

// ---- reminders and invitations by email --------------------------------------------------

/** Moves the event's reminders to now (the job follows the row): nobody sleeps an hour. */
const makeRemindersDue = (eventId: string) =>
  db`update public.calendar_reminders set due_at = now() where event_id = ${eventId}`;

test("calendar: without an email channel a due reminder is recorded 'email channel not available', never sent", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await call(
    key,
    "create",
    event({
      start: "2030-01-01T10:00:00Z",
      end: "2030-01-01T11:00:00Z",
      attendees: ["ana@example.com"],
      reminders: [{ method: "email", minutes_before: 30 }, { method: "popup", minutes_before: 5 }],
    }),
  );
  assert.equal(created.status, 200, JSON.stringify(created.body));
  // No email integration: the invitation could not go either, and says why.
  assert.equal(created.body.data.attendees_notified, false);
  assert.equal(created.body.data.notification_error, "email channel not available");

  const reminders = await db`
    select id, minutes_before, due_at from public.calendar_reminders
    where event_id = ${created.body.data.id}
  `;
  assert.equal(reminders.length, 1, "popup reminders are Google's");
  assert.equal(reminders[0].due_at.toISOString(), "2030-01-01T09:30:00.000Z");
  await makeRemindersDue(created.body.data.id);
  const done = await eventually(async () =>
    (await db`
      select status, detail from public.calendar_reminders
      where id = ${reminders[0].id} and status not in ('pending', 'sending')
    `)[0], "the reminder job");
  assert.deepEqual({ ...done }, { status: "not_sent", detail: "email channel not available" });
  const [{ count }] =
    await db`select count(*)::int from public.messages where org_id = ${org.orgId}`;
  assert.equal(count, 0);
});

test("calendar: an email reminder is sent once through the email channel, when due", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const from = `cal-${crypto.randomUUID().slice(0, 8)}@test.example`;
  await connect(key, "email", emailCredentials(from));
  const attendee = `guest-${crypto.randomUUID().slice(0, 8)}@example.com`;
  const created = await call(
    key,
    "create",
    event({
      title: "Board meeting",
      start: "2030-02-01T10:00:00Z",
      end: "2030-02-01T11:00:00Z",
      attendees: [attendee],
      reminders: [{ method: "email", minutes_before: 60 }],
    }),
  );
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const eventId = created.body.data.id;

  // Without Google the invitation goes by email, with an .ics attached.
  assert.equal(created.body.data.attendees_notified, true);
  assert.equal(created.body.data.notification_error, null);
  const caught = async () =>
    (await (await fetch(`${stack.mail.http_url}/messages?to=${encodeURIComponent(attendee)}`))
      .json()).messages as { id: string; subject: string }[];
  const invitation = (await caught()).find((m) => m.subject === "Invitation: Board meeting");
  assert.ok(invitation, "the invitation reached the mail catcher");
  const full = await (await fetch(`${stack.mail.http_url}/messages/${invitation.id}`)).json();
  const ics = full.attachments?.find((a: { filename: string }) => a.filename === "invite.ics");
  assert.ok(ics, JSON.stringify(Object.keys(full)));
  // Unfolded (RFC 5545 folds lines at 75 octets).
  const icsText = atob(ics.content_base64).replaceAll("\r\n ", "");
  assert.match(icsText, /METHOD:REQUEST/);
  assert.match(icsText, new RegExp(`UID:${eventId}@bivelio`));
  assert.match(icsText, /DTSTART:20300201T100000Z/);
  assert.match(icsText, new RegExp(`ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:${attendee}`));

  // Not due yet: nothing but the invitation.
  const [reminder] = await db`
    select id from public.calendar_reminders where event_id = ${eventId}
  `;
  const [job] = await db`
    select available_at from private.jobs where kind = 'calendar_reminder' and ref = ${reminder.id}
  `;
  assert.equal(job.available_at.toISOString(), "2030-02-01T09:00:00.000Z");

  await makeRemindersDue(eventId);
  const sent = await eventually(async () =>
    (await db`
      select status, sent_at from public.calendar_reminders
      where id = ${reminder.id} and status not in ('pending', 'sending')
    `)[0], "the reminder job");
  assert.equal(sent.status, "sent");
  const reminderMail = async () =>
    (await caught()).filter((m) => m.subject === "Reminder: Board meeting in 60 minutes");
  assert.equal((await reminderMail()).length, 1);

  // A second delivery of the job (as after a crash) does not send again.
  await db`
    insert into private.jobs (kind, ref, org_id, environment)
    values ('calendar_reminder', ${reminder.id}, ${org.orgId}, 'live')
  `;
  await eventually(async () =>
    (await db`
      select 1 from private.jobs where kind = 'calendar_reminder' and ref = ${reminder.id}
    `).length === 0, "the repeated job to finish");
  assert.equal((await reminderMail()).length, 1);
  const [{ count }] = await db`
    select count(*)::int from public.messages
    where org_id = ${org.orgId} and subject like 'Reminder:%'
  `;
  assert.equal(count, 1);
});

test("calendar: moving an event moves its pending reminder; cancelling skips it", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  const created = await call(
    key,
    "create",
    event({
      start: "2030-03-01T10:00:00Z",
      end: "2030-03-01T11:00:00Z",
      reminders: [{ method: "email", minutes_before: 10 }],
    }),
  );
  const id = created.body.data.id;
  await call(key, "update", { id, start: "2030-03-02T10:00:00Z", end: "2030-03-02T11:00:00Z" });
  const [moved] = await db`
    select r.due_at, j.available_at from public.calendar_reminders r
    join private.jobs j on j.kind = 'calendar_reminder' and j.ref = r.id
    where r.event_id = ${id}
  `;
  assert.equal(moved.due_at.toISOString(), "2030-03-02T09:50:00.000Z");
  assert.equal(moved.available_at.toISOString(), "2030-03-02T09:50:00.000Z");

  await call(key, "cancel", { id });
  const [skipped] = await db`
    select r.status, (select count(*)::int from private.jobs j
                      where j.kind = 'calendar_reminder' and j.ref = r.id) as jobs
    from public.calendar_reminders r where r.event_id = ${id}
  `;
  assert.deepEqual({ ...skipped }, { status: "skipped", jobs: 0 });
});

// ---- workflow step ---------------------------------------------------------------------

test("workflow step create_event creates the event (in Google too) and gives it as output", async () => {
  const { key, email } = await orgWithGoogle();
  const workflowId = await createWorkflow(key, {
    name: "Book a call",
    steps: [{
      id: "book",
      type: "create_event",
      config: {
        title: "Call with {{input.name}}",
        start: "{{input.start}}",
        end: "{{input.end}}",
        attendees: ["{{input.email}}"],
        sync_to_google: true,
      },
    }],
  });
  const started = await execute(key, workflowId, {
    name: "Maria",
    start: "2026-07-01T10:00:00Z",
    end: "2026-07-01T10:30:00Z",
    email: "maria@example.com",
  });
  const instance = await waitForInstance(key, started.instance_id);
  assert.equal(instance.status, "completed", JSON.stringify(instance));
  const output = instance.steps?.find((s: { id: string }) => s.id === "book")?.output ??
    instance.output;
  const eventId = JSON.stringify(output).match(/evt_[0-9A-Za-z]+/)?.[0];
  assert.ok(eventId, JSON.stringify(instance));
  const got = await call(key, "get", { id: eventId });
  assert.equal(got.body.data.title, "Call with Maria");
  assert.ok(got.body.data.google_event_id);
  assert.equal((await apiCalls(email)).filter((r) => r.method === "POST").length, 1);
});

// ---- sandbox and isolation ---------------------------------------------------------------

test("calendar: sandbox Google calls are simulated and never reach Google", async () => {
  const org = await createTestOrg();
  const key = await org.key({ environment: "test" });
  const refreshToken = `rt-${crypto.randomUUID()}`;
  const connected = await connectGoogle(key, {
    client_id: "c",
    client_secret: "s",
    refresh_token: refreshToken,
  });
  assert.equal(connected.status, 200, JSON.stringify(connected.body));
  const created = await call(
    key,
    "create",
    event({
      attendees: ["ana@example.com"],
      sync_to_google: true,
    }),
  );
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.ok(created.body.data.google_event_id);
  const all = (await standIn("requests")).requests as Recorded[];
  assert.ok(!all.some((r) => JSON.stringify(r.body ?? {}).includes(created.body.data.id)));
});

test("calendar: another organization's or environment's events are invisible", async () => {
  const owner = await createTestOrg();
  const other = await createTestOrg();
  const ownerKey = await owner.key();
  const created = await call(
    ownerKey,
    "create",
    event({ reminders: [{ method: "email", minutes_before: 5 }] }),
  );
  const id = created.body.data.id;
  for (const key of [await other.key(), await owner.key({ environment: "test" })]) {
    expectError(await call(key, "get", { id }), 404, "RESOURCE_NOT_FOUND");
    expectError(await call(key, "update", { id, title: "Mine" }), 404, "RESOURCE_NOT_FOUND");
    expectError(await call(key, "cancel", { id }), 404, "RESOURCE_NOT_FOUND");
    const listed = await call(key, "list", {}, "events");
    assert.equal(listed.body.data.events.length, 0);
    assert.equal(await googleIntegration(key), null);
  }
  // Row-level security on each table, as the API role sees them with another org's claims.
  for (const table of ["calendar_events", "calendar_reminders", "calendar_sync_state"]) {
    const seen = await db.begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${
        JSON.stringify({
          role: "authenticated",
          org_id: other.orgId,
          environment: "live",
        })
      }, true)`;
      await tx`set local role authenticated`;
      return await tx.unsafe(`select count(*)::int as n from public.${table}
        where org_id = '${owner.orgId}'`);
    });
    assert.equal(seen[0].n, 0, table);
  }
  assert.equal((await call(ownerKey, "get", { id })).status, 200);
});

test("calendar/get of an unknown or malformed id: 404 and 400", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  expectError(await call(key, "get", { id: "evt_doesnotexist" }), 404, "RESOURCE_NOT_FOUND");
  const wrong = await call(key, "get", { id: "ct_abc123" });
  expectError(wrong, 400, "VALIDATION_ERROR");
  assert.equal(wrong.body.error.details.field, "id");
  const many = await call(
    key,
    "create",
    event({
      reminders: Array.from({ length: 6 }, (_, n) => ({ method: "popup", minutes_before: n })),
    }),
  );
  expectError(many, 400, "VALIDATION_ERROR");
  assert.equal(many.body.error.details.field, "reminders");
});

// ---- the shared negative cases, for every action -----------------------------------------

const created = async (org: { key(): Promise<string> }) => {
  const response = await call(await org.key(), "create", event());
  return { id: response.body.data.id };
};

negativeCases({
  group: "calendar",
  action: "list",
  suffix: "events",
  scope: "read",
  valid: { from: "2026-04-07T00:00:00Z", to: "2026-04-14T23:59:59Z" },
  invalid: { data: { from: "yesterday" }, field: "from" },
});
negativeCases({
  group: "calendar",
  action: "get",
  scope: "read",
  valid: created,
  invalid: { data: { id: 42 }, field: "id" },
});
negativeCases({
  group: "calendar",
  action: "create",
  scope: "write",
  valid: event(),
  invalid: { data: event({ end: "2026-05-04T08:00:00Z" }), field: "end" },
});
negativeCases({
  group: "calendar",
  action: "update",
  scope: "write",
  valid: async (org) => ({ ...(await created(org)), title: "Renamed" }),
  invalid: { data: { id: "evt_x", title: "" }, field: "title" },
});
negativeCases({
  group: "calendar",
  action: "cancel",
  scope: "write",
  valid: created,
  invalid: { data: { id: "nope" }, field: "id" },
});
negativeCases({
  group: "calendar",
  action: "sync",
  scope: "write",
  valid: async (org) => {
    const refreshToken = `rt-${crypto.randomUUID()}`;
    await standIn("accounts", { refresh_token: refreshToken });
    await connectGoogle(await org.key(), {
      client_id: "c",
      client_secret: "s",
      refresh_token: refreshToken,
    });
    return {};
  },
  invalid: { data: { full: true }, field: "full" },
});

test("calendar: a reminder that comes due after its event started is skipped, not sent", async () => {
  const org = await createTestOrg();
  const key = await org.key();
  await connect(key, "email", emailCredentials());
  const started = new Date(Date.now() - 60_000).toISOString().slice(0, 19) + "Z";
  const created = await call(
    key,
    "create",
    event({
      start: started,
      end: "2099-01-01T00:00:00Z",
      attendees: ["late@example.com"],
      reminders: [{ method: "email", minutes_before: 15 }],
    }),
  );
  const done = await eventually(async () =>
    (await db`
      select status, detail from public.calendar_reminders
      where event_id = ${created.body.data.id} and status not in ('pending', 'sending')
    `)[0], "the reminder job");
  assert.deepEqual({ ...done }, { status: "skipped", detail: "the event has already started" });
  const [{ count }] = await db`
    select count(*)::int from public.messages where org_id = ${org.orgId} and subject like 'Reminder:%'
  `;
  assert.equal(count, 0);
});

test("calendar/sync: an event whose create stopped before Google answered is made there once", async () => {
  const { org, key, refreshToken, email } = await orgWithGoogle();
  // Two creates that died between their phases: one before Google's insert, one after it.
  const rows = await db`
    insert into public.calendar_events
      (org_id, environment, title, start_at, end_at, google_sync, created_at, attendees)
    values
      (${org.orgId}, 'live', 'Never reached Google', '2026-08-01T10:00:00Z',
       '2026-08-01T11:00:00Z', 'pending', now() - interval '5 minutes', '[]'),
      (${org.orgId}, 'live', 'Reached Google', '2026-08-02T10:00:00Z',
       '2026-08-02T11:00:00Z', 'pending', now() - interval '5 minutes', '[]')
    returning id, title
  `;
  const reached = rows.find((r) => r.title === "Reached Google")!;
  const derived = (id: string) =>
    Array.from(new TextEncoder().encode(id), (b) => b.toString(16).padStart(2, "0")).join("");
  await standIn("events", {
    refresh_token: refreshToken,
    event: {
      id: derived(reached.id),
      summary: "Reached Google",
      start: { dateTime: "2026-08-02T10:00:00Z" },
      end: { dateTime: "2026-08-02T11:00:00Z" },
    },
  });

  const synced = await call(key, "sync", {});
  assert.equal(synced.status, 200, JSON.stringify(synced.body));
  assert.equal(synced.body.data.recovered, 2);
  for (const row of rows) {
    const got = await call(key, "get", { id: row.id });
    assert.equal(got.body.data.google_event_id, derived(row.id));
    assert.equal(got.body.data.source, "bivelio");
  }
  // One event each in Google: the one already there was patched, not made twice.
  const inserts = (await apiCalls(email)).filter((r) => r.method === "POST");
  assert.deepEqual(inserts.map((r) => r.status).sort(), [200, 409]);
  const listed = await call(key, "list", { include_cancelled: true }, "events");
  assert.equal(listed.body.data.events.length, 2);
});

test("Google stand-in: with a state file, accounts, events and sync tokens outlive a restart", async () => {
  const stateFile = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.remove(stateFile);
  const send = (handler: (r: Request) => Promise<Response>, path: string, body?: unknown) =>
    handler(
      new Request(`http://standin${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    ).then((r) => r.json());
  const first = createGoogleStandIn({ stateFile });
  await send(first, "/_standin/accounts", { refresh_token: "rt", email: "a@x.example" });
  const made = await send(first, "/_standin/events", {
    refresh_token: "rt",
    event: {
      summary: "Kept",
      start: { dateTime: "2026-01-01T10:00:00Z" },
      end: { dateTime: "2026-01-01T11:00:00Z" },
    },
  });
  const token = await first(
    new Request("http://standin/token", {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: "rt",
        client_id: "c",
      }),
    }),
  ).then((r) => r.json());
  const auth = { authorization: `Bearer ${token.access_token}` };
  const listed = await first(
    new Request("http://standin/calendar/v3/calendars/primary/events", { headers: auth }),
  ).then((r) => r.json());

  const second = createGoogleStandIn({ stateFile });
  const again = await second(
    new Request(
      `http://standin/calendar/v3/calendars/primary/events?syncToken=${listed.nextSyncToken}`,
      { headers: auth },
    ),
  );
  assert.equal(again.status, 200, "the access token and the sync token are still good");
  assert.deepEqual((await again.json()).items, []);
  const got = await second(
    new Request(`http://standin/calendar/v3/calendars/primary/events/${made.id}`, {
      headers: auth,
    }),
  ).then((r) => r.json());
  assert.equal(got.summary, "Kept");
  await Deno.remove(stateFile);
});
