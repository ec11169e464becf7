/**
 * One step of the contacts-list "ladder" (BENCH_PROFILE=1): a bare Deno server that does a
 * growing part of the API's database work for `{"action":"list","data":{"per_page":25}}`,
 * with the API's own code (shared/platform/db.ts pool and RLS transaction, shared/contacts/contacts.ts), but
 * without the gateway, Hono, middleware and validation. The distance between two steps is
 * what that part costs; the distance from the last step to the API is the framework's.
 *
 *   select      the baseline: one SELECT with an explicit org filter (1 round trip)
 *   auth        + hashing the key and private.authenticate_api_key (2 round trips)
 *   auth-tx     + the same SELECT in withClaims' RLS transaction instead (4 round trips:
 *                 auth; BEGIN; set_config + SELECT pipelined; COMMIT)
 *   auth-list   + listContacts (contactToApi, pagination) and the success envelope
 *
 * Env: PORT, SUPABASE_DB_URL (read by shared/platform/db.ts), BENCH_ORG_ID, BENCH_API_KEY,
 * BENCH_STEP. Started by tests/bench/contacts-profile.ts.
 */
import { hashApiKey } from "../../shared/api-keys/format.ts";
import { listContacts } from "../../shared/contacts/contacts.ts";
import { type RequestClaims, serviceSql, type Tx, withClaims } from "../../shared/platform/db.ts";

type LadderStep = "select" | "auth" | "auth-tx" | "auth-list";

function env(name: string) {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const orgId = env("BENCH_ORG_ID");
const apiKey = env("BENCH_API_KEY");
const step = env("BENCH_STEP") as LadderStep;

const selectPage = (sql: ReturnType<typeof serviceSql> | Tx, orgFilter: boolean) =>
  sql`
    select id, type, name, email, phone, company_id, tags, custom_fields, created_at,
           updated_at, count(*) over ()::int as total
    from public.contacts
    where ${orgFilter ? sql`org_id = ${orgId} and environment = 'live'` : sql`true`}
    order by created_at desc, id desc
    limit ${25} offset ${0}
  `;

/** What authenticate.ts does for an API key, without its error handling. */
async function authenticate(): Promise<RequestClaims> {
  const [row] = await serviceSql()<
    { status: string; org_id: string; environment: "live" | "test"; key_id: string }[]
  >`
    select * from private.authenticate_api_key(${hashApiKey(apiKey)})
  `;
  if (row.status !== "ok") throw new Error(`the key is ${row.status}`);
  return {
    role: "authenticated",
    org_id: row.org_id,
    environment: row.environment,
    key_id: row.key_id,
    scopes: ["read"],
  };
}

const handlers: Record<LadderStep, () => Promise<unknown>> = {
  select: () => selectPage(serviceSql(), true),
  auth: async () => {
    await authenticate();
    return await selectPage(serviceSql(), true);
  },
  "auth-tx": async () => {
    const claims = await authenticate();
    return await withClaims(claims, (tx) => selectPage(tx, false));
  },
  "auth-list": async () => {
    const claims = await authenticate();
    const data = await withClaims(claims, (tx) => listContacts(tx, { page: 1, per_page: 25 }));
    return { success: true, data };
  },
};

const handler = handlers[step];
if (!handler) throw new Error(`BENCH_STEP must be one of ${Object.keys(handlers).join(", ")}`);

Deno.serve(
  { hostname: "127.0.0.1", port: Number(env("PORT")), onListen: () => {} },
  async (request) => {
    if (request.method !== "POST") return new Response("POST only", { status: 405 });
    await request.arrayBuffer();
    try {
      return Response.json(await handler());
    } catch (error) {
      return new Response(String(error), { status: 500 });
    }
  },
);
