/**
 * Reads over the telemetry store: per-model summaries, time series, span lists and the fleet
 * aggregates served at `/metrics`. Counts are sums of stored increases (raw and rolled-up rows
 * alike); percentiles come from summed histogram bucket increases ({@link histogramQuantile}).
 */
import type {
  TelemetryModelSummary,
  TelemetryPoint,
  TelemetrySeriesMetric,
  TelemetrySpan,
  TelemetryTotals,
} from '@aiedge/protocol';
import type { Db } from '../store/db.js';
import { histogramQuantile, type BucketHistogram } from './quantile.js';

/** The counter of inference requests (attributes: model, version, outcome). */
export const REQUESTS_METRIC = 'aiedge.inference.requests';
/** The histogram of inference durations in seconds. */
export const DURATION_METRIC = 'aiedge.inference.duration';
/** The outcome of a successful request; every other outcome is an error. */
const SUCCESS = 'success';

/** What a query selects; undefined selects all. */
export interface TelemetryFilter {
  readonly site?: string | undefined;
  readonly model?: string | undefined;
  readonly version?: string | undefined;
}

function pointsOf(db: Db, metric: string, filter: TelemetryFilter, fromMs: number, toMs: number) {
  let q = db
    .selectFrom('telemetry_points as p')
    .innerJoin('telemetry_series as s', 's.id', 'p.series_id')
    .where('s.metric', '=', metric)
    .where('p.time_ms', '>=', fromMs)
    .where('p.time_ms', '<', toMs);
  if (filter.site !== undefined) q = q.where('s.site', '=', filter.site);
  if (filter.model !== undefined) q = q.where('s.model', '=', filter.model);
  if (filter.version !== undefined) q = q.where('s.version', '=', filter.version);
  return q;
}

function histogramOf(bounds: string | null, buckets: string | null): BucketHistogram | undefined {
  if (bounds === null || buckets === null) return undefined;
  return { bounds: JSON.parse(bounds) as number[], counts: JSON.parse(buckets) as number[] };
}

const groupKey = (site: string, model: string, version: string) => JSON.stringify([site, model, version]);

interface Group {
  site: string;
  model: string;
  version: string;
  requests: number;
  errors: number;
  histograms: BucketHistogram[];
  lastPointMs: number | null;
}

function stats(group: Omit<Group, 'site' | 'model' | 'version'>, windowSeconds: number): TelemetryTotals {
  return {
    requests: group.requests,
    errors: group.errors,
    requestRate: group.requests / windowSeconds,
    errorRate: group.errors / windowSeconds,
    errorRatio: group.requests > 0 ? group.errors / group.requests : 0,
    latencyP50Seconds: histogramQuantile(group.histograms, 0.5),
    latencyP95Seconds: histogramQuantile(group.histograms, 0.95),
    latencyP99Seconds: histogramQuantile(group.histograms, 0.99),
    lastPointAt: group.lastPointMs === null ? null : new Date(group.lastPointMs).toISOString(),
  };
}

/**
 * Inference figures per (site, model, version) over [fromMs, toMs), and over all of them; rates are
 * per second of `windowSeconds`.
 */
