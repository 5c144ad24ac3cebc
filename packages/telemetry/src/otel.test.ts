import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { metrics, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import {
  MeterProvider,
  PeriodicExportingMetricReader,
  InMemoryMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { AggregationTemporality, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { InputError } from '@aiedge/protocol';
import { closedPort, startOtlpReceiver, type OtlpReceiver } from './_test-otlp-receiver.js';
import { createLogger } from './logger.js';
import {
  extractTraceContext,
  injectTraceContext,
  startTelemetry,
  type Telemetry,
  type TelemetryOptions,
} from './otel.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN_ID}-01`;

const COUNTER = 'aiedge.test.requests';
const HISTOGRAM = 'aiedge.test.latency';

const cleanups = new WeakMap<TestContext, (() => Promise<void>)[]>();

/** Runs `cleanup` when the test ends, after cleanups registered later (last in, first out). */
function defer(t: TestContext, cleanup: () => Promise<void>): void {
  let stack = cleanups.get(t);
  if (stack === undefined) {
    const created: (() => Promise<void>)[] = [];
    cleanups.set(t, created);
    t.after(async () => {
      for (let next = created.pop(); next !== undefined; next = created.pop()) await next();
    });
    stack = created;
  }
  stack.push(cleanup);
}

/** Starts a receiver that is closed when the test ends (after the telemetry using it is shut down). */
async function receiver(t: TestContext): Promise<OtlpReceiver> {
  const started = await startOtlpReceiver();
  defer(t, () => started.close());
  return started;
}

/** Starts telemetry that is shut down when the test ends. */
function telemetry(
  t: TestContext,
  options: Partial<TelemetryOptions> & Pick<TelemetryOptions, 'env'>,
): Telemetry {
  const started = startTelemetry({ serviceName: 'aiedge-test', serviceVersion: '1.2.3', ...options });
  defer(t, () => started.shutdown());
  return started;
}

/** Records one counter add, one histogram value, a root span and a span continuing {@link TRACEPARENT}. */
function record(tel: Telemetry): void {
  tel.meter.createCounter(COUNTER).add(3, { model: 'mnist' });
  tel.meter.createHistogram(HISTOGRAM, { unit: 'ms' }).record(12.5);
  tel.tracer.startSpan('root-span').end();
  tel.tracer.startSpan('continued-span', {}, extractTraceContext({ traceparent: TRACEPARENT })).end();
}

/** A logger writing into memory, and the text written so far. */
function captureLogs(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
  });
  return {
    logger: createLogger({ component: 'telemetry-test', level: 'debug', destination: stream }),
    text: () => text,
  };
}

// Minimal views of the OTLP/JSON bodies the assertions read.
interface JsonKeyValue {
  key: string;
  value: { stringValue?: string };
}
interface JsonResource {
  attributes: JsonKeyValue[];
}
interface JsonMetricsBody {
  resourceMetrics: { resource: JsonResource; scopeMetrics: { metrics: { name: string }[] }[] }[];
}
interface JsonTracesBody {
  resourceSpans: {
    resource: JsonResource;
    scopeSpans: { spans: { name: string; traceId: string; parentSpanId?: string }[] }[];
  }[];
}

function attribute(resource: JsonResource | undefined, key: string): string | undefined {
  return resource?.attributes.find((a) => a.key === key)?.value.stringValue;
}

describe('startTelemetry exporting to a real OTLP/HTTP receiver', () => {
  it('sends metrics and traces as http/json with resource, names and the continued trace id', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,aiedge.site=edge%201',
      },
      resourceAttributes: { 'aiedge.role': 'runtime' },
    });
    assert.equal(tel.metricsEnabled, true);
    assert.equal(tel.tracesEnabled, true);
    record(tel);
    await tel.forceFlush();

    const [metricsRequest] = rx.requestsTo('/v1/metrics');
    assert.ok(metricsRequest, `no /v1/metrics request; got ${rx.requests.map((r) => r.path).join(', ')}`);
    assert.equal(metricsRequest.method, 'POST');
    assert.match(metricsRequest.headers['content-type'] ?? '', /^application\/json/);
    const metricsBody = JSON.parse(metricsRequest.body.toString('utf8')) as JsonMetricsBody;
    const resourceMetrics = metricsBody.resourceMetrics[0];
    const names = resourceMetrics?.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.name));
    assert.deepEqual(names?.sort(), [HISTOGRAM, COUNTER].sort());
    assert.equal(attribute(resourceMetrics?.resource, 'service.name'), 'aiedge-test');
    assert.equal(attribute(resourceMetrics?.resource, 'service.version'), '1.2.3');
    assert.equal(attribute(resourceMetrics?.resource, 'deployment.environment'), 'test');
    assert.equal(attribute(resourceMetrics?.resource, 'aiedge.site'), 'edge 1');
    assert.equal(attribute(resourceMetrics?.resource, 'aiedge.role'), 'runtime');

    const tracesRequests = rx.requestsTo('/v1/traces');
    assert.ok(tracesRequests.length > 0, 'no /v1/traces request');
    const spans = tracesRequests.flatMap((r) => {
      const body = JSON.parse(r.body.toString('utf8')) as JsonTracesBody;
      assert.equal(attribute(body.resourceSpans[0]?.resource, 'service.name'), 'aiedge-test');
      return body.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    });
    assert.deepEqual(spans.map((s) => s.name).sort(), ['continued-span', 'root-span']);
    const continued = spans.find((s) => s.name === 'continued-span');
    assert.equal(continued?.traceId.toLowerCase(), TRACE_ID);
    assert.equal(continued?.parentSpanId?.toLowerCase(), PARENT_SPAN_ID);
    assert.notEqual(spans.find((s) => s.name === 'root-span')?.traceId.toLowerCase(), TRACE_ID);
  });

  it('sends http/protobuf by default', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: `${rx.url}/` } });
    record(tel);
    await tel.forceFlush();

    const [metricsRequest] = rx.requestsTo('/v1/metrics');
    assert.ok(metricsRequest, `no /v1/metrics request; got ${rx.requests.map((r) => r.path).join(', ')}`);
    assert.equal(metricsRequest.headers['content-type'], 'application/x-protobuf');
    assert.ok(metricsRequest.body.includes(Buffer.from(COUNTER)));
    assert.ok(metricsRequest.body.includes(Buffer.from(HISTOGRAM)));
    assert.ok(metricsRequest.body.includes(Buffer.from('aiedge-test')));

    const [tracesRequest] = rx.requestsTo('/v1/traces');
    assert.ok(tracesRequest, 'no /v1/traces request');
    assert.equal(tracesRequest.headers['content-type'], 'application/x-protobuf');
    assert.ok(tracesRequest.body.includes(Buffer.from('continued-span')));
    assert.ok(tracesRequest.body.includes(Buffer.from(TRACE_ID, 'hex')));
  });

  it('uses signal-specific endpoints as-is and OTEL_SERVICE_NAME over the service name option', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1',
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${rx.url}/custom/m`,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${rx.url}/custom/t`,
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_SERVICE_NAME: 'from-env',
      },
    });
    record(tel);
    await tel.forceFlush();
    assert.deepEqual(rx.requests.map((r) => r.path).sort(), ['/custom/m', '/custom/t']);
    const [metricsRequest] = rx.requestsTo('/custom/m');
    const body = JSON.parse(metricsRequest?.body.toString('utf8') ?? '') as JsonMetricsBody;
    assert.equal(attribute(body.resourceMetrics[0]?.resource, 'service.name'), 'from-env');
    assert.equal(rx.requestsTo('/custom/t')[0]?.headers['content-type'], 'application/x-protobuf');
  });

  it('sends the headers of OTEL_EXPORTER_OTLP_HEADERS, URL-decoded, with signal-specific ones winning', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20s3cret, x-tenant=acme',
        OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'x-tenant=traces%2Conly',
      },
    });
    record(tel);
    await tel.forceFlush();
    const [metricsRequest] = rx.requestsTo('/v1/metrics');
    const [tracesRequest] = rx.requestsTo('/v1/traces');
    assert.equal(metricsRequest?.headers['authorization'], 'Bearer s3cret');
    assert.equal(metricsRequest?.headers['x-tenant'], 'acme');
    assert.equal(tracesRequest?.headers['authorization'], 'Bearer s3cret');
    assert.equal(tracesRequest?.headers['x-tenant'], 'traces,only');
  });

  it('exports metrics periodically every OTEL_METRIC_EXPORT_INTERVAL ms', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, {
      env: { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${rx.url}/v1/metrics`, OTEL_METRIC_EXPORT_INTERVAL: '50' },
    });
    assert.equal(tel.tracesEnabled, false);
    tel.meter.createCounter(COUNTER).add(1);
    const deadline = Date.now() + 5_000;
    while (rx.requestsTo('/v1/metrics').length < 2 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(rx.requestsTo('/v1/metrics').length >= 2, 'expected at least two periodic exports');
  });
});

describe('startTelemetry switched off', () => {
  it('is disabled without an endpoint: no-op meter and tracer, no requests, no throw', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, { env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } });
    assert.equal(tel.metricsEnabled, false);
    assert.equal(tel.tracesEnabled, false);
    record(tel);
    const span = tel.tracer.startSpan('x');
    assert.equal(span.isRecording(), false);
    span.end();
    await tel.forceFlush();
    await tel.shutdown();
    await tel.shutdown();
    assert.equal(rx.requests.length, 0);
  });

  it('is disabled by OTEL_SDK_DISABLED=true even with an endpoint', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_SDK_DISABLED: 'TRUE' } });
    assert.equal(tel.metricsEnabled, false);
    assert.equal(tel.tracesEnabled, false);
    record(tel);
    await tel.forceFlush();
    assert.equal(rx.requests.length, 0);
  });

  it('exports only traces when OTEL_METRICS_EXPORTER=none', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_METRICS_EXPORTER: 'none' } });
    assert.equal(tel.metricsEnabled, false);
    assert.equal(tel.tracesEnabled, true);
    record(tel);
    await tel.forceFlush();
    assert.ok(rx.requests.length > 0);
    assert.deepEqual([...new Set(rx.requests.map((r) => r.path))], ['/v1/traces']);
  });

  it('exports only metrics when OTEL_TRACES_EXPORTER=none', async (t) => {
    const rx = await receiver(t);
    const tel = telemetry(t, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: rx.url, OTEL_TRACES_EXPORTER: 'none' } });
    assert.equal(tel.metricsEnabled, true);
    assert.equal(tel.tracesEnabled, false);
    record(tel);
    await tel.forceFlush();
    assert.deepEqual([...new Set(rx.requests.map((r) => r.path))], ['/v1/metrics']);
  });

  it('returns no-op meter and tracer that ignore globally registered providers', async (t) => {
    const spanExporter = new InMemorySpanExporter();
    const globalTracerProvider = new TracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ exporter: spanExporter })],
    });
    const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({
      exporter: metricExporter,
      exportIntervalMillis: 60_000,
    });
    const globalMeterProvider = new MeterProvider({ readers: [reader] });
    assert.ok(trace.setGlobalTracerProvider(globalTracerProvider));
    assert.ok(metrics.setGlobalMeterProvider(globalMeterProvider));
    t.after(async () => {
      trace.disable();
      metrics.disable();
      await globalTracerProvider.shutdown();
      await globalMeterProvider.shutdown();
    });

    // The globals do record, so a recording span below would mean the telemetry used them.
    const globalSpan = trace.getTracer('global').startSpan('global-span');
    assert.equal(globalSpan.isRecording(), true);
    globalSpan.end();
    spanExporter.reset();

    const tel = telemetry(t, { env: {} });
    const span = tel.tracer.startSpan('should-not-record');
    assert.equal(span.isRecording(), false);
    span.end();
    tel.meter.createCounter('should.not.count').add(1);
    await reader.forceFlush();
    assert.equal(spanExporter.getFinishedSpans().length, 0);
    const exported: ResourceMetrics[] = metricExporter.getMetrics();
    assert.equal(exported.flatMap((m) => m.scopeMetrics).length, 0);
  });
});

describe('startTelemetry failure handling', () => {
  it('never throws when the endpoint is unreachable and logs a warning without header values', async (t) => {
    const port = await closedPort();
    const logs = captureLogs();
    const tel = telemetry(t, {
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_EXPORTER_OTLP_TIMEOUT: '200',
        OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20never-log-me',
      },
      logger: logs.logger,
    });
    record(tel);
    await tel.forceFlush();
    record(tel);
    await tel.shutdown();
    const warnings = logs
      .text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line['level'] === 'warn');
    assert.deepEqual(warnings.map((w) => w['signal']).sort(), ['metrics', 'traces']);
    for (const warning of warnings) {
      assert.equal(warning['msg'], 'OTLP export failed');
      assert.match(
        String(warning['endpoint']),
        new RegExp(`^http://127\\.0\\.0\\.1:${port}/v1/(metrics|traces)$`),
      );
      assert.ok(warning['err'], 'the warning carries the error');
    }
    assert.ok(!logs.text().includes('never-log-me'));
    assert.ok(logs.text().includes('authorization'), 'header names may be logged at debug');
  });

  it('logs a failure answer of the receiver (HTTP 401) and recovers without throwing', async (t) => {
    const rx = await receiver(t);
    const logs = captureLogs();
    const tel = telemetry(t, {
      env: {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${rx.url}/unauthorized`,
        OTEL_EXPORTER_OTLP_TIMEOUT: '500',
      },
      logger: logs.logger,
    });
    rx.respondWith(401);
    tel.tracer.startSpan('a').end();
    await tel.forceFlush();
    rx.respondWith(200);
    tel.tracer.startSpan('b').end();
    await tel.forceFlush();
    const lines = logs
      .text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const warning = lines.find((l) => l['msg'] === 'OTLP export failed');
    assert.equal((warning?.['err'] as Record<string, unknown> | undefined)?.['code'], 401);
    assert.ok(lines.some((l) => l['msg'] === 'OTLP export recovered' && l['level'] === 'info'));
  });
});

describe('startTelemetry configuration errors', () => {
  it('rejects grpc and unknown protocols naming the variable, the value and the supported values', () => {
    const endpoint = 'http://127.0.0.1:1';
    assert.throws(
      () =>
        startTelemetry({
          serviceName: 's',
          serviceVersion: '1',
          env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' },
        }),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.equal(
          error.message,
          'OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported; supported values: http/protobuf, http/json',
        );
        return true;
      },
    );
    assert.throws(
      () =>
        startTelemetry({
          serviceName: 's',
          serviceVersion: '1',
          env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' },
        }),
      /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="thrift" is not supported; supported values: http\/protobuf, http\/json/,
    );
  });

  it('rejects bad numbers, URLs, exporters and header lists without echoing header values', () => {
    const start = (env: Record<string, string>) => () =>
      startTelemetry({ serviceName: 's', serviceVersion: '1', env });
    const endpoint = 'http://127.0.0.1:1';
    assert.throws(
      start({ OTEL_METRIC_EXPORT_INTERVAL: 'soon' }),
      /OTEL_METRIC_EXPORT_INTERVAL="soon" is not a positive number/,
    );
    assert.throws(
      start({ OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }),
      /OTEL_EXPORTER_OTLP_ENDPOINT="not a url" is not a valid URL/,
    );
    assert.throws(
      start({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_TRACES_EXPORTER: 'zipkin' }),
      /OTEL_TRACES_EXPORTER="zipkin".*otlp or none/,
    );
    assert.throws(
      start({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_HEADERS: 'a=1,secretvalue' }),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.match(error.message, /OTEL_EXPORTER_OTLP_HEADERS entry 2 is not of the form key=value/);
        assert.ok(!error.message.includes('secretvalue'));
        return true;
      },
    );
    assert.throws(
      start({ OTEL_RESOURCE_ATTRIBUTES: 'a=%E0%A4%A' }),
      /OTEL_RESOURCE_ATTRIBUTES entry 1 \(a\) value/,
    );
  });
});

describe('trace context propagation', () => {
  it('extracts traceparent from headers in any case, also from an array', () => {
    for (const headers of [
      { traceparent: TRACEPARENT },
      { TraceParent: TRACEPARENT },
      { traceparent: [TRACEPARENT] },
    ]) {
      const spanContext = trace.getSpanContext(extractTraceContext(headers));
      assert.equal(spanContext?.traceId, TRACE_ID);
      assert.equal(spanContext?.spanId, PARENT_SPAN_ID);
      assert.equal(spanContext?.isRemote, true);
    }
  });

  it('returns the root context for a missing or malformed traceparent', () => {
    assert.equal(extractTraceContext({}), ROOT_CONTEXT);
    assert.equal(trace.getSpanContext(extractTraceContext({ traceparent: '00-zz-yy-01' })), undefined);
  });

  it('injects the span context into outgoing headers', () => {
    const headers: Record<string, string> = {};
    injectTraceContext(extractTraceContext({ traceparent: TRACEPARENT, tracestate: 'vendor=1' }), headers);
    assert.equal(headers['traceparent'], TRACEPARENT);
    assert.equal(headers['tracestate'], 'vendor=1');
  });
});
