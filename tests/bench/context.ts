/**
 * What every benchmark section gets from `deno task bench` (tests/bench/run.ts): the running
 * throwaway stack, a service database connection, a scratch folder, the load settings, a
 * place to register clean-up that runs even when the section fails, and helpers to start
 * servers of their own.
 */
import type postgres from "postgres";
import type { StackInfo } from "../../local/stack.ts";

export interface BenchSettings {
  /** Measured seconds per run (BENCH_SECONDS, default 10). */
  seconds: number;
  /** Seconds of unmeasured load before every measured run (BENCH_WARMUP_SECONDS, default 3). */
  warmupSeconds: number;
  /** How many times each target is measured, alternating (BENCH_ROUNDS, default 2). */
  rounds: number;
  connections: number;
  threads: number;
}

export interface BenchContext {
  stack: StackInfo;
  /** A service connection (bypasses RLS): for setting up benchmark data only. */
  db: postgres.Sql;
  /** A scratch folder removed at the end. */
  workDir: string;
  settings: BenchSettings;
  /**
   * Registers clean-up, run last-registered first when the current section ends (also
   * when it fails or the run is interrupted).
   */
  defer(cleanup: () => void | Promise<void>): void;
  log(line: string): void;
}

/** One section of `deno task bench`: sets up its data, measures, prints its table. */
export interface BenchSection {
  /** Selects the section: `deno task bench <name>` runs only the named sections. */
  name: string;
  run(ctx: BenchContext): Promise<void>;
}

export function freePort() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

export interface DenoServer {
  url: string;
  port: number;
  pid: number;
  /** Stops it now (it is also stopped at the end of the section). */
  stop(): Promise<void>;
}

/**
 * Starts a Deno script as its own process (so it gets its own core time, as the gateway
 * does) on a free port and waits until it accepts connections.
 */
export async function startDenoServer(
  ctx: BenchContext,
  script: URL,
  env: Record<string, string>,
): Promise<DenoServer> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, script.pathname],
    env: { ...env, PORT: String(port) },
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      if (!exited) {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
      }
      await status;
    })();
  ctx.defer(stop);

  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !exited) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return { url: `http://127.0.0.1:${port}/`, port, pid: child.pid, stop };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(
    exited
      ? `${script.pathname} exited during start-up.`
      : `${script.pathname} did not listen on port ${port} within 30 s.`,
  );
}

export function median(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
