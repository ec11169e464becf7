/**
 * Brings up the whole local stack: PostgreSQL 15 with pg_cron, the Supabase bootstrap,
 * migrations, the seed and demo keys (first start only), and the gateway. Used by
 * `deno task start` (durable, in .bivelio/) and by the tests and benchmarks (throwaway).
 */
import postgres from "postgres";
import { mintApiKey } from "../shared/api-keys.ts";
import { signApiRoleKey } from "./auth-emulator.ts";
import { DEMO_KEYS, DEMO_ORGS } from "./demo.ts";
import { migrate, runSqlFile } from "./migrate.ts";
import { ensurePostgresInstalled, startCluster, stopCluster } from "./postgres.ts";

const ROOT = new URL("../", import.meta.url);

export interface DemoOrg {
  org_id: string;
  name: string;
  plan: string;
  user: { email: string; password: string };
  keys: Record<keyof typeof DEMO_KEYS, string>;
}

/** What .bivelio/local.json holds: where everything is and the demo credentials. */
export interface StackInfo {
  api_url: string;
  db_url: string;
  jwt_secret: string;
  anon_key: string;
  service_role_key: string;
  orgs: DemoOrg[];
}

export interface StackOptions {
  stateDir: string;
  pgPort: number;
  apiPort: number;
  durable: boolean;
  log?: (line: string) => void;
}

export interface RunningStack {
  info: StackInfo;
  stop(): Promise<void>;
}

function randomSecret(bytes = 32) {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function readInfo(path: string): StackInfo | null {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return null;
  }
}

async function mintDemoKeys(databaseUrl: string): Promise<DemoOrg[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const orgs: DemoOrg[] = [];
    for (const org of DEMO_ORGS) {
      const keys = {} as DemoOrg["keys"];
      for (const name of Object.keys(DEMO_KEYS) as (keyof typeof DEMO_KEYS)[]) {
        const spec = DEMO_KEYS[name];
        const minted = await mintApiKey(
          sql,
          { name: `demo ${name}`, ...spec, scopes: [...spec.scopes] },
          org.org_id,
        );
        keys[name] = minted.key;
      }
      orgs.push({ ...org, user: { ...org.user }, keys });
    }
    return orgs;
  } finally {
    await sql.end();
  }
}

async function waitForHealth(url: string, gateway: Deno.ChildProcess) {
  const deadline = Date.now() + 30_000;
  let exited = false;
  gateway.status.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      const response = await fetch(`${url}/v1/health`);
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    exited ? "The gateway exited during start-up." : "The gateway did not become healthy in 30 s.",
  );
}

export async function startStack(options: StackOptions): Promise<RunningStack> {
  const log = options.log ?? (() => {});
  await ensurePostgresInstalled(log);
  const dataDir = `${options.stateDir}/postgres`;
  const infoPath = `${options.stateDir}/local.json`;
  const dbUrl = await startCluster({ dataDir, port: options.pgPort, durable: options.durable });
  log(`PostgreSQL 15 with pg_cron on ${dbUrl}`);

  const { wasEmpty } = await migrate(dbUrl, log);
  let info = wasEmpty ? null : readInfo(infoPath);
  const apiUrl = `http://127.0.0.1:${options.apiPort}`;
  if (!info) {
    if (wasEmpty) {
      await runSqlFile(dbUrl, new URL("supabase/seed.sql", ROOT));
      log("seeded demo data (supabase/seed.sql)");
    }
    const jwtSecret = randomSecret();
    info = {
      api_url: apiUrl,
      db_url: dbUrl,
      jwt_secret: jwtSecret,
      anon_key: await signApiRoleKey(jwtSecret, "anon"),
      service_role_key: await signApiRoleKey(jwtSecret, "service_role"),
      orgs: await mintDemoKeys(dbUrl),
    };
  }
  info = { ...info, api_url: apiUrl, db_url: dbUrl };

  const gateway = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      new URL("deno.json", ROOT).pathname,
      new URL("local/gateway.ts", ROOT).pathname,
    ],
    env: {
      PORT: String(options.apiPort),
      SUPABASE_DB_URL: dbUrl,
      SUPABASE_URL: apiUrl,
      BIVELIO_JWT_SECRET: info.jwt_secret,
      BIVELIO_ANON_KEY: info.anon_key,
      BIVELIO_SERVICE_ROLE_KEY: info.service_role_key,
    },
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  try {
    await waitForHealth(apiUrl, gateway);
  } catch (error) {
    gateway.kill("SIGTERM");
    await gateway.status;
    await stopCluster(dataDir);
    throw error;
  }
  Deno.writeTextFileSync(infoPath, JSON.stringify(info, null, 2) + "\n");

  let stopped = false;
  return {
    info,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        gateway.kill("SIGTERM");
      } catch {
        // already gone
      }
      await gateway.status;
      await stopCluster(dataDir);
    },
  };
}
