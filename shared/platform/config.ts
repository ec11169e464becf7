/**
 * Settings from the environment: the one place the code reads it (docs/deploy.md lists every
 * variable). On Supabase, SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY and
 * SUPABASE_DB_URL are provided to every function; the others are set as secrets. Read lazily,
 * so a module can be imported (and unit-tested) without them, and checked when read: a value
 * that is missing or malformed is a ConfigError naming the variable and what it must be.
 */

/** A setting that is missing or malformed. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The variable's value, or undefined (also where the process may not read the environment). */
function read(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

function required(name: string): string {
  const value = read(name);
  if (!value) throw new ConfigError(`Environment variable ${name} is not set.`);
  return value;
}

/** A whole number within bounds, or the fallback when unset. */
export function integer(name: string, fallback: number, min: number, max: number): number {
  const text = read(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(
      `Environment variable ${name} must be a whole number from ${min} to ${max}; got '${text}'.`,
    );
  }
  return value;
}

/** An http(s) URL without a trailing slash, or the fallback when unset. */
function baseUrl(name: string, fallback: string): string;
function baseUrl(name: string, fallback: null): string | null;
function baseUrl(name: string, fallback: string | null): string | null {
  const text = read(name);
  if (text === undefined) return fallback;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`Environment variable ${name} must be a URL; got '${text}'.`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`Environment variable ${name} must be an http(s) URL.`);
  }
  return text.replace(/\/+$/, "");
}

/** `1` or `true` (any case) is on; unset or anything else is off. */
const flag = (name: string) => ["1", "true"].includes(read(name)?.trim().toLowerCase() ?? "");

export const config = {
  get databaseUrl() {
    return required("SUPABASE_DB_URL");
  },
  get supabaseUrl() {
    return required("SUPABASE_URL");
  },
  /** HS256 secret that signs Supabase Auth JWTs (the project's JWT secret). */
  get jwtSecret() {
    return read("BIVELIO_JWT_SECRET") ?? required("SUPABASE_JWT_SECRET");
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
    return integer("BIVELIO_DB_POOL_SIZE", 10, 1, 1000);
  },
  /**
   * The `iss` every user JWT must carry: what Supabase Auth (GoTrue) writes there, the
   * project's Auth URL. BIVELIO_JWT_ISSUER overrides it where functions reach the project
   * by another URL than its public one (the Supabase CLI's `http://kong:8000`).
   */
  get jwtIssuer() {
    return read("BIVELIO_JWT_ISSUER") ??
      `${required("SUPABASE_URL").replace(/\/+$/, "")}/auth/v1`;
  },
  /**
   * Where the caller's address is read (sign-in limits): the header the platform's proxy
   * appends the connecting address to, and how many proxies in front of the function each
   * append one. The client's address is that many entries from the right; entries further
   * left were written by the client and are ignored. Locally the gateway is the one proxy.
   */
  get clientAddressHeader() {
    return read("BIVELIO_CLIENT_ADDRESS_HEADER") ?? "x-forwarded-for";
  },
  get trustedProxyCount() {
    return integer("BIVELIO_TRUSTED_PROXY_COUNT", 1, 1, 20);
  },
  /**
   * A Supabase secret API key (`sb_secret_…`): with it /v1/auth/token sends the caller's
   * address to Supabase Auth in `Sb-Forwarded-For`, so Auth's own per-IP limits apply per
   * client (the project must enable IP address forwarding). BIVELIO_AUTH_SECRET_KEY, else
   * the `default` entry of SUPABASE_SECRET_KEYS, which Supabase gives every function.
   */
  get authSecretKey(): string | null {
    return read("BIVELIO_AUTH_SECRET_KEY") ||
      jsonKeys("SUPABASE_SECRET_KEYS").default || null;
  },
  /**
   * The `apikey` values callers may send to /v1/auth/token (the project's anon and
   * publishable keys). Needed only when the function calls Auth with the secret key instead
   * of the caller's key, since Auth then no longer checks the caller's.
   */
  get authClientKeys(): string[] {
    return [
      read("SUPABASE_ANON_KEY"),
      ...Object.values(jsonKeys("SUPABASE_PUBLISHABLE_KEYS")),
    ].filter((key): key is string => typeof key === "string" && key.length > 0);
  },
  /**
   * The Gemini API key (shared/ai/gemini.ts): a Supabase secret; null when unset (calls then
   * fail with INTEGRATION_ERROR). The local stack passes its stand-in's key, or yours.
   */
  get geminiApiKey(): string | null {
    return read("GEMINI_API_KEY") ?? null;
  },
  /** Where Gemini is reached: unset for Google's own URL; the local stand-in's locally. */
  get geminiBaseUrl(): string | null {
    return baseUrl("GEMINI_BASE_URL", null);
  },
  /** How long one Gemini attempt may take before it is abandoned (and retried). */
  get geminiTimeoutMs() {
    return integer("GEMINI_TIMEOUT_MS", 60_000, 1_000, 600_000);
  },
  /** Where the Telegram Bot API is reached: Telegram's own; the local stand-in's locally. */
  get telegramApiBaseUrl(): string {
    return baseUrl("TELEGRAM_API_BASE_URL", "https://api.telegram.org");
  },
  /**
   * Where the WhatsApp Cloud API is reached (shared/messages/channels/whatsapp.ts): Meta's
   * Graph API unless set; the local stand-in's (local/stand-ins/whatsapp.ts) locally.
   */
  get whatsappApiBaseUrl(): string {
    return baseUrl("WHATSAPP_API_BASE_URL", "https://graph.facebook.com");
  },
  /**
   * Where Google's APIs are reached (the generated clients' rootUrl: Calendar in
   * shared/calendar/google.ts, Gmail in shared/messages/channels/email.ts): Google's own
   * unless set; the local stand-in's (local/stand-ins/google.ts) locally.
   */
  get googleApiBaseUrl(): string {
    return baseUrl("GOOGLE_API_BASE_URL", "https://www.googleapis.com");
  },
  /**
   * Google's OAuth token endpoint (the refresh-token grant, shared/integrations/google-oauth.ts);
   * the stand-in's locally.
   */
  get googleOAuthTokenUrl(): string {
    return baseUrl("GOOGLE_OAUTH_TOKEN_URL", "https://oauth2.googleapis.com/token");
  },
  /** Local stack and tests only: outbound requests may reach loopback addresses. */
  get allowLoopbackTargets(): boolean {
    return flag("BIVELIO_ALLOW_LOOPBACK_TARGETS");
  },
  /** What the `worker` function wants as its bearer token; unset, the endpoint is off. */
  get workerSecret(): string | null {
    return read("BIVELIO_WORKER_SECRET") ?? null;
  },
  /** How long one call of the `worker` function runs jobs. */
  get workerBudgetSeconds(): number {
    return integer("BIVELIO_WORKER_BUDGET_SECONDS", 50, 1, 140);
  },
  /** The public base URL OpenAPI names (`https://api.bivelio.com/v1`); the request's own if unset. */
  get publicUrl(): string | null {
    return baseUrl("BIVELIO_PUBLIC_URL", null);
  },
};

/** A JSON dictionary of named keys (`{"default":"sb_secret_…"}`); {} when unset or invalid. */
function jsonKeys(name: string): Record<string, string> {
  try {
    const parsed = JSON.parse(read(name) ?? "{}");
    return typeof parsed === "object" && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}
