/**
 * Section "contacts": listing contacts through the whole API (gateway, middleware, API-key
 * authentication with its rate-limit count, RLS transaction, validation, envelope) against
 * a bare Deno server running the same SELECT (tests/bench/baseline-server.ts).
 */
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import type { ContactRow } from "../../shared/contacts/contacts.ts";
import { compare, printComparison } from "./compare.ts";
import { profileContactsList } from "./contacts-profile.ts";
import { type BenchContext, type BenchSection, startDenoServer } from "./context.ts";
import type { WrkTarget } from "./wrk.ts";

const CONTACTS = 200;
const COMPANIES = 20;
const PER_PAGE = 25;
// Far above what the machine can do, so the limiter counts every request but refuses none.
const UNREACHABLE_LIMIT = 1_000_000_000;

const FIRST = ["Ana", "Leo", "Marta", "Jonas", "Ines", "Tomás", "Chloé", "Yusuf", "Mei", "Olu"];
const LAST = ["García", "Okafor", "Lindqvist", "Rossi", "Tanaka", "Dubois", "Novak", "Silva"];
const SECTORS = ["Robotics", "Bakery", "Logistics", "Studio", "Clinic"];
const TAGS = ["vip", "lead", "customer", "newsletter", "churn-risk", "partner", "b2b", "event"];
const SOURCES = ["web", "referral", "import", "fair", "ads"];

interface SeedContact extends ContactRow {
  org_id: string;
  environment: "live";
}

function seedContacts(orgId: string): SeedContact[] {
  const start = Date.now() - CONTACTS * 60_000;
  const contacts: SeedContact[] = [];
  for (let i = 0; i < CONTACTS; i++) {
    const company = i < COMPANIES;
    const name = company
      ? `${LAST[i % LAST.length]} ${SECTORS[i % SECTORS.length]} ${i}`
      : `${FIRST[i % FIRST.length]} ${LAST[(i * 7) % LAST.length]}`;
    const slug = name.toLowerCase().normalize("NFD").replace(/[^a-z0-9]+/g, ".");
    const created = new Date(start + i * 60_000);
    contacts.push({
      id: `ct_bench${i.toString().padStart(4, "0")}`,
      org_id: orgId,
      environment: "live",
      type: company ? "company" : "person",
      name,
      email: i % 5 === 4 ? null : `${slug}.${i}@bench.example`,
      phone: i % 3 === 0 ? `+34 600 ${String(100_000 + i * 37).slice(-6)}` : null,
      // Persons after the companies are linked to one; companies are inserted first.
      company_id: !company && i % 2 === 0
        ? `ct_bench${(i % COMPANIES).toString().padStart(4, "0")}`
        : null,
      tags: TAGS.filter((_, t) => (i + t) % (3 + (i % 4)) === 0),
      custom_fields: {
        source: SOURCES[i % SOURCES.length],
        score: (i * 37) % 100,
        ...(i % 4 === 0 ? { vip: true, account_manager: FIRST[(i + 3) % FIRST.length] } : {}),
        ...(i % 6 === 0 ? { address: { city: "Valencia", postcode: `460${i % 100}` } } : {}),
      },
      created_at: created,
      updated_at: created,
    });
  }
  return contacts;
}

/** A fresh enterprise organization with 200 live contacts and a live secret key. */
export async function seedContactsOrg(db: BenchContext["db"]) {
  const [org] = await db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values ('Benchmark org', 'enterprise', ${UNREACHABLE_LIMIT}, ${UNREACHABLE_LIMIT})
    returning id
  `;
  // One by one, in order: the companies exist before the persons that link to them.
  for (const contact of seedContacts(org.id)) {
    const row = { ...contact, custom_fields: db.json(contact.custom_fields as never) };
    await db`insert into public.contacts ${db(row as never)}`;
  }
  const key = await mintApiKey(db, {
    name: "benchmark",
    environment: "live",
    type: "secret",
    scopes: ["read"],
  }, org.id);
  return { orgId: org.id, key: key.key };
}

/** One request to each target before measuring: both must give 200 and the same page. */
async function checkTargets(baseline: WrkTarget, ours: WrkTarget) {
  const call = async (target: WrkTarget) => {
    const response = await fetch(target.url, {
      method: target.method,
      headers: target.headers,
      body: target.body,
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`${target.label} answered ${response.status}: ${text}`);
    }
    return JSON.parse(text);
  };
  const baselineRows = await call(baseline) as { id: string; total: number }[];
  const oursBody = await call(ours) as {
    data: { contacts: { id: string }[]; pagination: { total: number } };
  };
  const baselineIds = baselineRows.map((row) => row.id).join();
  const oursIds = oursBody.data.contacts.map((contact) => contact.id).join();
  if (baselineRows.length !== PER_PAGE || baselineRows[0].total !== CONTACTS) {
    throw new Error(
      `The baseline returned ${baselineRows.length} rows of ${baselineRows[0]?.total}.`,
    );
  }
  if (baselineIds !== oursIds || oursBody.data.pagination.total !== CONTACTS) {
    throw new Error(`The API returned another page than the baseline: ${JSON.stringify(oursBody)}`);
  }
}

export const contactsSection: BenchSection = {
  name: "contacts",
  async run(ctx) {
    const { orgId, key } = await seedContactsOrg(ctx.db);
    const server = await startDenoServer(ctx, new URL("./baseline-server.ts", import.meta.url), {
      BENCH_DB_URL: ctx.stack.db_url,
      BENCH_ORG_ID: orgId,
    });
    const body = JSON.stringify({ action: "list", data: { per_page: PER_PAGE } });
    // The same request bytes to both (the baseline reads the body and ignores it).
    const baseline: WrkTarget = {
      label: "baseline",
      url: server.url,
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    };
    const ours: WrkTarget = {
      label: "ours",
      url: `${ctx.stack.api_url}/v1/contacts`,
      method: "POST",
      headers: { "Content-Type": "application/json", "X-API-Key": key },
      body,
    };
    await checkTargets(baseline, ours);
    const result = await compare(ctx, {
      title: `Contacts list, ${PER_PAGE} of ${CONTACTS} contacts`,
      notes: [
        "baseline: bare Deno.serve + postgres.js (pool 10), the same SELECT with an explicit org filter",
        `ours:     POST /v1/contacts {"action":"list"} with X-API-Key through the local gateway`,
      ],
      baseline,
      ours,
      targets: { minThroughputRatio: 0.6, maxP99Ratio: 1.5 },
    });
    printComparison(result);
    await server.stop();
    if (Deno.env.get("BENCH_PROFILE") === "1") {
      await profileContactsList(ctx, { orgId, key, ours });
    }
  },
};
