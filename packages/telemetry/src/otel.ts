import {
  createNoopMeter,
  ProxyTracer,
  ROOT_CONTEXT,
  type Context,
  type Meter,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
} from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as JsonMetricExporter,
} from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as ProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as JsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import {
  BatchSpanProcessor,
  TracerProvider,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import {
  resolveOtelConfig,
  type OtlpExportConfig,
  type Signal,
  type TemporalityPreference,
} from './_otel-config.js';
import { silentLogger, type Logger } from './logger.js';

/** Options of {@link startTelemetry}. */
export interface TelemetryOptions {
  /** `service.name` of the resource, unless `OTEL_SERVICE_NAME` is set; also the meter and tracer name. */
  serviceName: string;
  /** `service.version` of the resource. */
  serviceVersion: string;
  /** Where the `OTEL_*` variables are read from; default `process.env`. */
  env?: Record<string, string | undefined>;
  /** Extra resource attributes; `OTEL_RESOURCE_ATTRIBUTES` and the service name and version win over them. */
  resourceAttributes?: Record<string, string>;
  /** Receives export failures (at warn) and start-up information; default {@link silentLogger}. */
  logger?: Logger;
}

/** Meter and tracer of one process, exporting over OTLP/HTTP when the environment asks for it. */
export interface Telemetry {
  /** True when metrics are exported; otherwise {@link Telemetry.meter} is a no-op. */
  readonly metricsEnabled: boolean;
  /** True when traces are exported; otherwise {@link Telemetry.tracer} is a no-op. */
  readonly tracesEnabled: boolean;
  /** Meter to create instruments with. */
  readonly meter: Meter;
  /** Tracer to start spans with; pass the parent context explicitly (no global context manager is set). */
  readonly tracer: Tracer;
  /** Exports everything recorded so far; never rejects (failures are logged). */
  forceFlush(): Promise<void>;
  /** Exports what is left and stops exporting; never rejects, safe to call twice. */
  shutdown(): Promise<void>;
}

/** Minimum time between two warnings about the same failing signal; failures in between are counted. */
const EXPORT_WARNING_INTERVAL_MS = 60_000;

/**
 * Sets up metrics and traces from the standard `OTEL_*` environment variables without registering
 * anything globally. Throws an InputError for invalid configuration; export failures are only logged.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const env = options.env ?? process.env;
  const logger = options.logger ?? silentLogger;
  const config = resolveOtelConfig(env);
  const resource = buildResource(options, config.serviceName, config.resourceAttributes);

  let meterProvider: MeterProvider | undefined;
  let meter: Meter = createNoopMeter();
  const metricsExport = config.metrics.export;
  if (metricsExport !== undefined) {
    const exporter = new ReportingMetricExporter(
      createMetricExporter(metricsExport, config.metrics.temporality),
      new ExportFailureReporter(logger, 'metrics', metricsExport.url),
    );
    meterProvider = new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: config.metrics.exportIntervalMs,
          exportTimeoutMillis: config.metrics.exportTimeoutMs,
        }),
      ],
    });
    meter = meterProvider.getMeter(options.serviceName, options.serviceVersion);
  }

  let tracerProvider: TracerProvider | undefined;
  let tracer: Tracer = new ProxyTracer({ getDelegateTracer: () => undefined }, options.serviceName);
  const tracesExport = config.traces.export;
  if (tracesExport !== undefined) {
    const exporter = new ReportingSpanExporter(
      createTraceExporter(tracesExport),
      new ExportFailureReporter(logger, 'traces', tracesExport.url),
    );
    tracerProvider = new TracerProvider({
      resource,
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          scheduledDelayMillis: config.traces.scheduleDelayMs,
          exportTimeoutMillis: config.traces.exportTimeoutMs,
          maxQueueSize: config.traces.maxQueueSize,
          maxExportBatchSize: config.traces.maxExportBatchSize,
        }),
      ],
    });
    tracer = tracerProvider.getTracer(options.serviceName, options.serviceVersion);
  }

  logger.debug('OpenTelemetry configured', {
    metrics: metricsExport === undefined ? 'off' : describeExport(metricsExport),
    traces: tracesExport === undefined ? 'off' : describeExport(tracesExport),
  });
  return new SdkTelemetry({ meter, tracer, meterProvider, tracerProvider, logger });
}

/** Reads a W3C `traceparent`/`tracestate` from request headers (any case) into a context to start spans in. */
export function extractTraceContext(headers: Record<string, string | string[] | undefined>): Context {
  return traceContextPropagator.extract(ROOT_CONTEXT, headers, headerGetter);
}

/** Writes the W3C `traceparent`/`tracestate` of the span in `context` into outgoing request headers. */
export function injectTraceContext(context: Context, headers: Record<string, string>): void {
  traceContextPropagator.inject(context, headers, headerSetter);
}

const traceContextPropagator = new W3CTraceContextPropagator();

type IncomingHeaders = Record<string, string | string[] | undefined>;

const headerGetter: TextMapGetter<IncomingHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const direct = carrier[key];
    if (direct !== undefined) return direct;
    const lower = key.toLowerCase();
    for (const [name, value] of Object.entries(carrier)) {
      if (name.toLowerCase() === lower) return value;
    }
    return undefined;
  },
};

