/**
 * Database access. One postgres.js pool per process (module scope, outlives requests).
 *
 * - `withClaims` is how handlers touch data: a transaction switched to the
 *   `authenticated` role with the caller's claims, so row-level security by org_id and
 *   environment decides what is visible. A handler bug cannot read another tenant's rows.
 * - `serviceSql` bypasses RLS. It is only for authentication lookups, rate-limit counters
 *   and idempotency records (and later the worker), never for customer data on behalf of
 *   a request.
 */
import postgres from "postgres";
import { config } from "./config.ts";

export type Sql = postgres.Sql;
/** A connection inside a request's transaction. */
export type Tx = postgres.Sql;

let pool: Sql | undefined;

function getPool(): Sql {
  pool ??= postgres(config.databaseUrl, {
    max: config.dbPoolSize,
    idle_timeout: 30,
    // Supabase's transaction pooler (port 6543) cannot keep prepared statements.
    prepare: !config.databaseUrl.includes(":6543"),
    connection: { application_name: "bivelio-api" },
    onnotice: () => {},
  });
  return pool;
}

/** RLS bypassing access: auth lookups, rate limits, idempotency records only. */
export const serviceSql = (): Sql => getPool();

/** The claims Postgres sees through auth.jwt() for one request. */
export interface RequestClaims {
  role: "authenticated";
  org_id: string;
  environment: "live" | "test";
  sub?: string;
  [claim: string]: unknown;
}

/**
 * Runs `fn` in a transaction as `authenticated` with the caller's claims.
 *
 * BEGIN and the claims are sent without waiting, in the same write as fn's first query
 * (postgres.js coalesces what is queued in one tick), so a one-query handler costs two
 * round trips (that write, then COMMIT) instead of four. If BEGIN or the claims failed,
 * fn's queries fail with them.
 */
export async function withClaims<T>(
  claims: RequestClaims,
  fn: (tx: Tx) => Promise<T>,
  /** More transaction-local settings (the worker's `bivelio.chain_depth`). */
  settings: Record<string, string> = {},
): Promise<T> {
  const tx = await getPool().reserve();
  try {
    const extra = Object.entries(settings).reduce(
      (sql, [name, value]) => tx`${sql}, set_config(${name}, ${value}, true)`,
      tx``,
    );
    const [, , result] = await Promise.all([
      tx`begin`.execute(),
      tx`
        select set_config('role', 'authenticated', true),
               set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)
               ${extra}
      `.execute(),
      fn(tx),
    ]);
    await tx`commit`;
    return result;
  } catch (error) {
    await tx`rollback`.catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}

export async function closeDb() {
  await pool?.end({ timeout: 5 });
  pool = undefined;
}
