/**
 * Google OAuth for every Google integration (Calendar: shared/calendar/google.ts; Gmail: the
 * email channel, shared/messages/channels/email.ts), in one place:
 *
 * - {@link googleOAuthClient}: google-auth-library's OAuth2 client for a connection's refresh
 *   token, at the token URL of shared/platform/config.ts (Google's own when deployed, the
 *   local stand-in's, local/stand-ins/google.ts, locally). It does the refresh-token grant
 *   before the first call and before expiry, and once more on a 401.
 * - {@link readGoogleError}: what Google answered when it refused, from the token endpoint
 *   (`{"error":"invalid_grant","error_description":…}`) or from an API
 *   (`{"error":{"code","status","message","errors":[{reason}]}}`), for each integration to
 *   turn into its own error.
 */
// google-auth-library as the generated clients re-export it (@googleapis/calendar and
// @googleapis/gmail share the one instance), so its OAuth2 client is the one they accept.
import { auth } from "@googleapis/gmail";
import { config } from "../platform/config.ts";

/** An OAuth client of the user's Google Cloud project and the refresh token it was given. */
export interface GoogleCredentials {
  client_id: string;
  client_secret: string;
  refresh_token: string;
}

export interface CachedAccessToken {
  access_token: string;
  /** Milliseconds since the epoch. */
  expires_at: number;
}

export type GoogleOAuthClient = InstanceType<typeof auth.OAuth2>;

/**
 * The OAuth2 client of one connection: hand it to a generated client as `auth`. With a
 * `cached` access token still valid no refresh is made; without one, the first call refreshes.
 */
export function googleOAuthClient(
  credentials: GoogleCredentials,
  cached: CachedAccessToken | null,
  fetchImplementation: typeof fetch,
): GoogleOAuthClient {
  const oauth = new auth.OAuth2({
    clientId: credentials.client_id,
    clientSecret: credentials.client_secret,
    endpoints: { oauth2TokenUrl: config.googleOAuthTokenUrl },
    // A 401 with a token thought valid (revoked server-side): refresh once and retry.
    forceRefreshOnFailure: true,
    transporterOptions: { fetchImplementation },
  });
  oauth.setCredentials({
    refresh_token: credentials.refresh_token,
    ...(cached ? { access_token: cached.access_token, expiry_date: cached.expires_at } : {}),
  });
  return oauth;
}

/** The access token `oauth` holds now (a new one after a refresh), for the caller to cache. */
export function accessTokenOf(oauth: GoogleOAuthClient): CachedAccessToken | null {
  const { access_token, expiry_date } = oauth.credentials;
  return access_token && expiry_date ? { access_token, expires_at: expiry_date } : null;
}

/** What Google said when it refused a call. */
export interface GoogleRefusal {
  /** The HTTP status; null when Google was not reached (network, timeout, address guard). */
  httpStatus: number | null;
  /**
   * The token endpoint's `error` (`invalid_grant`, `invalid_client`…), or the API's
   * `error.status` (`INVALID_ARGUMENT`, `PERMISSION_DENIED`…); null when there is none.
   */
  status: string | null;
  /** The API's first `error.errors[].reason` (`notFound`, `fullSyncRequired`…), or null. */
  reason: string | null;
  /** Google's message (`error_description`, `error.message`), or the failure's. */
  message: string;
  /** The refresh token was refused (revoked or expired): the connection must be made again. */
  invalidGrant: boolean;
}

/** What gaxios (the clients' HTTP layer) throws, as far as this module reads it. */
interface GaxiosLike {
  status?: number;
  response?: { status?: number; data?: unknown };
  message?: string;
}

interface GoogleErrorBody {
  error?: string | {
    code?: number;
    status?: string;
    message?: string;
    errors?: { reason?: string }[];
  };
  error_description?: string;
}

/** Google's refusal in `error` (thrown by a generated client or the OAuth2 client). */
export function readGoogleError(error: unknown): GoogleRefusal {
  const gaxios = error as GaxiosLike;
  const httpStatus = gaxios?.response?.status ?? gaxios?.status ?? null;
  const data = gaxios?.response?.data as GoogleErrorBody | undefined;
  if (typeof data?.error === "string") {
    return {
      httpStatus,
      status: data.error,
      reason: data.error,
      message: data.error_description ?? data.error,
      invalidGrant: data.error === "invalid_grant",
    };
  }
  if (data?.error && typeof data.error === "object") {
    return {
      httpStatus,
      status: data.error.status ?? null,
      reason: data.error.errors?.[0]?.reason ?? null,
      message: data.error.message ?? `HTTP ${httpStatus}`,
      invalidGrant: false,
    };
  }
  return {
    httpStatus,
    status: null,
    reason: null,
    message: error instanceof Error ? error.message : String(error),
    invalidGrant: false,
  };
}
