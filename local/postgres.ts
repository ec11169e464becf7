/**
 * A private PostgreSQL 15 cluster with pg_cron for the local stack and the tests.
 * Installs PostgreSQL 15, pg_cron and pgTAP from Debian's packages when missing and we
 * are root; otherwise says exactly what to install.
 */
import { dirname } from "node:path";

export const PG_BIN = "/usr/lib/postgresql/15/bin";
const REQUIRED_FILES: Record<string, string> = {
  "postgresql-15": `${PG_BIN}/postgres`,
  "postgresql-15-cron": "/usr/lib/postgresql/15/lib/pg_cron.so",
  "postgresql-15-pgtap": "/usr/share/postgresql/15/extension/pgtap.control",
  "libtap-parser-sourcehandler-pgtap-perl": "/usr/bin/pg_prove",
};

const isRoot = () => Deno.uid() === 0;

async function run(
  cmd: string[],
  opts: { asPostgres?: boolean; env?: Record<string, string> } = {},
) {
  const argv = opts.asPostgres && isRoot() ? ["runuser", "-u", "postgres", "--", ...cmd] : cmd;
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${argv.join(" ")} failed:\n${text}`);
  }
  return new TextDecoder().decode(out.stdout);
}

function exists(path: string) {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Makes sure PostgreSQL 15, pg_cron and pgTAP are installed. */
export async function ensurePostgresInstalled(log: (line: string) => void = console.log) {
  const missing = Object.entries(REQUIRED_FILES).filter(([, file]) => !exists(file)).map(([p]) =>
    p
  );
  if (missing.length === 0) return;
  if (!isRoot()) {
    throw new Error(
      `Missing Debian packages: ${missing.join(" ")}.\n` +
        `Install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(" ")}`,
    );
  }
  log(`Installing ${missing.join(", ")} from Debian's packages…`);
  const env = { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH") ?? "" };
  await run(["apt-get", "update"], { env });
  await run(["apt-get", "install", "-y", "--no-install-recommends", ...missing], { env });
}

export interface ClusterOptions {
  dataDir: string;
  port: number;
  /** Tests turn durability off for speed; the local stack keeps it on. */
  durable: boolean;
}

export const DB_PASSWORD = "postgres";

export function databaseUrl(port: number) {
  return `postgresql://postgres:${DB_PASSWORD}@127.0.0.1:${port}/postgres`;
}

/** Creates the cluster when its folder is empty, then starts it. Returns its URL. */
export async function startCluster({ dataDir, port, durable }: ClusterOptions) {
  const parent = dirname(dataDir);
  Deno.mkdirSync(parent, { recursive: true });
  if (isRoot()) await run(["chown", "postgres:postgres", parent]);
  if (!exists(`${dataDir}/PG_VERSION`)) {
    const pwfile = `${parent}/.pgpass-init`;
    Deno.writeTextFileSync(pwfile, DB_PASSWORD);
    if (isRoot()) await run(["chown", "postgres:postgres", pwfile]);
    try {
      await run([
        `${PG_BIN}/initdb`,
        "-D",
        dataDir,
        "-U",
        "postgres",
        "--pwfile",
        pwfile,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
      ], { asPostgres: true });
    } finally {
      Deno.removeSync(pwfile);
    }
  }
  // Settings are rewritten on every start so a changed port or mode takes effect.
  const settings = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dataDir}'`,
    `max_connections = 200`,
    `shared_preload_libraries = 'pg_cron'`,
    `cron.database_name = 'postgres'`,
    `cron.use_background_workers = on`,
    `max_worker_processes = 32`,
    `timezone = 'UTC'`,
    `log_min_messages = warning`,
    ...(durable ? [] : [`fsync = off`, `synchronous_commit = off`, `full_page_writes = off`]),
  ];
  const autoConf = `${dataDir}/bivelio.conf`;
  Deno.writeTextFileSync(autoConf, settings.join("\n") + "\n");
  const mainConf = `${dataDir}/postgresql.conf`;
  const conf = Deno.readTextFileSync(mainConf);
  if (!conf.includes("include_if_exists = 'bivelio.conf'")) {
    Deno.writeTextFileSync(mainConf, conf + "\ninclude_if_exists = 'bivelio.conf'\n");
  }
  if (isRoot()) await run(["chown", "postgres:postgres", autoConf, mainConf]);
  if (!exists(`${dataDir}/postmaster.pid`)) {
    const log = `${dataDir}/server.log`;
    try {
      await run([`${PG_BIN}/pg_ctl`, "-D", dataDir, "-l", log, "-w", "start"], {
        asPostgres: true,
      });
    } catch (error) {
      // pg_ctl only says "examine the log": show its end (a port in use, a bad setting).
      const tail = Deno.readTextFileSync(log).trimEnd().split("\n").slice(-5).join("\n");
      throw new Error(`PostgreSQL did not start on port ${port}. The end of ${log}:\n${tail}`, {
        cause: error,
      });
    }
  }
  return databaseUrl(port);
}

export async function stopCluster(dataDir: string) {
  if (!exists(`${dataDir}/postmaster.pid`)) return;
  await run([`${PG_BIN}/pg_ctl`, "-D", dataDir, "-m", "fast", "-w", "stop"], { asPostgres: true });
}
