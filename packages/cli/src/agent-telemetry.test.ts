// The agent issue's end-to-end test of telemetry store and forward, against a real core:
// core down, N points produced, core back: exactly N points arrive, once each.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { startTelemetryRelay, type TelemetryRelay } from '@aiedge/agent';
import { createToken, resolveCoreConfig, startCore, type RunningCore } from '@aiedge/core';
import type { TelemetrySummary } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}

async function core(data: string, port: number): Promise<RunningCore> {
  return startCore({
    config: resolveCoreConfig({
      values: { host: '127.0.0.1', port, logLevel: 'silent', data },
    }),
    logger: silentLogger,
  });
}

/**
 * A pass-through proxy to the core that loses the answer to the first `loseAcks` requests the core
 * accepted (it cuts the connection after the core stored the batch), like a link dropping at the
 * worst moment. When the core is down it cuts the connection too.
 */
async function lossyProxy(target: () => number, loseAcks: number) {
  let lost = 0;
  let forwarded = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const upstream = request(
        { host: '127.0.0.1', port: target(), path: req.url, method: req.method, headers: req.headers },
        (up) => {
          const body: Buffer[] = [];
          up.on('data', (c: Buffer) => body.push(c));
          up.on('end', () => {
            forwarded++;
            if (up.statusCode === 200 && lost < loseAcks) {
              lost++;
              req.socket.destroy();
              return;
            }
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(Buffer.concat(body));
          });
        },
      );
      upstream.on('error', () => req.socket.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats: () => ({ lost, forwarded }),
    close: () => closeServer(server),
  };
}

/** OTLP JSON with one delta `aiedge.inference.requests` point of value 1 per time. */
function deltaPoints(timesMs: number[]): string {
  return JSON.stringify({
    resourceMetrics: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'aiedge-serve' } }] },
        scopeMetrics: [
          {
            metrics: [
              {
                name: 'aiedge.inference.requests',
                sum: {
                  aggregationTemporality: 1,
                  isMonotonic: true,
                  dataPoints: timesMs.map((t) => ({
                    attributes: [
                      { key: 'aiedge.model.name', value: { stringValue: 'mnist' } },
                      { key: 'aiedge.model.version', value: { stringValue: '1' } },
                      { key: 'outcome', value: { stringValue: 'success' } },
                    ],
                    startTimeUnixNano: String(BigInt(t - 1) * 1_000_000n),
                    timeUnixNano: String(BigInt(t) * 1_000_000n),
                    asInt: '1',
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

describe('agent telemetry relay against the real core', () => {
  it('core down, N points produced, core back: exactly N points arrive, once each, also when acks are lost', async (t) => {
    const data = await mkdtemp(join(tmpdir(), 'aiedge-core-'));
    const queueDir = await mkdtemp(join(tmpdir(), 'aiedge-relay-'));
    t.after(() => rm(data, { recursive: true, force: true }));
    t.after(() => rm(queueDir, { recursive: true, force: true }));
    const port = await freePort();

    // Enroll the site while the core is up, then take the core down.
    let running: RunningCore | undefined = await core(data, port);
    const admin = await createToken(running.context.store.db, { kind: 'admin', description: 'test' });
    const enrollment = await createToken(running.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
    const enrolled = await fetch(`${running.url}/api/v1/sites/enroll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${enrollment.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'edge-1', labels: {}, kind: 'device', agentVersion: 'test' }),
    });
    assert.equal(enrolled.status, 201, await enrolled.clone().text());
    const siteToken = ((await enrolled.json()) as { token: string }).token;
    const coreUrl = running.url;
    await running.close();
    running = undefined;
    t.after(() => running?.close());

    const LOST_ACKS = 3;
    const proxy = await lossyProxy(() => port, LOST_ACKS);
    t.after(() => proxy.close());
    const relay: TelemetryRelay = await startTelemetryRelay({
      dir: queueDir,
      listen: { host: '127.0.0.1', port: 0 },
      endpoint: proxy.url,
      token: () => siteToken,
      maxQueueBytes: 8 * 1024 * 1024,
      logger: silentLogger,
      initialBackoffMs: 50,
      maxBackoffMs: 500,
    });
    t.after(() => relay.close());

    // N points in batches of 1..5 (distinct times), posted like a runtime's exporter would.
    const now = Date.now();
    const N = 60;
    let produced = 0;
    let requests = 0;
    while (produced < N) {
      const size = Math.min(N - produced, 1 + (requests % 5));
      const times = Array.from({ length: size }, (_, i) => now - 60_000 + (produced + i) * 100);
      const response = await fetch(`${relay.url}/v1/metrics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: deltaPoints(times),
      });
      assert.equal(response.status, 200);
      produced += size;
      requests++;
    }
    // Let the forwarder fail against the down core for a while.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const down = relay.stats();
    assert.equal(down.queue.records, requests, 'everything is queued while the core is down');
    assert.equal(down.forwarder.forwarded, 0);
    assert.ok(down.forwarder.retries > 0);

    running = await core(data, port);
    assert.equal(running.url, coreUrl);
    // flush() cuts the current retry delay short; bounded here so a failure cannot hang the test.
    await relay.flush(AbortSignal.timeout(20_000));

    const after = relay.stats();
    assert.equal(after.queue.records, 0);
    assert.equal(after.queue.dropped, 0);
    assert.equal(after.forwarder.forwarded, requests);
    assert.equal(after.forwarder.rejected, 0);
    assert.equal(proxy.stats().lost, LOST_ACKS, 'some acknowledgements were lost and the batches sent again');

    const summary = await fetch(`${running.url}/api/v1/telemetry/summary?site=edge-1&windowSeconds=3600`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    assert.equal(summary.status, 200);
    const body = (await summary.json()) as TelemetrySummary;
    assert.equal(body.total.requests, N, 'exactly N points arrived, once each');
    assert.deepEqual(
      body.models.map((m) => [m.site, m.model, m.version, m.requests]),
      [['edge-1', 'mnist', '1', N]],
    );

    const metrics = await fetch(`${running.url}/metrics`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    const text = await metrics.text();
    const deduplicated = /aiedge_core_telemetry_batches_deduplicated_total\{signal="metrics"\} (\d+)/.exec(
      text,
    );
    assert.equal(Number(deduplicated?.[1]), LOST_ACKS, 'the core deduplicated the resent batches');
  });
});
