/**
 * The telemetry area: the OTLP/HTTP receiver (`POST /v1/metrics`, `POST /v1/traces`; protobuf or
 * JSON, optionally gzip), the query API (`/api/v1/telemetry/{summary,series,spans}`), the fleet
 * aggregates at `/metrics`, and the periodic rollup and retention job.
 */
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge } from 'prom-client';
import {
  ForbiddenError,
  InputError,
  PayloadTooLargeError,
  TELEMETRY_BATCH_ID_HEADER,
  TelemetrySeriesQuerySchema,
  TelemetrySeriesSchema,
  TelemetrySpanListSchema,
  TelemetrySpansQuerySchema,
  TelemetrySummaryQuerySchema,
  TelemetrySummarySchema,
  describeValue,
  type TelemetrySeries,
  type TelemetrySeriesQuery,
  type TelemetrySpanList,
  type TelemetrySpansQuery,
  type TelemetrySummary,
  type TelemetrySummaryQuery,
} from '@aiedge/protocol';
import {
  decodeOtlpMetrics,
  decodeOtlpTraces,
  encodeOtlpResponse,
  type OtlpEncoding,
} from '@aiedge/telemetry';
import { requireAdminOrSite } from '../auth.js';
import type { CoreArea, CoreContext } from '../context.js';
import { ingestMetrics, ingestTraces, type IngestResult } from './ingest.js';
import { TelemetryMaintenance } from './maintenance.js';
import { latencyByModel, listSpans, requestTotals, seriesPoints, summarize, unitOf } from './queries.js';

const BATCH_ID_HEADER = TELEMETRY_BATCH_ID_HEADER;
/** Window of the fleet latency percentiles at `/metrics`. */
export const FLEET_LATENCY_WINDOW_SECONDS = 300;
/** Most steps one series query may return. */
const MAX_STEPS = 10_000;
const DEFAULT_SUMMARY_WINDOW_SECONDS = 300;
const DEFAULT_SERIES_RANGE_MS = 3_600_000;
const DEFAULT_SPAN_LIMIT = 100;

const OTLP_CONTENT_TYPES = ['application/x-protobuf', 'application/protobuf', 'application/json'];
const BatchHeadersSchema = Type.Object({
  [BATCH_ID_HEADER]: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 128,
      pattern: '^[\\x21-\\x7e]+$',
      description:
        'Id of this batch: a resend with the same id from the same site is acknowledged and not stored again',
    }),
  ),
});

const gunzipAsync = promisify(gunzip);

/** Undoes `Content-Encoding: gzip`, refusing bodies that inflate beyond `maxBytes`. */
async function decodeContent(request: FastifyRequest, body: Buffer, maxBytes: number): Promise<Buffer> {
  const header = request.headers['content-encoding'];
  const encoding = (Array.isArray(header) ? header.join(',') : (header ?? '')).trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return body;
  if (encoding !== 'gzip') {
    throw new InputError(
      `content-encoding ${describeValue(encoding)} is not supported: send gzip or no encoding`,
    );
  }
  try {
    return await gunzipAsync(body, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new PayloadTooLargeError(`request body inflates to more than the limit of ${maxBytes} bytes`, {
        cause: error,
      });
    }
    throw new InputError(`request body is not valid gzip: ${(error as Error).message}`, { cause: error });
  }
}

function encodingOf(request: FastifyRequest): OtlpEncoding {
  return (request.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')
    ? 'json'
    : 'protobuf';
}

/** Parses an RFC 3339 time or epoch milliseconds from the query string. */
function parseTime(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d{1,15}$/.test(value)
    ? Number(value)
    : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/.test(value)
      ? Date.parse(value)
      : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new InputError(
      `querystring.${name} is ${describeValue(value)}: expected an RFC 3339 time or milliseconds since the epoch`,
    );
  }
  return ms;
}

/** The site a caller may read: a site token only its own (the default when none is given). */
function readableSite(request: FastifyRequest, site: string | undefined): string | undefined {
  const principal = requireAdminOrSite(request);
  if (principal.kind === 'admin') return site;
  if (principal.kind !== 'site') throw new ForbiddenError(`a ${principal.kind} token may not read telemetry`);
  if (site !== undefined && site !== principal.site) {
    throw new ForbiddenError(`a token of site ${principal.site} may not read telemetry of site ${site}`);
  }
  return principal.site;
}

