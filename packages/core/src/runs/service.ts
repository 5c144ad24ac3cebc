/**
 * The run pool: stores requested runs, executes at most `runConcurrency` at once in FIFO order, each
 * in its own workspace under `<data>/runs/<id>`, and makes sure no run is lost across restarts: at
 * start, runs left `running` are failed with a reason naming the tasks they were at, and runs left
 * `queued` are queued again; at shutdown, running runs are aborted and failed ("core shut down")
 * while queued ones stay queued for the next start.
 *
 * One core process owns the runs of its store (recovery assumes no other replica executes them).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge } from 'prom-client';
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  type PipelineRun,
  type RunList,
  type RunStatus,
} from '@aiedge/protocol';
import type { CoreContext } from '../context.js';
import type { PipelineExecutor } from './executor.js';
import { RunRecorder, type RunEnd, type RunRecorderOptions } from './recorder.js';
import { toRun, toRunSummary, RUN_SUMMARY_COLUMNS } from './rows.js';

/** Tuning of the run pool (defaults suit production; tests shrink them). */
export interface RunServiceOptions {
  /** Runs waiting at most; more requests get 503. Default 1000. */
  readonly maxQueuedRuns?: number;
  /** Longest wait for aborted runs to settle at shutdown or cancel. Default 15000. */
  readonly settleTimeoutMs?: number;
  /** Log cap and batching of each run; see {@link RunRecorderOptions}. */
  readonly maxLogBytes?: number;
  readonly flushIntervalMs?: number;
  readonly flushLines?: number;
}

/** Input of {@link RunService.create}. */
export interface CreateRunInput {
  readonly spec: unknown;
  readonly params: Readonly<Record<string, string>>;
  /** Token id of the caller. */
  readonly requestedBy: string | null;
  /** How validation errors name the spec and params (e.g. `body.spec`). */
  readonly specPath?: string;
  readonly paramsPath?: string;
}

/** Filters and paging of {@link RunService.list}. */
export interface ListRunsQuery {
  readonly status?: RunStatus;
  readonly pipeline?: string;
  /** Default 50. */
  readonly limit?: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
}

interface Active {
  readonly controller: AbortController;
  readonly recorder: RunRecorder;
  /** Why the run was aborted: a cancel request (with its reason) or the shutdown. */
  stop?: { readonly kind: 'cancel' | 'shutdown'; readonly reason: string };
  done: Promise<void>;
}

/** Run ids: 12 hex digits of milliseconds + 8 random hex digits, strictly increasing per process. */
function idGenerator(now: () => Date): () => string {
  let lastMs = 0;
  let lastSuffix = 0;
  return () => {
    const ms = now().getTime();
    if (ms > lastMs) {
      lastMs = ms;
      lastSuffix = randomBytes(4).readUInt32BE() >>> 1;
    } else lastSuffix++;
    return lastMs.toString(16).padStart(12, '0') + lastSuffix.toString(16).padStart(8, '0');
  };
}

/** Pattern of run ids. */
export const RUN_ID_PATTERN = '^[0-9a-f]{20}$';

/** Runs whose task graph is kept after a read. */
const GRAPH_CACHE_RUNS = 500;

/** The run pool of one core; see the module comment. */
export class RunService {
  readonly #context: CoreContext;
  readonly #executor: PipelineExecutor;
  /** Task graphs of recently read runs, oldest first. */
  readonly #graphs = new Map<string, Readonly<Record<string, readonly string[]>> | undefined>();
  readonly #options: RunServiceOptions;
  readonly #recorderOptions: RunRecorderOptions;
  readonly #nextId: () => string;
  /** Ids waiting for a slot, oldest first. */
  readonly #queue: string[] = [];
  /** Recorders of every queued and running run (the live event source of followers). */
  readonly #recorders = new Map<string, RunRecorder>();
  readonly #active = new Map<string, Active>();
  #started = false;
  #closing = false;
  readonly #finishedTotal: Counter<'status'>;

