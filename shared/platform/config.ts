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
  /**
   * The key that seals provider credentials in the database (shared/platform/secrets.ts):
   * the base64 of 32 random bytes. A Supabase secret; the local stack makes its own.
   */
  get secretsKey() {
    return required("BIVELIO_SECRETS_KEY");
  },
  /**
   * The project's service_role key, which Supabase gives every function: Storage
   * (shared/platform/storage.ts) is used with it, from server code only. Never sent to callers.
   */
  get serviceRoleKey() {
    return required("SUPABASE_SERVICE_ROLE_KEY");
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
  /**
   * Where the caller's address is read (sign-in limits): the header the platform's proxy
   * appends the connecting address to, and how many proxies in front of the function each
   * append one. The client's address is that many entries from the right; entries further
   * left were written by the client and are ignored. Locally the gateway is the one proxy.
   */
  get clientAddressHeader() {
    return Deno.env.get("BIVELIO_CLIENT_ADDRESS_HEADER") ?? "x-forwarded-for";
  },
  get trustedProxyCount() {
    return Number(Deno.env.get("BIVELIO_TRUSTED_PROXY_COUNT") ?? 1);
  },
  /**
   * A Supabase secret API key (`sb_secret_…`): with it /v1/auth/token sends the caller's
   * address to Supabase Auth in `Sb-Forwarded-For`, so Auth's own per-IP limits apply per
   * client (the project must enable IP address forwarding). BIVELIO_AUTH_SECRET_KEY, else
   * the `default` entry of SUPABASE_SECRET_KEYS, which Supabase gives every function.
   */
  get authSecretKey(): string | null {
    return Deno.env.get("BIVELIO_AUTH_SECRET_KEY") ||
      jsonKeys("SUPABASE_SECRET_KEYS").default || null;
  },
  /**
   * The `apikey` values callers may send to /v1/auth/token (the project's anon and
   * publishable keys). Needed only when the function calls Auth with the secret key instead
   * of the caller's key, since Auth then no longer checks the caller's.
   */
  get authClientKeys(): string[] {
    return [
      Deno.env.get("SUPABASE_ANON_KEY"),
      ...Object.values(jsonKeys("SUPABASE_PUBLISHABLE_KEYS")),
    ].filter((key): key is string => typeof key === "string" && key.length > 0);
  },
  /**
   * The Gemini API key (shared/ai/gemini.ts): a Supabase secret; null when unset (calls then
   * fail with INTEGRATION_ERROR). The local stack passes its stand-in's key, or yours.
   */
  get geminiApiKey(): string | null {
    return Deno.env.get("GEMINI_API_KEY") || null;
  },
  /** Where Gemini is reached: unset for Google's own URL; the local stand-in's locally. */
  get geminiBaseUrl(): string | null {
    return Deno.env.get("GEMINI_BASE_URL") || null;
  },
  /** How long one Gemini attempt may take before it is abandoned (and retried). */
  get geminiTimeoutMs() {
    return Number(Deno.env.get("GEMINI_TIMEOUT_MS") ?? 60_000);
  },
  /** Where the Telegram Bot API is reached: Telegram's own; the local stand-in's locally. */
  get telegramApiBaseUrl(): string {
    return Deno.env.get("TELEGRAM_API_BASE_URL") || "https://api.telegram.org";
  },
  /**
   * Where the WhatsApp Cloud API is reached (shared/messages/channels/whatsapp.ts): Meta's
   * Graph API unless set; the local stand-in's (local/stand-ins/whatsapp.ts) locally.
   */
  get whatsappApiBaseUrl(): string {
    return (Deno.env.get("WHATSAPP_API_BASE_URL") || "https://graph.facebook.com")
      .replace(/\/+$/, "");
  },
  /**
   * Where Google's APIs are reached (shared/calendar/google.ts, the client's rootUrl):
   * Google's own unless set; the local stand-in's (local/stand-ins/google.ts) locally.
   */
  get googleApiBaseUrl(): string {
    return (Deno.env.get("GOOGLE_API_BASE_URL") || "https://www.googleapis.com")
      .replace(/\/+$/, "");
  },
  /** Google's OAuth token endpoint (the refresh-token grant); the stand-in's locally. */
  get googleOAuthTokenUrl(): string {
    return Deno.env.get("GOOGLE_OAUTH_TOKEN_URL") || "https://oauth2.googleapis.com/token";
  },
};

/** A JSON dictionary of named keys (`{"default":"sb_secret_…"}`); {} when unset or invalid. */
function jsonKeys(name: string): Record<string, string> {
  try {
    const parsed = JSON.parse(Deno.env.get(name) ?? "{}");
    return typeof parsed === "object" && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}