export async function summarize(
  db: Db,
  filter: TelemetryFilter,
  window: { readonly fromMs: number; readonly toMs: number; readonly windowSeconds: number },
): Promise<{ models: TelemetryModelSummary[]; total: TelemetryTotals }> {
  const groups = new Map<string, Group>();
  const groupOf = (site: string, model: string, version: string): Group => {
    const key = groupKey(site, model, version);
    let g = groups.get(key);
    if (g === undefined) {
      g = { site, model, version, requests: 0, errors: 0, histograms: [], lastPointMs: null };
      groups.set(key, g);
    }
    return g;
  };
  const counts = await pointsOf(db, REQUESTS_METRIC, filter, window.fromMs, window.toMs)
    .select((eb) => ['s.site', 's.model', 's.version', 's.outcome', eb.fn.sum<number>('p.value').as('n')])
    .groupBy(['s.site', 's.model', 's.version', 's.outcome'])
    .execute();
  for (const row of counts) {
    const g = groupOf(row.site, row.model, row.version);
    const n = Number(row.n);
    g.requests += n;
    if (row.outcome !== SUCCESS && row.outcome !== '') g.errors += n;
  }
  const histograms = await pointsOf(db, DURATION_METRIC, filter, window.fromMs, window.toMs)
    .select(['s.site', 's.model', 's.version', 's.bounds', 'p.buckets'])
    .where('p.buckets', 'is not', null)
    .execute();
  for (const row of histograms) {
    const h = histogramOf(row.bounds, row.buckets);
    if (h !== undefined) groupOf(row.site, row.model, row.version).histograms.push(h);
  }
  if (groups.size > 0) {
    let q = db
      .selectFrom('telemetry_series')
      .select((eb) => ['site', 'model', 'version', eb.fn.max<number>('last_point_ms').as('last')])
      .where('metric', 'in', [REQUESTS_METRIC, DURATION_METRIC]);
    if (filter.site !== undefined) q = q.where('site', '=', filter.site);
    if (filter.model !== undefined) q = q.where('model', '=', filter.model);
    if (filter.version !== undefined) q = q.where('version', '=', filter.version);
    for (const row of await q.groupBy(['site', 'model', 'version']).execute()) {
      const g = groups.get(groupKey(row.site, row.model, row.version));
      if (g !== undefined && Number(row.last) > 0) g.lastPointMs = Number(row.last);
    }
  }
  const { windowSeconds } = window;
  const sorted = [...groups.values()].sort(
    (a, b) =>
      a.site.localeCompare(b.site) || a.model.localeCompare(b.model) || a.version.localeCompare(b.version),
  );
  const all = {
    requests: sorted.reduce((n, g) => n + g.requests, 0),
    errors: sorted.reduce((n, g) => n + g.errors, 0),
    histograms: sorted.flatMap((g) => g.histograms),
    lastPointMs: sorted.reduce<number | null>(
      (m, g) => (g.lastPointMs === null ? m : Math.max(m ?? 0, g.lastPointMs)),
      null,
    ),
  };
  return {
    models: sorted.map((g) => ({
      site: g.site,
      model: g.model,
      version: g.version,
      ...stats(g, windowSeconds),
    })),
    total: stats(all, windowSeconds),
  };
}

const QUANTILES: Partial<Record<TelemetrySeriesMetric, number>> = {
  latency_p50: 0.5,
  latency_p95: 0.95,
  latency_p99: 0.99,
};

/** Unit of each series metric. */
export function unitOf(metric: TelemetrySeriesMetric): string {
  return metric === 'rate' ? '1/s' : metric.startsWith('latency_') ? 's' : '1';
}

/** One point per step from `fromMs` (inclusive) to `toMs` (exclusive). */
export async function seriesPoints(
  db: Db,
  filter: TelemetryFilter,
  metric: TelemetrySeriesMetric,
  fromMs: number,
  toMs: number,
  stepMs: number,
): Promise<TelemetryPoint[]> {
  const steps = Math.ceil((toMs - fromMs) / stepMs);
  const stepOf = (timeMs: number) => Math.floor((timeMs - fromMs) / stepMs);
  const quantile = QUANTILES[metric];
  const values: (number | null)[] = new Array<number | null>(steps).fill(quantile === undefined ? 0 : null);
  if (quantile === undefined) {
    let q = pointsOf(db, REQUESTS_METRIC, filter, fromMs, toMs);
    if (metric === 'errors') q = q.where('s.outcome', 'not in', [SUCCESS, '']);
    const rows = await q
      .select((eb) => ['p.time_ms', eb.fn.sum<number>('p.value').as('n')])
      .groupBy('p.time_ms')
      .execute();
    for (const row of rows) {
      const i = stepOf(Number(row.time_ms));
      values[i] = (values[i] ?? 0) + Number(row.n);
    }
    if (metric === 'rate') for (let i = 0; i < steps; i++) values[i] = (values[i] ?? 0) / (stepMs / 1000);
  } else {
    const rows = await pointsOf(db, DURATION_METRIC, filter, fromMs, toMs)
      .select(['p.time_ms', 's.bounds', 'p.buckets'])
      .where('p.buckets', 'is not', null)
      .execute();
    const perStep = new Map<number, BucketHistogram[]>();
    for (const row of rows) {
      const h = histogramOf(row.bounds, row.buckets);
      if (h === undefined) continue;
      const i = stepOf(Number(row.time_ms));
      const list = perStep.get(i) ?? [];
      list.push(h);
      perStep.set(i, list);
    }
    for (const [i, list] of perStep) values[i] = histogramQuantile(list, quantile);
  }
  return values.map((value, i) => ({ time: new Date(fromMs + i * stepMs).toISOString(), value }));
}