  constructor(context: CoreContext, executor: PipelineExecutor, options: RunServiceOptions = {}) {
    this.#context = context;
    this.#executor = executor;
    this.#options = options;
    this.#recorderOptions = {
      store: context.store,
      logger: context.logger,
      now: context.now,
      ...(options.maxLogBytes !== undefined ? { maxLogBytes: options.maxLogBytes } : {}),
      ...(options.flushIntervalMs !== undefined ? { flushIntervalMs: options.flushIntervalMs } : {}),
      ...(options.flushLines !== undefined ? { flushLines: options.flushLines } : {}),
    };
    this.#nextId = idGenerator(context.now);
    const queue = this.#queue;
    const active = this.#active;
    new Gauge({
      name: 'aiedge_core_pipeline_runs_active',
      help: 'Pipeline runs of this core by state (queued, running).',
      labelNames: ['state'],
      registers: [context.metrics],
      collect() {
        this.set({ state: 'queued' }, queue.length);
        this.set({ state: 'running' }, active.size);
      },
    });
    this.#finishedTotal = new Counter({
      name: 'aiedge_core_pipeline_runs_finished_total',
      help: 'Pipeline runs finished by this core, by status.',
      labelNames: ['status'],
      registers: [context.metrics],
    });
  }

  /** Recovers runs a previous process left behind, then starts executing queued runs. */
  async start(): Promise<void> {
    const { db } = this.#context.store;
    const now = this.#context.now().toISOString();
    // No run executes yet: whatever is under <data>/runs is left over from a stopped process.
    await rm(join(this.#context.config.data, 'runs'), { recursive: true, force: true });
    const interrupted = await db
      .selectFrom('runs')
      .select('id')
      .where('status', '=', 'running')
      .orderBy('id')
      .execute();
    for (const { id } of interrupted) {
      const tasks = await db
        .selectFrom('run_tasks')
        .selectAll()
        .where('run_id', '=', id)
        .orderBy('position')
        .execute();
      const at = tasks.filter((t) => t.state === 'running').map((t) => t.name);
      const where = at.length === 0 ? '' : ` (at task${at.length > 1 ? 's' : ''} ${at.join(', ')})`;
      const reason = `core stopped while the run was running${where}`;
      await this.#context.store.transaction(async (tx) => {
        await tx
          .updateTable('run_tasks')
          .set({ state: 'failed', finished_at: now, reason: 'core stopped while the task was running' })
          .where('run_id', '=', id)
          .where('state', '=', 'running')
          .execute();
        await tx
          .updateTable('run_tasks')
          .set({ state: 'skipped', finished_at: now, reason })
          .where('run_id', '=', id)
          .where('state', '=', 'pending')
          .execute();
        await tx
          .updateTable('runs')
          .set({ status: 'failed', reason, finished_at: now })
          .where('id', '=', id)
          .execute();
      });
      this.#finishedTotal.inc({ status: 'failed' });
      this.#context.logger.warn('run failed by restart', { run: id, reason });
    }
    const queued = await db
      .selectFrom('runs')
      .select('id')
      .where('status', '=', 'queued')
      .orderBy('id')
      .execute();
    for (const { id } of queued) {
      this.#recorders.set(id, await RunRecorder.open(id, this.#recorderOptions));
      this.#queue.push(id);
    }
    if (queued.length > 0)
      this.#context.logger.info('runs queued again after restart', { runs: queued.length });
    this.#started = true;
    this.#pump();
  }

  /** Validates, stores and queues a run. */
  async create(input: CreateRunInput): Promise<PipelineRun> {
    if (this.#closing) throw new UnavailableError('the core is shutting down', { retryAfterSeconds: 5 });
    const maxQueued = this.#options.maxQueuedRuns ?? 1000;
    if (this.#queue.length >= maxQueued) {
      throw new UnavailableError(
        `${this.#queue.length} runs are queued already (the limit is ${maxQueued})`,
        {
          retryAfterSeconds: 30,
        },
      );
    }
    const plan = await this.#executor.validate({
      spec: input.spec,
      params: input.params,
      ...(input.specPath !== undefined ? { specPath: input.specPath } : {}),
      ...(input.paramsPath !== undefined ? { paramsPath: input.paramsPath } : {}),
    });
    const id = this.#nextId();
    const now = this.#context.now().toISOString();
    await this.#context.store.transaction(async (tx) => {
      await tx
        .insertInto('runs')
        .values({
          id,
          pipeline: plan.name,
          spec: JSON.stringify(input.spec),
          params: JSON.stringify(input.params),
          status: 'queued',
          reason: null,
          created_at: now,
          started_at: null,
          finished_at: null,
          results: null,
          requested_by: input.requestedBy,
        })
        .execute();
      if (plan.tasks.length > 0) {
        await tx
          .insertInto('run_tasks')
          .values(
            plan.tasks.map((name, position) => ({
              run_id: id,
              name,
              position,
              state: 'pending' as const,
              attempt: 0,
              started_at: null,
              finished_at: null,
              reason: null,
              results: '{}',
            })),
          )
          .execute();
      }
    });
    this.#recorders.set(id, await RunRecorder.open(id, this.#recorderOptions));
    this.#queue.push(id);
    this.#context.logger.info('run queued', { run: id, pipeline: plan.name, requestedBy: input.requestedBy });
    this.#pump();
    return this.get(id);
  }

  /** One run with its tasks (and each task's `runAfter`, when the executor tells the graph); NotFoundError when there is none. */
  async get(id: string): Promise<PipelineRun> {
    const { db } = this.#context.store;
    const row = await db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) throw new NotFoundError(`pipeline run ${id} does not exist`);
    const tasks = await db
      .selectFrom('run_tasks')
      .selectAll()
      .where('run_id', '=', id)
      .orderBy('position')
      .execute();
    const run = toRun(row, tasks);
    const graph = await this.#graphOf(run);
    if (graph === undefined) return run;
    return { ...run, tasks: run.tasks.map((t) => ({ ...t, runAfter: [...(graph[t.name] ?? [])] })) };
  }

  /**
   * The task graph of a run as its executor plans it from the stored spec and params (cached: a
   * run's spec never changes); undefined when the executor does not tell it or no longer accepts the spec.
   */
  async #graphOf(run: PipelineRun): Promise<Readonly<Record<string, readonly string[]>> | undefined> {
    if (this.#graphs.has(run.id)) return this.#graphs.get(run.id);
    let graph: Readonly<Record<string, readonly string[]>> | undefined;
    try {
      graph = (await this.#executor.validate({ spec: run.spec, params: run.params })).runAfter;
    } catch {
      graph = undefined;
    }
    if (this.#graphs.size >= GRAPH_CACHE_RUNS) this.#graphs.delete(this.#graphs.keys().next().value ?? '');
    this.#graphs.set(run.id, graph);
    return graph;
  }

  /** A page of runs, newest first. */
  async list(query: ListRunsQuery): Promise<RunList> {
    const limit = query.limit ?? 50;
    let q = this.#context.store.db
      .selectFrom('runs')
      .select(RUN_SUMMARY_COLUMNS)
      .orderBy('id', 'desc')
      .limit(limit + 1);
    if (query.status !== undefined) q = q.where('status', '=', query.status);
    if (query.pipeline !== undefined) q = q.where('pipeline', '=', query.pipeline);
    if (query.cursor !== undefined) q = q.where('id', '<', query.cursor);
    const rows = await q.execute();
    const page = rows.slice(0, limit);
    return {
      items: page.map(toRunSummary),
      nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
    };
  }

  /** The live recorder of a queued or running run (undefined once it finished). */
  recorder(id: string): RunRecorder | undefined {
    return this.#recorders.get(id);
  }

  /**
   * Cancels a queued run at once, or a running one by aborting it and waiting (bounded) for it to
   * stop; ConflictError when the run already finished.
   */
  async cancel(id: string, by: string | null): Promise<PipelineRun> {
    const reason = `cancelled${by !== null ? ` by token ${by}` : ''}`;
    const active = this.#active.get(id);
    if (active !== undefined) {
      if (active.stop === undefined) {
        active.stop = { kind: 'cancel', reason };
        active.controller.abort(new Error(reason));
        this.#context.logger.info('run cancel requested', { run: id, by });
      }
      await settleWithin(active.done, this.#options.settleTimeoutMs ?? 15_000);
      return this.get(id);
    }
    const queuedAt = this.#queue.indexOf(id);
    const recorder = this.#recorders.get(id);
    if (queuedAt >= 0 && recorder !== undefined) {
      this.#queue.splice(queuedAt, 1);
      this.#recorders.delete(id);
      await recorder.finish({ status: 'cancelled', reason });
      this.#finishedTotal.inc({ status: 'cancelled' });
      this.#context.logger.info('queued run cancelled', { run: id, by });
      return this.get(id);
    }
    const run = await this.get(id);
    throw new ConflictError(`pipeline run ${id} already finished (${run.status})`);
  }

  /** Aborts running runs and fails them ("core shut down"); queued runs stay queued for the next start. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const running = [...this.#active.values()];
    for (const active of running) {
      active.stop ??= { kind: 'shutdown', reason: 'core shut down' };
      active.controller.abort(new Error('core shut down'));
    }
    const settled = await settleWithin(
      Promise.all(running.map((a) => a.done)),
      this.#options.settleTimeoutMs ?? 15_000,
    );
    if (!settled) {
      // An executor that ignores its signal must not keep the run `running` in the store.
      for (const active of this.#active.values()) {
        await active.recorder.finish({
          status: 'failed',
          reason: 'core shut down (the executor did not stop in time)',
        });
      }
    }
    for (const recorder of this.#recorders.values()) await recorder.flush();
    this.#recorders.clear();
    this.#queue.length = 0;
  }

  #pump(): void {
    if (!this.#started || this.#closing) return;
    while (this.#active.size < this.#context.config.runConcurrency) {
      const id = this.#queue.shift();
      if (id === undefined) return;
      const recorder = this.#recorders.get(id);
      if (recorder === undefined) continue;
      const active: Active = { controller: new AbortController(), recorder, done: Promise.resolve() };
      this.#active.set(id, active);
      active.done = this.#execute(id, active).finally(() => {
        this.#active.delete(id);
        this.#recorders.delete(id);
        this.#pump();
      });
    }
  }

  async #execute(id: string, active: Active): Promise<void> {
    const { recorder, controller } = active;
    const workspace = join(this.#context.config.data, 'runs', id);
    const logger = this.#context.logger;
    let end: RunEnd;
    try {
      const row = await this.#context.store.db
        .selectFrom('runs')
        .select(['spec', 'params'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await rm(workspace, { recursive: true, force: true });
      await mkdir(workspace, { recursive: true });
      await recorder.markRunning();
      logger.info('run started', { run: id });
      try {
        const outcome = await this.#executor.execute({
          id,
          spec: JSON.parse(row.spec) as unknown,
          params: JSON.parse(row.params) as Record<string, string>,
          workspace,
          signal: controller.signal,
          events: recorder,
        });
        end = { status: 'succeeded', reason: null, results: outcome.results };
      } catch (error) {
        end = this.#endOfAbort(active) ?? {
          status: 'failed',
          reason: (error as Error)?.message ?? String(error),
        };
      }
    } catch (error) {
      logger.error('run could not start', { run: id, err: error });
      end = this.#endOfAbort(active) ?? {
        status: 'failed',
        reason: `the run could not start: ${(error as Error).message}`,
      };
    }
    // The workspace goes before the end is recorded: a finished run has left nothing on disk.
    await rm(workspace, { recursive: true, force: true }).catch((error: unknown) =>
      logger.warn('cannot remove run workspace', { run: id, workspace, err: error }),
    );
    try {
      const summary = await recorder.finish(end);
      this.#finishedTotal.inc({ status: summary.status });
      logger.info('run finished', {
        run: id,
        status: summary.status,
        reason: summary.reason,
        durationMs: summary.durationMs,
      });
    } catch (error) {
      logger.error('cannot record the end of a run', { run: id, err: error });
    }
  }

  #endOfAbort(active: Active): RunEnd | undefined {
    if (active.stop === undefined) return undefined;
    return { status: active.stop.kind === 'cancel' ? 'cancelled' : 'failed', reason: active.stop.reason };
  }
}

/** Waits for `promise` at most `ms`; true when it settled in time. */
async function settleWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
