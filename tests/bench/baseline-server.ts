/**
 * The contacts-list baseline: a bare Deno HTTP server that answers every POST with the
 * first page of contacts, using the same SELECT as `listContacts` in shared/contacts/contacts.ts
 * does for `{per_page: 25, page: 1}` (same columns, window count, ORDER BY and LIMIT), with
 * an explicit org and environment filter instead of row-level security. No middleware,
 * no authentication: what the database and the runtime cost on their own.
 *
 * Env: PORT, BENCH_DB_URL, BENCH_ORG_ID. Started by tests/bench/contacts.ts.
 */
import postgres from "postgres";

function env(name: string) {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const orgId = env("BENCH_ORG_ID");
const perPage = 25;
const page = 1;

// The same pool settings as shared/platform/db.ts (10 connections by default, prepared statements).
const sql = postgres(env("BENCH_DB_URL"), {
  max: 10,
  idle_timeout: 30,
  connection: { application_name: "bivelio-bench-baseline" },
  onnotice: () => {},
});

Deno.serve(
  { hostname: "127.0.0.1", port: Number(env("PORT")), onListen: () => {} },
  async (request) => {
    if (request.method !== "POST") return new Response("POST only", { status: 405 });
    await request.arrayBuffer();
    try {
      const rows = await sql`
        select id, type, name, email, phone, company_id, tags, custom_fields, created_at,
               updated_at, count(*) over ()::int as total
        from public.contacts
        where org_id = ${orgId} and environment = 'live'
        order by created_at desc, id desc
        limit ${perPage} offset ${(page - 1) * perPage}
      `;
      return Response.json(rows);
    } catch (error) {
      return new Response(String(error), { status: 500 });
    }
  },
);
