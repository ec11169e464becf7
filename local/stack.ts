/**
 * Brings up the whole local stack: PostgreSQL 15 with pg_cron, the Supabase bootstrap,
 * migrations, the seed and demo keys (first start only), the gateway and the worker
 * (each restarted whenever it dies, as a process manager would in production). Used by
 * `deno task start` (durable, in .bivelio/) and by the tests and benchmarks (throwaway).
 */
import postgres from "postgres";
import { mintApiKey } from "../shared/api-keys/keys.ts";
import { signApiRoleKey } from "./auth-emulator.ts";
import { connectDemoMcpProviders } from "./demo-mcp.ts";
import { connectDemoIntegrations, DEMO_KEYS, DEMO_ORGS, type DemoIntegrations } from "./demo.ts";
import { connectDemoCalendars } from "./demo-calendar.ts";
import { migrate, runSqlFile } from "./migrate.ts";
import { ensurePostgresInstalled, startCluster, stopCluster } from "./postgres.ts";

const ROOT = new URL("../", import.meta.url);

export interface DemoOrg {
  org_id: string;
  name: string;
  plan: string;
  user: { email: string; password: string };
  keys: Record<keyof typeof DEMO_KEYS, string>;
  /** The live integrations at the stand-ins (local/demo.ts), to deliver inbound updates. */
  integrations?: DemoIntegrations;
}

/** What .bivelio/local.json holds: where everything is and the demo credentials. */
export interface StackInfo {
  api_url: string;
  db_url: string;
  jwt_secret: string;
  /** What the `worker` function wants as `Authorization: Bearer …` (pg_net sends it in production). */
  worker_secret: string;
  /** BIVELIO_SECRETS_KEY: seals provider credentials in the database (base64, 32 bytes). */
  secrets_key: string;
  anon_key: string;
  service_role_key: string;
  /** Files holding the pid of the gateway and of each worker process (tests kill them). */
  gateway_pid_file: string;
  /**
   * The Gemini the functions and workers use: the local stand-in (with its local key, which
   * tests use to call it) or, when `deno task start` ran with GEMINI_API_KEY, the real one
   * (its key is never written here).
   */
  gemini: { base_url: string; stand_in: boolean; api_key: string | null };
  /** The Telegram Bot API stand-in (local/stand-ins/telegram.ts): TELEGRAM_API_BASE_URL. */
  telegram: { base_url: string };
  /**
   * The WhatsApp Cloud API stand-in (local/stand-ins/whatsapp.ts): WHATSAPP_API_BASE_URL.
   * Its control routes (`/_standin/inbound`, `/_standin/status`) deliver signed callbacks.
   */
  whatsapp: { base_url: string };
  /**
   * The Google OAuth token endpoint and Calendar API v3 stand-in (local/stand-ins/google.ts):
   * GOOGLE_API_BASE_URL, and GOOGLE_OAUTH_TOKEN_URL at `/token`. The demo organizations'
   * calendars are connected to it (local/demo-calendar.ts).
   */
  google: { base_url: string };
  /**
   * The demo MCP server (local/stand-ins/mcp-google-sheets.ts), connected as `google_sheets`
   * for the demo organizations: its Streamable HTTP URL and the bearer token it wants.
   */
  mcp_google_sheets: { url: string; bearer_token: string };
  /**
   * The mail catcher (local/stand-ins/mail.ts): SMTP on smtp_host:smtp_port (plain, no TLS)
   * for this user, what it caught at `<http_url>/messages`.
   */
  mail: MailInfo;
  worker_pid_files: string[];
  orgs: DemoOrg[];
}

export interface StackOptions {
  stateDir: string;
  pgPort: number;
  apiPort: number;
  durable: boolean;
  /** Worker processes to run (default 1). */
  workers?: number;
  /** The workers' job lease (default 30 s; tests use a short one to recover fast). */
  leaseSeconds?: number;
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

/** A BIVELIO_SECRETS_KEY: the base64 of 32 random bytes, as `openssl rand -base64 32`. */
const randomSecretsKey = () =>
  btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));

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

