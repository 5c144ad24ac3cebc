import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { ErrorCodes, InputError } from '@aiedge/protocol';
import { OtlpTypes } from './_otlp-proto.js';
import { startOtlpReceiver, type ReceivedRequest } from './_test-otlp-receiver.js';
import {
  decodeOtlpMetrics,
  decodeOtlpTraces,
  encodeOtlpResponse,
  type OtlpEncoding,
  type OtlpMetric,
  type OtlpMetricsRequest,
  type OtlpSpan,
} from './otlp-decode.js';
import { extractTraceContext, startTelemetry } from './otel.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN_ID = '00f067aa0ba902b7';
const BOUNDS = [0.001, 0.01, 0.1, 1];
const DURATIONS = [0.0005, 0.002, 0.003, 0.05, 0.07, 0.09, 0.5, 2];

interface Exported {
  readonly metrics: ReceivedRequest;
  readonly traces: ReceivedRequest;
  readonly startedNs: bigint;
  readonly endedNs: bigint;
}

/**
 * Records known values with the SDK (through startTelemetry, the path every ai-edge process uses),
 * exports them to a local receiver in the given protocol and returns what arrived.
 */
async function exportWithSdk(
  t: TestContext,
  protocol: 'http/protobuf' | 'http/json',
  compression: 'none' | 'gzip',
): Promise<Exported> {
  const rx = await startOtlpReceiver();
  const startedNs = BigInt(Date.now()) * 1_000_000n;
  const tel = startTelemetry({
    serviceName: 'decode-test',
    serviceVersion: '9.9.9',
    resourceAttributes: { 'aiedge.site': 'edge-7' },
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: rx.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_EXPORTER_OTLP_COMPRESSION: compression,
    },
  });
  // Shut the SDK down before the receiver, or its last export would retry against a closed port.
  t.after(async () => {
    await tel.shutdown();
    await rx.close();
  });
  const attributes = { 'aiedge.model.name': 'mnist', 'aiedge.model.version': '3', outcome: 'success' };
  const requests = tel.meter.createCounter('aiedge.inference.requests');
  requests.add(5, attributes);
  requests.add(2, { ...attributes, outcome: 'server_error' });
  const duration = tel.meter.createHistogram('aiedge.inference.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: BOUNDS },
  });
  for (const d of DURATIONS) duration.record(d, attributes);
  tel.meter.createObservableGauge('aiedge.inference.queue.depth').addCallback((r) => r.observe(4));
  tel.meter.createObservableGauge('aiedge.inference.in_flight').addCallback((r) => r.observe(1.5));

  const span = tel.tracer.startSpan(
    'infer mnist',
    {
      kind: 1,
      attributes: { 'aiedge.model.name': 'mnist', 'http.response.status_code': 500, retried: true },
    },
    extractTraceContext({ traceparent: `00-${TRACE_ID}-${PARENT_SPAN_ID}-01` }),
  );
  span.addEvent('queued', { 'queue.depth': 2 });
  span.setStatus({ code: 2, message: 'worker crashed' });
  span.end();
  await tel.forceFlush();
  const endedNs = BigInt(Date.now() + 1) * 1_000_000n;

  const [metrics] = rx.requestsTo('/v1/metrics');
  const [traces] = rx.requestsTo('/v1/traces');
  assert.ok(metrics, 'the SDK sent no metrics');
  assert.ok(traces, 'the SDK sent no traces');
  return { metrics, traces, startedNs, endedNs };
}

function bodyOf(request: ReceivedRequest): Buffer {
  return request.headers['content-encoding'] === 'gzip' ? gunzipSync(request.body) : request.body;
}

function encodingOf(request: ReceivedRequest): OtlpEncoding {
  return (request.headers['content-type'] ?? '').includes('json') ? 'json' : 'protobuf';
}

