/**
 * Limits on password guessing at POST /v1/auth/token: failed attempts are counted in
 * Postgres per email and per client address (supabase/migrations/*_sign_in_limits.sql,
 * where the limits are), and over a limit the caller gets 429 before Auth is asked.
 */
import { isIP } from "node:net";
import { config } from "../platform/config.ts";
import { serviceSql } from "../platform/db.ts";
import { ApiError } from "../platform/errors.ts";

/**
 * The caller's IP address, or null when it cannot be known. The only place it is decided.
 *
 * Proxies append the address that connected to them to the configured header
 * (`X-Forwarded-For`): Supabase's platform in production, local/gateway.ts here. A client
 * can send the header itself, but only entries to the left of those the trusted proxies
 * appended, so the address is the `trustedProxyCount`-th entry from the right; anything a
 * client wrote further left is ignored. IPv4-mapped IPv6 addresses count as IPv4.
 */
export function clientAddress(headers: Headers): string | null {
  const entries = (headers.get(config.clientAddressHeader) ?? "").split(",")
    .map((entry) => entry.trim());
  const hops = config.trustedProxyCount;
  if (!Number.isInteger(hops) || hops < 1 || entries.length < hops) return null;
  let address = entries[entries.length - hops];
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) address = mapped[1];
  return isIP(address) ? address : null;
}

/** An attempt that was let through; `end` it unless Auth refused the credentials. */
export interface SignInAttempt {
  /**
   * The attempt did not fail (it succeeded, or the error was not the caller's): it stops
   * counting. `signedInEmail`: a password sign-in succeeded; the email's failures are reset.
   */
  end(signedInEmail?: string): Promise<void>;
}

/**
 * Counts an attempt for the email (password grant) and the address, in one round trip, or
 * throws 429 RATE_LIMIT_EXCEEDED with `retry_after` and `Retry-After` when either has
 * failed too often. A null address or email is not counted.
 */
export async function beginSignInAttempt(
  email: string | null,
  address: string | null,
): Promise<SignInAttempt> {
  if (email === null && address === null) return { end: async () => {} };
  const sql = serviceSql();
  const [row] = await sql<
    {
      allowed: boolean;
      limited_by: "email" | "address";
      retry_after: number;
      attempt_ids: string[];
    }[]
  >`select * from private.begin_sign_in_attempt(${email}, ${address}::inet)`;
  if (!row.allowed) {
    const why = row.limited_by === "email"
      ? "Too many failed sign-in attempts for this email."
      : "Too many failed sign-in attempts from this address.";
    throw new ApiError(
      "RATE_LIMIT_EXCEEDED",
      `${why} Try again in ${row.retry_after} seconds.`,
      {
        extra: { retry_after: row.retry_after },
        headers: { "Retry-After": String(row.retry_after) },
      },
    );
  }
  return {
    async end(signedInEmail) {
      await sql`
        select private.end_sign_in_attempt(${row.attempt_ids}::bigint[], ${signedInEmail ?? null})
      `;
    },
  };
}
