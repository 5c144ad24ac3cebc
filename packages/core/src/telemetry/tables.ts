/**
 * Tables of the telemetry area and their migration (Kysely schema builder; portable to
 * PostgreSQL: times are integer milliseconds in `bigint` columns, measurements `double precision`).
 *
 * How metrics are kept: every data point becomes an *increase over an interval* on ingest. A
 * cumulative point (the OpenTelemetry SDK default) is compared with the previous point of the same
 * stream (series + start time, in `telemetry_streams`): the difference is stored; a point with a
 * new start time, or one whose value went down, is a reset and counts from zero; a point not newer
 * than the last one of its stream is a resend and is skipped. Delta points are stored as they are.
 * Gauges (and non-monotonic sums) are samples. Sums over any time range are then plain sums of
 * rows, rates are those sums over the range, and percentiles come from summed bucket increases.
 * Rows older than the raw retention are rolled up into buckets of `telemetryRollupSeconds` (same
 * table, `resolution_s` > 0); everything older than the retention is deleted.
 */
import { idColumn } from '../store/columns.js';
import type { Generated, Kysely, Migration } from 'kysely';

/** Kinds of stored series. */
export type SeriesKind = 'sum' | 'gauge' | 'histogram';

/** One metric series: a metric name with one set of attributes, from one site, model and version. */
export interface TelemetrySeriesTable {
  id: Generated<number>;
  /** Hex SHA-256 of the identity (site, model, version, metric, kind, attributes, bounds). */
  key: string;
  site: string;
  /** `aiedge.model.name` of the point (or of its resource); `''` when there is none. */
  model: string;
  /** `aiedge.model.version` of the point (or of its resource); `''` when there is none. */
  version: string;
  metric: string;
  kind: SeriesKind;
  unit: string;
  /** The `outcome` attribute (`success`, `client_error`, …); `''` when there is none. */
  outcome: string;
  /** JSON object of the other point attributes, keys sorted. */
  attributes: string;
  /** JSON array of the explicit bucket bounds of a histogram; null otherwise. */
  bounds: string | null;
  /** Sum of every increase ever stored (sum: value, histogram: count); 0 for gauges. Never shrinks. */
  total: number;
  created_ms: number;
  /** Time of the newest point. */
  last_point_ms: number;
}

/** Measurements of a series. */
export interface TelemetryPointsTable {
  id: Generated<number>;
  series_id: number;
  /** Raw: end of the interval (the point's time). Rolled up: start of the bucket. */
  time_ms: number;
  /** 0 for a raw point; the bucket length in seconds for a rolled-up one. */
  resolution_s: number;
  /** Sum: the increase. Histogram: the increase of the sum. Gauge: the sum of the samples. */
  value: number;
  /** Sum: points folded in (1 when raw). Histogram: the increase of the count. Gauge: samples. */
  count: number;
  /** Gauge: the largest sample; null otherwise. */
  max: number | null;
  /** Histogram: JSON array of the increase of each bucket; null otherwise. */
  buckets: string | null;
}

/** The last cumulative point of each stream (series + start time), to turn the next one into an increase. */
export interface TelemetryStreamsTable {
  series_id: number;
  /** Start time of the stream, decimal nanoseconds. */
  start_ns: string;
  /** Time of the last point, decimal nanoseconds. */
  time_ns: string;
  /** Cumulative value (sum) or cumulative sum (histogram). */
  value: number;
  /** Cumulative count (histogram); 0 for sums. */
  count: number;
  /** JSON array of the cumulative bucket counts (histogram); null for sums. */
  buckets: string | null;
  updated_ms: number;
}

/** A summary of one span (the payload itself is not kept). */
export interface TelemetrySpansTable {
  id: Generated<number>;
  site: string;
  model: string;
  version: string;
  name: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  kind: string;
  start_ms: number;
  duration_ms: number;
  status: 'unset' | 'ok' | 'error';
  status_message: string;
}

