/**
 * Baseline-versus-ours measurement shared by the sections: both targets are warmed up and
 * measured alternately (B, O, B, O, …) so machine noise touches both, and the medians are
 * compared with the section's targets in one table.
 */
import { type BenchContext, median } from "./context.ts";
import {
  type CpuPerRequest,
  cpuPerRequest,
  measure,
  ms,
  percent,
  perRequest,
  rps,
  table,
  us,
} from "./measure.ts";
import type { WrkResult, WrkTarget } from "./wrk.ts";

export interface Targets {
  /** ours / baseline requests per second must be at least this. */
  minThroughputRatio: number;
  /** ours / baseline p99 latency must be at most this. */
  maxP99Ratio: number;
}

export interface Comparison {
  title: string;
  /** Lines printed under the title: what each target is. */
  notes?: string[];
  baseline: WrkTarget;
  ours: WrkTarget;
  targets: Targets;
}

export interface Summary {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  /** Medians of the runs' CPU figures; null when /proc could not be read. */
  cpu: CpuPerRequest | null;
  runs: WrkResult[];
}

export interface ComparisonResult {
  comparison: Comparison;
  baseline: Summary;
  ours: Summary;
  throughputRatio: number;
  p99Ratio: number;
  throughputPass: boolean;
  p99Pass: boolean;
}

export function summarize(runs: WrkResult[]): Summary {
  const cpus = runs.map((r) => cpuPerRequest(r.cpu, r.requests));
  const known = cpus.filter((c): c is CpuPerRequest => c !== null);
  const cpuMedian = (key: Exclude<keyof CpuPerRequest, "dbWrites">) =>
    median(known.map((c) => c[key]));
  return {
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50: median(runs.map((r) => r.latencyMs.p50)),
    p99: median(runs.map((r) => r.latencyMs.p99)),
    cpu: known.length === runs.length
      ? {
        server: cpuMedian("server"),
        postgres: cpuMedian("postgres"),
        wrk: cpuMedian("wrk"),
        machine: cpuMedian("machine"),
        busy: cpuMedian("busy"),
        dbWrites: known.every((c) => c.dbWrites !== null)
          ? median(known.map((c) => c.dbWrites!))
          : null,
      }
      : null,
    runs,
  };
}

export async function compare(
  ctx: BenchContext,
  comparison: Comparison,
): Promise<ComparisonResult> {
  const { seconds, warmupSeconds, rounds, connections, threads } = ctx.settings;
  const runs = new Map<WrkTarget, WrkResult[]>([[comparison.baseline, []], [comparison.ours, []]]);
  ctx.log(
    `${comparison.title}: ${rounds} rounds of ${seconds} s per target ` +
      `(after ${warmupSeconds} s warm-up each), ${connections} connections, ${threads} threads`,
  );
  for (let round = 1; round <= rounds; round++) {
    for (const target of [comparison.baseline, comparison.ours]) {
      runs.get(target)!.push(await measure(ctx, target, `  round ${round}  `));
    }
  }
  const baseline = summarize(runs.get(comparison.baseline)!);
  const ours = summarize(runs.get(comparison.ours)!);
  const throughputRatio = ours.requestsPerSecond / baseline.requestsPerSecond;
  const p99Ratio = ours.p99 / baseline.p99;
  return {
    comparison,
    baseline,
    ours,
    throughputRatio,
    p99Ratio,
    throughputPass: throughputRatio >= comparison.targets.minThroughputRatio,
    p99Pass: p99Ratio <= comparison.targets.maxP99Ratio,
  };
}

export function printComparison(result: ComparisonResult) {
  const { comparison, baseline, ours } = result;
  const { targets } = comparison;
  const verdict = (pass: boolean) => (pass ? "PASS" : "MISS");
  console.log(`\n${comparison.title} (medians of ${baseline.runs.length} runs each)`);
  for (const note of comparison.notes ?? []) console.log(`  ${note}`);
  const row = (label: string, s: Summary) => [
    label,
    rps(s.requestsPerSecond),
    ms(s.p50),
    ms(s.p99),
  ];
  console.log(table([
    ["", "req/s", "p50", "p99"],
    row(comparison.baseline.label, baseline),
    row(comparison.ours.label, ours),
  ]));
  console.log();
  console.log(table([
    ["ours/baseline", "measured", "target", ""],
    [
      "throughput",
      result.throughputRatio.toFixed(2),
      `≥ ${targets.minThroughputRatio}`,
      verdict(result.throughputPass),
    ],
    [
      "p99 latency",
      result.p99Ratio.toFixed(2),
      `≤ ${targets.maxP99Ratio}`,
      verdict(result.p99Pass),
    ],
  ]));
  if (baseline.cpu && ours.cpu) {
    const cpuRow = (label: string, cpu: CpuPerRequest) => [
      label,
      us(cpu.server),
      us(cpu.postgres),
      us(cpu.wrk),
      us(cpu.machine),
      percent(cpu.busy),
      perRequest(cpu.dbWrites),
    ];
    console.log();
    console.log(table([
      ["CPU per request", "server", "postgres", "wrk", "machine", "busy", "DB writes"],
      cpuRow(comparison.baseline.label, baseline.cpu),
      cpuRow(comparison.ours.label, ours.cpu),
    ]));
  }
}
