/**
 * The local gateway: one process serving every edge function the way Supabase routes
 * them (`/functions/v1/<name>/…` and the public `/v1/<name>/…`, each function seeing
 * `/<name>/…`), plus the local Supabase Auth emulator at `/auth/v1` and the local Supabase
 * Storage emulator at `/storage/v1`.
 *
 * Env: PORT, SUPABASE_DB_URL, SUPABASE_URL, BIVELIO_JWT_SECRET, BIVELIO_ANON_KEY,
 * BIVELIO_SERVICE_ROLE_KEY, BIVELIO_STORAGE_DIR (where the Storage emulator keeps files).
 */
import { getPath } from "hono/utils/url";
import postgres from "postgres";
import { functionPath } from "../shared/platform/app.ts";
import { ApiError } from "../shared/platform/errors.ts";
import { createAuthEmulator } from "./auth-emulator.ts";
import { createStorageEmulator } from "./storage-emulator.ts";

type FetchHandler = (request: Request) => Response | Promise<Response>;

const FUNCTIONS_DIR = new URL("../supabase/functions/", import.meta.url);

/**
 * Every function folder's own `index.ts`, the entry point Supabase deploys, with
 * `Deno.serve` caught while it is imported: the handler it would serve is kept here
 * instead of a server being started (folders starting with `_` are shared code).
 */
async function loadFunctions(): Promise<Map<string, FetchHandler>> {
  const apps = new Map<string, FetchHandler>();
  const serve = Deno.serve;
  try {
    for (const entry of Deno.readDirSync(FUNCTIONS_DIR)) {
      if (!entry.isDirectory || entry.name.startsWith("_")) continue;
      let handler: FetchHandler | undefined;
      Deno.serve = ((served: FetchHandler) => {
        handler = served;
        return { finished: Promise.resolve() } as Deno.HttpServer;
      }) as typeof Deno.serve;
      await import(new URL(`${entry.name}/index.ts`, FUNCTIONS_DIR).href);
      if (!handler) throw new Error(`supabase/functions/${entry.name}/index.ts served nothing`);
      apps.set(entry.name, handler);
    }
  } finally {
    Deno.serve = serve;
  }
  return apps;
}

function env(name: string) {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const functions = await loadFunctions();
const authEmulator = createAuthEmulator({
  sql: postgres(env("SUPABASE_DB_URL"), { max: 4, onnotice: () => {} }),
  jwtSecret: env("BIVELIO_JWT_SECRET"),
  anonKey: env("BIVELIO_ANON_KEY"),
  serviceRoleKey: env("BIVELIO_SERVICE_ROLE_KEY"),
  issuer: `${env("SUPABASE_URL")}/auth/v1`,
});
const storageEmulator = createStorageEmulator({
  sql: postgres(env("SUPABASE_DB_URL"), { max: 4, onnotice: () => {} }),
  jwtSecret: env("BIVELIO_JWT_SECRET"),
  directory: env("BIVELIO_STORAGE_DIR"),
});

function notFound(path: string) {
  const error = new ApiError("RESOURCE_NOT_FOUND", `No endpoint at ${path}.`);
  const requestId = `req_${crypto.randomUUID().replaceAll("-", "")}`;
  return Response.json(error.toBody(), { status: 404, headers: { "X-Request-Id": requestId } });
}

/** The functions that read the caller's address (sign-in limits); see below. */
const READS_CLIENT_ADDRESS = new Set(["auth"]);

/**
 * Appends the connecting peer's address to X-Forwarded-For, as Supabase's proxies do in
 * production, so shared/auth/sign-in-limits.ts reads it the same way in both places. Only for
 * the functions that need it: the copy of the request costs the others nothing.
 */
function withForwardedFor(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) {
  const headers = new Headers(request.headers);
  const previous = headers.get("x-forwarded-for");
  const peer = info.remoteAddr.hostname;
  headers.set("x-forwarded-for", previous ? `${previous}, ${peer}` : peer);
  // A new request rather than a clone (`new Request(request, …)`), which would follow the
  // original's abort signal and make Deno warn about its legacy abort behaviour.
  return new Request(request.url, { method: request.method, headers, body: request.body });
}

const port = Number(env("PORT"));
Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request, info) => {
  const path = getPath(request);
  if (path.startsWith("/auth/v1/")) return authEmulator(request);
  if (path.startsWith("/storage/v1/")) return storageEmulator(request);
  // The same prefix rule the functions route by (they strip it themselves, uncopied).
  const inner = functionPath(request);
  const name = inner.split("/")[1];
  const app = inner !== path && functions.get(name);
  if (!app) return notFound(path);
  return app(READS_CLIENT_ADDRESS.has(name) ? withForwardedFor(request, info) : request);
});
console.log(`gateway listening on http://127.0.0.1:${port} (${[...functions.keys()].join(", ")})`);