const headerSetter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

/** Resource precedence, lowest first: options.resourceAttributes, options' name and version, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME. */
function buildResource(
  options: TelemetryOptions,
  envServiceName: string | undefined,
  envAttributes: Readonly<Record<string, string>>,
): Resource {
  return defaultResource().merge(
    resourceFromAttributes({
      ...options.resourceAttributes,
      'service.name': options.serviceName,
      'service.version': options.serviceVersion,
      ...envAttributes,
      ...(envServiceName === undefined ? {} : { 'service.name': envServiceName }),
    }),
  );
}

type ExporterConfig = NonNullable<ConstructorParameters<typeof ProtoTraceExporter>[0]>;

/** Exporter settings passed explicitly, so the `env` option (not process.env) decides. */
function exporterConfig(config: OtlpExportConfig): ExporterConfig {
  return {
    url: config.url,
    headers: { ...config.headers },
    timeoutMillis: config.timeoutMs,
    compression: config.compression as NonNullable<ExporterConfig['compression']>,
  };
}

const TEMPORALITY: Record<TemporalityPreference, AggregationTemporalityPreference> = {
  cumulative: AggregationTemporalityPreference.CUMULATIVE,
  delta: AggregationTemporalityPreference.DELTA,
  lowmemory: AggregationTemporalityPreference.LOWMEMORY,
};

function createMetricExporter(
  config: OtlpExportConfig,
  temporality: TemporalityPreference,
): PushMetricExporter {
  const options = { ...exporterConfig(config), temporalityPreference: TEMPORALITY[temporality] };
  return config.protocol === 'http/json' ? new JsonMetricExporter(options) : new ProtoMetricExporter(options);
}

function createTraceExporter(config: OtlpExportConfig): SpanExporter {
  const options = exporterConfig(config);
  return config.protocol === 'http/json' ? new JsonTraceExporter(options) : new ProtoTraceExporter(options);
}

/** Endpoint without credentials or query, safe to log. */
function safeUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

function describeExport(config: OtlpExportConfig): Record<string, unknown> {
  return {
    endpoint: safeUrl(config.url),
    protocol: config.protocol,
    headerNames: Object.keys(config.headers),
  };
}

/** Logs failed exports of one signal at warn (at most once a minute while failing) and the recovery at info. */
class ExportFailureReporter {
  readonly #logger: Logger;
  readonly #signal: Signal;
  readonly #endpoint: string;
  #failing = false;
  #lastWarningMs = Number.NEGATIVE_INFINITY;
  #unreported = 0;

  constructor(logger: Logger, signal: Signal, url: string) {
    this.#logger = logger;
    this.#signal = signal;
    this.#endpoint = safeUrl(url);
  }