/**
 * Runs a local/ script and starts it again whenever it exits, until stopped, as a process
 * manager would in production. The current child's pid is kept in `pidFile`.
 */
function supervise(
  script: string,
  env: Record<string, string>,
  log: (line: string) => void,
  pidFile: string,
) {
  let child!: Deno.ChildProcess;
  let stopping = false;
  const spawn = () => {
    child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        new URL("deno.json", ROOT).pathname,
        new URL(`local/${script}`, ROOT).pathname,
      ],
      env,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    Deno.writeTextFileSync(pidFile, String(child.pid));
    const current = child;
    current.status.then((status) => {
      if (stopping || current !== child) return;
      log(`${script} exited (${status.signal ?? status.code}); starting it again`);
      setTimeout(() => !stopping && spawn(), 200);
    });
  };
  spawn();
  return {
    /** The first child, for watching start-up. */
    first: child,
    async stop() {
      stopping = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
    },
  };
}

/** A port nothing listens on now. */
function freePort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Gemini for the functions and workers: the local stand-in (local/stand-ins/gemini.ts, with a
 * key of its own), unless `deno task start` runs with GEMINI_API_KEY set: then the real Gemini
 * (at GEMINI_BASE_URL if that is set too). Throwaway stacks (tests, benchmarks) always use the
 * stand-in: deterministic, free and scriptable.
 */
async function startGemini(options: StackOptions, log: (line: string) => void) {
  const realKey = options.durable ? Deno.env.get("GEMINI_API_KEY") : undefined;
  if (realKey) {
    const baseUrl = Deno.env.get("GEMINI_BASE_URL");
    log("Gemini: the real one (GEMINI_API_KEY is set)");
    return {
      info: {
        base_url: baseUrl ?? "https://generativelanguage.googleapis.com",
        stand_in: false,
        api_key: null,
      },
      env: { GEMINI_API_KEY: realKey, ...(baseUrl ? { GEMINI_BASE_URL: baseUrl } : {}) },
      stop: async () => {},
    };
  }
  const apiKey = `standin-${randomSecret(16)}`;
  const { baseUrl, stop } = await startStandIn("gemini", options, log, {
    GEMINI_API_KEY: apiKey,
  });
  log("Gemini: the stand-in (set GEMINI_API_KEY before start to use the real Gemini)");
  return {
    info: { base_url: baseUrl, stand_in: true, api_key: apiKey },
    env: { GEMINI_API_KEY: apiKey, GEMINI_BASE_URL: baseUrl },
    stop,
  };
}

/**
 * Runs a stand-in (local/stand-ins/<name>.ts, listening on env PORT) under supervision and
 * waits until its `GET /_standin/health` answers. Returns its base URL.
 */
