/**
 * Google Calendar, a provider (shared/platform/providers.ts): the real client
 * (`@googleapis/calendar`, built on gaxios and google-auth-library) with the organization's
 * OAuth connection, every request through the address guard (`guardedFetch`).
 *
 * - The API's base URL (the client's `rootUrl`) and the OAuth token URL come from
 *   shared/platform/config.ts: Google's own when deployed, the local stand-in's
 *   (local/stand-ins/google.ts) locally.
 * - Tokens: the refresh token gives access tokens (shared/integrations/google-oauth.ts, the
 *   OAuth code Gmail uses too); the access token it holds is handed back (`accessToken()`)
 *   so the caller caches it, sealed.
 * - A revoked grant (`{"error":"invalid_grant"}`) is a {@link GoogleCalendarError} with
 *   `revoked` set: the caller marks the connection broken.
 * - Sandbox callers get a simulation that reaches nothing and answers in Google's shapes.
 */
import { calendar_v3 } from "@googleapis/calendar";
import { accessTokenOf, googleOAuthClient, readGoogleError } from "../integrations/google-oauth.ts";
import { ApiError } from "../platform/errors.ts";
import { config } from "../platform/config.ts";
import { guardedFetch } from "../platform/outbound/fetch.ts";
import { defineProvider } from "../platform/providers.ts";

export type { CachedAccessToken, GoogleCredentials } from "../integrations/google-oauth.ts";
import type { CachedAccessToken, GoogleCredentials } from "../integrations/google-oauth.ts";

export type GoogleEvent = calendar_v3.Schema$Event;

export interface GoogleEventsPage {
  items: GoogleEvent[];
  nextPageToken?: string;
  nextSyncToken?: string;
}

export interface ListParams {
  syncToken?: string;
  pageToken?: string;
  timeMin?: string;
  timeMax?: string;
  showDeleted?: boolean;
}

/** Google refused or could not be reached. */
export class GoogleCalendarError extends Error {
  constructor(
    /** Google's HTTP status; null when Google was not reached. */
    readonly status: number | null,
    /** Google's reason (`notFound`, `invalid_grant`, `fullSyncRequired`…), or null. */
    readonly reason: string | null,
    readonly providerMessage: string,
    /** The refresh token was refused: the connection must be made again. */
    readonly revoked = false,
  ) {
    super(`Google Calendar refused the request: ${providerMessage}`);
    this.name = "GoogleCalendarError";
  }

  toApiError(): ApiError {
    const message = this.revoked
      ? "Google refused the calendar connection's grant (invalid_grant): it was revoked or " +
        "expired. The connection is marked broken; connect Google Calendar again."
      : this.message;
    return new ApiError("INTEGRATION_ERROR", message, {
      details: {
        provider: "google_calendar",
        provider_code: this.reason ?? this.status,
        provider_message: this.providerMessage,
        ...(this.revoked ? { connection_status: "broken" } : {}),
      },
    });
  }
}

/** One connection's calls, with its tokens. */
export interface GoogleCalendarSession {
  /** events.insert with sendUpdates=all, so attendees are invited by Google. */
  insert(calendarId: string, event: GoogleEvent): Promise<GoogleEvent>;
  /** events.patch with sendUpdates=all. */
  patch(calendarId: string, eventId: string, event: GoogleEvent): Promise<GoogleEvent>;
  /** events.delete with sendUpdates=all; an event already gone is not an error. */
  remove(calendarId: string, eventId: string): Promise<void>;
  list(calendarId: string, params: ListParams): Promise<GoogleEventsPage>;
  /** The access token the session holds now (a new one after a refresh), to cache. */
  accessToken(): CachedAccessToken | null;
}

export interface GoogleCalendarClient {
  /** Whether calls are simulated (sandbox): nothing reaches Google. */
  simulated: boolean;
  session(
    credentials: GoogleCredentials,
    cached: CachedAccessToken | null,
    signal?: AbortSignal,
  ): GoogleCalendarSession;
}

