/**
 * Storing decoded OTLP requests: attributes each resource to a site, turns metric points into
 * increases (see tables.ts), summarizes spans, and deduplicates batches by id — all of one request
 * in one transaction, so a batch is either stored once with its id or not at all.
 */
import { createHash } from 'node:crypto';
import { InputError, NAME_PATTERN, describeValue } from '@aiedge/protocol';
import type {
  OtlpAttributes,
  OtlpAttributeValue,
  OtlpHistogramDataPoint,
  OtlpMetricsRequest,
  OtlpNumberDataPoint,
  OtlpPartialSuccess,
  OtlpTracesRequest,
} from '@aiedge/telemetry';
import type { Principal } from '../auth.js';
import type { Store, Tx } from '../store/db.js';
import type { SeriesKind, TelemetryPointsTable, TelemetrySpansTable } from './tables.js';

/** Resource attribute an admin-token sender names the site with. */
export const SITE_ATTRIBUTE = 'aiedge.site';
/** Attribute of the model name (on the point, span or resource). */
export const MODEL_ATTRIBUTE = 'aiedge.model.name';
/** Attribute of the model version (on the point, span or resource). */
export const VERSION_ATTRIBUTE = 'aiedge.model.version';
/** Site of admin-token telemetry that names none. */
export const CORE_SITE = 'core';

/** Longest model name, version and metric name stored; longer points are rejected. */
const MAX_NAME_LENGTH = 253;
const MAX_VERSION_LENGTH = 128;
/** Rows per INSERT statement (well under SQLite's bound-parameter limit). */
const INSERT_CHUNK = 200;
/** OTLP data point flag: no value was recorded for this point. */
const FLAG_NO_RECORDED_VALUE = 1;
const site_pattern = new RegExp(NAME_PATTERN);

/** Options of {@link ingestMetrics} and {@link ingestTraces}. */
export interface IngestOptions {
  readonly principal: Exclude<Principal, { kind: 'enrollment' }>;
  /** `x-aiedge-batch-id`, when the sender gave one. */
  readonly batchId: string | undefined;
  /** The clock's now. */
  readonly nowMs: number;
  /** Points and spans older than this are rejected (they would be deleted at once). */
  readonly oldestMs: number;
}

/** What happened to one request. */
export interface IngestResult {
  /** Data points or spans in the request. */
  readonly received: number;
  /** Stored (increases, samples, spans). */
  readonly stored: number;
  /** Cumulative points not newer than the last one of their stream (resends): acknowledged, not stored. */
  readonly resent: number;
  /** True when the batch id was already stored: nothing was stored again. */
  readonly duplicateBatch: boolean;
  /** Rejected points or spans and why. */
  readonly partial: OtlpPartialSuccess;
}

/** The dedupe scope of a sender: its site, or {@link CORE_SITE} for an admin token. */
function senderOf(principal: IngestOptions['principal']): string {
  return principal.kind === 'site' ? principal.site : CORE_SITE;
}

/** The site of one resource: a site token's own site always; for an admin token, `aiedge.site` or `core`. */
function siteOf(principal: IngestOptions['principal'], attributes: OtlpAttributes, path: string): string {
  if (principal.kind === 'site') return principal.site;
  const claimed = attributes[SITE_ATTRIBUTE];
  if (claimed === undefined) return CORE_SITE;
  if (typeof claimed !== 'string' || claimed.length > 63 || !site_pattern.test(claimed)) {
    throw new InputError(
      `${path}.attributes["${SITE_ATTRIBUTE}"] is ${describeValue(claimed)}: expected a site name (lowercase letters, digits and '-', at most 63)`,
    );
  }
  return claimed;
}

