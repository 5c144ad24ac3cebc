/**
 * The writer of one run: receives the executor's events, stamps them, writes them in batched
 * transactions (every `flushIntervalMs`, or sooner after `flushLines` lines) and, once a batch is
 * committed, hands its events to in-process followers, so a log follower never polls the store.
 */
import { EventEmitter } from 'node:events';
import {
  FinishedTaskStates,
  type PipelineRunSummary,
  type RunLogLine,
  type RunLogStream,
  type RunStatus,
  type RunStreamEvent,
  type TaskState,
} from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { Store, Tx } from '../store/db.js';
import type { RunEventSink, TaskTransition } from './executor.js';
import { toRunSummary, toRunTask, type RunSummaryRow, RUN_SUMMARY_COLUMNS } from './rows.js';
import type { RunTasksTable } from './tables.js';

/** Longest stored line, in characters; the rest of a longer line is cut. */
const MAX_LINE_CHARS = 64 * 1024;
/** Log rows per INSERT statement (well under SQLite's bound-parameter limit). */
const INSERT_CHUNK = 500;

/** Options of {@link RunRecorder.open}. */
export interface RunRecorderOptions {
  readonly store: Store;
  readonly logger: Logger;
  readonly now: () => Date;
  /** Bytes of log kept per run: the first ones, then one "log truncated" line. Default 16 MiB. */
  readonly maxLogBytes?: number;
  /** Longest a log line waits before it is written. Default 100. */
  readonly flushIntervalMs?: number;
  /** Pending lines that trigger a write at once. Default 500. */
  readonly flushLines?: number;
}

/** How a run ended, as {@link RunRecorder.finish} records it. */
export interface RunEnd {
  readonly status: Extract<RunStatus, 'succeeded' | 'failed' | 'cancelled'>;
  readonly reason: string | null;
  readonly results?: Readonly<Record<string, string>>;
}

/** Receives a run's events once they are stored. */
export type RunStreamListener = (event: RunStreamEvent) => void;

type Pending =
  | { readonly kind: 'log'; readonly line: RunLogLine }
  | { readonly kind: 'task'; readonly row: RunTasksTable };

const isFinishedTask = (state: TaskState) => (FinishedTaskStates as readonly TaskState[]).includes(state);

/** Records one run's progress in the store and fans it out to followers; see the module comment. */
export class RunRecorder implements RunEventSink {
  readonly #options: RunRecorderOptions;
  readonly #maxLogBytes: number;
  readonly #flushIntervalMs: number;
  readonly #flushLines: number;
  readonly #emitter = new EventEmitter();
  #run: RunSummaryRow;
  readonly #tasks = new Map<string, RunTasksTable>();
  readonly #newTasks = new Set<string>();
  #pending: Pending[] = [];
  #pendingLines = 0;
  #seq: number;
  #committedSeq: number;
  #logBytes = 0;
  #truncated = false;
  #finished = false;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();

  private constructor(options: RunRecorderOptions, run: RunSummaryRow, tasks: RunTasksTable[], seq: number) {
    this.#options = options;
    this.#maxLogBytes = options.maxLogBytes ?? 16 * 1024 * 1024;
    this.#flushIntervalMs = options.flushIntervalMs ?? 100;
    this.#flushLines = options.flushLines ?? 500;
    this.#emitter.setMaxListeners(0);
    this.#run = run;
    for (const task of tasks) this.#tasks.set(task.name, task);
    this.#seq = seq;
    this.#committedSeq = seq;
  }

  /** Opens the recorder of a stored run. */
  static async open(runId: string, options: RunRecorderOptions): Promise<RunRecorder> {
    const { db } = options.store;
    const run = await db
      .selectFrom('runs')
      .select(RUN_SUMMARY_COLUMNS)
      .where('id', '=', runId)
      .executeTakeFirstOrThrow();
    const tasks = await db
      .selectFrom('run_tasks')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('position')
      .execute();
    const last = await db
      .selectFrom('run_logs')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .where('run_id', '=', runId)
      .executeTakeFirst();
    return new RunRecorder(options, run, tasks, Number(last?.seq ?? 0));
  }

