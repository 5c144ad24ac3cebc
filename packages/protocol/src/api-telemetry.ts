/**
 * The core's telemetry query API (`/api/v1/telemetry/…`): query strings and responses as TypeBox
 * schemas with the types inferred from them; shared by core, CLI and dashboard.
 */
import { Type, type Static } from '@sinclair/typebox';

const Timestamp = Type.String({ format: 'date-time', description: 'RFC 3339 time' });
const TimeParam = Type.String({
  minLength: 1,
  maxLength: 40,
  description: 'RFC 3339 time, or milliseconds since the epoch',
});
const SiteParam = Type.String({
  minLength: 1,
  maxLength: 63,
  description: 'Site name (a site token may give only its own)',
});
const ModelParam = Type.String({
  minLength: 1,
  maxLength: 253,
  description: 'Model name (`aiedge.model.name`)',
});
const VersionParam = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'Model version (`aiedge.model.version`)',
});
const NullableNumber = Type.Union([Type.Number(), Type.Null()]);

/** What `GET /api/v1/telemetry/series` can chart. */
export const TelemetrySeriesMetrics = [
  'requests',
  'errors',
  'rate',
  'latency_p50',
  'latency_p95',
  'latency_p99',
] as const;
/** One of {@link TelemetrySeriesMetrics}. */
export type TelemetrySeriesMetric = (typeof TelemetrySeriesMetrics)[number];

/** Query of `GET /api/v1/telemetry/series`. */
export const TelemetrySeriesQuerySchema = Type.Object(
  {
    site: Type.Optional(SiteParam),
    model: Type.Optional(ModelParam),
    version: Type.Optional(VersionParam),
    metric: Type.Union(
      TelemetrySeriesMetrics.map((m) => Type.Literal(m)),
      {
        description:
          'requests and errors: counts per step; rate: requests per second; latency_pNN: inference duration percentile in seconds',
      },
    ),
    from: Type.Optional(TimeParam),
    to: Type.Optional(TimeParam),
    stepSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);
/** Query of `GET /api/v1/telemetry/series`. */
export type TelemetrySeriesQuery = Static<typeof TelemetrySeriesQuerySchema>;

/** One step of a series: `time` is the start of the step; `value` is null when there is no data (percentiles). */
export const TelemetryPointSchema = Type.Object({ time: Timestamp, value: NullableNumber });
/** One step of a series. */
export type TelemetryPoint = Static<typeof TelemetryPointSchema>;

/** Response of `GET /api/v1/telemetry/series`: one series over everything the filter selects. */
export const TelemetrySeriesSchema = Type.Object({
  metric: Type.Union(TelemetrySeriesMetrics.map((m) => Type.Literal(m))),
  /** `1` (counts), `1/s` (rate) or `s` (latency). */
  unit: Type.String(),
  site: Type.Union([Type.String(), Type.Null()]),
  model: Type.Union([Type.String(), Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  from: Timestamp,
  to: Timestamp,
  stepSeconds: Type.Integer(),
  points: Type.Array(TelemetryPointSchema),
});
/** Response of `GET /api/v1/telemetry/series`. */
export type TelemetrySeries = Static<typeof TelemetrySeriesSchema>;

/** Query of `GET /api/v1/telemetry/summary`. */
export const TelemetrySummaryQuerySchema = Type.Object(
  {
    site: Type.Optional(SiteParam),
    model: Type.Optional(ModelParam),
    version: Type.Optional(VersionParam),
    windowSeconds: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 31_536_000, description: 'Window ending now; default 300' }),
    ),
  },
  { additionalProperties: false },
);
/** Query of `GET /api/v1/telemetry/summary`. */
export type TelemetrySummaryQuery = Static<typeof TelemetrySummaryQuerySchema>;

