/**
 * Settings from the environment. On Supabase, SUPABASE_URL, SUPABASE_ANON_KEY and
 * SUPABASE_DB_URL are provided to every function; BIVELIO_JWT_SECRET is set as a secret.
 * Read lazily so a module can be imported (and unit-tested) without them.
 */
function required(name: string): string {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`Environment variable ${name} is not set`);
  return value;
}

export const config = {
  get databaseUrl() {
    return required("SUPABASE_DB_URL");
  },
  get supabaseUrl() {
    return required("SUPABASE_URL");
  },
  /** HS256 secret that signs Supabase Auth JWTs (the project's JWT secret). */
  get jwtSecret() {
    return Deno.env.get("BIVELIO_JWT_SECRET") ?? required("SUPABASE_JWT_SECRET");
  },
  /** Connections per function instance; Supabase's pooler wants few. */
  get dbPoolSize() {
    return Number(Deno.env.get("BIVELIO_DB_POOL_SIZE") ?? 10);
  },
  /**
   * The `iss` every user JWT must carry: what Supabase Auth (GoTrue) writes there, the
   * project's Auth URL. BIVELIO_JWT_ISSUER overrides it where functions reach the project
   * by another URL than its public one (the Supabase CLI's `http://kong:8000`).
   */
  get jwtIssuer() {
    return Deno.env.get("BIVELIO_JWT_ISSUER") ??
      `${required("SUPABASE_URL").replace(/\/+$/, "")}/auth/v1`;
  },
};