  /** The run as last recorded in memory (ahead of the store by at most one batch). */
  get summary(): PipelineRunSummary {
    return toRunSummary(this.#run);
  }

  /** Highest log `seq` already in the store. */
  get committedSeq(): number {
    return this.#committedSeq;
  }

  /** True once {@link finish} was called; later events are ignored. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Follows the run's stored events; returns the unsubscribe function. */
  subscribe(listener: RunStreamListener): () => void {
    const safe = (event: RunStreamEvent) => {
      try {
        listener(event);
      } catch (error) {
        this.#options.logger.warn('run event listener failed', { run: this.#run.id, err: error });
      }
    };
    this.#emitter.on('event', safe);
    return () => this.#emitter.off('event', safe);
  }

  /**
   * Runs `fn` between two writes: every event committed before it has been emitted, every later
   * one is emitted after it (a follower subscribes and reads its snapshot here).
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.#enqueue(fn);
  }

  /** Records a task transition (stamped now). */
  task(transition: TaskTransition): void {
    if (this.#finished) return;
    const at = this.#options.now().toISOString();
    let row = this.#tasks.get(transition.task);
    if (row === undefined) {
      row = {
        run_id: this.#run.id,
        name: transition.task,
        position: this.#tasks.size,
        state: 'pending',
        attempt: 0,
        started_at: null,
        finished_at: null,
        reason: null,
        results: '{}',
      };
      this.#tasks.set(row.name, row);
      this.#newTasks.add(row.name);
    }
    const next: RunTasksTable = { ...row, state: transition.state, attempt: transition.attempt };
    if (transition.state === 'running') {
      // Timings span every attempt: the start is the first attempt's.
      if (row.started_at === null || transition.attempt <= 1) next.started_at = at;
      next.finished_at = null;
      next.reason = null;
      next.results = '{}';
    } else if (transition.state === 'pending') {
      Object.assign(next, { started_at: null, finished_at: null, reason: null, results: '{}' });
    } else {
      next.finished_at = at;
      next.reason = transition.reason ?? null;
      next.results = JSON.stringify(transition.results ?? {});
    }
    this.#tasks.set(next.name, next);
    this.#pending.push({ kind: 'task', row: next });
    this.#schedule();
  }

  /** Records one log line (stamped now); past the run's byte cap, lines are dropped. */
  log(task: string | null, stream: RunLogStream, line: string): void {
    if (this.#finished || this.#truncated) return;
    let text =
      line.length > MAX_LINE_CHARS
        ? `${line.slice(0, MAX_LINE_CHARS)} … [line cut at ${MAX_LINE_CHARS} characters]`
        : line;
    const bytes = Buffer.byteLength(text);
    if (this.#logBytes + bytes > this.#maxLogBytes) {
      this.#truncated = true;
      task = null;
      stream = 'system';
      text = `log truncated: this run's log reached its limit of ${this.#maxLogBytes} bytes; later lines are not kept`;
    }
    this.#logBytes += bytes;
    const entry: RunLogLine = {
      seq: ++this.#seq,
      task,
      stream,
      at: this.#options.now().toISOString(),
      line: text,
    };
    this.#pending.push({ kind: 'log', line: entry });
    this.#pendingLines++;
    if (this.#pendingLines >= this.#flushLines) this.#flushNow();
    else this.#schedule();
  }

  /** Marks the run running (stamped now). */
  markRunning(): Promise<void> {
    const at = this.#options.now().toISOString();
    return this.#enqueue(async () => {
      await this.#write();
      await this.#options.store.db
        .updateTable('runs')
        .set({ status: 'running', started_at: at })
        .where('id', '=', this.#run.id)
        .execute();
      this.#run = { ...this.#run, status: 'running', started_at: at };
      this.#emit({ event: 'status', data: this.summary });
    });
  }

  /** Writes whatever is pending now. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#enqueue(() => this.#write());
  }

  /**
   * Records the end of the run (once; later calls return the first result): flushes pending events,
   * closes tasks the executor left open, stores status, reason and results, emits `status` and `end`.
   */
  finish(end: RunEnd): Promise<PipelineRunSummary> {
    if (this.#finished) return this.#enqueue(async () => this.summary);
    this.#finished = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const at = this.#options.now().toISOString();
    return this.#enqueue(async () => {
      await this.#write();
      const closed: RunTasksTable[] = [];
      for (const row of this.#tasks.values()) {
        if (isFinishedTask(row.state)) continue;
        const state: TaskState =
          row.state === 'running'
            ? end.status === 'cancelled'
              ? 'cancelled'
              : 'failed'
            : end.status === 'cancelled'
              ? 'cancelled'
              : 'skipped';
        const next = { ...row, state, finished_at: at, reason: end.reason ?? `the run ${end.status}` };
        this.#tasks.set(next.name, next);
        closed.push(next);
      }
      const results = end.results !== undefined ? JSON.stringify(end.results) : null;
      await this.#options.store.transaction(async (tx) => {
        for (const row of closed) await this.#saveTask(tx, row);
        await tx
          .updateTable('runs')
          .set({ status: end.status, reason: end.reason, finished_at: at, results })
          .where('id', '=', this.#run.id)
          .execute();
      });
      this.#run = { ...this.#run, status: end.status, reason: end.reason, finished_at: at, results };
      for (const row of closed) this.#emit({ event: 'task', data: toRunTask(row) });
      this.#emit({ event: 'status', data: this.summary });
      this.#emit({ event: 'end', data: this.summary });
      this.#emitter.removeAllListeners();
      return this.summary;
    });
  }

  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#chain.then(fn);
    this.#chain = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#enqueue(() => this.#write());
    }, this.#flushIntervalMs);
  }

  #flushNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#enqueue(() => this.#write());
  }

  async #saveTask(tx: Tx, row: RunTasksTable): Promise<void> {
    if (this.#newTasks.delete(row.name)) {
      await tx.insertInto('run_tasks').values(row).execute();
      return;
    }
    const { run_id, name, ...rest } = row;
    await tx
      .updateTable('run_tasks')
      .set(rest)
      .where('run_id', '=', run_id)
      .where('name', '=', name)
      .execute();
  }

  /** Writes the pending batch in one transaction, then emits it. Never rejects (a failure is logged). */
  async #write(): Promise<void> {
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingLines = 0;
    const lines = batch.flatMap((p) => (p.kind === 'log' ? [p.line] : []));
    const latest = new Map<string, RunTasksTable>();
    for (const p of batch) if (p.kind === 'task') latest.set(p.row.name, p.row);
    try {
      await this.#options.store.transaction(async (tx) => {
        for (let i = 0; i < lines.length; i += INSERT_CHUNK) {
          await tx
            .insertInto('run_logs')
            .values(lines.slice(i, i + INSERT_CHUNK).map((l) => ({ run_id: this.#run.id, ...l })))
            .execute();
        }
        for (const row of latest.values()) await this.#saveTask(tx, row);
      });
    } catch (error) {
      this.#options.logger.error('cannot store run events', {
        run: this.#run.id,
        lines: lines.length,
        err: error,
      });
      return;
    }
    const last = lines.at(-1);
    if (last !== undefined) this.#committedSeq = last.seq;
    for (const p of batch) {
      this.#emit(
        p.kind === 'log' ? { event: 'log', data: p.line } : { event: 'task', data: toRunTask(p.row) },
      );
    }
  }

  #emit(event: RunStreamEvent): void {
    this.#emitter.emit('event', event);
  }
}