  record(result: ExportResult): void {
    if (result.code === ExportResultCode.SUCCESS) {
      if (this.#failing) {
        this.#logger.info('OTLP export recovered', { signal: this.#signal, endpoint: this.#endpoint });
      }
      this.#failing = false;
      this.#unreported = 0;
      return;
    }
    const now = Date.now();
    if (!this.#failing || now - this.#lastWarningMs >= EXPORT_WARNING_INTERVAL_MS) {
      this.#logger.warn('OTLP export failed', {
        signal: this.#signal,
        endpoint: this.#endpoint,
        err: result.error,
        ...(this.#unreported > 0 ? { failuresSinceLastWarning: this.#unreported } : {}),
      });
      this.#lastWarningMs = now;
      this.#unreported = 0;
    } else {
      this.#unreported += 1;
    }
    this.#failing = true;
  }

  /** Runs one export, turning a synchronous throw into a failed result, and reports the outcome. */
  export<T>(
    exportFn: (items: T, done: (result: ExportResult) => void) => void,
    items: T,
    done: (result: ExportResult) => void,
  ): void {
    const finish = (result: ExportResult): void => {
      this.record(result);
      done(result);
    };
    try {
      exportFn(items, finish);
    } catch (error) {
      finish({
        code: ExportResultCode.FAILED,
        error: error instanceof Error ? error : new Error(String(error)),
      });
    }
  }
}

/** Metric exporter that reports every export's outcome to an {@link ExportFailureReporter}. */
class ReportingMetricExporter implements PushMetricExporter {
  readonly #inner: PushMetricExporter;
  readonly #reporter: ExportFailureReporter;
  readonly selectAggregationTemporality?: NonNullable<PushMetricExporter['selectAggregationTemporality']>;
  readonly selectAggregation?: NonNullable<PushMetricExporter['selectAggregation']>;

  constructor(inner: PushMetricExporter, reporter: ExportFailureReporter) {
    this.#inner = inner;
    this.#reporter = reporter;
    if (inner.selectAggregationTemporality) {
      this.selectAggregationTemporality = inner.selectAggregationTemporality.bind(inner);
    }
    if (inner.selectAggregation) this.selectAggregation = inner.selectAggregation.bind(inner);
  }

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    this.#reporter.export((items, done) => this.#inner.export(items, done), metrics, resultCallback);
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

/** Span exporter that reports every export's outcome to an {@link ExportFailureReporter}. */
class ReportingSpanExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #reporter: ExportFailureReporter;

  constructor(inner: SpanExporter, reporter: ExportFailureReporter) {
    this.#inner = inner;
    this.#reporter = reporter;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.#reporter.export((items, done) => this.#inner.export(items, done), spans, resultCallback);
  }

  async forceFlush(): Promise<void> {
    await this.#inner.forceFlush?.();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

interface SdkTelemetryParts {
  readonly meter: Meter;
  readonly tracer: Tracer;
  readonly meterProvider: MeterProvider | undefined;
  readonly tracerProvider: TracerProvider | undefined;
  readonly logger: Logger;
}

/** {@link Telemetry} over the SDK providers (either may be absent when its signal is off). */
class SdkTelemetry implements Telemetry {
  readonly meter: Meter;
  readonly tracer: Tracer;
  readonly #meterProvider: MeterProvider | undefined;
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #logger: Logger;
  #shutdown: Promise<void> | undefined;

  constructor(parts: SdkTelemetryParts) {
    this.meter = parts.meter;
    this.tracer = parts.tracer;
    this.#meterProvider = parts.meterProvider;
    this.#tracerProvider = parts.tracerProvider;
    this.#logger = parts.logger;
  }

  get metricsEnabled(): boolean {
    return this.#meterProvider !== undefined;
  }

  get tracesEnabled(): boolean {
    return this.#tracerProvider !== undefined;
  }

  async forceFlush(): Promise<void> {
    if (this.#shutdown !== undefined) return;
    await this.#settle('flush', [this.#meterProvider?.forceFlush(), this.#tracerProvider?.forceFlush()]);
  }

  shutdown(): Promise<void> {
    this.#shutdown ??= this.#settle('shutdown', [
      this.#meterProvider?.shutdown(),
      this.#tracerProvider?.shutdown(),
    ]);
    return this.#shutdown;
  }

  /** Waits for both signals; failures were already reported per export, so they are only logged at debug. */
  async #settle(what: string, work: [Promise<void> | undefined, Promise<void> | undefined]): Promise<void> {
    const [metrics, traces] = await Promise.allSettled(work);
    for (const [signal, outcome] of [
      ['metrics', metrics],
      ['traces', traces],
    ] as const) {
      if (outcome.status === 'rejected') {
        const reason: unknown = outcome.reason;
        const err = Array.isArray(reason) ? reason[0] : reason;
        this.#logger.debug(`OpenTelemetry ${what} did not complete`, { signal, err });
      }
    }
  }
}
