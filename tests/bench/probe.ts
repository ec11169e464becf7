/**
 * What a run cost, for dividing by the requests served (Linux only; where /proc or `ss`
 * cannot be read, the figures are left out):
 *
 * - CPU time of the server under test (found by its listening port), PostgreSQL (the
 *   postmaster and its backends), wrk, and the machine as a whole: with everything on few
 *   cores, CPU per request is what bounds throughput.
 * - TCP data segments sent to PostgreSQL (`ss` per-connection counters): one per write of
 *   queries, so per request about the number of database round trips (fewer when postgres.js
 *   sends queries of several requests in one write).
 */

const CLOCK_TICKS_PER_SECOND = 100;

export interface RunUse {
  /** CPU seconds used during the run. */
  server: number;
  postgres: number;
  wrk: number;
  /** All busy CPU seconds of the machine (every process). */
  machine: number;
  /** TCP data segments sent to PostgreSQL's port; null when `ss` is not available. */
  postgresSegmentsIn: number | null;
  /** Wall-clock seconds, for the machine's utilization. */
  wall: number;
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function readText(path: string) {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function pids() {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(entry.name)) out.push(Number(entry.name));
  }
  return out;
}

/** utime + stime (seconds) and parent of a process, or null when it is gone. */
function processStat(pid: number) {
  const text = readText(`/proc/${pid}/stat`);
  if (!text) return null;
  // The command name may hold spaces and parentheses; the fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return {
    ppid: Number(fields[1]),
    seconds: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND,
  };
}

/** The process listening on 127.0.0.1:`port` (TCP), or null. */
function listeningPid(port: number): number | null {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (readText(table) ?? "").split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length < 10 || columns[3] !== "0A") continue;
      const localPort = parseInt(columns[1].split(":").at(-1)!, 16);
      if (localPort === port) inodes.add(columns[9]);
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of pids()) {
    let fds: Deno.DirEntry[];
    try {
      fds = [...Deno.readDirSync(`/proc/${pid}/fd`)];
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`);
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (inode && inodes.has(inode)) return pid;
      } catch {
        // closed meanwhile
      }
    }
  }
  return null;
}

/** CPU seconds of `root` and of each of its descendants that are alive now, by pid. */
function treeSeconds(root: number | null) {
  const seconds = new Map<number, number>();
  if (root === null) return seconds;
  const stats = new Map<number, { ppid: number; seconds: number }>();
  for (const pid of pids()) {
    const stat = processStat(pid);
    if (stat) stats.set(pid, stat);
  }
  const inTree = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, stat] of stats) {
      if (!inTree.has(pid) && inTree.has(stat.ppid)) {
        inTree.add(pid);
        grew = true;
      }
    }
  }
  for (const pid of inTree) seconds.set(pid, stats.get(pid)?.seconds ?? 0);
  return seconds;
}

/** Data segments received on `port`, by established connection; null without `ss`. */
function segmentsReceived(port: number): Map<string, number> | null {
  try {
    const out = new Deno.Command("ss", {
      args: ["-tinH", "state", "established", `( sport = :${port} )`],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) return null;
    const segments = new Map<string, number>();
    let connection = "";
    // A line per connection ("recv-q send-q local peer"), then an indented line of details.
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      if (/^\S/.test(line)) connection = line.trim().split(/\s+/).slice(2).join(" ");
      const count = /\bdata_segs_in:(\d+)/.exec(line)?.[1];
      if (count) segments.set(connection, Number(count));
    }
    return segments;
  } catch {
    return null;
  }
}

/**
 * How much the counters grew, over the processes (or connections) alive at the end: one
 * that ended during the run takes its counts with it, and one that started counts from 0.
 */
function growth<K>(before: Map<K, number>, after: Map<K, number>) {
  return sum([...after].map(([key, value]) => value - (before.get(key) ?? 0)));
}

function machineBusySeconds() {
  const line = readText("/proc/stat")?.split("\n")[0];
  if (!line?.startsWith("cpu ")) return 0;
  // user nice system idle iowait irq softirq steal: everything but idle and iowait.
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds of this process's finished (reaped) children: where wrk's time ends up. */
function reapedChildrenSeconds() {
  const text = readText("/proc/self/stat");
  if (!text) return 0;
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS_PER_SECOND;
}

export interface RunProbe {
  /** Call right before wrk starts, then `stop` once it has exited. */
  start(): void;
  stop(): RunUse | null;
}

/** Measures the server listening on `serverPort` and the PostgreSQL on `postgresPort`. */
export function runProbe(serverPort: number, postgresPort: number): RunProbe {
  const supported = readText("/proc/stat") !== null;
  const serverPid = supported ? listeningPid(serverPort) : null;
  const postmasterPid = supported ? listeningPid(postgresPort) : null;
  const now = () => ({
    server: treeSeconds(serverPid),
    postgres: treeSeconds(postmasterPid),
    wrk: reapedChildrenSeconds(),
    machine: machineBusySeconds(),
    segments: segmentsReceived(postgresPort),
    at: performance.now(),
  });
  let before: ReturnType<typeof now> | null = null;
  return {
    start() {
      if (serverPid !== null) before = now();
    },
    stop() {
      if (!before) return null;
      const after = now();
      return {
        server: growth(before.server, after.server),
        postgres: growth(before.postgres, after.postgres),
        wrk: after.wrk - before.wrk,
        machine: after.machine - before.machine,
        postgresSegmentsIn: before.segments && after.segments
          ? growth(before.segments, after.segments)
          : null,
        wall: (after.at - before.at) / 1000,
      };
    },
  };
}

/**
 * CPU seconds each named process tree (by its root's pid; the postmaster for PostgreSQL)
 * used between this call and `stop()`: where a section's cost per unit of work goes.
 */
export function cpuMeter(roots: Record<string, number | null>) {
  const now = () => new Map(Object.entries(roots).map(([name, pid]) => [name, treeSeconds(pid)]));
  const before = now();
  return {
    stop(): Record<string, number> {
      const after = now();
      return Object.fromEntries(
        Object.keys(roots).map((name) => [name, growth(before.get(name)!, after.get(name)!)]),
      );
    },
  };
}

/** The process listening on 127.0.0.1:`port` (a stack's PostgreSQL, a server), or null. */
export const pidListeningOn = (port: number) =>
  readText("/proc/stat") === null ? null : listeningPid(port);
