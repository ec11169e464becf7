/**
 * Database access. One postgres.js pool per process (module scope, outlives requests),
 * replaced when PostgreSQL drops one of its connections (see `Pool`).
 *
 * - `withClaims` is how handlers touch data: a transaction switched to the
 *   `authenticated` role with the caller's claims, so row-level security by org_id and
 *   environment decides what is visible. A handler bug cannot read another tenant's rows.
 * - `serviceSql` bypasses RLS. It is only for authentication lookups, rate-limit counters
 *   and idempotency records (and later the worker), never for customer data on behalf of
 *   a request.
 */
import type { Environment } from "./environment.ts";
import postgres from "postgres";
import { config } from "./config.ts";

export type Sql = postgres.Sql;
/** A connection inside a request's transaction. */
export type Tx = postgres.Sql;

const connectionOptions = () => ({
  // Supabase's transaction pooler (port 6543) cannot keep prepared statements.
  prepare: !config.databaseUrl.includes(":6543"),
  connection: { application_name: "bivelio-api" },
  onnotice: () => {},
});

/** What a query gets when its pool was given up on before it finished (a 503). */
export class DatabaseConnectionLost extends Error {
  constructor() {
    super("The database connection was lost.");
    this.name = "DatabaseConnectionLost";
  }
}

/** How long a replaced pool's work in flight gets to finish before it is failed. */
const RETIRED_POOL_GRACE_MS = 2_000;

/**
 * The process's pool, replaced as a whole when one of its connections closes. Its
 * connections have no idle or lifetime limit, so a close always means PostgreSQL or the
 * network ended it (a failover, a pooler restart, pg_terminate_backend). postgres.js 3.4
 * can then leave queries waiting forever, on the pool and on reserved connections. So the
 * old pool is closed, whatever of it is still waiting after a grace period fails with
 * DatabaseConnectionLost (a 503), and new work gets a new pool.
 */
class Pool {
  readonly sql: Sql;
  /** Rejecters of the work `settle` waits for; failed when the pool is given up on. */
  readonly #waiting = new Set<(error: Error) => void>();

  constructor(onLost: (pool: Pool) => void) {
    this.sql = postgres(config.databaseUrl, {
      ...connectionOptions(),
      max: config.dbPoolSize,
      idle_timeout: 0,
      max_lifetime: null,
      onclose: () => onLost(this),
    });
  }

  /** `work`, unless the pool is given up on first. */
  settle<T>(work: Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      this.#waiting.add(reject);
      work.then(resolve, reject).finally(() => this.#waiting.delete(reject));
    });
  }

  retire() {
    const ended = this.sql.end({ timeout: RETIRED_POOL_GRACE_MS / 1000 }).catch(() => {});
    const grace = new Promise((resolve) => setTimeout(resolve, RETIRED_POOL_GRACE_MS));
    Promise.all([ended, grace]).then(() => {
      for (const reject of this.#waiting) reject(new DatabaseConnectionLost());
    });
  }
}

let pool: Pool | undefined;
let listenerPool: Sql | undefined;

// postgres.js 3.4 starts some queries of its own (the array type lookup on every new
// connection) without handling their failure. When PostgreSQL ends that connection, the
// rejection would end the process; the pool is replaced anyway, so such a rejection (and
// only a lost-database one) is logged instead.
globalThis.addEventListener("unhandledrejection", (event) => {
  if (!databaseUnreachable(event.reason)) return;
  event.preventDefault();
  console.error(JSON.stringify({
    level: "warn",
    msg: "postgres.js left a lost connection's error unhandled",
    error: String(event.reason),
  }));
});

function getPool(): Pool {
  pool ??= new Pool((lost) => {
    if (pool !== lost) return;
    pool = undefined;
    lost.retire();
  });
  return pool;
}

/** RLS bypassing access: auth lookups, rate limits, idempotency records only. */
export const serviceSql = (): Sql => getPool().sql;

/**
 * LISTEN for notifications (job wake-ups, finished instances), on a pool of its own that
 * is never replaced: postgres.js re-listens by itself after a dropped connection.
 */
export const listenSql = (): Sql =>
  listenerPool ??= postgres(config.databaseUrl, { ...connectionOptions(), max: 1 });

/** The claims Postgres sees through auth.jwt() for one request. */
export interface RequestClaims {
  role: "authenticated";
  org_id: string;
  environment: Environment;
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
export function withClaims<T>(
  claims: RequestClaims,
  fn: (tx: Tx) => Promise<T>,
  /** More transaction-local settings (the worker's `bivelio.chain_depth`). */
  settings: Record<string, string> = {},
): Promise<T> {
  const current = getPool();
  return current.settle(inTransaction(current.sql, claims, fn, settings));
}

async function inTransaction<T>(
  sql: Sql,
  claims: RequestClaims,
  fn: (tx: Tx) => Promise<T>,
  settings: Record<string, string>,
): Promise<T> {
  const tx = await sql.reserve();
  let connectionAlive = true;
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
    connectionAlive = !databaseUnreachable(error);
    if (connectionAlive) await tx`rollback`.catch(() => {});
    throw error;
  } finally {
    // A dead connection is not released (see databaseUnreachable): the pool took it back.
    if (connectionAlive) tx.release();
  }
}

/**
 * Whether an error means the database cannot be reached or ended our session: a socket
 * error (a system code such as EPIPE), a postgres.js connection error (it carries
 * `errno`), a FATAL from the server (pg_terminate_backend, shutdown, "cannot connect
 * now"), or DatabaseConnectionLost. The API answers these with 503.
 *
 * A reserved connection that failed so must not be written to or released again:
 * postgres.js 3.4 then writes to its closed socket from a timer and the process dies
 * (porsager/postgres#1208), and `release()` would put the dead connection back in the
 * pool's open list.
 */
export function databaseUnreachable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  if ("errno" in error || error instanceof DatabaseConnectionLost) return true;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return true;
  return severity === "FATAL" || severity === "PANIC";
}

export async function closeDb() {
  const closing = [pool?.sql, listenerPool];
  pool = listenerPool = undefined; // so the closes are not taken for a lost connection
  await Promise.all(closing.map((sql) => sql?.end({ timeout: 5 })));
}
