import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { gzipSync } from 'node:zlib';
import { TELEMETRY_BATCH_ID_HEADER } from '@aiedge/protocol';
import { decodeOtlpMetrics, decodeOtlpTraces, startTelemetry, type Logger } from '@aiedge/telemetry';
import type { Sleep } from './forwarder.js';
import { startTelemetryRelay, type TelemetryRelay, type TelemetryRelayOptions } from './index.js';
import { freePort, startOtlpSink, type OtlpSink } from './_test-otlp-sink.js';

const TOKEN = 'site-token-secret-1234567890';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-relay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger that keeps every line (to check what is logged, and that the token never is). */
function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const make = (bound: Record<string, unknown>): Logger => {
    const write =
      (level: string) =>
      (msg: string, fields: Record<string, unknown> = {}) => {
        lines.push(
          JSON.stringify({ level, msg, ...bound, ...fields }, (_k, v: unknown) =>
            v instanceof Error ? v.message : v,
          ),
        );
      };
    return {
      level: 'debug',
      debug: write('debug'),
      info: write('info'),
      warn: write('warn'),
      error: write('error'),
      child: (fields) => make({ ...bound, ...fields }),
    };
  };
  return Object.assign(make({}), { lines });
}

/** A sleep that records the delays asked for and waits only a moment. */
function fastSleep(): Sleep & { delays: number[] } {
  const delays: number[] = [];
  const sleep: Sleep = (ms, signal) => {
    delays.push(ms);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.min(ms, 5));
      signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
    });
  };
  return Object.assign(sleep, { delays });
}

async function relay(
  t: TestContext,
  options: Partial<TelemetryRelayOptions> & { endpoint: string },
): Promise<TelemetryRelay & { logger: ReturnType<typeof memoryLogger> }> {
  const logger = memoryLogger();
  const started = await startTelemetryRelay({
    dir: tempDir(t),
    listen: { port: 0 },
    token: () => TOKEN,
    logger,
    sleep: fastSleep(),
    ...options,
  });
  t.after(() => started.close());
  return Object.assign(started, { logger });
}

async function sink(t: TestContext, port?: number): Promise<OtlpSink> {
  const s = await startOtlpSink(port);
  t.after(() => s.close());
  return s;
}

/** An OTLP JSON metrics request with one gauge point of value `value`. */
function gaugeJson(value: number): string {
  return JSON.stringify({
    resourceMetrics: [
      {
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'test.gauge',
                gauge: {
                  dataPoints: [{ timeUnixNano: String(BigInt(Date.now()) * 1_000_000n), asDouble: value }],
                },
              },
            ],
          },
        ],
      },
    ],
  });
}

