/**
 * `deno task test`: starts a throwaway local stack (fresh PostgreSQL cluster on free ports,
 * migrations, seed, gateway), runs every Deno test in tests/ against it over real HTTP,
 * then the pgTAP tests in supabase/tests/, stops everything and prints one summary line.
 * Extra arguments are passed to `deno test` (e.g. a file or `--filter name`).
 */
import { startStack } from "../local/stack.ts";
import { PG_BIN } from "../local/postgres.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function freePort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Runs a command, echoing its output, and returns the output for the summary. */
async function runEchoing(cmd: string, args: string[], env: Record<string, string> = {}) {
  const child = new Deno.Command(cmd, { args, env, cwd: ROOT, stdout: "piped", stderr: "inherit" })
    .spawn();
  let output = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    output += decoder.decode(chunk, { stream: true });
  }
  const status = await child.status;
  return { output, success: status.success };
}

// deno-lint-ignore no-control-regex -- matching terminal colour codes is the point
const stripAnsi = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "");

const stateDir = await Deno.makeTempDir({ prefix: "bivelio-test-" });
const stack = await startStack({
  stateDir,
  pgPort: freePort(),
  apiPort: freePort(),
  durable: false,
  // Short leases so the crash test's killed workers' jobs are picked up again quickly.
  leaseSeconds: 3,
  log: (line) => console.log(`[stack] ${line}`),
});

let passed = 0;
let failed = 0;
let ok = false;
try {
  // Integration tests in tests/, unit tests beside the modules in shared/. Files named on the
  // command line replace both (`deno task test tests/x_test.ts`).
  const paths = Deno.args.some((arg) => !arg.startsWith("-")) ? [] : ["tests/", "shared/"];
  const deno = await runEchoing(Deno.execPath(), ["test", "-A", ...paths, ...Deno.args], {
    BIVELIO_TEST_STACK: `${stateDir}/local.json`,
  });
  const denoSummary = /(\d+) passed.*?\|\s*(\d+) failed/.exec(stripAnsi(deno.output));
  passed += Number(denoSummary?.[1] ?? 0);
  failed += Number(denoSummary?.[2] ?? (deno.success ? 0 : 1));

  let pgtapOk = true;
  if (Deno.args.length === 0) {
    const url = new URL(stack.info.db_url);
    const pgtap = await runEchoing("pg_prove", [
      "--ext",
      ".sql",
      "-h",
      url.hostname,
      "-p",
      url.port,
      "-U",
      "postgres",
      "-d",
      "postgres",
      "supabase/tests/",
    ], { PGPASSWORD: decodeURIComponent(url.password), PATH: `${PG_BIN}:${Deno.env.get("PATH")}` });
    const tests = /Tests=(\d+)/.exec(pgtap.output);
    const bad = /Failed (\d+)\/(\d+) subtests/g;
    let pgFailed = 0;
    for (const match of pgtap.output.matchAll(bad)) pgFailed += Number(match[1]);
    if (!pgtap.success && pgFailed === 0) pgFailed = 1;
    passed += Number(tests?.[1] ?? 0) - pgFailed;
    failed += pgFailed;
    pgtapOk = pgtap.success;
  }
  ok = deno.success && pgtapOk && failed === 0;
} finally {
  await stack.stop();
  await Deno.remove(stateDir, { recursive: true }).catch(() => {});
}
console.log(`\ntests: ${passed} passed, ${failed} failed`);
Deno.exit(ok ? 0 : 1);
