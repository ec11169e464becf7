/**
 * The organization's Google Calendar connection: its `google_calendar` integration
 * (public.integrations, connected through integrations/connect; one per organization and
 * environment) with the calendar's own sync state beside it (public.calendar_sync_state:
 * the cached access token, the sync token, the calendar). And the one way every Google call
 * is made and recorded:
 *
 *   openConnection (phase 1, in the transaction) → callGoogle (no transaction) →
 *   recordGoogleCall (phase 3: the new access token cached, or the integration broken)
 */
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, invalidField } from "../platform/errors.ts";
import { clientFor } from "../platform/providers.ts";
import { openSecrets, sealSecrets } from "../platform/secrets.ts";
import {
  type CachedAccessToken,
  googleCalendar,
  GoogleCalendarError,
  type GoogleCalendarSession,
  type GoogleCredentials,
} from "./google.ts";

export interface ConnectionRow {
  /** The integration's id. */
  id: string;
  calendar_id: string;
  status: "connected" | "broken";
  sealed_credentials: string;
  sealed_access_token: string | null;
  access_token_expires_at: Date | null;
  sync_token: string | null;
  last_synced_at: Date | null;
  error: { code: string; message: string } | null;
}

/** A connection opened for a call: what the call phase needs, no transaction. */
export interface OpenConnection {
  id: string;
  calendarId: string;
  environment: Environment;
  credentials: GoogleCredentials;
  cached: CachedAccessToken | null;
  syncToken: string | null;
}

/** The environment's Google Calendar integration with its sync state, or null. */
export const findConnection = async (tx: Tx, options: { lock?: boolean } = {}) =>
  (await tx<ConnectionRow[]>`
    select i.id, i.status, i.sealed_credentials, i.error,
           coalesce(s.calendar_id, i.public ->> 'calendar_id', 'primary') as calendar_id,
           s.sealed_access_token, s.access_token_expires_at, s.sync_token, s.last_synced_at
    from public.integrations i
    left join public.calendar_sync_state s on s.integration_id = i.id
    where i.provider = 'google_calendar' and i.status <> 'disconnected'
    ${options.lock ? tx`for update of i` : tx``}
  `)[0] ?? null;

/** The connection as a call needs it; refuses when there is none or it is broken. */
export async function openConnection(
  row: ConnectionRow | null,
  environment: Environment,
  field = "sync_to_google",
): Promise<OpenConnection> {
  if (!row) {
    throw invalidField(
      field,
      "not_connected",
      "Google Calendar is not connected in this environment: connect it first " +
        "(integrations/connect with provider google_calendar and an OAuth refresh token).",
    );
  }
  if (row.status === "broken") {
    throw new ApiError(
      "INTEGRATION_ERROR",
      "The Google Calendar integration is broken (Google refused its grant): give it a new " +
        "refresh token (integrations/update) or connect it again.",
      {
        details: {
          provider: "google_calendar",
          integration_id: row.id,
          connection_status: "broken",
          error: row.error,
        },
      },
    );
  }
  const credentials = await openSecrets<GoogleCredentials>(row.sealed_credentials);
  const cached = row.sealed_access_token && row.access_token_expires_at
    ? {
      access_token: await openSecrets<string>(row.sealed_access_token),
      expires_at: row.access_token_expires_at.getTime(),
    }
    : null;
  return {
    id: row.id,
    calendarId: row.calendar_id,
    environment,
    credentials,
    cached,
    syncToken: row.sync_token,
  };
}

/** How a Google call ended, with the access token held at its end. */
export interface GoogleCall<T> {
  outcome: { ok: true; value: T } | { ok: false; error: GoogleCalendarError };
  token: CachedAccessToken | null;
  simulated: boolean;
}

/**
 * Runs `fn` with a session of `connection` (the environment's face: the sandbox never
 * reaches Google). Google's refusals are returned, not thrown, for the record phase.
 */
export async function callGoogle<T>(
  connection: OpenConnection,
  fn: (session: GoogleCalendarSession, calendarId: string) => Promise<T>,
  signal?: AbortSignal,
): Promise<GoogleCall<T>> {
  const client = clientFor(googleCalendar, connection.environment);
  const session = client.session(connection.credentials, connection.cached, signal);
  let outcome: GoogleCall<T>["outcome"];
  try {
    outcome = { ok: true, value: await fn(session, connection.calendarId) };
  } catch (error) {
    if (!(error instanceof GoogleCalendarError)) throw error;
    outcome = { ok: false, error };
  }
  return { outcome, token: session.accessToken(), simulated: client.simulated };
}

/**
 * Phase 3 of every Google call: caches a new access token (sealed), or marks the
 * connection broken when Google refused the grant. Returns the ApiError to answer when the
 * call failed.
 */
export async function recordGoogleCall(
  tx: Tx,
  connection: OpenConnection,
  call: GoogleCall<unknown>,
): Promise<ApiError | null> {
  const token = call.token;
  if (token && token.access_token !== connection.cached?.access_token) {
    await tx`
      insert into public.calendar_sync_state
        (integration_id, calendar_id, sealed_access_token, access_token_expires_at)
      values (${connection.id}, ${connection.calendarId},
              ${await sealSecrets(token.access_token)}, ${new Date(token.expires_at)})
      on conflict (integration_id) do update
      set sealed_access_token = excluded.sealed_access_token,
          access_token_expires_at = excluded.access_token_expires_at, updated_at = now()
    `;
  }
  if (call.outcome.ok) return null;
  const error = call.outcome.error;
  if (error.revoked) {
    await tx`
      update public.calendar_sync_state
      set sealed_access_token = null, access_token_expires_at = null, updated_at = now()
      where integration_id = ${connection.id}
    `;
    // Visible in integrations/list until the grant is given again.
    await tx`
      update public.integrations
      set status = 'broken',
          error = ${
      tx.json({
        code: "INVALID_GRANT",
        message: "Google refused the refresh token (invalid_grant): revoked or expired.",
        provider_code: error.reason,
        provider_message: error.providerMessage,
      })
    }, updated_at = now()
      where id = ${connection.id} and status <> 'disconnected'
    `;
  }
  return error.toApiError();
}
