/**
 * Closed-loop load generation for the serve benchmark: `concurrency` loops each awaiting one
 * operation after another. A cell is measured in several slices (interleaved with other cells by
 * the caller, so slow drifts of a shared machine hit every mode alike) whose samples are merged.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** One operation of a loop; `seq` numbers the operations of a cell from 0. */
export type Operation = (seq: number) => Promise<void>;

/** Raw measurements of one slice, merged by {@link summarize}. */
export interface Slice {
  readonly count: number;
  readonly seconds: number;
  readonly latenciesMs: readonly number[];
  readonly clientCpuSeconds: number;
  readonly serverCpuSeconds: number | undefined;
}

/** What one measured cell produced. */
export interface LoadResult {
  /** Operations completed while measuring. */
  readonly requests: number;
  /** Wall time measured (sum of the slices, each from its start to its last loop's end), seconds. */
  readonly seconds: number;
  /** requests / seconds. */
  readonly throughput: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  /** CPU time of this process while measuring, in cores (1 = one core busy all the time). */
  readonly clientCpuCores: number;
  /** CPU time of the server process while measuring, in cores; undefined when unreadable. */
  readonly serverCpuCores: number | undefined;
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

/**
 * Runs `operation` in `concurrency` loops for `seconds`, starting at sequence number `seq.next`
 * (advanced as operations start). Latencies are recorded unless `record` is false (warmup).
 * The first failure stops every loop and is thrown.
 */
export async function runSlice(options: {
  readonly concurrency: number;
  readonly seconds: number;
  readonly operation: Operation;
  readonly seq: { next: number };
  readonly record: boolean;
  /** Process whose CPU time is reported as the server's (Linux /proc only). */
  readonly serverPid?: number | undefined;
}): Promise<Slice> {
  const { concurrency, operation, seq, serverPid } = options;
  const latenciesMs: number[] = [];
  let count = 0;
  let failed = false;
  const cpuBefore = process.cpuUsage();
  const serverBefore = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
  const started = performance.now();
  const deadline = started + options.seconds * 1000;
  const loop = async (): Promise<void> => {
    while (!failed && performance.now() < deadline) {
      const begun = performance.now();
      try {
        await operation(seq.next++);
      } catch (error) {
        failed = true;
        throw error;
      }
      if (options.record) latenciesMs.push(performance.now() - begun);
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serverAfter = serverPid === undefined ? undefined : processCpuSeconds(serverPid);
  return {
    count,
    seconds,
    latenciesMs,
    clientCpuSeconds: (cpu.user + cpu.system) / 1e6,
    serverCpuSeconds:
      serverBefore === undefined || serverAfter === undefined ? undefined : serverAfter - serverBefore,
  };
}

/** Merges the slices of one cell. */
export function summarize(slices: readonly Slice[]): LoadResult {
  const requests = slices.reduce((n, s) => n + s.count, 0);
  const seconds = slices.reduce((n, s) => n + s.seconds, 0);
  const sorted = Float64Array.from(slices.flatMap((s) => s.latenciesMs)).sort();
  const serverCpu = slices.every((s) => s.serverCpuSeconds !== undefined)
    ? slices.reduce((n, s) => n + s.serverCpuSeconds!, 0)
    : undefined;
  return {
    requests,
    seconds,
    throughput: requests / seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    clientCpuCores: slices.reduce((n, s) => n + s.clientCpuSeconds, 0) / seconds,
    serverCpuCores: serverCpu === undefined ? undefined : serverCpu / seconds,
  };
}
