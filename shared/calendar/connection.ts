/**
 * The organization's Google Calendar connection (public.calendar_connections, one per
 * organization and environment): its sealed credentials and cached access token, and the
 * one way every Google call is made and recorded:
 *
 *   openConnection (phase 1, in the transaction) → callGoogle (no transaction) →
 *   recordGoogleCall (phase 3: the new access token cached, or the connection broken)
 *
 * (A later step folds this table into the integrations group; see the migration.)
 */
import type { z } from "zod";
import type { Tx } from "../platform/db.ts";
import type { Environment } from "../platform/environment.ts";
import { ApiError, invalidField } from "../platform/errors.ts";
import { clientFor } from "../platform/providers.ts";
import { openSecrets, sealSecrets } from "../platform/secrets.ts";
import { isoTimestamp } from "../platform/time.ts";
import {
  type CachedAccessToken,
  googleCalendar,
  GoogleCalendarError,
  type GoogleCalendarSession,
  type GoogleCredentials,
} from "./google.ts";
import type { calendarConnection, connectInput } from "./schemas.ts";

export interface ConnectionRow {
  id: string;
  calendar_id: string;
  status: "connected" | "broken";
  sealed_credentials: string;
  sealed_access_token: string | null;
  access_token_expires_at: Date | null;
  sync_token: string | null;
  last_synced_at: Date | null;
  error: { code: string; message: string } | null;
  created_at: Date;
  updated_at: Date;
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

export const findConnection = async (tx: Tx, options: { lock?: boolean } = {}) =>
  (await tx<ConnectionRow[]>`
    select * from public.calendar_connections
    ${options.lock ? tx`for update` : tx``}
  `)[0] ?? null;

export const connectionOf = (row: ConnectionRow): z.input<typeof calendarConnection> => ({
  id: row.id,
  provider: "google_calendar",
  calendar_id: row.calendar_id,
  status: row.status,
  last_synced_at: isoTimestamp(row.last_synced_at),
  error: row.error ? { code: row.error.code, message: row.error.message } : null,
  created_at: isoTimestamp(row.created_at),
  updated_at: isoTimestamp(row.updated_at),
});

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
        "(calendar/connect with an OAuth refresh token).",
    );
  }
  if (row.status === "broken") {
    throw new ApiError(
      "INTEGRATION_ERROR",
      "The Google Calendar connection is broken (Google refused its grant): connect it again.",
      { details: { provider: "google_calendar", connection_status: "broken", error: row.error } },
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
      update public.calendar_connections
      set sealed_access_token = ${await sealSecrets(token.access_token)},
          access_token_expires_at = ${new Date(token.expires_at)}, updated_at = now()
      where id = ${connection.id}
    `;
  }
  if (call.outcome.ok) return null;
  const error = call.outcome.error;
  if (error.revoked) {
    await tx`
      update public.calendar_connections
      set status = 'broken', sealed_access_token = null, access_token_expires_at = null,
          error = ${
      tx.json({
        code: "INVALID_GRANT",
        message: "Google refused the refresh token (invalid_grant): revoked or expired.",
        provider_code: error.reason,
        provider_message: error.providerMessage,
      })
    }, updated_at = now()
      where id = ${connection.id}
    `;
  }
  return error.toApiError();
}

/** Stores a new connection (replacing the environment's one), its credentials sealed. */
export async function saveConnection(
  tx: Tx,
  input: z.output<typeof connectInput>,
  token: CachedAccessToken | null,
): Promise<ConnectionRow> {
  const sealed = await sealSecrets(
    {
      client_id: input.client_id,
      client_secret: input.client_secret,
      refresh_token: input.refresh_token,
    } satisfies GoogleCredentials,
  );
  const sealedToken = token ? await sealSecrets(token.access_token) : null;
  const [row] = await tx<ConnectionRow[]>`
    insert into public.calendar_connections
      (calendar_id, sealed_credentials, sealed_access_token, access_token_expires_at)
    values (${input.calendar_id}, ${sealed}, ${sealedToken},
            ${token ? new Date(token.expires_at) : null})
    on conflict (org_id, environment) do update
    set calendar_id = excluded.calendar_id, status = 'connected',
        sealed_credentials = excluded.sealed_credentials,
        sealed_access_token = excluded.sealed_access_token,
        access_token_expires_at = excluded.access_token_expires_at,
        -- Another account or calendar: the next sync starts from a full listing.
        sync_token = null, error = null, updated_at = now()
    returning *
  `;
  return row;
}