const statsProperties = {
  /** Inference requests in the window. */
  requests: Type.Number(),
  /** Requests whose outcome was not `success` (client_error, server_error, rejected). */
  errors: Type.Number(),
  /** Requests per second over the window. */
  requestRate: Type.Number(),
  /** Errors per second over the window. */
  errorRate: Type.Number(),
  /** errors / requests (0 without requests). */
  errorRatio: Type.Number(),
  /** Inference duration percentiles in seconds, from histogram buckets; null without data. */
  latencyP50Seconds: NullableNumber,
  latencyP95Seconds: NullableNumber,
  latencyP99Seconds: NullableNumber,
  /** Newest point received (any time, not only in the window); null when none. */
  lastPointAt: Type.Union([Timestamp, Type.Null()]),
};

/** Inference figures of one model version at one site. */
export const TelemetryModelSummarySchema = Type.Object({
  site: Type.String(),
  model: Type.String(),
  version: Type.String(),
  ...statsProperties,
});
/** Inference figures of one model version at one site. */
export type TelemetryModelSummary = Static<typeof TelemetryModelSummarySchema>;

/** Inference figures over everything the filter selects. */
export const TelemetryTotalsSchema = Type.Object(statsProperties);
/** Inference figures over everything the filter selects. */
export type TelemetryTotals = Static<typeof TelemetryTotalsSchema>;

/** Response of `GET /api/v1/telemetry/summary`. */
export const TelemetrySummarySchema = Type.Object({
  from: Timestamp,
  to: Timestamp,
  windowSeconds: Type.Integer(),
  /** Per (site, model, version) with inference data in the window, sorted. */
  models: Type.Array(TelemetryModelSummarySchema),
  total: TelemetryTotalsSchema,
});
/** Response of `GET /api/v1/telemetry/summary`. */
export type TelemetrySummary = Static<typeof TelemetrySummarySchema>;

/** Span status codes as stored. */
export const TelemetrySpanStatuses = ['unset', 'ok', 'error'] as const;

/** Query of `GET /api/v1/telemetry/spans`. */
export const TelemetrySpansQuerySchema = Type.Object(
  {
    site: Type.Optional(SiteParam),
    model: Type.Optional(ModelParam),
    version: Type.Optional(VersionParam),
    traceId: Type.Optional(Type.String({ pattern: '^[0-9a-f]{32}$' })),
    status: Type.Optional(Type.Union(TelemetrySpanStatuses.map((s) => Type.Literal(s)))),
    from: Type.Optional(TimeParam),
    to: Type.Optional(TimeParam),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Default 100' })),
  },
  { additionalProperties: false },
);
/** Query of `GET /api/v1/telemetry/spans`. */
export type TelemetrySpansQuery = Static<typeof TelemetrySpansQuerySchema>;

/** A stored span summary. */
export const TelemetrySpanSchema = Type.Object({
  site: Type.String(),
  model: Type.String(),
  version: Type.String(),
  name: Type.String(),
  traceId: Type.String(),
  spanId: Type.String(),
  parentSpanId: Type.String(),
  kind: Type.String(),
  startTime: Timestamp,
  durationMs: Type.Number(),
  status: Type.Union(TelemetrySpanStatuses.map((s) => Type.Literal(s))),
  statusMessage: Type.String(),
});
/** A stored span summary. */
export type TelemetrySpan = Static<typeof TelemetrySpanSchema>;

/** Response of `GET /api/v1/telemetry/spans`: newest first. */
export const TelemetrySpanListSchema = Type.Object({ spans: Type.Array(TelemetrySpanSchema) });
/** Response of `GET /api/v1/telemetry/spans`. */
export type TelemetrySpanList = Static<typeof TelemetrySpanListSchema>;

/**
 * Request header of the core's OTLP receiver carrying the id of a batch (1–128 printable ASCII
 * characters): a resend with the same id from the same site is acknowledged and not stored again.
 */
export const TELEMETRY_BATCH_ID_HEADER = 'x-aiedge-batch-id';