/** Options of {@link listSpans}. */
export interface SpanQuery extends TelemetryFilter {
  readonly traceId?: string | undefined;
  readonly status?: 'unset' | 'ok' | 'error' | undefined;
  readonly fromMs: number;
  readonly toMs: number;
  readonly limit: number;
}

/** Span summaries that started in [fromMs, toMs), newest first. */
export async function listSpans(db: Db, query: SpanQuery): Promise<TelemetrySpan[]> {
  let q = db
    .selectFrom('telemetry_spans')
    .selectAll()
    .where('start_ms', '>=', query.fromMs)
    .where('start_ms', '<', query.toMs);
  if (query.site !== undefined) q = q.where('site', '=', query.site);
  if (query.model !== undefined) q = q.where('model', '=', query.model);
  if (query.version !== undefined) q = q.where('version', '=', query.version);
  if (query.traceId !== undefined) q = q.where('trace_id', '=', query.traceId);
  if (query.status !== undefined) q = q.where('status', '=', query.status);
  const rows = await q.orderBy('start_ms', 'desc').orderBy('id', 'desc').limit(query.limit).execute();
  return rows.map((r) => ({
    site: r.site,
    model: r.model,
    version: r.version,
    name: r.name,
    traceId: r.trace_id,
    spanId: r.span_id,
    parentSpanId: r.parent_span_id,
    kind: r.kind,
    startTime: new Date(Number(r.start_ms)).toISOString(),
    durationMs: r.duration_ms,
    status: r.status,
    statusMessage: r.status_message,
  }));
}

/** Every inference request ever stored, per (site, model, version, outcome): running totals that never shrink. */
export async function requestTotals(
  db: Db,
): Promise<{ site: string; model: string; version: string; outcome: string; total: number }[]> {
  const rows = await db
    .selectFrom('telemetry_series')
    .select((eb) => ['site', 'model', 'version', 'outcome', eb.fn.sum<number>('total').as('total')])
    .where('metric', '=', REQUESTS_METRIC)
    .groupBy(['site', 'model', 'version', 'outcome'])
    .execute();
  return rows.map((r) => ({ ...r, total: Number(r.total) }));
}

/** Inference duration percentiles per model (all sites and versions) over [fromMs, toMs). */
export async function latencyByModel(
  db: Db,
  fromMs: number,
  toMs: number,
  quantiles: readonly number[],
): Promise<{ model: string; quantile: number; seconds: number }[]> {
  const rows = await pointsOf(db, DURATION_METRIC, {}, fromMs, toMs)
    .select(['s.model', 's.bounds', 'p.buckets'])
    .where('p.buckets', 'is not', null)
    .execute();
  const byModel = new Map<string, BucketHistogram[]>();
  for (const row of rows) {
    const h = histogramOf(row.bounds, row.buckets);
    if (h === undefined) continue;
    const list = byModel.get(row.model) ?? [];
    list.push(h);
    byModel.set(row.model, list);
  }
  const out: { model: string; quantile: number; seconds: number }[] = [];
  for (const [model, list] of byModel) {
    for (const quantile of quantiles) {
      const seconds = histogramQuantile(list, quantile);
      if (seconds !== null) out.push({ model, quantile, seconds });
    }
  }
  return out;
}
