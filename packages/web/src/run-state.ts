/** What the dashboard derives from pipeline runs: the task graph's layout, timings, staging diffs. Pure. */
import type { PipelineRunSummary, RunStatus, RunTask } from '@aiedge/protocol';

/** A task with the tasks it runs after (`runAfter`, from the API when it gives them). */
export type GraphTask = Pick<RunTask, 'name'> & { readonly runAfter?: readonly string[] | undefined };

/** Statuses a run never leaves. */
const FINISHED: readonly RunStatus[] = ['succeeded', 'failed', 'cancelled'];

/** True when a run with this status is over. */
export function isFinished(status: RunStatus): boolean {
  return FINISHED.includes(status);
}

/**
 * Columns of the task graph: each task sits one column right of the latest task it runs after.
 * Unknown names in `runAfter` are ignored; a cycle (which the core refuses) cannot loop forever.
 */
export function graphColumns(tasks: readonly GraphTask[]): string[][] {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (name: string): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (visiting.has(name)) return 0;
    visiting.add(name);
    const deps = (byName.get(name)?.runAfter ?? []).filter((d) => byName.has(d));
    const d = deps.length === 0 ? 0 : Math.max(...deps.map(depthOf)) + 1;
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  const columns: string[][] = [];
  for (const task of tasks) {
    const d = depthOf(task.name);
    (columns[d] ??= []).push(task.name);
  }
  return columns.filter((c) => c !== undefined);
}

/** The edges of the task graph as `[from, to]` pairs (`to` runs after `from`). */
export function graphEdges(tasks: readonly GraphTask[]): [string, string][] {
  const names = new Set(tasks.map((t) => t.name));
  return tasks.flatMap((t) =>
    (t.runAfter ?? []).filter((d) => names.has(d)).map((d): [string, string] => [d, t.name]),
  );
}

/** How long a run or task has taken: its duration when finished, else the time since it started. */
export function elapsedMs(
  item: { readonly startedAt: string | null; readonly durationMs: number | null },
  nowMs: number,
): number | null {
  if (item.durationMs !== null) return item.durationMs;
  if (item.startedAt === null) return null;
  return Math.max(0, nowMs - Date.parse(item.startedAt));
}

/** Replaces the task named like `task` (or appends it), keeping the order and what `task` lacks (`runAfter`). */
export function mergeTask<T extends RunTask & { runAfter?: readonly string[] }>(
  tasks: readonly T[],
  task: RunTask,
): T[] {
  const i = tasks.findIndex((t) => t.name === task.name);
  if (i < 0) return [...tasks, task as T];
  const next = [...tasks];
  next[i] = { ...tasks[i], ...task } as T;
  return next;
}

/** One difference between an expected and an actual output of a staging test request. */
export interface StageDifference {
  /** The tensor and element, e.g. `scores[0]`, or the tensor for shape/datatype differences. */
  readonly where: string;
  readonly expected: string;
  readonly got: string;
  /** The rest of the line (tolerances), when any. */
  readonly note: string;
}

/** The failed requests of a staging test, parsed from the stage task's failure reason. */
export interface StageFailure {
  /** First line, e.g. `staging test failed: 1 of 1 requests did not match`. */
  readonly summary: string;
  readonly cases: readonly {
    readonly name: string;
    /** What went wrong with this request, as the task wrote it. */
    readonly problem: string;
    readonly differences: readonly StageDifference[];
    /** Lines that are not element differences (`… and 3 more differences`, HTTP errors). */
    readonly other: readonly string[];
  }[];
}

/**
 * Parses the reason the stage task fails with (`staging test failed: …` then one block per failed
 * request: `name: outputs differ:` and indented lines like `scores[0]: expected 10, got 11 (…)`).
 * Undefined when the reason is not a staging test failure.
 */
export function parseStageFailure(reason: string | null | undefined): StageFailure | undefined {
  if (reason === null || reason === undefined) return undefined;
  const start = reason.indexOf('staging test failed');
  if (start < 0) return undefined;
  const lines = reason.slice(start).split('\n');
  const summary = lines[0] ?? '';
  const cases: {
    name: string;
    problem: string;
    differences: StageDifference[];
    other: string[];
  }[] = [];
  for (const line of lines.slice(1)) {
    if (line.trim() === '') continue;
    const indented = /^\s+/.test(line);
    const current = cases.at(-1);
    if (!indented || current === undefined) {
      const colon = line.indexOf(': ');
      cases.push({
        name: colon < 0 ? line : line.slice(0, colon),
        problem: colon < 0 ? '' : line.slice(colon + 2).replace(/:$/, ''),
        differences: [],
        other: [],
      });
      continue;
    }
    const text = line.trim();
    const element = /^(.+?): expected (.+?), got (.+?)(?: \((.*)\))?$/.exec(text);
    if (element !== null) {
      current.differences.push({
        where: element[1] ?? '',
        expected: element[2] ?? '',
        got: element[3] ?? '',
        note: element[4] ?? '',
      });
      continue;
    }
    // `scores: shape [1,2], expected [1,3]` / `label: datatype FP32, expected INT64` / `x: 2 elements, expected 3`
    const attribute = /^(.+?): (?:(shape|datatype) (.+)|(\d+) elements), expected (.+)$/.exec(text);
    if (attribute !== null) {
      const count = attribute[4];
      current.differences.push({
        where: `${attribute[1] ?? ''} ${count !== undefined ? 'elements' : (attribute[2] ?? '')}`,
        expected: (attribute[5] ?? '').trim(),
        got: count ?? (attribute[3] ?? '').trim(),
        note: '',
      });
      continue;
    }
    current.other.push(text);
  }
  return { summary, cases };
}

/** Counts of runs by status, for the pipelines page header. */
export function runCounts(runs: readonly Pick<PipelineRunSummary, 'status'>[]): Record<RunStatus, number> {
  const counts: Record<RunStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const run of runs) counts[run.status]++;
  return counts;
}

/** Parses `key=value` lines (params of a run); blank lines and `#` comments are skipped. */
export function parseParams(text: string): { params: Record<string, string>; errors: string[] } {
  const params: Record<string, string> = {};
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) {
      errors.push(`line ${i + 1} "${line}": expected name=value`);
      return;
    }
    const key = line.slice(0, eq).trim();
    if (Object.hasOwn(params, key)) errors.push(`line ${i + 1}: parameter ${key} is given twice`);
    params[key] = line.slice(eq + 1).trim();
  });
  return { params, errors };
}

/** `key=value` lines of params (the inverse of {@link parseParams}). */
export function formatParams(params: Readonly<Record<string, string>>): string {
  return Object.entries(params)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
}
