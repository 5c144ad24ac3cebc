import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { TelemetrySeries, TelemetrySpanList, TelemetrySummary } from '@aiedge/protocol';
import { startTelemetry, type Telemetry } from '@aiedge/telemetry';
import { startTestCore, type TestCore } from '../_test-core.js';
import { createToken } from '../auth.js';
import { TelemetryMaintenance, runTelemetryMaintenance } from './maintenance.js';

/** The bucket bounds `aiedge serve` gives `aiedge.inference.duration` (packages/runtime/src/metrics.ts). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HOUR_MS = 3_600_000;

const cleanups = new WeakMap<TestContext, (() => Promise<void>)[]>();

/** Runs `cleanup` when the test ends, before the cleanups registered earlier (last in, first out). */
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

async function core(t: TestContext, options: Parameters<typeof startTestCore>[0] = {}): Promise<TestCore> {
  const started = await startTestCore(options);
  defer(t, () => started.close());
  return started;
}

/** An OpenTelemetry SDK set up like `aiedge serve`'s, exporting to the core with a bearer token. */
function runtimeTelemetry(
  t: TestContext,
  c: TestCore,
  token: string,
  protocol: 'http/protobuf' | 'http/json',
  compression: 'none' | 'gzip',
  resourceAttributes: Record<string, string> = {},
): Telemetry {
  const tel = startTelemetry({
    serviceName: 'aiedge-serve',
    serviceVersion: '0.1.0',
    resourceAttributes,
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: c.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_EXPORTER_OTLP_COMPRESSION: compression,
      OTEL_EXPORTER_OTLP_HEADERS: `authorization=${encodeURIComponent(`Bearer ${token}`)}`,
    },
  });
  // Before the core closes, or the SDK's last export would retry against a closed port.
  defer(t, () => tel.shutdown());
  return tel;
}

/** The runtime's instruments (same names, attributes and buckets as RuntimeMetrics). */
function instruments(tel: Telemetry) {
  const requests = tel.meter.createCounter('aiedge.inference.requests');
  const duration = tel.meter.createHistogram('aiedge.inference.duration', {
    unit: 's',
    advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
  });
  return {
    infer(model: string, version: string, outcome: string, seconds: number, times = 1) {
      const attributes = { 'aiedge.model.name': model, 'aiedge.model.version': version, outcome };
      for (let i = 0; i < times; i++) {
        requests.add(1, attributes);
        if (outcome === 'success') duration.record(seconds, attributes);
      }
    },
  };
}

