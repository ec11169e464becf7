/**
 * Google Calendar as an integration kind (shared/integrations/kinds.ts): connected through
 * `integrations/connect` with `provider: "google_calendar"` and the OAuth client, refresh
 * token and optional calendar id. The client and refresh token are sealed; the calendar id
 * is shown. At connect and update the calendar's sync state (public.calendar_sync_state) is
 * reset, and a real call (a token refresh and an events listing) proves the grant and the
 * calendar: Google refusing leaves the integration broken with its answer (502).
 */
import type { IntegrationKind } from "../integrations/kinds.ts";
import { clientFor } from "../platform/providers.ts";
import { googleCalendar, GoogleCalendarError, type GoogleCredentials } from "./google.ts";
import { type GoogleCalendarCredentials, googleCalendarCredentials } from "./schemas.ts";

export interface GoogleCalendarPublic {
  calendar_id: string;
}

/** A token refresh and a listing of the calendar: proves the grant and the calendar. */
async function proveGrant(
  credentials: GoogleCalendarCredentials,
  options: Parameters<IntegrationKind["test"]>[1],
) {
  const session = clientFor(googleCalendar, options.environment)
    .session(credentials, null, options.signal);
  const now = new Date().toISOString();
  try {
    await session.list(credentials.calendar_id, { timeMin: now, timeMax: now });
  } catch (error) {
    throw error instanceof GoogleCalendarError ? error.toApiError() : error;
  }
}

export const googleCalendarIntegration: IntegrationKind<
  GoogleCalendarCredentials,
  GoogleCalendarPublic
> = {
  provider: "google_calendar",
  multiple: false,
  credentials: googleCalendarCredentials,
  publicPart: (credentials) => ({ calendar_id: credentials.calendar_id }),
  // The shape calendar_connections sealed, so connections made before the fold open alike.
  sealedPart: (credentials): GoogleCredentials => ({
    client_id: credentials.client_id,
    client_secret: credentials.client_secret,
    refresh_token: credentials.refresh_token,
  }),
  credentialsFrom: (sealed, shown) => ({
    ...(sealed as GoogleCredentials),
    calendar_id: shown.calendar_id ?? "primary",
  }),
  async onSaved(tx, integrationId, credentials) {
    // New credentials may be another account or calendar: no cached token, a full listing.
    await tx`
      insert into public.calendar_sync_state (integration_id, calendar_id)
      values (${integrationId}, ${credentials.calendar_id})
      on conflict (integration_id) do update
      set calendar_id = excluded.calendar_id, sealed_access_token = null,
          access_token_expires_at = null, sync_token = null, updated_at = now()
    `;
  },
  onConnect: (credentials, _receiver, options) => proveGrant(credentials, options),
  async test(credentials, options) {
    await proveGrant(credentials, options);
    return { calendar_id: credentials.calendar_id };
  },
};
