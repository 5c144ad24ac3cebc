/**
 * Downsampling and retention of the telemetry store. Raw points older than
 * `telemetryRawRetentionHours` are folded into buckets of `telemetryRollupSeconds` (increases and
 * bucket counts add up, gauges keep sum, count and max); rows older than `telemetryRetentionHours`
 * are deleted, with the batch ids, stream states and series that are no longer needed. Span
 * summaries are raw data: they are kept for the raw retention. Every step runs in transactions.
 */
import type { Logger } from '@aiedge/telemetry';
import type { CoreConfig } from '../config.js';
import type { Store } from '../store/db.js';
import { addCounts } from './quantile.js';
import type { TelemetryPointsTable } from './tables.js';

/** Raw points read per rollup transaction. */
const ROLLUP_BATCH = 5000;
/** Default time between two runs of the periodic job. */
export const MAINTENANCE_INTERVAL_MS = 60_000;

/** What one maintenance run did. */
export interface MaintenanceReport {
  /** Raw points folded into rollups. */
  readonly rolledUp: number;
  /** Rollup rows written. */
  readonly rollups: number;
  /** Rows deleted for being older than the retention (points of any resolution). */
  readonly expiredPoints: number;
  readonly expiredSpans: number;
  readonly expiredSeries: number;
}

/** What maintenance needs of the core context. */
export interface MaintenanceContext {
  readonly store: Store;
  readonly config: Pick<
    CoreConfig,
    'telemetryRetentionHours' | 'telemetryRawRetentionHours' | 'telemetryRollupSeconds'
  >;
  readonly now: () => Date;
}

const HOUR_MS = 3_600_000;