async function post(
  r: TelemetryRelay,
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): Promise<Response> {
  return fetch(`${r.url}${path}`, { method: 'POST', headers, body });
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('telemetry relay', () => {
  it('receives the OpenTelemetry SDK exports (protobuf, gzip) and forwards the original bytes', async (t) => {
    const s = await sink(t);
    const r = await relay(t, { endpoint: s.url });
    const tel = startTelemetry({
      serviceName: 'aiedge-serve',
      serviceVersion: '0.1.0',
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: r.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_COMPRESSION: 'gzip',
        OTEL_METRIC_EXPORT_INTERVAL: '600000',
      },
    });
    tel.meter.createCounter('test.requests').add(3, { outcome: 'success' });
    tel.tracer.startSpan('infer').end();
    await tel.forceFlush();
    await tel.shutdown();
    await withTimeout(r.flush(), 10_000, 'flush');

    const metrics = s.requests.filter((q) => q.path === '/v1/metrics');
    const traces = s.requests.filter((q) => q.path === '/v1/traces');
    assert.ok(metrics.length >= 1 && traces.length >= 1, `got ${s.requests.map((q) => q.path).join(', ')}`);
    const points = metrics.flatMap((q) =>
      decodeOtlpMetrics(q.body, 'protobuf').resourceMetrics.flatMap((rm) =>
        rm.scopeMetrics.flatMap((sm) => sm.metrics.filter((m) => m.name === 'test.requests')),
      ),
    );
    assert.ok(points.length >= 1);
    const spans = traces.flatMap((q) =>
      decodeOtlpTraces(q.body, 'protobuf').resourceSpans.flatMap((rs) =>
        rs.scopeSpans.flatMap((ss) => ss.spans),
      ),
    );
    assert.deepEqual(
      spans.map((sp) => sp.name),
      ['infer'],
    );
    for (const q of s.requests) {
      assert.equal(q.headers['content-encoding'], 'gzip');
      assert.equal(q.headers['content-type'], 'application/x-protobuf');
      assert.equal(q.headers.authorization, `Bearer ${TOKEN}`);
      assert.match(String(q.headers[TELEMETRY_BATCH_ID_HEADER]), /^[0-9a-f]{16}-\d+$/);
    }
    const ids = s.requests.map((q) => q.headers[TELEMETRY_BATCH_ID_HEADER]);
    assert.equal(new Set(ids).size, ids.length);
    const stats = r.stats();
    assert.equal(stats.forwarder.forwarded, s.requests.length);
    assert.equal(stats.queue.records, 0);
    assert.ok(!r.logger.lines.some((l) => l.includes(TOKEN)), 'the token is never logged');
  });

  it('keeps JSON bodies byte for byte and answers as OTLP expects', async (t) => {
    const s = await sink(t);
    const r = await relay(t, { endpoint: s.url });
    const body = gaugeJson(42);
    const plain = await post(r, '/v1/metrics', body);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-type'), 'application/json');
    assert.deepEqual(await plain.json(), {});
    const zipped = await post(r, '/v1/metrics', gzipSync(body), {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    assert.equal(zipped.status, 200);
    const proto = await post(r, '/v1/traces', Buffer.alloc(0), { 'content-type': 'application/x-protobuf' });
    assert.equal(proto.status, 200);
    assert.equal(proto.headers.get('content-type'), 'application/x-protobuf');
    await withTimeout(r.flush(), 10_000, 'flush');
    assert.deepEqual(
      s.requests.map((q) => [q.path, q.body.toString()]),
      [
        ['/v1/metrics', body],
        ['/v1/metrics', body],
        ['/v1/traces', ''],
      ],
    );
  });

  it('refuses garbage, wrong paths, methods, types, encodings and oversized bodies', async (t) => {
    const s = await sink(t);
    const r = await relay(t, { endpoint: s.url, maxBodyBytes: 10_000 });
    const garbage = await post(r, '/v1/metrics', '{"resourceMetrics": 7}');
    assert.equal(garbage.status, 400);
    const status = (await garbage.json()) as { code: number; message: string };
    assert.equal(status.code, 3);
    assert.match(status.message, /resourceMetrics/);
    assert.equal(
      (
        await post(r, '/v1/traces', Buffer.from([0xff, 0xff, 0xff]), {
          'content-type': 'application/x-protobuf',
        })
      ).status,
      400,
    );
    assert.equal(
      (
        await post(r, '/v1/metrics', 'not gzip', {
          'content-type': 'application/json',
          'content-encoding': 'gzip',
        })
      ).status,
      400,
    );
    assert.equal((await post(r, '/v1/logs', gaugeJson(1))).status, 404);
    assert.equal((await fetch(`${r.url}/v1/metrics`)).status, 405);
    assert.equal((await post(r, '/v1/metrics', gaugeJson(1), { 'content-type': 'text/plain' })).status, 415);
    assert.equal(
      (
        await post(r, '/v1/metrics', gaugeJson(1), {
          'content-type': 'application/json',
          'content-encoding': 'br',
        })
      ).status,
      415,
    );
    assert.equal((await post(r, '/v1/metrics', 'x'.repeat(20_000))).status, 413);
    // A small gzip body that inflates beyond the limit.
    const bomb = gzipSync(Buffer.alloc(200_000, 0x20));
    assert.equal(
      (await post(r, '/v1/metrics', bomb, { 'content-type': 'application/json', 'content-encoding': 'gzip' }))
        .status,
      413,
    );
    assert.equal(r.stats().queue.records + r.stats().forwarder.forwarded, 0);
    assert.equal(r.stats().receiver.refused, 9);
  });

  it('retries 5xx, 429, 408 and network errors with capped exponential backoff, then delivers once', async (t) => {
    const s = await sink(t);
    const sleep = fastSleep();
    const r = await relay(t, {
      endpoint: s.url,
      sleep,
      initialBackoffMs: 100,
      maxBackoffMs: 1000,
    });
    s.script(503, 500, 'hang-up', 408, 502, 502, 502, 502, 429);
    assert.equal((await post(r, '/v1/metrics', gaugeJson(1))).status, 200);
    // Not flush(): it would cut one delay short.
    await withTimeout(
      (async () => {
        while (r.stats().forwarder.forwarded === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      })(),
      10_000,
      'delivery',
    );
    assert.equal(s.requests.length, 10);
    const ids = new Set(s.requests.map((q) => q.headers[TELEMETRY_BATCH_ID_HEADER]));
    assert.equal(ids.size, 1, 'every attempt carries the same batch id');
    const stats = r.stats().forwarder;
    assert.equal(stats.retries, 9);
    assert.equal(stats.forwarded, 1);
    // Each delay lies in [step/2, step] of a doubling step capped at 1000 ms.
    const retryDelays = sleep.delays.filter((d) => d !== 5_000);
    assert.equal(retryDelays.length, 9);
    retryDelays.forEach((d, i) => {
      const step = Math.min(1000, 100 * 2 ** i);
      assert.ok(d >= step / 2 && d <= step, `delay ${i} is ${d}, step ${step}`);
    });
  });

  it('drops a request the endpoint refuses for good (4xx), counts it, and goes on', async (t) => {
    const s = await sink(t);
    const r = await relay(t, { endpoint: s.url });
    s.script(400, 200);
    await post(r, '/v1/metrics', gaugeJson(1));
    await post(r, '/v1/metrics', gaugeJson(2));
    await withTimeout(r.flush(), 10_000, 'flush');
    assert.equal(s.requests.length, 2);
    assert.equal(r.stats().forwarder.rejected, 1);
    assert.equal(r.stats().forwarder.forwarded, 1);
    assert.ok(r.logger.lines.some((l) => l.includes('refused') && l.includes('HTTP 400')));
  });

  it('stores while the endpoint is down, drops oldest when full, and delivers the rest once it is back', async (t) => {
    const port = await freePort();
    const dir = tempDir(t);
    const r = await relay(t, { endpoint: `http://127.0.0.1:${port}`, dir, maxQueueBytes: 4000 });
    const sent: number[] = [];
    for (let i = 0; i < 40; i++) {
      assert.equal((await post(r, '/v1/metrics', gaugeJson(i))).status, 200);
      sent.push(i);
    }
    const queued = r.stats().queue;
    assert.ok(queued.dropped > 0, 'the small queue had to drop');
    assert.equal(queued.records + queued.dropped, 40);
    assert.ok(r.stats().forwarder.retries > 0);
    const s = await sink(t, port);
    await withTimeout(r.flush(), 10_000, 'flush');
    const values = s.requests.map(
      (q) =>
        (
          JSON.parse(q.body.toString()) as {
            resourceMetrics: {
              scopeMetrics: { metrics: { gauge: { dataPoints: { asDouble: number }[] } }[] }[];
            }[];
          }
        ).resourceMetrics[0]?.scopeMetrics[0]?.metrics[0]?.gauge.dataPoints[0]?.asDouble,
    );
    // The newest survive, in order, each once.
    assert.deepEqual(values, sent.slice(queued.dropped));
  });

  it('keeps what is unsent across a restart and resends it under the same batch ids', async (t) => {
    const port = await freePort();
    const dir = tempDir(t);
    const first = await startTelemetryRelay({
      dir,
      listen: { port: 0 },
      endpoint: `http://127.0.0.1:${port}`,
      token: () => TOKEN,
      logger: memoryLogger(),
      sleep: fastSleep(),
    });
    await post(first, '/v1/metrics', gaugeJson(1));
    await post(first, '/v1/metrics', gaugeJson(2));
    await first.close();
    const s = await sink(t, port);
    const second = await relay(t, { endpoint: s.url, dir });
    await withTimeout(second.flush(), 10_000, 'flush');
    assert.equal(s.requests.length, 2);
    assert.deepEqual(
      s.requests.map((q) => String(q.headers[TELEMETRY_BATCH_ID_HEADER]).split('-')[1]),
      ['1', '2'],
    );
  });

  it('flush rejects when its signal aborts while the endpoint stays down', async (t) => {
    const port = await freePort();
    const r = await relay(t, { endpoint: `http://127.0.0.1:${port}` });
    await post(r, '/v1/metrics', gaugeJson(1));
    await assert.rejects(r.flush(AbortSignal.timeout(200)));
    assert.equal(r.stats().queue.records, 1);
  });

  it('rejects bad options naming the key', async (t) => {
    const base = {
      dir: tempDir(t),
      endpoint: 'http://127.0.0.1:1',
      token: () => TOKEN,
      logger: memoryLogger(),
    };
    await assert.rejects(startTelemetryRelay({ ...base, endpoint: 'ftp://x' }), /endpoint/);
    await assert.rejects(startTelemetryRelay({ ...base, maxQueueBytes: -1 }), /maxBytes/);
    await assert.rejects(
      startTelemetryRelay({ ...base, bogus: 1 } as unknown as TelemetryRelayOptions),
      /unknown option "bogus"/,
    );
  });
});
