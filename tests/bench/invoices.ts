/**
 * Bench section `invoices`: invoice create per second, each create doing the whole action
 * (the invoice, its lines, its number from the counter row and invoice.created in one
 * transaction; the PDF rendered with pdf-lib and stored in Storage; a signed URL; the stored
 * path recorded). Closed-loop clients (each sends its next create when the last answered)
 * at a few concurrencies in one organization, whose creates queue on the counter row of
 * their year, and the same number of clients spread over as many organizations, which do
 * not. Every answer must be a 200 with the next number: a gap or a duplicate fails the run.
 */
import { mintApiKey } from "../../shared/api-keys/keys.ts";
import type { BenchContext, BenchSection } from "./context.ts";
import { ms, percentile, table } from "./measure.ts";

const CONCURRENCIES = [1, 4, 16];

const LINES = [
  { description: "Technical consulting - 20 hours", quantity: 20, unit_price: 150, tax_rate: 21 },
  { description: "Monthly software license", quantity: 1, unit_price: 500, tax_rate: 21 },
];

/** An organization without rate limits, its key and a client contact. */
async function anOrganization(ctx: BenchContext, name: string) {
  const [org] = await ctx.db<{ id: string }[]>`
    insert into public.organizations
      (name, plan, custom_requests_per_minute, custom_requests_per_second)
    values (${name}, 'enterprise', 1000000000, 1000000000)
    returning id
  `;
  const { key } = await mintApiKey(ctx.db, {
    name: "invoices benchmark",
    environment: "live",
    type: "secret",
    scopes: ["read", "write"],
  }, org.id);
  const [client] = await ctx.db<{ id: string }[]>`
    insert into public.contacts (org_id, environment, type, name)
    values (${org.id}, 'live', 'company', 'Bench Client S.L.') returning id
  `;
  return { orgId: org.id, key, clientId: client.id };
}

type Org = Awaited<ReturnType<typeof anOrganization>>;

async function createOnce(ctx: BenchContext, org: Org, year: number) {
  const response = await fetch(`${ctx.stack.api_url}/v1/invoices/create`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-API-Key": org.key },
    body: JSON.stringify({
      action: "create",
      data: { client_id: org.clientId, issue_date: `${year}-04-07`, line_items: LINES },
    }),
  });
  const body = await response.json();
  if (response.status !== 200 || !body.data.pdf_url) {
    throw new Error(`invoices/create: ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
  }
  return body.data.number as string;
}

/** `clients` closed loops for `seconds`, each on its organization; latencies and numbers. */
async function run(
  ctx: BenchContext,
  orgs: Org[],
  clients: number,
  seconds: number,
  year: number,
) {
  const latencies: number[] = [];
  const numbers = new Map<string, string[]>();
  const until = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const org = orgs[i % orgs.length];
    while (performance.now() < until) {
      const started = performance.now();
      const number = await createOnce(ctx, org, year);
      latencies.push(performance.now() - started);
      numbers.set(org.orgId, [...numbers.get(org.orgId) ?? [], number]);
    }
  }));
  // Consecutive from 001 in each organization: no gap, no duplicate.
  for (const [orgId, given] of numbers) {
    const expected = given.map((_, n) => `INV-${year}-${String(n + 1).padStart(3, "0")}`);
    if (JSON.stringify([...given].sort()) !== JSON.stringify(expected.sort())) {
      throw new Error(`invoice numbers of ${orgId} are not consecutive: ${given.join(", ")}`);
    }
  }
  return { latencies, perSecond: latencies.length / seconds };
}

export const invoicesSection: BenchSection = {
  name: "invoices",
  async run(ctx) {
    const { seconds, warmupSeconds } = ctx.settings;
    const single = await anOrganization(ctx, "Invoices benchmark");
    const many = await Promise.all(
      Array.from({ length: 16 }, (_, i) => anOrganization(ctx, `Invoices benchmark ${i}`)),
    );
    // Warm-up (pdf-lib's fonts, connections), in a year of its own.
    if (warmupSeconds > 0) await run(ctx, [single], 4, warmupSeconds, 2000);

    const rows = [["clients", "organizations", "creates/s", "p50", "p99"]];
    let year = 2030;
    for (const clients of CONCURRENCIES) {
      const result = await run(ctx, [single], clients, seconds, year++);
      rows.push([
        String(clients),
        "1",
        result.perSecond.toFixed(1),
        ms(percentile(result.latencies, 50)),
        ms(percentile(result.latencies, 99)),
      ]);
    }
    const spread = await run(ctx, many, 16, seconds, year++);
    rows.push([
      "16",
      "16",
      spread.perSecond.toFixed(1),
      ms(percentile(spread.latencies, 50)),
      ms(percentile(spread.latencies, 99)),
    ]);
    console.log(
      `\ninvoices: create with PDF (2 lines), closed-loop clients, ${seconds} s each\n` +
        table(rows),
    );
  },
};
