/**
 * `deno task bench`: starts a throwaway local stack (fresh PostgreSQL cluster on free
 * ports, migrations, seed, gateway) the way `deno task test` does, runs every benchmark
 * section against it with wrk, prints each section's table, and stops everything.
 *
 * Benchmarks report; a missed target does not fail the run. Errors do: a non-2xx response,
 * a socket error, a crashed server.
 *
 *   deno task bench              every section
 *   deno task bench contacts     only the named sections
 *
 * Env: BENCH_SECONDS (measured seconds per run, default 10), BENCH_WARMUP_SECONDS
 * (default 3), BENCH_ROUNDS (measured runs per target, alternating, default 2),
 * BENCH_PROFILE=1 (after a section's comparison, break its cost down where it can).
 */
import postgres from "postgres";
import { type RunningStack, startStack } from "../../local/stack.ts";
import { stopCluster } from "../../local/postgres.ts";
import { agentsSection } from "./agents.ts";
import { contactsSection } from "./contacts.ts";
import { messagesSection } from "./messages.ts";
import { invoicesSection } from "./invoices.ts";
import { mcpSection } from "./mcp.ts";
import { type BenchContext, type BenchSection, type BenchSettings, freePort } from "./context.ts";
import { ensureWrk, killRunningWrk } from "./wrk.ts";
import { webhooksSection } from "./webhooks.ts";
import { jobKindsSection, workflowsSection } from "./workflows.ts";

/** Later sections (workflows, webhooks) are added here. */
const SECTIONS: BenchSection[] = [
  contactsSection,
  workflowsSection,
  jobKindsSection,
  webhooksSection,
  agentsSection,
  messagesSection,
  mcpSection,
  invoicesSection,
];

function numberFromEnv(name: string, fallback: number, min: number) {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be a whole number of at least ${min}; got '${text}'.`);
  }
  return value;
}

const log = (line: string) => console.log(`[bench] ${line}`);

/** Clean-up steps, run last-registered first; a section's own steps run when it ends. */
const cleanups: (() => void | Promise<void>)[] = [];
let cleaning = Promise.resolve();
/** Runs the steps registered after `mark`; calls are queued, never run side by side. */
function cleanUpTo(mark: number) {
  cleaning = cleaning.then(async () => {
    while (cleanups.length > mark) {
      try {
        await cleanups.pop()!();
      } catch (error) {
        console.error(`[bench] clean-up step failed: ${error}`);
      }
    }
  });
  return cleaning;
}

let interrupted = false;
const onInterrupt = async () => {
  if (interrupted) return;
  interrupted = true;
  console.error("\n[bench] interrupted; stopping everything…");
  killRunningWrk();
  await cleanUpTo(0);
  Deno.exit(130);
};
Deno.addSignalListener("SIGINT", onInterrupt);

let ok = false;
try {
  const settings: BenchSettings = {
    seconds: numberFromEnv("BENCH_SECONDS", 10, 1),
    warmupSeconds: numberFromEnv("BENCH_WARMUP_SECONDS", 3, 0),
    rounds: numberFromEnv("BENCH_ROUNDS", 2, 1),
    connections: 50,
    threads: 2,
  };
  const unknown = Deno.args.filter((name) => !SECTIONS.some((s) => s.name === name));
  if (unknown.length > 0) {
    throw new Error(
      `Unknown section(s) ${unknown.join(", ")}; there are: ${
        SECTIONS.map((s) => s.name).join(", ")
      }.`,
    );
  }
  const sections = Deno.args.length > 0
    ? SECTIONS.filter((s) => Deno.args.includes(s.name))
    : SECTIONS;

  await ensureWrk(log);
  const stateDir = await Deno.makeTempDir({ prefix: "bivelio-bench-" });
  cleanups.push(() => Deno.remove(stateDir, { recursive: true }).catch(() => {}));
  // Until start-up has finished there is no handle to stop with, but the cluster may be
  // running already (start-up failed or was interrupted half-way).
  const started: { stack?: RunningStack } = {};
  cleanups.push(() =>
    started.stack ? started.stack.stop() : stopCluster(`${stateDir}/postgres`).catch(() => {})
  );
  const stack = started.stack = await startStack({
    stateDir,
    pgPort: freePort(),
    apiPort: freePort(),
    durable: false,
    // The workflows section measures two workers side by side.
    workers: 2,
    log: (line) => console.log(`[stack] ${line}`),
  });

  const db = postgres(stack.info.db_url, { max: 4, onnotice: () => {} });
  cleanups.push(() => db.end({ timeout: 5 }));
  const workDir = `${stateDir}/bench`;
  await Deno.mkdir(workDir);
  const ctx: BenchContext = {
    stack: stack.info,
    db,
    workDir,
    settings,
    defer: (cleanup) => void cleanups.push(cleanup),
    log,
  };
  log(
    `${navigator.hardwareConcurrency} cores shared by wrk, the servers and PostgreSQL; ` +
      `Deno ${Deno.version.deno}`,
  );

  for (const section of sections) {
    console.log(`\n=== ${section.name} ===`);
    const mark = cleanups.length;
    try {
      await section.run(ctx);
    } finally {
      await cleanUpTo(mark);
    }
  }
  ok = true;
} catch (error) {
  if (!interrupted) {
    console.error(`\n[bench] FAILED: ${error instanceof Error ? error.message : error}`);
  }
} finally {
  await cleanUpTo(0);
}
Deno.removeSignalListener("SIGINT", onInterrupt);
Deno.exit(interrupted ? 130 : ok ? 0 : 1);