async function getJson<T>(c: TestCore, path: string, token?: string | null): Promise<T> {
  const response = await c.api(path, token === undefined ? {} : { token });
  const text = await response.text();
  assert.equal(response.status, 200, `GET ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

/** Linear interpolation inside a bucket, as the issue asks (lower + width × fraction of the bucket's count). */
function interpolate(lower: number, upper: number, rank: number, before: number, inBucket: number): number {
  return lower + ((upper - lower) * (rank - before)) / inBucket;
}

function close(actual: number | null | undefined, expected: number, what: string): void {
  assert.ok(
    actual !== null && actual !== undefined && Math.abs(actual - expected) < 1e-9,
    `${what}: ${actual} != ${expected}`,
  );
}

async function postOtlp(
  c: TestCore,
  signal: 'metrics' | 'traces',
  body: Uint8Array | string,
  headers: Record<string, string>,
  token: string | null = c.adminToken,
): Promise<Response> {
  return fetch(`${c.url}/v1/${signal}`, {
    method: 'POST',
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
    body: typeof body === 'string' ? body : Buffer.from(body),
  });
}

/** An OTLP JSON request with one delta counter point per entry. */
function deltaRequests(
  points: { model: string; version: string; outcome: string; value: number; timeMs: number }[],
  resource: Record<string, string> = {},
): string {
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: {
          attributes: Object.entries(resource).map(([key, v]) => ({ key, value: { stringValue: v } })),
        },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'aiedge.inference.requests',
                sum: {
                  aggregationTemporality: 1,
                  isMonotonic: true,
                  dataPoints: points.map((p) => ({
                    attributes: [
                      { key: 'aiedge.model.name', value: { stringValue: p.model } },
                      { key: 'aiedge.model.version', value: { stringValue: p.version } },
                      { key: 'outcome', value: { stringValue: p.outcome } },
                    ],
                    startTimeUnixNano: String(BigInt(p.timeMs - 1000) * 1_000_000n),
                    timeUnixNano: String(BigInt(p.timeMs) * 1_000_000n),
                    asInt: String(p.value),
                  })),
                },
              },
            ],
          },
        ],
      },
    ],
  });
}

/** An OTLP JSON request with one delta histogram point of the runtime's buckets. */
function deltaHistogram(model: string, version: string, counts: number[], timeMs: number): string {
  return JSON.stringify({
    resourceMetrics: [
      {
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'aiedge.inference.duration',
                unit: 's',
                histogram: {
                  aggregationTemporality: 1,
                  dataPoints: [
                    {
                      attributes: [
                        { key: 'aiedge.model.name', value: { stringValue: model } },
                        { key: 'aiedge.model.version', value: { stringValue: version } },
                        { key: 'outcome', value: { stringValue: 'success' } },
                      ],
                      startTimeUnixNano: String(BigInt(timeMs - 1000) * 1_000_000n),
                      timeUnixNano: String(BigInt(timeMs) * 1_000_000n),
                      count: String(counts.reduce((a, b) => a + b, 0)),
                      sum: 1,
                      bucketCounts: counts.map(String),
                      explicitBounds: LATENCY_BUCKETS,
                    },
                  ],
                },
              },
            ],
          },
        ],
      },
    ],
  });
}

function counts(...pairs: [bucket: number, count: number][]): number[] {
  const out = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  for (const [bucket, count] of pairs) out[bucket] = count;
  return out;
}

describe('OTLP receiver fed by the OpenTelemetry SDK exporters', () => {
  it('stores cumulative protobuf exports as increases; summary and series show counts, rates and percentiles', async (t) => {
    const c = await core(t);
    const { token } = await c.enrollSite('edge-a');
    // A site token's points belong to its site, whatever the resource claims.
    const tel = runtimeTelemetry(t, c, token, 'http/protobuf', 'none', { 'aiedge.site': 'edge-zzz' });
    const rt = instruments(tel);
    rt.infer('mnist', '1', 'success', 0.003, 80); // bucket (0.0025, 0.005]
    rt.infer('mnist', '1', 'success', 0.3, 20); // bucket (0.25, 0.5]
    rt.infer('mnist', '1', 'server_error', 0, 5);
    rt.infer('mnist', '2', 'success', 0.02, 4); // bucket (0.01, 0.025]
    await tel.forceFlush();
    // A second cumulative export: only the increase may be added.
    rt.infer('mnist', '1', 'success', 0.003, 10);
    rt.infer('mnist', '1', 'client_error', 0, 2);
    await tel.forceFlush();

    const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary?windowSeconds=600');
    assert.deepEqual(
      summary.models.map((m) => [m.site, m.model, m.version]),
      [
        ['edge-a', 'mnist', '1'],
        ['edge-a', 'mnist', '2'],
      ],
    );
    const [v1, v2] = summary.models;
    assert.ok(v1 && v2);
    const requests = 80 + 20 + 5 + 10 + 2;
    const errors = 5 + 2;
    assert.equal(v1.requests, requests);
    assert.equal(v1.errors, errors);
    close(v1.requestRate, requests / 600, 'requestRate');
    close(v1.errorRate, errors / 600, 'errorRate');
    close(v1.errorRatio, errors / requests, 'errorRatio');
    // 90 observations in (0.0025, 0.005], 20 in (0.25, 0.5].
    const observed = 110;
    close(v1.latencyP50Seconds, interpolate(0.0025, 0.005, 0.5 * observed, 0, 90), 'p50');
    close(v1.latencyP95Seconds, interpolate(0.25, 0.5, 0.95 * observed, 90, 20), 'p95');
    close(v1.latencyP99Seconds, interpolate(0.25, 0.5, 0.99 * observed, 90, 20), 'p99');
    assert.equal(v2.requests, 4);
    close(v2.latencyP50Seconds, interpolate(0.01, 0.025, 2, 0, 4), 'v2 p50');
    assert.ok(v1.lastPointAt !== null && Date.now() - Date.parse(v1.lastPointAt) < 60_000);
    assert.equal(summary.total.requests, requests + 4);
    assert.equal(summary.total.errors, errors);
    // The 4 observations of version 2 are above the first 90: the median stays in (0.0025, 0.005].
    close(summary.total.latencyP50Seconds, interpolate(0.0025, 0.005, 0.5 * 114, 0, 90), 'total p50');
    close(summary.total.latencyP95Seconds, interpolate(0.25, 0.5, 0.95 * 114, 94, 20), 'total p95');

    // One step that holds both exports.
    const range = `from=${Date.now() - HOUR_MS}&to=${Date.now() + HOUR_MS}&stepSeconds=7200`;
    const series = async (metric: string, extra = '') =>
      (await getJson<TelemetrySeries>(c, `/api/v1/telemetry/series?metric=${metric}&${range}${extra}`))
        .points;
    assert.deepEqual(
      (await series('requests', '&model=mnist&version=1')).map((p) => p.value),
      [requests],
    );
    assert.deepEqual(
      (await series('requests')).map((p) => p.value),
      [requests + 4],
    );
    assert.deepEqual(
      (await series('errors', '&site=edge-a')).map((p) => p.value),
      [errors],
    );
    close((await series('rate', '&version=1'))[0]?.value, requests / 7200, 'series rate');
    close(
      (await series('latency_p95', '&version=1'))[0]?.value,
      interpolate(0.25, 0.5, 0.95 * observed, 90, 20),
      'series p95',
    );
    assert.deepEqual(
      (await series('latency_p99', '&version=3')).map((p) => p.value),
      [null],
    );

    // Per-minute steps: every step is present, and together they still count every request once.
    const minutes = await getJson<TelemetrySeries>(
      c,
      `/api/v1/telemetry/series?metric=requests&from=${Date.now() - 600_000}&to=${Date.now() + 60_000}&stepSeconds=60`,
    );
    assert.equal(minutes.points.length, 11);
    assert.equal(minutes.unit, '1');
    assert.equal(
      minutes.points.reduce((n, p) => n + (p.value ?? 0), 0),
      requests + 4,
    );
  });

  it('accepts JSON with gzip from the SDK, for metrics and traces', async (t) => {
    const c = await core(t);
    const { token } = await c.enrollSite('edge-json');
    const tel = runtimeTelemetry(t, c, token, 'http/json', 'gzip');
    const rt = instruments(tel);
    rt.infer('resnet', 'v7', 'success', 0.07, 6); // bucket (0.05, 0.1]
    rt.infer('resnet', 'v7', 'rejected', 0, 3);
    const span = tel.tracer.startSpan('infer resnet', {
      kind: 1,
      attributes: { 'aiedge.model.name': 'resnet', 'aiedge.model.version': 'v7' },
    });
    span.setStatus({ code: 2, message: 'queue full' });
    span.end();
    await tel.forceFlush();

    const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary?site=edge-json', token);
    assert.equal(summary.models.length, 1);
    const [m] = summary.models;
    assert.equal(m?.requests, 9);
    assert.equal(m?.errors, 3);
    close(m?.latencyP50Seconds, interpolate(0.05, 0.1, 3, 0, 6), 'p50');
    close(m?.latencyP99Seconds, interpolate(0.05, 0.1, 0.99 * 6, 0, 6), 'p99');

    const { spans } = await getJson<TelemetrySpanList>(c, '/api/v1/telemetry/spans?model=resnet', token);
    assert.equal(spans.length, 1);
    const [s] = spans;
    assert.equal(s?.name, 'infer resnet');
    assert.equal(s?.site, 'edge-json');
    assert.equal(s?.version, 'v7');
    assert.equal(s?.status, 'error');
    assert.equal(s?.statusMessage, 'queue full');
    assert.equal(s?.kind, 'server');
    assert.equal(s?.traceId, span.spanContext().traceId);
    assert.equal(s?.spanId, span.spanContext().spanId);
    assert.ok(s !== undefined && s.durationMs >= 0 && s.durationMs < 60_000);
    const byTrace = await getJson<TelemetrySpanList>(
      c,
      `/api/v1/telemetry/spans?traceId=${span.spanContext().traceId}&status=ok`,
    );
    assert.equal(byTrace.spans.length, 0);
  });

  it('answers with the OTLP response shapes: empty, and partial success for what it does not store', async (t) => {
    const c = await core(t);
    const ok = await postOtlp(c, 'metrics', deltaRequests([]), { 'content-type': 'application/json' });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await ok.json(), {});

    const summary = JSON.stringify({
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'ext',
                  summary: {
                    dataPoints: [
                      { count: 1, sum: 1 },
                      { count: 2, sum: 2 },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
    });
    const partial = await postOtlp(c, 'metrics', summary, { 'content-type': 'application/json' });
    assert.equal(partial.status, 200);
    assert.deepEqual(await partial.json(), {
      partialSuccess: { rejectedDataPoints: '2', errorMessage: 'ext: summary points are not stored' },
    });

    const proto = await postOtlp(c, 'traces', new Uint8Array(0), {
      'content-type': 'application/x-protobuf',
    });
    assert.equal(proto.status, 200);
    assert.equal(proto.headers.get('content-type'), 'application/x-protobuf');
    assert.equal((await proto.arrayBuffer()).byteLength, 0);
  });
});

describe('OTLP receiver: sites, batches and bad input', () => {
  it('stores a batch id once per site: the resend answers 200 and adds nothing', async (t) => {
    const c = await core(t);
    const a = await c.enrollSite('site-a');
    const b = await c.enrollSite('site-b');
    const now = Date.now();
    const body = deltaRequests([
      { model: 'm', version: '1', outcome: 'success', value: 4, timeMs: now - 5000 },
    ]);
    const send = (token: string, batch: string) =>
      postOtlp(
        c,
        'metrics',
        gzipSync(body),
        { 'content-type': 'application/json', 'content-encoding': 'gzip', 'x-aiedge-batch-id': batch },
        token,
      );
    for (const [token, batch] of [
      [a.token, 'batch-1'],
      [a.token, 'batch-1'],
      [a.token, 'batch-2'],
      [b.token, 'batch-1'],
    ] as const) {
      const response = await send(token, batch);
      assert.equal(response.status, 200, await response.text());
    }
    const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary');
    assert.deepEqual(
      summary.models.map((m) => [m.site, m.requests]),
      [
        ['site-a', 8],
        ['site-b', 4],
      ],
    );
    const metrics = await (await c.api('/metrics')).text();
    assert.match(metrics, /^aiedge_core_telemetry_batches_deduplicated_total\{signal="metrics"\} 1$/m);
    assert.match(metrics, /^aiedge_core_telemetry_points_received_total\{signal="metrics"\} 4$/m);

    // Traces are deduplicated the same way.
    const spans = JSON.stringify({
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                {
                  traceId: '0af7651916cd43dd8448eb211c80319c',
                  spanId: 'b7ad6b7169203331',
                  name: 'infer m',
                  startTimeUnixNano: String(BigInt(now - 100) * 1_000_000n),
                  endTimeUnixNano: String(BigInt(now) * 1_000_000n),
                },
              ],
            },
          ],
        },
      ],
    });
    for (let i = 0; i < 2; i++) {
      const response = await postOtlp(
        c,
        'traces',
        spans,
        { 'content-type': 'application/json', 'x-aiedge-batch-id': 't-1' },
        a.token,
      );
      assert.equal(response.status, 200);
    }
    const listed = await getJson<TelemetrySpanList>(c, '/api/v1/telemetry/spans?site=site-a');
    assert.equal(listed.spans.length, 1);
    close(listed.spans[0]?.durationMs, 100, 'durationMs');
  });

  it('differences cumulative points per stream: resends add nothing, resets and restarts count from zero', async (t) => {
    const c = await core(t);
    const now = Date.now();
    const startA = now - 60_000;
    const cumulative = (startMs: number, timeMs: number, value: number) =>
      JSON.stringify({
        resourceMetrics: [
          {
            scopeMetrics: [
              {
                metrics: [
                  {
                    name: 'aiedge.inference.requests',
                    sum: {
                      aggregationTemporality: 2,
                      isMonotonic: true,
                      dataPoints: [
                        {
                          attributes: [
                            { key: 'aiedge.model.name', value: { stringValue: 'm' } },
                            { key: 'aiedge.model.version', value: { stringValue: '1' } },
                            { key: 'outcome', value: { stringValue: 'success' } },
                          ],
                          startTimeUnixNano: String(BigInt(startMs) * 1_000_000n),
                          timeUnixNano: String(BigInt(timeMs) * 1_000_000n),
                          asInt: String(value),
                        },
                      ],
                    },
                  },
                ],
              },
            ],
          },
        ],
      });
    const steps: [startMs: number, timeMs: number, value: number, total: number][] = [
      [startA, now - 50_000, 10, 10], // first point of a stream: everything since its start
      [startA, now - 40_000, 15, 15], // +5
      [startA, now - 40_000, 15, 15], // resent: nothing
      [startA, now - 45_000, 12, 15], // older than the last one: nothing
      [startA, now - 30_000, 3, 18], // went down: a reset, counts from zero
      [now - 20_000, now - 10_000, 4, 22], // a restarted process: a new stream
      [startA, now - 5_000, 6, 25], // the first process again: +3 over its last point
    ];
    for (const [startMs, timeMs, value, total] of steps) {
      const response = await postOtlp(c, 'metrics', cumulative(startMs, timeMs, value), {
        'content-type': 'application/json',
      });
      assert.equal(response.status, 200);
      const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary');
      assert.equal(summary.total.requests, total, `after the point ${value} at ${timeMs - now} ms`);
    }
  });

  it('attributes admin-token telemetry to aiedge.site, or to core', async (t) => {
    const c = await core(t);
    const now = Date.now();
    const point = [{ model: 'm', version: '1', outcome: 'success', value: 2, timeMs: now - 1000 }];
    for (const body of [deltaRequests(point, { 'aiedge.site': 'claimed' }), deltaRequests(point)]) {
      const response = await postOtlp(c, 'metrics', body, { 'content-type': 'application/json' });
      assert.equal(response.status, 200);
    }
    const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary');
    assert.deepEqual(
      summary.models.map((m) => m.site),
      ['claimed', 'core'],
    );
    const bad = await postOtlp(c, 'metrics', deltaRequests(point, { 'aiedge.site': 'Not A Site!' }), {
      'content-type': 'application/json',
    });
    assert.equal(bad.status, 400);
    assert.match(
      ((await bad.json()) as { detail: string }).detail,
      /resourceMetrics\[0\]\.resource\.attributes\["aiedge\.site"\] is "Not A Site!"/,
    );
  });

  it('lets a site read only its own telemetry; refuses missing and enrollment tokens', async (t) => {
    const c = await core(t);
    const a = await c.enrollSite('site-a');
    const b = await c.enrollSite('site-b');
    const now = Date.now();
    for (const token of [a.token, b.token]) {
      const response = await postOtlp(
        c,
        'metrics',
        deltaRequests([{ model: 'm', version: '1', outcome: 'success', value: 1, timeMs: now - 1000 }]),
        { 'content-type': 'application/json' },
        token,
      );
      assert.equal(response.status, 200);
    }
    const forbidden = await c.api('/api/v1/telemetry/summary?site=site-b', { token: a.token });
    assert.equal(forbidden.status, 403);
    assert.match(
      ((await forbidden.json()) as { detail: string }).detail,
      /site site-a may not read telemetry of site site-b/,
    );
    assert.equal(
      (await c.api('/api/v1/telemetry/series?metric=requests&site=site-b', { token: a.token })).status,
      403,
    );
    assert.equal((await c.api('/api/v1/telemetry/spans?site=site-b', { token: a.token })).status, 403);
    const own = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary', a.token);
    assert.deepEqual(
      own.models.map((m) => m.site),
      ['site-a'],
    );
    const admin = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary');
    assert.deepEqual(
      admin.models.map((m) => m.site),
      ['site-a', 'site-b'],
    );

    assert.equal((await c.api('/api/v1/telemetry/summary', { token: null })).status, 401);
    const anonymous = await postOtlp(c, 'metrics', '{}', { 'content-type': 'application/json' }, null);
    assert.equal(anonymous.status, 401);
    const enrollment = await createToken(c.core.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
    const refused = await postOtlp(
      c,
      'metrics',
      '{}',
      { 'content-type': 'application/json' },
      enrollment.token,
    );
    assert.equal(refused.status, 403);
  });

  it('answers malformed bodies with 400 naming the problem, and stays healthy', async (t) => {
    const c = await core(t, { config: { maxBodyBytes: 64 * 1024 } });
    const problem = async (response: Response, status: number, pattern: RegExp) => {
      const text = await response.text();
      assert.equal(response.status, status, text);
      assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/);
      assert.match((JSON.parse(text) as { detail: string }).detail, pattern);
    };
    const proto = { 'content-type': 'application/x-protobuf' };
    const json = { 'content-type': 'application/json' };
    await problem(
      await postOtlp(c, 'metrics', Buffer.from([0x0a, 0xff, 0xff, 0x03, 0x01]), proto),
      400,
      /not a valid protobuf ExportMetricsServiceRequest/,
    );
    await problem(
      await postOtlp(c, 'traces', Buffer.from('garbage!'), proto),
      400,
      /not a valid protobuf ExportTraceServiceRequest/,
    );
    const badJson = await postOtlp(c, 'metrics', '{"resourceMetrics": [', json);
    assert.equal(badJson.status, 400);
    assert.equal(((await badJson.json()) as { code: string }).code, 'AIEDGE_ERR_MALFORMED_JSON');
    await problem(
      await postOtlp(
        c,
        'metrics',
        JSON.stringify({
          resourceMetrics: [
            { scopeMetrics: [{ metrics: [{ name: 'x', gauge: { dataPoints: [{ asDouble: 'lots' }] } }] }] },
          ],
        }),
        json,
      ),
      400,
      /resourceMetrics\[0\]\.scopeMetrics\[0\]\.metrics\[0\]\.gauge\.dataPoints\[0\]\.asDouble is "lots": expected a number/,
    );
    await problem(
      await postOtlp(c, 'metrics', Buffer.from('not gzip'), { ...json, 'content-encoding': 'gzip' }),
      400,
      /not valid gzip/,
    );
    await problem(
      await postOtlp(c, 'metrics', '{}', { ...json, 'content-encoding': 'br' }),
      400,
      /content-encoding "br" is not supported/,
    );
    // 16 MiB of zeros gzip to ~16 KiB: under the body limit, but it inflates far past it.
    const bomb = gzipSync(Buffer.alloc(16 * 1024 * 1024));
    assert.ok(bomb.length < 64 * 1024);
    await problem(
      await postOtlp(c, 'metrics', bomb, { ...proto, 'content-encoding': 'gzip' }),
      413,
      /inflates to more than the limit of 65536 bytes/,
    );
    await problem(await postOtlp(c, 'metrics', Buffer.alloc(70 * 1024), proto), 413, /larger than the limit/);
    await problem(
      await postOtlp(c, 'metrics', 'hello', { 'content-type': 'text/plain' }),
      415,
      /text\/plain/,
    );
    await problem(
      await postOtlp(c, 'metrics', '{}', { ...json, 'x-aiedge-batch-id': 'x'.repeat(129) }),
      400,
      /headers\.x-aiedge-batch-id/,
    );
    await problem(await c.api('/api/v1/telemetry/series?metric=latency_p42'), 400, /querystring\.metric/);
    await problem(
      await c.api('/api/v1/telemetry/series?metric=rate&from=yesterday'),
      400,
      /querystring\.from is "yesterday"/,
    );
    await problem(
      await c.api('/api/v1/telemetry/series?metric=rate&from=0&to=86400000&stepSeconds=1'),
      400,
      /more than 10000; use a larger step/,
    );

    assert.equal((await fetch(`${c.url}/healthz`)).status, 200);
    const good = await postOtlp(
      c,
      'metrics',
      deltaRequests([{ model: 'm', version: '1', outcome: 'success', value: 3, timeMs: Date.now() - 10 }]),
      json,
    );
    assert.equal(good.status, 200);
    const summary = await getJson<TelemetrySummary>(c, '/api/v1/telemetry/summary');
    assert.equal(summary.total.requests, 3);
    // Other routes keep their own JSON body parser.
    await c.enrollSite('after-the-storm');
  });
});

describe('telemetry rollup, retention and the fleet aggregates', () => {
  it('rolls raw points into buckets without changing sums or percentiles, then expires them', async (t) => {
    const c = await core(t, {
      config: { telemetryRawRetentionHours: 1, telemetryRetentionHours: 3, telemetryRollupSeconds: 600 },
    });
    const now = Date.now();
    const old = now - 2 * HOUR_MS; // older than the raw retention: rolled up
    const recent = now - 10 * 60_000; // raw
    const send = async (body: string) => {
      const response = await postOtlp(c, 'metrics', body, { 'content-type': 'application/json' });
      const text = await response.text();
      assert.equal(response.status, 200, text);
      const answer = JSON.parse(text) as { partialSuccess?: unknown };
      assert.equal(answer.partialSuccess, undefined);
    };
    for (const [timeMs, value] of [
      [old, 3],
      [old + 60_000, 4],
      [old + 120_000, 5],
      [recent, 6],
    ] as const) {
      await send(
        deltaRequests([{ model: 'm', version: '1', outcome: 'success', value, timeMs }], {
          'aiedge.site': 'edge',
        }),
      );
    }
    await send(deltaHistogram('m', '1', counts([3, 10]), old)); // 10 in (0.0025, 0.005]
    await send(deltaHistogram('m', '1', counts([3, 5], [9, 5]), old + 60_000)); // 5 more there, 5 in (0.25, 0.5]
    await send(deltaHistogram('m', '1', counts([9, 10]), recent));
    // Spans are raw data: kept for the raw retention.
    const span = (startMs: number, spanId: string) =>
      JSON.stringify({
        resourceSpans: [
          {
            scopeSpans: [
              {
                spans: [
                  {
                    traceId: '0af7651916cd43dd8448eb211c80319c',
                    spanId,
                    name: 'infer m',
                    startTimeUnixNano: String(BigInt(startMs) * 1_000_000n),
                    endTimeUnixNano: String(BigInt(startMs + 5) * 1_000_000n),
                  },
                ],
              },
            ],
          },
        ],
      });
    for (const [startMs, id] of [
      [old, '00000000000000a1'],
      [recent, '00000000000000a2'],
    ] as const) {
      const response = await postOtlp(c, 'traces', span(startMs, id), { 'content-type': 'application/json' });
      assert.equal(response.status, 200);
    }

    const db = c.core.context.store.db;
    const rows = async () =>
      db.selectFrom('telemetry_points').select(['resolution_s', 'time_ms']).orderBy('time_ms').execute();
    const beforeRows = await rows();
    assert.equal(beforeRows.length, 7);
    assert.ok(beforeRows.every((r) => r.resolution_s === 0));
    const window = '/api/v1/telemetry/summary?windowSeconds=10800';
    const before = await getJson<TelemetrySummary>(c, window);
    assert.equal(before.total.requests, 18);
    // 15 in (0.0025, 0.005], 15 in (0.25, 0.5].
    close(before.total.latencyP50Seconds, interpolate(0.0025, 0.005, 15, 0, 15), 'p50 before');
    close(before.total.latencyP95Seconds, interpolate(0.25, 0.5, 0.95 * 30, 15, 15), 'p95 before');

    const clock = { now: now };
    const context = { ...c.core.context, now: () => new Date(clock.now) };
    const report = await runTelemetryMaintenance(context);
    assert.equal(report.rolledUp, 5); // 3 request points + 2 histogram points older than the raw retention
    const afterRows = await rows();
    const rolled = afterRows.filter((r) => r.resolution_s === 600);
    const raw = afterRows.filter((r) => r.resolution_s === 0);
    assert.equal(raw.length, 2);
    assert.ok(raw.every((r) => r.time_ms === recent));
    assert.equal(rolled.length, report.rollups);
    assert.ok(rolled.every((r) => Number(r.time_ms) % 600_000 === 0 && Number(r.time_ms) <= old + 120_000));
    const bucketsSpanned = new Set([old, old + 60_000, old + 120_000].map((ms) => Math.floor(ms / 600_000)))
      .size;
    const histogramBuckets = new Set([old, old + 60_000].map((ms) => Math.floor(ms / 600_000))).size;
    assert.equal(rolled.length, bucketsSpanned + histogramBuckets);

    const after = await getJson<TelemetrySummary>(c, window);
    assert.equal(after.total.requests, before.total.requests);
    assert.equal(after.total.latencyP50Seconds, before.total.latencyP50Seconds);
    assert.equal(after.total.latencyP95Seconds, before.total.latencyP95Seconds);
    assert.equal(
      (await db.selectFrom('telemetry_spans').select('span_id').execute()).map((s) => s.span_id).join(),
      '00000000000000a2',
    );
    // A second run finds nothing new to roll up.
    assert.equal((await runTelemetryMaintenance(context)).rolledUp, 0);

    // Three hours on, everything but the recent points is past the retention.
    clock.now = now + 3 * HOUR_MS - 20 * 60_000;
    const expired = await runTelemetryMaintenance(context);
    assert.equal(expired.expiredPoints, rolled.length);
    // Meanwhile the recent points have passed the raw retention too and were rolled up.
    const recentBucket = Math.floor(recent / 600_000) * 600_000;
    assert.deepEqual(await rows(), [
      { resolution_s: 600, time_ms: recentBucket },
      { resolution_s: 600, time_ms: recentBucket },
    ]);
    // And once the recent ones are past it too, the series go with them.
    clock.now = now + 4 * HOUR_MS;
    const gone = await runTelemetryMaintenance(context);
    assert.equal(gone.expiredPoints, 2);
    assert.equal(gone.expiredSeries, 2);
    assert.equal((await db.selectFrom('telemetry_series').select('id').execute()).length, 0);
    assert.equal((await db.selectFrom('telemetry_spans').select('id').execute()).length, 0);
  });

  it('runs the job on an unref’d timer with the injected clock, and stops on close', async (t) => {
    const c = await core(t, {
      config: { telemetryRawRetentionHours: 1, telemetryRetentionHours: 2, telemetryRollupSeconds: 60 },
    });
    const now = Date.now();
    const response = await postOtlp(
      c,
      'metrics',
      deltaRequests([{ model: 'm', version: '1', outcome: 'success', value: 1, timeMs: now - 30 * 60_000 }]),
      { 'content-type': 'application/json' },
    );
    assert.equal(response.status, 200);
    const db = c.core.context.store.db;
    // The injected clock says it is an hour later: the point is now older than the raw retention.
    const job = new TelemetryMaintenance(
      { ...c.core.context, now: () => new Date(now + HOUR_MS) },
      { intervalMs: 20, logger: c.core.context.logger },
    );
    job.start();
    const deadline = Date.now() + 5000;
    let resolution = 0;
    while (resolution === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      resolution =
        (await db.selectFrom('telemetry_points').select('resolution_s').executeTakeFirst())?.resolution_s ??
        0;
    }
    await job.close();
    assert.equal(resolution, 60);
    assert.equal(await job.runOnce(), undefined, 'a closed job does not run');
  });

  it('serves fleet aggregates at /metrics, computed from the store', async (t) => {
    const c = await core(t);
    const now = Date.now();
    const post = async (body: string) => {
      const response = await postOtlp(c, 'metrics', body, { 'content-type': 'application/json' });
      assert.equal(response.status, 200);
    };
    await post(
      deltaRequests(
        [
          { model: 'mnist', version: '1', outcome: 'success', value: 40, timeMs: now - 1000 },
          { model: 'mnist', version: '1', outcome: 'server_error', value: 2, timeMs: now - 1000 },
        ],
        { 'aiedge.site': 'north' },
      ),
    );
    await post(
      deltaRequests([{ model: 'mnist', version: '2', outcome: 'success', value: 7, timeMs: now - 1000 }], {
        'aiedge.site': 'south',
      }),
    );
    await post(deltaHistogram('mnist', '1', counts([3, 30], [9, 10]), now - 1000));
    const text = await (await c.api('/metrics')).text();
    const sample = (name: string, labels: string) => {
      const match = new RegExp(`^${name}\\{${labels}\\} (\\S+)$`, 'm').exec(text);
      assert.ok(match, `no ${name}{${labels}} in /metrics`);
      return Number(match[1]);
    };
    assert.equal(
      sample(
        'aiedge_fleet_inference_requests_total',
        'site="north",model="mnist",version="1",outcome="success"',
      ),
      40,
    );
    assert.equal(
      sample(
        'aiedge_fleet_inference_requests_total',
        'site="north",model="mnist",version="1",outcome="server_error"',
      ),
      2,
    );
    assert.equal(
      sample(
        'aiedge_fleet_inference_requests_total',
        'site="south",model="mnist",version="2",outcome="success"',
      ),
      7,
    );
    close(
      sample('aiedge_fleet_inference_duration_seconds', 'model="mnist",quantile="0.5"'),
      interpolate(0.0025, 0.005, 20, 0, 30),
      'p50',
    );
    close(
      sample('aiedge_fleet_inference_duration_seconds', 'model="mnist",quantile="0.95"'),
      interpolate(0.25, 0.5, 38, 30, 10),
      'p95',
    );
    assert.match(text, /^# TYPE aiedge_fleet_inference_requests_total counter$/m);
    assert.equal(sample('aiedge_core_telemetry_points_received_total', 'signal="metrics"'), 4);

    // The totals are running totals: rolling points up does not change them.
    const report = await runTelemetryMaintenance({
      ...c.core.context,
      now: () => new Date(now + 25 * HOUR_MS),
    });
    assert.equal(report.rolledUp, 4);
    const later = await (await c.api('/metrics')).text();
    assert.match(
      later,
      /^aiedge_fleet_inference_requests_total\{site="north",model="mnist",version="1",outcome="success"\} 40$/m,
    );

    const openapi = await getJson<{ paths: Record<string, Record<string, { tags?: string[] }>> }>(
      c,
      '/api/v1/openapi.json',
    );
    for (const path of ['/api/v1/telemetry/summary', '/api/v1/telemetry/series', '/api/v1/telemetry/spans']) {
      assert.deepEqual(openapi.paths[path]?.['get']?.tags, ['telemetry'], path);
    }
    assert.deepEqual(openapi.paths['/v1/metrics']?.['post']?.tags, ['telemetry']);
  });
});
