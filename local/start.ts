/**
 * `deno task start`: the whole local stack with demo data, in .bivelio/ (kept between
 * runs). Ctrl-C stops everything.
 */
import { startStack } from "./stack.ts";

const stateDir = Deno.env.get("BIVELIO_STATE_DIR") ??
  new URL("../.bivelio", import.meta.url).pathname;
const stack = await startStack({
  stateDir,
  pgPort: Number(Deno.env.get("BIVELIO_DB_PORT") ?? 54322),
  apiPort: Number(Deno.env.get("BIVELIO_API_PORT") ?? 54321),
  durable: true,
  log: (line) => console.log(line),
});

const { info } = stack;
const [first] = info.orgs;
console.log(`
BiVelio local stack is running.

  API         ${info.api_url}/v1/<group>   (also ${info.api_url}/functions/v1/<group>)
  Auth        ${info.api_url}/auth/v1      (local Supabase Auth emulator)
  Database    ${info.db_url}
  Details     ${stateDir}/local.json        (demo users, API keys, anon key, JWT secret)

Try it (${first.name}, live secret key):

  curl -s -X POST '${info.api_url}/v1/contacts' \\
    -H 'X-API-Key: ${first.keys.live_secret}' \\
    -H 'Content-Type: application/json' \\
    -d '{"action":"list","data":{"per_page":5}}'

Sign in as ${first.user.email} / ${first.user.password}:

  curl -s -X POST '${info.api_url}/v1/auth/token?grant_type=password' \\
    -H 'apikey: ${info.anon_key}' \\
    -H 'Content-Type: application/json' \\
    -d '{"email":"${first.user.email}","password":"${first.user.password}"}'

Press Ctrl-C to stop.`);

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  console.log("\nstopping…");
  await stack.stop();
  console.log("stopped.");
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