function stringAttribute(value: OtlpAttributeValue | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

/** Collects rejection reasons (counted, with the first few distinct messages kept). */
class Rejections {
  count = 0;
  readonly #reasons = new Set<string>();

  add(reason: string, n = 1): void {
    if (n <= 0) return;
    this.count += n;
    if (this.#reasons.size < 5) this.#reasons.add(reason);
  }

  toPartial(): OtlpPartialSuccess {
    return { rejected: this.count, errorMessage: [...this.#reasons].join('; ') };
  }
}

/** Records the batch id in `tx`; false when the same sender already stored it. */
async function claimBatch(
  tx: Tx,
  sender: string,
  signal: 'metrics' | 'traces',
  batchId: string | undefined,
  nowMs: number,
): Promise<boolean> {
  if (batchId === undefined) return true;
  const inserted = await tx
    .insertInto('telemetry_batches')
    .values({ site: sender, signal, batch_id: batchId, received_ms: nowMs })
    .onConflict((oc) => oc.columns(['site', 'signal', 'batch_id']).doNothing())
    .executeTakeFirst();
  return Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 1;
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1_000_000n);
}

/** Keys sorted, so equal attribute sets give equal JSON. */
function canonicalJson(attributes: Record<string, OtlpAttributeValue>): string {
  const sorted = Object.keys(attributes)
    .sort()
    .map((k) => [k, attributes[k]] as const);
  return JSON.stringify(Object.fromEntries(sorted), (_k, v: unknown) =>
    v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
  );
}

interface SeriesIdentity {
  readonly site: string;
  readonly model: string;
  readonly version: string;
  readonly metric: string;
  readonly kind: SeriesKind;
  readonly unit: string;
  readonly outcome: string;
  readonly attributes: string;
  readonly bounds: string | null;
}

/** Finds or creates the series of `identity` (one statement when it exists). */
async function seriesId(
  tx: Tx,
  identity: SeriesIdentity,
  nowMs: number,
  cache: Map<string, number>,
): Promise<number> {
  const key = createHash('sha256')
    .update(
      JSON.stringify([
        identity.site,
        identity.model,
        identity.version,
        identity.metric,
        identity.kind,
        identity.outcome,
        identity.attributes,
        identity.bounds,
      ]),
    )
    .digest('hex');
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const existing = await tx
    .selectFrom('telemetry_series')
    .select('id')
    .where('key', '=', key)
    .executeTakeFirst();
  let id = existing?.id;
  if (id === undefined) {
    const inserted = await tx
      .insertInto('telemetry_series')
      .values({ key, ...identity, total: 0, created_ms: nowMs, last_point_ms: 0 })
      .returning('id')
      .executeTakeFirstOrThrow();
    id = inserted.id;
  }
  cache.set(key, id);
  return id;
}

/** A point ready to become rows: its series identity and measurement. */
interface PendingPoint {
  readonly identity: SeriesIdentity;
  readonly timeMs: number;
  /** Cumulative stream to difference against; undefined for delta points and samples. */
  readonly stream: { readonly startNs: bigint; readonly timeNs: bigint } | undefined;
  readonly value: number;
  readonly count: number;
  readonly max: number | null;
  readonly buckets: readonly number[] | null;
}

/** Splits the attributes of a point into its model, version, outcome and the rest. */
function pointIdentity(
  base: { site: string; metric: string; unit: string; resource: OtlpAttributes },
  kind: SeriesKind,
  attributes: OtlpAttributes,
  bounds: readonly number[] | null,
): SeriesIdentity | string {
  const rest: Record<string, OtlpAttributeValue> = { ...attributes };
  const model =
    stringAttribute(attributes[MODEL_ATTRIBUTE]) ?? stringAttribute(base.resource[MODEL_ATTRIBUTE]) ?? '';
  const version =
    stringAttribute(attributes[VERSION_ATTRIBUTE]) ?? stringAttribute(base.resource[VERSION_ATTRIBUTE]) ?? '';
  const outcome = stringAttribute(attributes['outcome']) ?? '';
  delete rest[MODEL_ATTRIBUTE];
  delete rest[VERSION_ATTRIBUTE];
  delete rest['outcome'];
  if (model.length > MAX_NAME_LENGTH)
    return `${MODEL_ATTRIBUTE} is longer than ${MAX_NAME_LENGTH} characters`;
  if (version.length > MAX_VERSION_LENGTH)
    return `${VERSION_ATTRIBUTE} is longer than ${MAX_VERSION_LENGTH} characters`;
  return {
    site: base.site,
    model,
    version,
    metric: base.metric,
    kind,
    unit: base.unit,
    outcome,
    attributes: canonicalJson(rest),
    bounds: bounds === null ? null : JSON.stringify(bounds),
  };
}

/** Stores a decoded metrics request; throws InputError for an invalid `aiedge.site` claim. */
export async function ingestMetrics(
  store: Store,
  request: OtlpMetricsRequest,
  options: IngestOptions,
): Promise<IngestResult> {
  const rejections = new Rejections();
  const pending: PendingPoint[] = [];
  let received = 0;

  request.resourceMetrics.forEach((rm, r) => {
    const site = siteOf(options.principal, rm.resource.attributes, `resourceMetrics[${r}].resource`);
    for (const sm of rm.scopeMetrics) {
      for (const metric of sm.metrics) {
        const data = metric.data;
        if (data === undefined) continue;
        received += data.dataPoints.length;
        if (metric.name.length > MAX_NAME_LENGTH) {
          rejections.add(
            `metric names longer than ${MAX_NAME_LENGTH} characters are not stored`,
            data.dataPoints.length,
          );
          continue;
        }
        const base = { site, metric: metric.name, unit: metric.unit, resource: rm.resource.attributes };
        const accept = (
          point: OtlpNumberDataPoint | OtlpHistogramDataPoint,
          kind: SeriesKind,
          bounds: readonly number[] | null,
          make: (identity: SeriesIdentity, timeMs: number) => PendingPoint | string,
        ) => {
          if ((point.flags & FLAG_NO_RECORDED_VALUE) !== 0) return;
          if (point.timeUnixNano === 0n) {
            rejections.add(`${metric.name}: points without timeUnixNano are not stored`);
            return;
          }
          // A clock ahead of the core's must not hide points from windows that end now.
          const timeMs = Math.min(nsToMs(point.timeUnixNano), options.nowMs);
          if (timeMs < options.oldestMs) {
            rejections.add('points older than the telemetry retention are not stored');
            return;
          }
          const identity = pointIdentity(base, kind, point.attributes, bounds);
          const made = typeof identity === 'string' ? identity : make(identity, timeMs);
          if (typeof made === 'string') rejections.add(`${metric.name}: ${made}`);
          else pending.push(made);
        };
        switch (data.type) {
          case 'gauge':
          case 'sum': {
            const isCounter = data.type === 'sum' && data.isMonotonic;
            const temporality = data.type === 'sum' ? data.aggregationTemporality : 'unspecified';
            // An up-down counter's cumulative value is a level, not an increase: keep it as a sample.
            const kind: SeriesKind =
              data.type === 'gauge' || (!data.isMonotonic && temporality === 'cumulative') ? 'gauge' : 'sum';
            if (data.type === 'sum' && temporality === 'unspecified') {
              rejections.add(
                `${metric.name}: sums with unspecified aggregation temporality are not stored`,
                data.dataPoints.length,
              );
              break;
            }
            for (const point of data.dataPoints) {
              accept(point, kind, null, (identity, timeMs) => {
                if (!Number.isFinite(point.value)) return `value ${point.value} is not finite`;
                if (kind === 'gauge') {
                  return {
                    identity,
                    timeMs,
                    stream: undefined,
                    value: point.value,
                    count: 1,
                    max: point.value,
                    buckets: null,
                  };
                }
                if (isCounter && point.value < 0) return `a monotonic sum is ${point.value}`;
                return {
                  identity,
                  timeMs,
                  stream:
                    temporality === 'cumulative'
                      ? { startNs: point.startTimeUnixNano, timeNs: point.timeUnixNano }
                      : undefined,
                  value: point.value,
                  count: 1,
                  max: null,
                  buckets: null,
                };
              });
            }
            break;
          }
          case 'histogram': {
            if (data.aggregationTemporality === 'unspecified') {
              rejections.add(
                `${metric.name}: histograms with unspecified aggregation temporality are not stored`,
                data.dataPoints.length,
              );
              break;
            }
            for (const point of data.dataPoints) {
              const hasBuckets = point.bucketCounts.length > 0;
              accept(point, 'histogram', hasBuckets ? point.explicitBounds : null, (identity, timeMs) => {
                const sum = point.sum ?? 0;
                if (!Number.isFinite(sum)) return `histogram sum ${sum} is not finite`;
                return {
                  identity,
                  timeMs,
                  stream:
                    data.aggregationTemporality === 'cumulative'
                      ? { startNs: point.startTimeUnixNano, timeNs: point.timeUnixNano }
                      : undefined,
                  value: sum,
                  count: point.count,
                  max: null,
                  buckets: hasBuckets ? point.bucketCounts : null,
                };
              });
            }
            break;
          }
          case 'exponentialHistogram':
          case 'summary':
            rejections.add(`${metric.name}: ${data.type} points are not stored`, data.dataPoints.length);
            break;
        }
      }
    }
  });

  // Oldest first, so the points of one stream are differenced in order.
  pending.sort((a, b) => a.timeMs - b.timeMs);
  const outcome = await store.transaction(async (tx) => {
    if (!(await claimBatch(tx, senderOf(options.principal), 'metrics', options.batchId, options.nowMs))) {
      return { stored: 0, resent: 0, duplicate: true };
    }
    const cache = new Map<string, number>();
    const rows: Omit<TelemetryPointsTable, 'id'>[] = [];
    const touched = new Map<number, { lastMs: number; added: number }>();
    let resent = 0;
    for (const p of pending) {
      const id = await seriesId(tx, p.identity, options.nowMs, cache);
      let value = p.value;
      let count = p.count;
      let buckets = p.buckets;
      if (p.stream !== undefined) {
        const increase = await differentiate(tx, id, p, options.nowMs);
        if (increase === undefined) {
          resent++;
          continue;
        }
        ({ value, count, buckets } = increase);
      }
      rows.push({
        series_id: id,
        time_ms: p.timeMs,
        resolution_s: 0,
        value,
        count,
        max: p.max,
        buckets: buckets === null ? null : JSON.stringify(buckets),
      });
      const t = touched.get(id) ?? { lastMs: 0, added: 0 };
      t.lastMs = Math.max(t.lastMs, p.timeMs);
      t.added += p.identity.kind === 'sum' ? value : p.identity.kind === 'histogram' ? count : 0;
      touched.set(id, t);
    }
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await tx
        .insertInto('telemetry_points')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
    for (const [id, t] of touched) {
      const series = await tx
        .selectFrom('telemetry_series')
        .select(['total', 'last_point_ms'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      await tx
        .updateTable('telemetry_series')
        .set({ total: series.total + t.added, last_point_ms: Math.max(series.last_point_ms, t.lastMs) })
        .where('id', '=', id)
        .execute();
    }
    return { stored: rows.length, resent, duplicate: false };
  });

  return {
    received,
    stored: outcome.stored,
    resent: outcome.resent,
    duplicateBatch: outcome.duplicate,
    partial: outcome.duplicate ? { rejected: 0, errorMessage: '' } : rejections.toPartial(),
  };
}

/**
 * The increase a cumulative point adds to its stream, updating the stream; undefined when the point
 * is not newer than the stream's last one (a resend).
 */
async function differentiate(
  tx: Tx,
  seriesId: number,
  p: PendingPoint,
  nowMs: number,
): Promise<{ value: number; count: number; buckets: readonly number[] | null } | undefined> {
  const stream = p.stream as NonNullable<PendingPoint['stream']>;
  const startNs = stream.startNs.toString();
  const last = await tx
    .selectFrom('telemetry_streams')
    .selectAll()
    .where('series_id', '=', seriesId)
    .where('start_ns', '=', startNs)
    .executeTakeFirst();
  const next = {
    time_ns: stream.timeNs.toString(),
    value: p.value,
    count: p.count,
    buckets: p.buckets === null ? null : JSON.stringify(p.buckets),
    updated_ms: nowMs,
  };
  if (last === undefined) {
    await tx
      .insertInto('telemetry_streams')
      .values({ series_id: seriesId, start_ns: startNs, ...next })
      .execute();
    return { value: p.value, count: p.count, buckets: p.buckets };
  }
  if (stream.timeNs <= BigInt(last.time_ns)) return undefined;
  await tx
    .updateTable('telemetry_streams')
    .set(next)
    .where('series_id', '=', seriesId)
    .where('start_ns', '=', startNs)
    .execute();
  const lastBuckets = last.buckets === null ? null : (JSON.parse(last.buckets) as number[]);
  const isHistogram = p.identity.kind === 'histogram';
  const reset =
    (isHistogram ? p.count < last.count : p.value < last.value) ||
    (p.buckets !== null &&
      lastBuckets !== null &&
      (lastBuckets.length !== p.buckets.length || p.buckets.some((c, i) => c < (lastBuckets[i] as number))));
  if (reset) return { value: p.value, count: p.count, buckets: p.buckets };
  return {
    value: p.value - last.value,
    count: p.count - last.count,
    buckets:
      p.buckets === null
        ? null
        : lastBuckets === null
          ? p.buckets
          : p.buckets.map((c, i) => c - (lastBuckets[i] as number)),
  };
}

/** Stores the summaries of a decoded traces request. */
export async function ingestTraces(
  store: Store,
  request: OtlpTracesRequest,
  options: IngestOptions,
): Promise<IngestResult> {
  const rejections = new Rejections();
  const rows: Omit<TelemetrySpansTable, 'id'>[] = [];
  let received = 0;
  request.resourceSpans.forEach((rs, r) => {
    const site = siteOf(options.principal, rs.resource.attributes, `resourceSpans[${r}].resource`);
    const resource = rs.resource.attributes;
    for (const ss of rs.scopeSpans) {
      for (const span of ss.spans) {
        received++;
        if (span.startTimeUnixNano === 0n) {
          rejections.add('spans without startTimeUnixNano are not stored');
          continue;
        }
        const startMs = nsToMs(span.startTimeUnixNano);
        if (startMs < options.oldestMs) {
          rejections.add('spans older than the telemetry retention are not stored');
          continue;
        }
        if (span.endTimeUnixNano < span.startTimeUnixNano) {
          rejections.add('spans that end before they start are not stored');
          continue;
        }
        const model =
          stringAttribute(span.attributes[MODEL_ATTRIBUTE]) ??
          stringAttribute(resource[MODEL_ATTRIBUTE]) ??
          '';
        const version =
          stringAttribute(span.attributes[VERSION_ATTRIBUTE]) ??
          stringAttribute(resource[VERSION_ATTRIBUTE]) ??
          '';
        if (model.length > MAX_NAME_LENGTH || version.length > MAX_VERSION_LENGTH) {
          rejections.add('spans with an overlong model name or version are not stored');
          continue;
        }
        rows.push({
          site,
          model,
          version,
          name: span.name.slice(0, 1024),
          trace_id: span.traceId,
          span_id: span.spanId,
          parent_span_id: span.parentSpanId,
          kind: span.kind,
          start_ms: startMs,
          duration_ms: Number(span.endTimeUnixNano - span.startTimeUnixNano) / 1e6,
          status: span.status.code,
          status_message: span.status.message.slice(0, 1024),
        });
      }
    }
  });
  const duplicate = await store.transaction(async (tx) => {
    if (!(await claimBatch(tx, senderOf(options.principal), 'traces', options.batchId, options.nowMs)))
      return true;
    for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
      await tx
        .insertInto('telemetry_spans')
        .values(rows.slice(i, i + INSERT_CHUNK))
        .execute();
    }
    return false;
  });
  return {
    received,
    stored: duplicate ? 0 : rows.length,
    resent: 0,
    duplicateBatch: duplicate,
    partial: duplicate ? { rejected: 0, errorMessage: '' } : rejections.toPartial(),
  };
}
