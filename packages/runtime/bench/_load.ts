/**
 * Closed-loop load generation for the serve benchmark: `concurrency` loops each awaiting one
 * operation after another, a warmup phase whose results are dropped, then a fixed measurement phase.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** One operation of a loop; `seq` numbers operations across all loops from 0. */
export type Operation = (seq: number) => Promise<void>;

/** What one measured cell produced. */
export interface LoadResult {
  /** Operations completed in the measurement phase. */
  readonly requests: number;
  /** Wall time of the measurement phase (start to the last loop's end), seconds. */
  readonly seconds: number;
  /** requests / seconds. */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** CPU time of this process during measurement, in cores (1 = one core busy all the time). */
  readonly clientCpuCores: number;
  /** CPU time of the server process during measurement, in cores; undefined when unreadable. */
  readonly serverCpuCores: number | undefined;
}

/** Options of {@link runClosedLoop}. */
export interface LoadOptions {
  readonly concurrency: number;
  readonly warmupSeconds: number;
  readonly seconds: number;
  readonly operation: Operation;
  /** Process whose CPU time is reported as the server's (Linux /proc only). */
  readonly serverPid?: number | undefined;
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** CPU seconds (user + system, all threads) of a process, or undefined off Linux. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? (utime + stime) / USER_HZ : undefined;
  } catch {
    return undefined;
  }
}

/** The q-quantile (0..1) of sorted values, nearest rank. */
export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

async function phase(
  concurrency: number,
  seconds: number,
  operation: Operation,
  startSeq: number,
  latencies: number[] | undefined,
): Promise<{ count: number; nextSeq: number; end: number }> {
  const deadline = performance.now() + seconds * 1000;
  let seq = startSeq;
  let count = 0;
  let failed = false;
  const loop = async (): Promise<void> => {
    while (!failed && performance.now() < deadline) {
      const started = performance.now();
      try {
        await operation(seq++);
      } catch (error) {
        failed = true;
        throw error;
      }
      latencies?.push(performance.now() - started);
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { count, nextSeq: seq, end: performance.now() };
}

/** Warms up, then measures `operation` run by `concurrency` loops for `seconds`. */
export async function runClosedLoop(options: LoadOptions): Promise<LoadResult> {
  const { concurrency, operation, serverPid } = options;
  const warm = await phase(concurrency, options.warmupSeconds, operation, 0, undefined);
  const latencies: number[] = [];
  const cpuBefore = process.cpuUsage();
  const serverBefore = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
  const started = performance.now();
  const measured = await phase(concurrency, options.seconds, operation, warm.nextSeq, latencies);
  const seconds = (measured.end - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: measured.count,
    seconds,
    throughput: measured.count / seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    clientCpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
    serverCpuCores:
      serverBefore === undefined || serverAfter === undefined
        ? undefined
        : (serverAfter - serverBefore) / seconds,
  };
}