/** Batch ids already stored, per sender and signal: a resent batch is acknowledged but not stored again. */
export interface TelemetryBatchesTable {
  /** The site of the sending site token; `core` for admin tokens. */
  site: string;
  signal: 'metrics' | 'traces';
  batch_id: string;
  received_ms: number;
}

/** Tables of this area. */
export interface TelemetryTables {
  telemetry_series: TelemetrySeriesTable;
  telemetry_points: TelemetryPointsTable;
  telemetry_streams: TelemetryStreamsTable;
  telemetry_spans: TelemetrySpansTable;
  telemetry_batches: TelemetryBatchesTable;
}

/** Creates this area's tables. */
export const telemetryMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .createTable('telemetry_series')
      .addColumn('id', ...idColumn(db))
      .addColumn('key', 'text', (c) => c.notNull().unique())
      .addColumn('site', 'text', (c) => c.notNull())
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('metric', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('unit', 'text', (c) => c.notNull())
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('attributes', 'text', (c) => c.notNull())
      .addColumn('bounds', 'text')
      .addColumn('total', 'double precision', (c) => c.notNull())
      .addColumn('created_ms', 'bigint', (c) => c.notNull())
      .addColumn('last_point_ms', 'bigint', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('telemetry_series_metric')
      .on('telemetry_series')
      .columns(['metric', 'site', 'model', 'version'])
      .execute();
    await db.schema
      .createTable('telemetry_points')
      .addColumn('id', ...idColumn(db))
      .addColumn('series_id', 'integer', (c) => c.notNull())
      .addColumn('time_ms', 'bigint', (c) => c.notNull())
      .addColumn('resolution_s', 'integer', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('count', 'double precision', (c) => c.notNull())
      .addColumn('max', 'double precision')
      .addColumn('buckets', 'text')
      .execute();
    await db.schema
      .createIndex('telemetry_points_series_time')
      .on('telemetry_points')
      .columns(['series_id', 'time_ms'])
      .execute();
    await db.schema
      .createIndex('telemetry_points_resolution_time')
      .on('telemetry_points')
      .columns(['resolution_s', 'time_ms'])
      .execute();
    await db.schema
      .createTable('telemetry_streams')
      .addColumn('series_id', 'integer', (c) => c.notNull())
      .addColumn('start_ns', 'text', (c) => c.notNull())
      .addColumn('time_ns', 'text', (c) => c.notNull())
      .addColumn('value', 'double precision', (c) => c.notNull())
      .addColumn('count', 'double precision', (c) => c.notNull())
      .addColumn('buckets', 'text')
      .addColumn('updated_ms', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('telemetry_streams_pk', ['series_id', 'start_ns'])
      .execute();
    await db.schema
      .createIndex('telemetry_streams_updated')
      .on('telemetry_streams')
      .column('updated_ms')
      .execute();
    await db.schema
      .createTable('telemetry_spans')
      .addColumn('id', ...idColumn(db))
      .addColumn('site', 'text', (c) => c.notNull())
      .addColumn('model', 'text', (c) => c.notNull())
      .addColumn('version', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('trace_id', 'text', (c) => c.notNull())
      .addColumn('span_id', 'text', (c) => c.notNull())
      .addColumn('parent_span_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('start_ms', 'bigint', (c) => c.notNull())
      .addColumn('duration_ms', 'double precision', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('status_message', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('telemetry_spans_site_start')
      .on('telemetry_spans')
      .columns(['site', 'start_ms'])
      .execute();
    await db.schema.createIndex('telemetry_spans_start').on('telemetry_spans').column('start_ms').execute();
    await db.schema.createIndex('telemetry_spans_trace').on('telemetry_spans').column('trace_id').execute();
    await db.schema
      .createTable('telemetry_batches')
      .addColumn('site', 'text', (c) => c.notNull())
      .addColumn('signal', 'text', (c) => c.notNull())
      .addColumn('batch_id', 'text', (c) => c.notNull())
      .addColumn('received_ms', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('telemetry_batches_pk', ['site', 'signal', 'batch_id'])
      .execute();
    await db.schema
      .createIndex('telemetry_batches_received')
      .on('telemetry_batches')
      .column('received_ms')
      .execute();
  },
};