/** Rolls up raw points older than the raw retention, then deletes what is older than the retention. */
export async function runTelemetryMaintenance(context: MaintenanceContext): Promise<MaintenanceReport> {
  const { store, config } = context;
  const nowMs = context.now().getTime();
  const rollupMs = config.telemetryRollupSeconds * 1000;
  // Only whole buckets: every raw point before the cutoff lands in a bucket that ends by the cutoff.
  const rawCutoff = Math.floor((nowMs - config.telemetryRawRetentionHours * HOUR_MS) / rollupMs) * rollupMs;
  const cutoff = nowMs - config.telemetryRetentionHours * HOUR_MS;

  let rolledUp = 0;
  let rollups = 0;
  for (;;) {
    const done = await store.transaction(async (tx) => {
      const raw = await tx
        .selectFrom('telemetry_points as p')
        .innerJoin('telemetry_series as s', 's.id', 'p.series_id')
        .select(['p.id', 'p.series_id', 'p.time_ms', 'p.value', 'p.count', 'p.max', 'p.buckets', 's.kind'])
        .where('p.resolution_s', '=', 0)
        .where('p.time_ms', '<', rawCutoff)
        .orderBy('p.id')
        .limit(ROLLUP_BATCH)
        .execute();
      if (raw.length === 0) return { points: 0, rows: 0 };
      const buckets = new Map<string, Omit<TelemetryPointsTable, 'id'> & { counts: number[] | null }>();
      for (const p of raw) {
        const start = Math.floor(Number(p.time_ms) / rollupMs) * rollupMs;
        const key = `${p.series_id}:${start}`;
        const counts = p.buckets === null ? null : (JSON.parse(p.buckets) as number[]);
        const b = buckets.get(key);
        if (b === undefined) {
          buckets.set(key, {
            series_id: p.series_id,
            time_ms: start,
            resolution_s: config.telemetryRollupSeconds,
            value: p.value,
            count: p.count,
            max: p.max,
            buckets: null,
            counts: counts === null ? null : [...counts],
          });
          continue;
        }
        b.value += p.value;
        b.count += p.count;
        b.max = p.max === null ? b.max : b.max === null ? p.max : Math.max(b.max, p.max);
        if (counts !== null) {
          if (b.counts === null) b.counts = [...counts];
          else addCounts(b.counts, counts);
        }
      }
      const rows = [...buckets.values()].map(({ counts, ...row }) => ({
        ...row,
        buckets: counts === null ? null : JSON.stringify(counts),
      }));
      for (let i = 0; i < rows.length; i += 200) {
        await tx
          .insertInto('telemetry_points')
          .values(rows.slice(i, i + 200))
          .execute();
      }
      // Rows are read in id order, so the ones read are exactly the matching rows up to the last id.
      const lastId = raw[raw.length - 1]?.id as number;
      await tx
        .deleteFrom('telemetry_points')
        .where('resolution_s', '=', 0)
        .where('time_ms', '<', rawCutoff)
        .where('id', '<=', lastId)
        .execute();
      return { points: raw.length, rows: rows.length };
    });
    rolledUp += done.points;
    rollups += done.rows;
    if (done.points < ROLLUP_BATCH) break;
  }

  const expired = await store.transaction(async (tx) => {
    const points = await tx.deleteFrom('telemetry_points').where('time_ms', '<', cutoff).executeTakeFirst();
    const spans = await tx
      .deleteFrom('telemetry_spans')
      .where('start_ms', '<', nowMs - config.telemetryRawRetentionHours * HOUR_MS)
      .executeTakeFirst();
    await tx.deleteFrom('telemetry_batches').where('received_ms', '<', cutoff).execute();
    await tx.deleteFrom('telemetry_streams').where('updated_ms', '<', cutoff).execute();
    const series = await tx
      .deleteFrom('telemetry_series')
      .where('last_point_ms', '<', cutoff)
      .where('created_ms', '<', cutoff)
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('telemetry_points')
              .select('id')
              .whereRef('telemetry_points.series_id', '=', 'telemetry_series.id'),
          ),
        ),
      )
      .where((eb) =>
        eb.not(
          eb.exists(
            eb
              .selectFrom('telemetry_streams')
              .select('series_id')
              .whereRef('telemetry_streams.series_id', '=', 'telemetry_series.id'),
          ),
        ),
      )
      .executeTakeFirst();
    return {
      points: Number(points.numDeletedRows),
      spans: Number(spans.numDeletedRows),
      series: Number(series.numDeletedRows),
    };
  });
  return {
    rolledUp,
    rollups,
    expiredPoints: expired.points,
    expiredSpans: expired.spans,
    expiredSeries: expired.series,
  };
}

/** Options of {@link TelemetryMaintenance}. */
export interface TelemetryMaintenanceOptions {
  /** Time between runs; default {@link MAINTENANCE_INTERVAL_MS}. */
  readonly intervalMs?: number;
  readonly logger: Logger;
}

/** The periodic maintenance job: an unref'd timer, one run at a time, stopped (and awaited) by `close`. */
export class TelemetryMaintenance {
  readonly #context: MaintenanceContext;
  readonly #intervalMs: number;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<MaintenanceReport | undefined> | undefined;
  #closed = false;

  constructor(context: MaintenanceContext, options: TelemetryMaintenanceOptions) {
    this.#context = context;
    this.#intervalMs = options.intervalMs ?? MAINTENANCE_INTERVAL_MS;
    this.#logger = options.logger;
  }

  /** Starts the timer (the first run is one interval from now). */
  start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setInterval(() => void this.runOnce(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Runs maintenance now unless a run is in progress (then waits for that one); never rejects. */
  runOnce(): Promise<MaintenanceReport | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    this.#running ??= runTelemetryMaintenance(this.#context)
      .then((report) => {
        if (report.rolledUp > 0 || report.expiredPoints > 0 || report.expiredSpans > 0)
          this.#logger.debug('telemetry maintenance', { ...report });
        return report;
      })
      .catch((error: unknown) => {
        this.#logger.warn('telemetry maintenance failed', { err: error });
        return undefined;
      })
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** Stops the timer and waits for a run in progress. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