/** The telemetry area. */
export function telemetryArea(context: CoreContext): CoreArea {
  const { db } = context.store;
  const logger = context.logger.child({ component: 'core.telemetry' });
  const registers = [context.metrics];
  const received = new Counter({
    name: 'aiedge_core_telemetry_points_received_total',
    help: 'OTLP data points (metrics) and spans (traces) received in accepted requests.',
    labelNames: ['signal'],
    registers,
  });
  const rejected = new Counter({
    name: 'aiedge_core_telemetry_points_rejected_total',
    help: 'OTLP data points and spans refused in accepted requests (reported back as partial success).',
    labelNames: ['signal'],
    registers,
  });
  const deduplicated = new Counter({
    name: 'aiedge_core_telemetry_batches_deduplicated_total',
    help: 'OTLP batches acknowledged without storing because their batch id was already stored.',
    labelNames: ['signal'],
    registers,
  });
  new Counter({
    name: 'aiedge_fleet_inference_requests_total',
    help: 'Inference requests reported by the fleet, by site, model, version and outcome (from the telemetry store).',
    labelNames: ['site', 'model', 'version', 'outcome'],
    registers,
    async collect() {
      try {
        const rows = await requestTotals(db);
        this.reset();
        for (const r of rows) {
          this.inc(
            { site: r.site, model: r.model, version: r.version, outcome: r.outcome },
            Math.max(0, r.total),
          );
        }
      } catch (error) {
        logger.warn('fleet request totals failed', { err: error });
      }
    },
  });
  new Gauge({
    name: 'aiedge_fleet_inference_duration_seconds',
    help: `Inference duration percentiles per model over the fleet, over the last ${FLEET_LATENCY_WINDOW_SECONDS} s (from histogram buckets).`,
    labelNames: ['model', 'quantile'],
    registers,
    async collect() {
      try {
        const nowMs = context.now().getTime();
        const rows = await latencyByModel(
          db,
          nowMs - FLEET_LATENCY_WINDOW_SECONDS * 1000,
          nowMs + 1,
          [0.5, 0.95, 0.99],
        );
        this.reset();
        for (const r of rows) this.set({ model: r.model, quantile: String(r.quantile) }, r.seconds);
      } catch (error) {
        logger.warn('fleet latency percentiles failed', { err: error });
      }
    },
  });

  const maintenance = new TelemetryMaintenance(context, { logger });

  const account = (signal: 'metrics' | 'traces', result: IngestResult) => {
    received.inc({ signal }, result.received);
    if (result.partial.rejected > 0) rejected.inc({ signal }, result.partial.rejected);
    if (result.duplicateBatch) deduplicated.inc({ signal });
  };

  const registerReceiver = async (app: FastifyInstance) => {
    // Encapsulated: these body parsers apply to the OTLP routes only.
    await app.register(async (scope) => {
      const maxBytes = context.config.maxBodyBytes;
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser(
        OTLP_CONTENT_TYPES,
        { parseAs: 'buffer', bodyLimit: maxBytes },
        async (request: FastifyRequest, body: Buffer) => decodeContent(request, body, maxBytes),
      );
      for (const signal of ['metrics', 'traces'] as const) {
        scope.post<{ Headers: Record<string, string | undefined> }>(
          `/v1/${signal}`,
          {
            schema: {
              tags: ['telemetry'],
              summary: `OTLP/HTTP ${signal} receiver (protobuf or JSON, optionally gzip); site or admin token`,
              headers: BatchHeadersSchema,
            },
          },
          async (request, reply) => {
            const principal = requireAdminOrSite(request);
            if (principal.kind === 'enrollment')
              throw new ForbiddenError('an enrollment token may not send telemetry');
            const encoding = encodingOf(request);
            const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
            const nowMs = context.now().getTime();
            const options = {
              principal,
              batchId: request.headers[BATCH_ID_HEADER],
              nowMs,
              oldestMs: nowMs - context.config.telemetryRetentionHours * 3_600_000,
            };
            const result =
              signal === 'metrics'
                ? await ingestMetrics(context.store, decodeOtlpMetrics(body, encoding), options)
                : await ingestTraces(context.store, decodeOtlpTraces(body, encoding), options);
            account(signal, result);
            const response = encodeOtlpResponse(signal, encoding, result.partial);
            return reply
              .code(200)
              .type(encoding === 'json' ? 'application/json' : 'application/x-protobuf')
              .send(Buffer.from(response.buffer, response.byteOffset, response.byteLength));
          },
        );
      }
    });
  };

  const registerQueries = (app: FastifyInstance) => {
    app.get<{ Querystring: TelemetrySummaryQuery }>(
      '/api/v1/telemetry/summary',
      {
        schema: {
          tags: ['telemetry'],
          summary:
            'Inference request rate, error rate and latency percentiles per site, model and version, and in total',
          querystring: TelemetrySummaryQuerySchema,
          response: { 200: TelemetrySummarySchema },
        },
      },
      async (request): Promise<TelemetrySummary> => {
        const q = request.query;
        const site = readableSite(request, q.site);
        const windowSeconds = q.windowSeconds ?? DEFAULT_SUMMARY_WINDOW_SECONDS;
        const nowMs = context.now().getTime();
        const fromMs = nowMs - windowSeconds * 1000;
        // The window ends now, inclusive.
        const { models, total } = await summarize(
          db,
          { site, model: q.model, version: q.version },
          { fromMs, toMs: nowMs + 1, windowSeconds },
        );
        return {
          from: new Date(fromMs).toISOString(),
          to: new Date(nowMs).toISOString(),
          windowSeconds,
          models,
          total,
        };
      },
    );

    app.get<{ Querystring: TelemetrySeriesQuery }>(
      '/api/v1/telemetry/series',
      {
        schema: {
          tags: ['telemetry'],
          summary: 'A time series of requests, errors, request rate or latency percentiles',
          querystring: TelemetrySeriesQuerySchema,
          response: { 200: TelemetrySeriesSchema },
        },
      },
      async (request): Promise<TelemetrySeries> => {
        const q = request.query;
        const site = readableSite(request, q.site);
        const toMs = parseTime(q.to, 'to') ?? context.now().getTime();
        const fromMs = parseTime(q.from, 'from') ?? toMs - DEFAULT_SERIES_RANGE_MS;
        if (fromMs >= toMs) {
          throw new InputError(
            `querystring.from (${q.from ?? 'default'}) must be before querystring.to (${q.to ?? 'now'})`,
          );
        }
        const stepSeconds = q.stepSeconds ?? Math.max(60, Math.ceil((toMs - fromMs) / 1000 / 360));
        const steps = Math.ceil((toMs - fromMs) / (stepSeconds * 1000));
        if (steps > MAX_STEPS) {
          throw new InputError(
            `querystring.stepSeconds is ${stepSeconds}: the range needs ${steps} steps, more than ${MAX_STEPS}; use a larger step`,
          );
        }
        const points = await seriesPoints(
          db,
          { site, model: q.model, version: q.version },
          q.metric,
          fromMs,
          toMs,
          stepSeconds * 1000,
        );
        return {
          metric: q.metric,
          unit: unitOf(q.metric),
          site: site ?? null,
          model: q.model ?? null,
          version: q.version ?? null,
          from: new Date(fromMs).toISOString(),
          to: new Date(toMs).toISOString(),
          stepSeconds,
          points,
        };
      },
    );

    app.get<{ Querystring: TelemetrySpansQuery }>(
      '/api/v1/telemetry/spans',
      {
        schema: {
          tags: ['telemetry'],
          summary: 'Span summaries (inference requests), newest first',
          querystring: TelemetrySpansQuerySchema,
          response: { 200: TelemetrySpanListSchema },
        },
      },
      async (request): Promise<TelemetrySpanList> => {
        const q = request.query;
        const site = readableSite(request, q.site);
        const spans = await listSpans(db, {
          site,
          model: q.model,
          version: q.version,
          traceId: q.traceId,
          status: q.status,
          fromMs: parseTime(q.from, 'from') ?? 0,
          toMs: parseTime(q.to, 'to') ?? Number.MAX_SAFE_INTEGER,
          limit: q.limit ?? DEFAULT_SPAN_LIMIT,
        });
        return { spans };
      },
    );
  };

  return {
    name: 'telemetry',
    register: async (app) => {
      await registerReceiver(app);
      registerQueries(app);
    },
    start: async () => {
      maintenance.start();
    },
    close: () => maintenance.close(),
  };
}
