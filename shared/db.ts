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
export type Tx = postgres.TransactionSql;

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

/** Runs `fn` in a transaction as `authenticated` with the caller's claims. */
export async function withClaims<T>(claims: RequestClaims, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return await getPool().begin(async (tx) => {
    // Sent without waiting: postgres.js pipelines it ahead of fn's first query on the same
    // connection, saving a round trip. If it failed, fn's queries fail with it.
    const setup = tx`
      select set_config('role', 'authenticated', true),
             set_config('request.jwt.claims', ${JSON.stringify(claims)}, true)
    `.execute();
    const [result] = await Promise.all([fn(tx), setup]);
    return result;
  }) as T;
}

export async function closeDb() {
  await pool?.end({ timeout: 5 });
  pool = undefined;
}
