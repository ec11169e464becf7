/**
 * One measured run of a target (warm-up, then wrk with CPU accounting, failing on any
 * error), and the formatting the sections' tables share.
 */
import type { BenchContext } from "./context.ts";
import { runProbe, type RunUse } from "./probe.ts";
import { assertNoErrors, runWrk, type WrkTarget } from "./wrk.ts";

/** CPU microseconds one request cost in each place, and how busy the machine was (0-1). */
export interface CpuPerRequest {
  server: number;
  postgres: number;
  wrk: number;
  machine: number;
  busy: number;
  /** Writes to PostgreSQL per request (about its round trips); null without `ss`. */
  dbWrites: number | null;
}

export function cpuPerRequest(cpu: RunUse | null, requests: number): CpuPerRequest | null {
  if (!cpu || requests === 0) return null;
  const us = (seconds: number) => (seconds * 1e6) / requests;
  return {
    server: us(cpu.server),
    postgres: us(cpu.postgres),
    wrk: us(cpu.wrk),
    machine: us(cpu.machine),
    busy: cpu.machine / (cpu.wall * navigator.hardwareConcurrency),
    dbWrites: cpu.postgresSegmentsIn === null ? null : cpu.postgresSegmentsIn / requests,
  };
}

export const ms = (value: number) => `${value.toFixed(2)} ms`;
export const rps = (value: number) => value.toFixed(0);
export const us = (value: number) => `${value.toFixed(0)} µs`;
export const perRequest = (value: number | null) => value === null ? "?" : value.toFixed(2);
export const percent = (value: number) => `${(value * 100).toFixed(0)}%`;

function portOf(url: string) {
  const parsed = new URL(url);
  return Number(parsed.port || (parsed.protocol === "https:" ? 443 : 80));
}

/**
 * Warms `target` up (settings.warmupSeconds), then measures it (settings.seconds) and logs
 * one line. Throws if any request failed, in the warm-up too.
 */
export async function measure(ctx: BenchContext, target: WrkTarget, prefix = "") {
  const { seconds, warmupSeconds, connections, threads } = ctx.settings;
  const load = { connections, threads, timeoutSeconds: 5 };
  if (warmupSeconds > 0) {
    assertNoErrors(target, await runWrk(target, { ...load, seconds: warmupSeconds }, ctx.workDir));
  }
  const probe = runProbe(portOf(target.url), portOf(ctx.stack.db_url));
  const result = await runWrk(target, { ...load, seconds }, ctx.workDir, probe);
  assertNoErrors(target, result);
  const cpu = cpuPerRequest(result.cpu, result.requests);
  ctx.log(
    `${prefix}${target.label.padEnd(10)} ${rps(result.requestsPerSecond).padStart(6)} req/s` +
      `  p50 ${ms(result.latencyMs.p50)}  p99 ${ms(result.latencyMs.p99)}` +
      `  ${result.requests} requests, no errors` +
      (cpu
        ? `; CPU/request: server ${us(cpu.server)}, postgres ${us(cpu.postgres)}, ` +
          `wrk ${us(cpu.wrk)}, machine ${us(cpu.machine)} (${percent(cpu.busy)} busy)` +
          (cpu.dbWrites === null ? "" : `; DB writes/request ${cpu.dbWrites.toFixed(2)}`)
        : ""),
  );
  return result;
}

/** Columns padded to line up; the first column left-aligned, the others right-aligned. */
export function table(rows: string[][]) {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) =>
    row.map((cell, column) =>
      column === 0 ? cell.padEnd(widths[column]) : cell.padStart(widths[column])
    ).join("   ").trimEnd();
  return rows.map((row) => `  ${line(row)}`).join("\n");
}

/** Nearest-rank percentile (`p` from 0 to 100) of unsorted values; NaN for none. */
export function percentile(values: number[], p: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Milliseconds of `calls` sequential runs of `once`, after 10 unmeasured ones. */
export async function timeSequential(calls: number, once: () => Promise<unknown>) {
  for (let i = 0; i < 10; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    await once();
    times.push(performance.now() - started);
  }
  return times;
}