function metricsByName(request: OtlpMetricsRequest): Map<string, OtlpMetric> {
  const out = new Map<string, OtlpMetric>();
  for (const rm of request.resourceMetrics)
    for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.name, m);
  return out;
}

/** Checks every decoded value against what was recorded. */
function checkMetrics(request: OtlpMetricsRequest, exported: Exported): void {
  assert.equal(request.resourceMetrics.length, 1);
  const resource = request.resourceMetrics[0]?.resource.attributes;
  assert.equal(resource?.['service.name'], 'decode-test');
  assert.equal(resource?.['service.version'], '9.9.9');
  assert.equal(resource?.['aiedge.site'], 'edge-7');
  assert.equal(request.resourceMetrics[0]?.scopeMetrics[0]?.scope.name, 'decode-test');
  const metrics = metricsByName(request);

  const inTime = (ns: bigint, what: string) =>
    assert.ok(
      ns >= exported.startedNs - 1_000_000_000n && ns <= exported.endedNs,
      `${what} ${ns} is not now`,
    );

  const requests = metrics.get('aiedge.inference.requests')?.data;
  assert.equal(requests?.type, 'sum');
  assert.equal(requests.aggregationTemporality, 'cumulative');
  assert.equal(requests.isMonotonic, true);
  const byOutcome = Object.fromEntries(requests.dataPoints.map((p) => [String(p.attributes['outcome']), p]));
  assert.equal(byOutcome['success']?.value, 5);
  assert.equal(byOutcome['server_error']?.value, 2);
  assert.equal(byOutcome['success']?.attributes['aiedge.model.name'], 'mnist');
  assert.equal(byOutcome['success']?.attributes['aiedge.model.version'], '3');
  for (const p of requests.dataPoints) {
    assert.equal(typeof p.timeUnixNano, 'bigint');
    inTime(p.startTimeUnixNano, 'startTimeUnixNano');
    inTime(p.timeUnixNano, 'timeUnixNano');
    assert.ok(p.startTimeUnixNano <= p.timeUnixNano);
  }

  const duration = metrics.get('aiedge.inference.duration');
  assert.equal(duration?.unit, 's');
  assert.equal(duration.data?.type, 'histogram');
  assert.equal(duration.data.aggregationTemporality, 'cumulative');
  const [h] = duration.data.dataPoints;
  assert.ok(h);
  assert.deepEqual(h.explicitBounds, BOUNDS);
  const expectedBuckets = [...BOUNDS, Infinity].map(
    (upper, i) => DURATIONS.filter((d) => d <= upper && (i === 0 || d > (BOUNDS[i - 1] as number))).length,
  );
  assert.deepEqual(h.bucketCounts, expectedBuckets);
  assert.equal(h.count, DURATIONS.length);
  assert.ok(Math.abs((h.sum ?? Number.NaN) - DURATIONS.reduce((a, b) => a + b, 0)) < 1e-9);
  assert.equal(h.min, Math.min(...DURATIONS));
  assert.equal(h.max, Math.max(...DURATIONS));
  inTime(h.timeUnixNano, 'histogram timeUnixNano');

  const depth = metrics.get('aiedge.inference.queue.depth')?.data;
  assert.equal(depth?.type, 'gauge');
  assert.equal(depth.dataPoints[0]?.value, 4);
  const inFlight = metrics.get('aiedge.inference.in_flight')?.data;
  assert.equal(inFlight?.type, 'gauge');
  assert.equal(inFlight.dataPoints[0]?.value, 1.5);
}