/** Google's answer (the token endpoint's or the API's error body) as a GoogleCalendarError. */
export function googleErrorOf(error: unknown): GoogleCalendarError {
  if (error instanceof GoogleCalendarError) return error;
  const refusal = readGoogleError(error);
  return new GoogleCalendarError(
    refusal.httpStatus,
    refusal.reason,
    refusal.message,
    refusal.invalidGrant,
  );
}

async function google<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw googleErrorOf(error);
  }
}

function liveClient(): GoogleCalendarClient {
  const fetchImplementation = guardedFetch({ timeoutMs: 15_000 });
  return {
    simulated: false,
    session(credentials, cached, signal) {
      const oauth = googleOAuthClient(credentials, cached, fetchImplementation);
      const api = new calendar_v3.Calendar({
        auth: oauth,
        rootUrl: `${config.googleApiBaseUrl}/`,
        fetchImplementation,
        signal,
        // POSTs are not retried (an insert could be made twice); GETs, PATCH and DELETE are.
        retryConfig: { retry: 2, httpMethodsToRetry: ["GET", "PATCH", "DELETE"] },
      });
      return {
        insert: (calendarId, event) =>
          google(async () =>
            (await api.events.insert({ calendarId, sendUpdates: "all", requestBody: event })).data
          ),
        patch: (calendarId, eventId, event) =>
          google(async () =>
            (await api.events.patch({
              calendarId,
              eventId,
              sendUpdates: "all",
              requestBody: event,
            })).data
          ),
        remove: async (calendarId, eventId) => {
          try {
            await google(() => api.events.delete({ calendarId, eventId, sendUpdates: "all" }));
          } catch (error) {
            // Already deleted there (410) or never there any more (404): the wanted state.
            if (error instanceof GoogleCalendarError && [404, 410].includes(error.status ?? 0)) {
              return;
            }
            throw error;
          }
        },
        list: (calendarId, params) =>
          google(async () => {
            const { data } = await api.events.list({
              calendarId,
              ...params,
              singleEvents: true,
              maxResults: 250,
            });
            return {
              items: data.items ?? [],
              nextPageToken: data.nextPageToken ?? undefined,
              nextSyncToken: data.nextSyncToken ?? undefined,
            };
          }),
        accessToken: () => accessTokenOf(oauth),
      };
    },
  };
}

/** Sandbox: Google's answers, made here. Attendees are "invited" and have not answered. */
function sandboxClient(): GoogleCalendarClient {
  const simulate = (event: GoogleEvent, id: string): GoogleEvent => ({
    ...event,
    id,
    status: event.status ?? "confirmed",
    attendees: event.attendees?.map((a) => ({ ...a, responseStatus: "needsAction" })),
  });
  return {
    simulated: true,
    session: () => ({
      insert: (_calendarId, event) =>
        Promise.resolve(simulate(event, event.id ?? `sim${crypto.randomUUID().slice(0, 8)}`)),
      patch: (_calendarId, eventId, event) => Promise.resolve(simulate(event, eventId)),
      remove: () => Promise.resolve(),
      list: () => Promise.resolve({ items: [], nextSyncToken: "simulated" }),
      accessToken: () => null,
    }),
  };
}

export const googleCalendar = defineProvider<GoogleCalendarClient>({
  name: "google_calendar",
  description: "Google Calendar API v3 with OAuth refresh tokens; stand-in: " +
    "local/stand-ins/google.ts",
  live: liveClient,
  sandbox: sandboxClient,
});

/**
 * The Google event id BiVelio asks for an event it creates: derived from its own id (hex,
 * within Google's base32hex alphabet), so an insert made again after a crash is Google's
 * 409 duplicate instead of a second event.
 */
export const googleIdFor = (eventId: string) =>
  Array.from(new TextEncoder().encode(eventId), (b) => b.toString(16).padStart(2, "0")).join("");
