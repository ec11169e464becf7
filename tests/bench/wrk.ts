/**
 * The load generator every benchmark section shares: wrk (Debian package `wrk`), driven by
 * a generated Lua script that sets the method, headers and body, and that reports its
 * figures as one JSON line from wrk's `done` hook (so nothing depends on wrk's text layout).
 */

import type { RunProbe, RunUse } from "./probe.ts";

const WRK_PACKAGE = "wrk";
const MARKER = "BENCH_RESULT ";

/** One HTTP request that wrk repeats as fast as the target answers. */
export interface WrkTarget {
  /** A short label for the tables ("baseline", "ours"). */
  label: string;
  url: string;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
}

export interface WrkLoad {
  connections: number;
  threads: number;
  seconds: number;
  /** A request slower than this counts as a timeout error. */
  timeoutSeconds: number;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** Latency figures in milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  /** Where the CPU time went during the run, when a probe was given and /proc is readable. */
  cpu: RunUse | null;
  /** wrk's own report, for when something looks off. */
  output: string;
}

const isRoot = () => Deno.uid() === 0;

/** Whether wrk can be started (`wrk -v` prints its version and usage, exiting 1). */
async function wrkInstalled() {
  try {
    await new Deno.Command("wrk", { args: ["-v"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function run(cmd: string, args: string[]) {
  const out = await new Deno.Command(cmd, {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive", PATH: Deno.env.get("PATH") ?? "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  }
}

/** Installs wrk from Debian's packages when it is missing and we are root. */
export async function ensureWrk(log: (line: string) => void) {
  if (await wrkInstalled()) return;
  if (!isRoot()) {
    throw new Error(
      `The benchmarks need the load generator wrk (Debian package '${WRK_PACKAGE}').\n` +
        `Install it with: sudo apt-get update && sudo apt-get install -y ${WRK_PACKAGE}`,
    );
  }
  log(`Installing ${WRK_PACKAGE} from Debian's packages…`);
  await run("apt-get", ["update"]);
  await run("apt-get", ["install", "-y", "--no-install-recommends", WRK_PACKAGE]);
  if (!(await wrkInstalled())) throw new Error("wrk is still not on the PATH after installing it.");
}

/** A Lua long string holding `text` verbatim (no escapes to get wrong). */
function luaString(text: string) {
  let level = 1;
  while (text.includes(`]${"=".repeat(level)}]`)) level++;
  const eq = "=".repeat(level);
  return `[${eq}[${text}]${eq}]`;
}

function luaScript(target: WrkTarget) {
  const lines = [`wrk.method = ${luaString(target.method)}`];
  if (target.body !== undefined) lines.push(`wrk.body = ${luaString(target.body)}`);
  for (const [name, value] of Object.entries(target.headers)) {
    lines.push(`wrk.headers[ ${luaString(name)} ] = ${luaString(value)}`);
  }
  const fields = {
    requests: "summary.requests",
    duration_us: "summary.duration",
    p50_us: "latency:percentile(50)",
    p90_us: "latency:percentile(90)",
    p99_us: "latency:percentile(99)",
    max_us: "latency.max",
    mean_us: "latency.mean",
    connect: "summary.errors.connect",
    read: "summary.errors.read",
    write: "summary.errors.write",
    timeout: "summary.errors.timeout",
    status: "summary.errors.status",
  };
  const format = Object.keys(fields).map((name) => `"${name}":%.0f`).join(",");
  lines.push(
    "",
    "function done(summary, latency, requests)",
    `  io.write(string.format(${luaString(`${MARKER}{${format}}\n`)},`,
    `    ${Object.values(fields).join(",\n    ")}))`,
    "end",
    "",
  );
  return lines.join("\n");
}

const running = new Set<Deno.ChildProcess>();

/** Stops the wrk runs under way (when the benchmark is interrupted). */
export function killRunningWrk() {
  for (const child of running) {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
}

/** Runs wrk against `target` and returns its figures (errors are reported, not thrown). */
export async function runWrk(
  target: WrkTarget,
  load: WrkLoad,
  workDir: string,
  probe?: RunProbe,
) {
  const script = `${workDir}/wrk-${target.label.replace(/\W+/g, "-")}.lua`;
  await Deno.writeTextFile(script, luaScript(target));
  probe?.start();
  const child = new Deno.Command("wrk", {
    args: [
      `--threads=${load.threads}`,
      `--connections=${load.connections}`,
      `--duration=${load.seconds}s`,
      `--timeout=${load.timeoutSeconds}s`,
      "--latency",
      `--script=${script}`,
      target.url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  running.add(child);
  const out = await child.output().finally(() => running.delete(child));
  const cpu = probe?.stop() ?? null;
  const output = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const line = output.split("\n").find((l) => l.startsWith(MARKER));
  if (!out.success || !line) {
    throw new Error(`wrk failed against ${target.label} (${target.url}):\n${output}`);
  }
  const raw = JSON.parse(line.slice(MARKER.length)) as Record<string, number>;
  const seconds = raw.duration_us / 1e6;
  const result: WrkResult = {
    requests: raw.requests,
    seconds,
    requestsPerSecond: raw.requests / seconds,
    latencyMs: {
      p50: raw.p50_us / 1000,
      p90: raw.p90_us / 1000,
      p99: raw.p99_us / 1000,
      max: raw.max_us / 1000,
      mean: raw.mean_us / 1000,
    },
    errors: {
      connect: raw.connect,
      read: raw.read,
      write: raw.write,
      timeout: raw.timeout,
      status: raw.status,
    },
    cpu,
    output,
  };
  return result;
}

/**
 * Throws when wrk saw any failed request. wrk's status counter holds the responses with a
 * status of 400 or more ("Non-2xx or 3xx responses"); the socket counters hold refused,
 * reset and timed-out requests.
 */
export function assertNoErrors(target: WrkTarget, result: WrkResult) {
  const { connect, read, write, timeout, status } = result.errors;
  const problems = [
    status && `${status} non-2xx/3xx responses`,
    connect && `${connect} connect errors`,
    read && `${read} read errors`,
    write && `${write} write errors`,
    timeout && `${timeout} timeouts`,
  ].filter(Boolean);
  if (problems.length > 0) {
    throw new Error(
      `${target.label} (${target.url}): ${problems.join(", ")} out of ${result.requests} ` +
        `requests. wrk said:\n${result.output}`,
    );
  }
  if (result.requests === 0) {
    throw new Error(
      `${target.label} (${target.url}) answered no request. wrk said:\n${result.output}`,
    );
  }
}