function checkTraces(spans: readonly OtlpSpan[], exported: Exported): void {
  assert.equal(spans.length, 1);
  const [span] = spans;
  assert.ok(span);
  assert.equal(span.name, 'infer mnist');
  assert.equal(span.traceId, TRACE_ID);
  assert.equal(span.parentSpanId, PARENT_SPAN_ID);
  assert.match(span.spanId, /^[0-9a-f]{16}$/);
  assert.notEqual(span.spanId, PARENT_SPAN_ID);
  assert.equal(span.kind, 'server');
  assert.deepEqual(span.status, { code: 'error', message: 'worker crashed' });
  assert.equal(span.attributes['aiedge.model.name'], 'mnist');
  assert.equal(span.attributes['http.response.status_code'], 500);
  assert.equal(span.attributes['retried'], true);
  assert.equal(span.events[0]?.name, 'queued');
  assert.equal(span.events[0]?.attributes['queue.depth'], 2);
  assert.ok(span.startTimeUnixNano >= exported.startedNs - 1_000_000_000n);
  assert.ok(span.endTimeUnixNano >= span.startTimeUnixNano && span.endTimeUnixNano <= exported.endedNs);
}

describe('decodeOtlpMetrics and decodeOtlpTraces on what the OpenTelemetry SDK exporters send', () => {
  for (const [protocol, compression] of [
    ['http/protobuf', 'none'],
    ['http/protobuf', 'gzip'],
    ['http/json', 'none'],
    ['http/json', 'gzip'],
  ] as const) {
    it(`decodes ${protocol} (compression ${compression}) to the recorded values`, async (t) => {
      const exported = await exportWithSdk(t, protocol, compression);
      assert.equal(exported.metrics.headers['content-encoding'], compression === 'gzip' ? 'gzip' : undefined);
      const encoding = encodingOf(exported.metrics);
      assert.equal(encoding, protocol === 'http/json' ? 'json' : 'protobuf');
      checkMetrics(decodeOtlpMetrics(bodyOf(exported.metrics), encoding), exported);
      const traces = decodeOtlpTraces(bodyOf(exported.traces), encodingOf(exported.traces));
      assert.equal(traces.resourceSpans[0]?.resource.attributes['service.name'], 'decode-test');
      checkTraces(
        traces.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)),
        exported,
      );
    });
  }

  it('decodes protobuf and JSON of the same request to the same shape', () => {
    const message = {
      resourceMetrics: [
        {
          resource: { attributes: [{ key: 'n', value: { intValue: '-42' } }] },
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'big',
                  sum: {
                    aggregationTemporality: 1,
                    dataPoints: [
                      {
                        startTimeUnixNano: '1700000000123456789',
                        timeUnixNano: '18446744073709551615',
                        asInt: '-7',
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    const type = OtlpTypes.ExportMetricsServiceRequest;
    const proto = type.encode(type.fromObject(message)).finish();
    const fromProto = decodeOtlpMetrics(proto, 'protobuf');
    const fromJson = decodeOtlpMetrics(Buffer.from(JSON.stringify(message)), 'json');
    assert.deepEqual(fromProto, fromJson);
    const data = fromJson.resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.data;
    assert.equal(data?.type, 'sum');
    assert.equal(data.aggregationTemporality, 'delta');
    assert.equal(data.dataPoints[0]?.startTimeUnixNano, 1_700_000_000_123_456_789n);
    assert.equal(data.dataPoints[0]?.timeUnixNano, 18_446_744_073_709_551_615n);
    assert.equal(data.dataPoints[0]?.value, -7);
    assert.equal(fromJson.resourceMetrics[0]?.resource.attributes['n'], -42);
  });

  it('decodes exponential histograms, summaries and nested attribute values', () => {
    const message = {
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'exp',
                  exponentialHistogram: {
                    aggregationTemporality: 2,
                    dataPoints: [
                      {
                        attributes: [
                          {
                            key: 'nested',
                            value: {
                              kvlistValue: {
                                values: [
                                  {
                                    key: 'list',
                                    value: { arrayValue: { values: [{ boolValue: true }, {}] } },
                                  },
                                  { key: 'raw', value: { bytesValue: Buffer.from('hi').toString('base64') } },
                                ],
                              },
                            },
                          },
                        ],
                        count: 6,
                        sum: 12.5,
                        scale: -2,
                        zeroCount: 1,
                        positive: { offset: -3, bucketCounts: [2, 3] },
                      },
                    ],
                  },
                },
                {
                  name: 'sum-mary',
                  summary: {
                    dataPoints: [
                      { count: '3', sum: 'Infinity', quantileValues: [{ quantile: 0.5, value: 1 }] },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    const decoded = decodeOtlpMetrics(Buffer.from(JSON.stringify(message)), 'json');
    const [exp, summary] = decoded.resourceMetrics[0]?.scopeMetrics[0]?.metrics ?? [];
    assert.equal(exp?.data?.type, 'exponentialHistogram');
    const point = exp.data.dataPoints[0];
    assert.equal(point?.scale, -2);
    assert.deepEqual(point?.positive, { offset: -3, bucketCounts: [2, 3] });
    assert.deepEqual(point?.negative, { offset: 0, bucketCounts: [] });
    assert.equal(point?.count, 6);
    assert.deepEqual(point?.attributes['nested'], {
      list: [true, null],
      raw: new Uint8Array(Buffer.from('hi')),
    });
    assert.equal(summary?.data?.type, 'summary');
    assert.equal(summary.data.dataPoints[0]?.sum, Infinity);
    assert.deepEqual(summary.data.dataPoints[0]?.quantileValues, [{ quantile: 0.5, value: 1 }]);
  });
});

/** Asserts that `fn` throws an InputError whose message matches `pattern`. */
function rejects(fn: () => unknown, pattern: RegExp, code: string = ErrorCodes.INVALID_INPUT): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof InputError, `expected an InputError, got ${String(error)}`);
    assert.match(error.message, pattern);
    assert.equal(error.code, code);
    return true;
  });
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

describe('malformed OTLP requests', () => {
  it('refuses bytes that are not protobuf, naming the message type', () => {
    rejects(
      () => decodeOtlpMetrics(Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01]), 'protobuf'),
      /^OTLP metrics request is not a valid protobuf ExportMetricsServiceRequest: /,
    );
    rejects(
      () => decodeOtlpTraces(Buffer.from('{"resourceSpans":[]}'), 'protobuf'),
      /^OTLP traces request is not a valid protobuf ExportTraceServiceRequest: /,
    );
  });

  it('refuses deeply nested protobuf without overflowing the stack', () => {
    // resourceMetrics(1) { resource(1) { attributes(1) { value(2) { arrayValue(5) { values(1) { … } } } } } }
    // Only headers: compute each level's length inside out, then write the headers outside in.
    const tags = [0x0a, 0x0a, 0x12];
    for (let i = 0; i < 100_000; i++) tags.push(0x2a, 0x0a);
    const lengths: number[] = new Array<number>(tags.length);
    let size = 0;
    for (let i = tags.length - 1; i >= 0; i--) {
      lengths[i] = size;
      size += 1 + varint(size).length;
    }
    const rm = Buffer.concat(
      [Buffer.from([0x0a]), varint(size)].concat(
        tags.map((tag, i) => Buffer.concat([Buffer.from([tag]), varint(lengths[i] ?? 0)])),
      ),
    );
    rejects(
      () => decodeOtlpMetrics(rm, 'protobuf'),
      /^OTLP metrics request (is not a valid protobuf|.* nested)/,
    );
  });

  it('refuses invalid JSON with the malformed-JSON code', () => {
    rejects(
      () => decodeOtlpMetrics(Buffer.from('{"resourceMetrics": ['), 'json'),
      /is not valid JSON/,
      ErrorCodes.MALFORMED_JSON,
    );
    rejects(
      () => decodeOtlpTraces(Buffer.from([0xff, 0xfe]), 'json'),
      /not valid UTF-8/,
      ErrorCodes.MALFORMED_JSON,
    );
  });

  it('names the path and value of a wrongly typed field', () => {
    const metric = (m: unknown) => json({ resourceMetrics: [{ scopeMetrics: [{ metrics: [m] }] }] });
    rejects(() => decodeOtlpMetrics(json([]), 'json'), /^OTLP metrics request is \[\]: expected an object/);
    rejects(
      () =>
        decodeOtlpMetrics(
          metric({ name: 'x', sum: { dataPoints: [{ timeUnixNano: 'abc', asInt: 1 }] } }),
          'json',
        ),
      /^OTLP metrics request resourceMetrics\[0\]\.scopeMetrics\[0\]\.metrics\[0\]\.sum\.dataPoints\[0\]\.timeUnixNano is "abc": expected an unsigned 64-bit integer/,
    );
    rejects(
      () => decodeOtlpMetrics(metric({ name: 'x', gauge: { dataPoints: [{ timeUnixNano: '1' }] } }), 'json'),
      /metrics\[0\]\.gauge\.dataPoints\[0\] has no value: expected asDouble or asInt/,
    );
    rejects(
      () =>
        decodeOtlpMetrics(
          metric({
            name: 'x',
            histogram: { dataPoints: [{ bucketCounts: [1, 2], explicitBounds: [1, 2] }] },
          }),
          'json',
        ),
      /has 2 bucketCounts and 2 explicitBounds/,
    );
    rejects(
      () =>
        decodeOtlpMetrics(metric({ name: 'x', sum: { aggregationTemporality: 7, dataPoints: [] } }), 'json'),
      /sum\.aggregationTemporality is 7: expected an integer from 0 to 2/,
    );
    rejects(
      () => decodeOtlpMetrics(metric({ gauge: { dataPoints: [] } }), 'json'),
      /metrics\[0\]\.name is missing: expected a metric name/,
    );
  });

  it('refuses trace and span ids of the wrong length or alphabet', () => {
    const span = (s: unknown) => json({ resourceSpans: [{ scopeSpans: [{ spans: [s] }] }] });
    rejects(
      () => decodeOtlpTraces(span({ traceId: 'zz'.repeat(16), spanId: 'ab'.repeat(8) }), 'json'),
      /spans\[0\]\.traceId is "zzzz.*": expected 32 hex digits/,
    );
    rejects(
      () => decodeOtlpTraces(span({ traceId: TRACE_ID, spanId: 'abcd' }), 'json'),
      /spans\[0\]\.spanId is "abcd": expected 16 hex digits/,
    );
    const type = OtlpTypes.ExportTraceServiceRequest;
    const proto = type
      .encode(
        type.fromObject({
          resourceSpans: [
            { scopeSpans: [{ spans: [{ traceId: Buffer.alloc(3), spanId: Buffer.alloc(8) }] }] },
          ],
        }),
      )
      .finish();
    rejects(() => decodeOtlpTraces(proto, 'protobuf'), /spans\[0\]\.traceId is 3 bytes: expected 16 bytes/);
  });
});

describe('encodeOtlpResponse', () => {
  it('encodes empty and partial-success responses in both encodings', () => {
    assert.equal(Buffer.from(encodeOtlpResponse('metrics', 'json')).toString(), '{}');
    assert.equal(encodeOtlpResponse('traces', 'protobuf').length, 0);
    const partial = { rejected: 3, errorMessage: 'summaries are not stored' };
    assert.deepEqual(JSON.parse(Buffer.from(encodeOtlpResponse('metrics', 'json', partial)).toString()), {
      partialSuccess: { rejectedDataPoints: '3', errorMessage: 'summaries are not stored' },
    });
    const type = OtlpTypes.ExportTraceServiceResponse;
    const decoded = type.toObject(type.decode(encodeOtlpResponse('traces', 'protobuf', partial)), {
      longs: Number,
    });
    assert.deepEqual(decoded, {
      partialSuccess: { rejectedSpans: 3, errorMessage: 'summaries are not stored' },
    });
  });
});

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}
