/**
 * The demo organizations' Google Calendar, connected to the local Google stand-in
 * (local/stand-ins/google.ts) in both environments, so the spec's calendar examples work
 * as printed against `deno task start`: Acme's calendar holds the spec's "Meeting with
 * Company ABC" (Google id abc123def456, both attendees accepted), which `list` shows as
 * evt_u8v9w0x1 with source google_calendar.
 *
 * The connection is a `google_calendar` integration, made through the API's own
 * `integrations/connect` (so its credentials are sealed as any integration's, and the live
 * one proves its grant against the stand-in).
 *
 * Run at every start: the stand-in's accounts are made again when it does not keep them;
 * the integrations and the demo event are made only when missing (an integration's old sync
 * token is then refused by a new stand-in with 410, and the next sync lists all).
 */
import postgres from "postgres";
import { callIntegrations, DEMO_ORGS } from "./demo.ts";

/** The refresh token of a demo organization's Google account in the stand-in. */
export const demoRefreshToken = (orgId: string, environment: string) =>
  `demo-refresh-${orgId}-${environment}`;

export const DEMO_GOOGLE_EVENT = {
  id: "abc123def456",
  summary: "Meeting with Company ABC",
  description: "Quarterly project review",
  location: "Google Meet",
  start: { dateTime: "2026-04-08T10:00:00Z" },
  end: { dateTime: "2026-04-08T11:00:00Z" },
  attendees: [
    { email: "contact@companyabc.com", responseStatus: "accepted" },
    { email: "team@bivelio.com", responseStatus: "accepted" },
  ],
};

async function standIn(baseUrl: string, control: string, body: unknown) {
  const response = await fetch(`${baseUrl}/_standin/${control}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`Google stand-in ${control}: ${await response.text()}`);
  await response.body?.cancel();
}

export async function connectDemoCalendars(
  apiUrl: string,
  databaseUrl: string,
  orgs: { org_id: string; keys: { live_secret: string; test_secret: string } }[],
  googleBaseUrl: string,
) {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (const org of orgs) {
      for (
        const [environment, key] of [
          ["live", org.keys.live_secret],
          ["test", org.keys.test_secret],
        ] as const
      ) {
        const refreshToken = demoRefreshToken(org.org_id, environment);
        await standIn(googleBaseUrl, "accounts", {
          refresh_token: refreshToken,
          email: `calendar-${environment}@${org.org_id.replace(/_/g, "-")}.example`,
        });
        const { integrations } = await callIntegrations(apiUrl, key, "list", {
          provider: "google_calendar",
        });
        if (integrations.length > 0) continue;
        await callIntegrations(apiUrl, key, "connect", {
          provider: "google_calendar",
          credentials: {
            client_id: "bivelio-local-demo.apps.googleusercontent.com",
            client_secret: "local-demo-client-secret",
            refresh_token: refreshToken,
          },
        });
      }
    }
    const acme = DEMO_ORGS[0].org_id;
    await standIn(googleBaseUrl, "events", {
      refresh_token: demoRefreshToken(acme, "live"),
      event: DEMO_GOOGLE_EVENT,
    });
    await sql`
      insert into public.calendar_events
        (id, org_id, environment, title, description, location, start_at, end_at, attendees,
         source, google_event_id, google_sync)
      values ('evt_u8v9w0x1', ${acme}, 'live', ${DEMO_GOOGLE_EVENT.summary},
              ${DEMO_GOOGLE_EVENT.description}, ${DEMO_GOOGLE_EVENT.location},
              ${DEMO_GOOGLE_EVENT.start.dateTime}, ${DEMO_GOOGLE_EVENT.end.dateTime},
              ${
      sql.json([
        { email: "contact@companyabc.com", status: "accepted" },
        { email: "team@bivelio.com", status: "accepted" },
      ])
    }, 'google_calendar', ${DEMO_GOOGLE_EVENT.id}, 'synced')
      on conflict do nothing
    `;
  } finally {
    await sql.end();
  }
}