async function startStandIn(
  name: string,
  options: StackOptions,
  log: (line: string) => void,
  env: Record<string, string> = {},
) {
  const baseUrl = `http://127.0.0.1:${freePort()}`;
  const standIn = supervise(
    `stand-ins/${name}.ts`,
    { ...env, PORT: new URL(baseUrl).port },
    log,
    `${options.stateDir}/${name}-stand-in.pid`,
  );
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      const response = await fetch(`${baseUrl}/_standin/health`);
      await response.body?.cancel();
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await standIn.stop();
      throw new Error(`The ${name} stand-in did not start in 30 s.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  log(`${name} stand-in on ${baseUrl}`);
  return { baseUrl, stop: standIn.stop };
}

export interface MailInfo {
  smtp_host: string;
  smtp_port: number;
  http_url: string;
  username: string;
  password: string;
}

/**
 * The mail catcher, SMTP for the demo email integrations. A durable stack keeps its SMTP
 * port (BIVELIO_MAIL_SMTP_PORT, default 54325, as Supabase's own catcher) and its password:
 * integrations saved in the database point at them.
 */
async function startMail(
  options: StackOptions,
  previous: MailInfo | undefined,
  log: (line: string) => void,
) {
  const smtpPort = options.durable
    ? Number(Deno.env.get("BIVELIO_MAIL_SMTP_PORT") ?? 54325)
    : freePort();
  // `||`: a state folder from before the catcher has none, a new one empty ones.
  const username = previous?.username || "bivelio-demo";
  const password = previous?.password || `mail-${randomSecret(12)}`;
  const catcher = await startStandIn("mail", options, log, {
    SMTP_PORT: String(smtpPort),
    MAIL_USERNAME: username,
    MAIL_PASSWORD: password,
    MAIL_STATE_FILE: `${options.stateDir}/mail-mailboxes.json`,
  });
  const info: MailInfo = {
    smtp_host: "127.0.0.1",
    smtp_port: smtpPort,
    http_url: catcher.baseUrl,
    username,
    password,
  };
  log(
    `mail catcher: SMTP on 127.0.0.1:${smtpPort} (${username}), caught mail at ${info.http_url}/messages`,
  );
  return { info, stop: catcher.stop };
}

export async function startStack(options: StackOptions): Promise<RunningStack> {
  const log = options.log ?? (() => {});
  await ensurePostgresInstalled(log);
  const dataDir = `${options.stateDir}/postgres`;
  const infoPath = `${options.stateDir}/local.json`;
  const dbUrl = await startCluster({ dataDir, port: options.pgPort, durable: options.durable });
  log(`PostgreSQL 15 with pg_cron on ${dbUrl}`);

  const { wasEmpty } = await migrate(dbUrl, log);
  let info: StackInfo | null = wasEmpty ? null : readInfo(infoPath);
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
      worker_secret: randomSecret(),
      secrets_key: randomSecretsKey(),
      anon_key: await signApiRoleKey(jwtSecret, "anon"),
      service_role_key: await signApiRoleKey(jwtSecret, "service_role"),
      gateway_pid_file: "",
      worker_pid_files: [],
      gemini: { base_url: "", stand_in: true, api_key: null },
      telegram: { base_url: "" },
      whatsapp: { base_url: "" },
      google: { base_url: "" },
      mcp_google_sheets: { url: "", bearer_token: "" },
      mail: { smtp_host: "", smtp_port: 0, http_url: "", username: "", password: "" },
      orgs: await mintDemoKeys(dbUrl),
    };
  }
  const workerPidFiles = Array.from(
    { length: options.workers ?? 1 },
    (_, n) => `${options.stateDir}/worker-${n + 1}.pid`,
  );
  const gatewayPidFile = `${options.stateDir}/gateway.pid`;
  const gemini = await startGemini(options, log);
  const telegram = await startStandIn("telegram", options, log, {
    TELEGRAM_STATE_FILE: `${options.stateDir}/telegram-stand-in.json`,
  });
  const whatsapp = await startStandIn("whatsapp", options, log);
  const mail = await startMail(options, info.mail, log);
  const google = await startStandIn("google", options, log, {
    GOOGLE_STATE_FILE: `${options.stateDir}/google-stand-in.json`,
    // Mail sent through its Gmail API shows in the mail catcher with the SMTP mail.
    MAIL_CATCHER_URL: mail.info.http_url,
  });
  const mcpToken = `mcp-${randomSecret(16)}`;
  const mcpSheets = await startStandIn("mcp-google-sheets", options, log, {
    MCP_BEARER_TOKEN: mcpToken,
  });
  info = {
    ...info,
    api_url: apiUrl,
    db_url: dbUrl,
    gateway_pid_file: gatewayPidFile,
    worker_pid_files: workerPidFiles,
    gemini: gemini.info,
    telegram: { base_url: telegram.baseUrl },
    whatsapp: { base_url: whatsapp.baseUrl },
    google: { base_url: google.baseUrl },
    mcp_google_sheets: { url: `${mcpSheets.baseUrl}/mcp`, bearer_token: mcpToken },
    mail: mail.info,
    // A state folder from before sealed secrets has none: made once, then kept (a new key
    // would leave what the old one sealed unreadable).
    secrets_key: info.secrets_key ?? randomSecretsKey(),
  };
  const functionEnv = {
    SUPABASE_DB_URL: dbUrl,
    SUPABASE_URL: apiUrl,
    BIVELIO_JWT_SECRET: info.jwt_secret,
    BIVELIO_WORKER_SECRET: info.worker_secret ?? "",
    BIVELIO_SECRETS_KEY: info.secrets_key,
    // Supabase gives every function its service role key; shared/platform/storage.ts uses it.
    SUPABASE_SERVICE_ROLE_KEY: info.service_role_key,
    // Local receivers (webhooks, http_request steps) run on this machine.
    BIVELIO_ALLOW_LOOPBACK_TARGETS: "1",
    ...gemini.env,
    TELEGRAM_API_BASE_URL: telegram.baseUrl,
    WHATSAPP_API_BASE_URL: whatsapp.baseUrl,
    GOOGLE_API_BASE_URL: google.baseUrl,
    GOOGLE_OAUTH_TOKEN_URL: `${google.baseUrl}/token`,
  };

  const gateway = supervise(
    "gateway.ts",
    {
      ...functionEnv,
      PORT: String(options.apiPort),
      BIVELIO_ANON_KEY: info.anon_key,
      BIVELIO_SERVICE_ROLE_KEY: info.service_role_key,
      // The Storage emulator's files, beside the database, so a restart keeps them.
      BIVELIO_STORAGE_DIR: `${options.stateDir}/storage`,
    },
    log,
    gatewayPidFile,
  );
  try {
    await waitForHealth(apiUrl, gateway.first);
  } catch (error) {
    await gateway.stop();
    await gemini.stop();
    await telegram.stop();
    await whatsapp.stop();
    await google.stop();
    await mail.stop();
    await mcpSheets.stop();
    await stopCluster(dataDir);
    throw error;
  }
  const workers = workerPidFiles.map((pidFile) =>
    supervise(
      "worker.ts",
      { ...functionEnv, BIVELIO_WORKER_LEASE_SECONDS: String(options.leaseSeconds ?? 30) },
      log,
      pidFile,
    )
  );
  log(`${workerPidFiles.length} worker process(es) running the job queue`);
  try {
    const demoIntegrations = await connectDemoIntegrations(info.orgs, {
      apiUrl,
      dbUrl,
      secretsKey: info.secrets_key,
      whatsappBaseUrl: whatsapp.baseUrl,
      telegramBaseUrl: telegram.baseUrl,
      mail: mail.info,
    });
    info = {
      ...info,
      orgs: info.orgs.map((org) => ({ ...org, integrations: demoIntegrations[org.org_id] })),
    };
    log("demo integrations: WhatsApp, Telegram and email connected to the stand-ins");
  } catch (error) {
    // The stack is usable without them; messages/send then says which channel is missing.
    log(`demo integrations could not be connected: ${(error as Error).message}`);
  }
  try {
    await connectDemoCalendars(apiUrl, dbUrl, info.orgs, google.baseUrl);
    log("demo Google Calendar: connected to the Google stand-in");
  } catch (error) {
    log(`demo Google Calendar could not be connected: ${(error as Error).message}`);
  }
  try {
    await connectDemoMcpProviders(apiUrl, info.orgs, info.mcp_google_sheets);
    log("demo MCP provider: google_sheets connected to the local demo MCP server");
  } catch (error) {
    log(`the demo MCP provider could not be connected: ${(error as Error).message}`);
  }
  Deno.writeTextFileSync(infoPath, JSON.stringify(info, null, 2) + "\n");

  let stopped = false;
  return {
    info,
    async stop() {
      if (stopped) return;
      stopped = true;
      // All at once: Ctrl-C in a terminal signals the children too, and a supervisor that
      // is not yet stopping would start its child again.
      await Promise.all(
        [gateway, ...workers, gemini, telegram, whatsapp, google, mail, mcpSheets].map((child) =>
          child.stop()
        ),
      );
      await stopCluster(dataDir);
    },
  };
}
