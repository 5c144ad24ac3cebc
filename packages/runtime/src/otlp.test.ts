import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger, startTelemetry } from '@aiedge/telemetry';
import { call, tempDir, writeModel } from './_test-helpers.js';
import { exampleModel } from './onnx/index.js';
import { resolveServeOptions } from './options.js';
import { startServer } from './serve.js';

interface Received {
  path: string;
  body: unknown;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

test('metrics and traces reach an OTLP/HTTP receiver; an incoming traceparent is continued', async () => {
  const received: Received[] = [];
  const receiver = createServer((req, res) => {
    readJson(req).then(
      (body) => {
        received.push({ path: req.url ?? '', body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      },
      () => res.writeHead(400).end(),
    );
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const telemetry = startTelemetry({
    serviceName: 'aiedge-serve',
    serviceVersion: 'test',
    env: { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
    logger: silentLogger,
  });
  const repo = await tempDir('otlp');
  await writeModel(repo.path, 'example', 1, exampleModel(1));
  const server = await startServer(
    resolveServeOptions({ modelRepository: repo.path, host: '127.0.0.1', port: 0, workers: 1 }),
    { logger: silentLogger, telemetry },
  );
  try {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await call(
      server,
      'POST',
      '/v2/models/example/infer',
      { inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] },
      { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    );
    assert.equal(res.status, 200);
    await telemetry.forceFlush();
    const text = JSON.stringify(received);
    const metrics = received.filter((r) => r.path === '/v1/metrics');
    const traces = received.filter((r) => r.path === '/v1/traces');
    assert.ok(metrics.length > 0, 'metrics exported');
    assert.ok(traces.length > 0, 'traces exported');
    for (const name of [
      'aiedge.inference.requests',
      'aiedge.inference.duration',
      'aiedge.model.load.duration',
    ]) {
      assert.ok(JSON.stringify(metrics).includes(`"name":"${name}"`), `metric ${name} exported`);
    }
    assert.ok(text.includes('"stringValue":"aiedge-serve"'), 'service.name on the resource');
    const spans = JSON.stringify(traces);
    assert.ok(spans.includes('"name":"infer example"'), 'inference span exported');
    // OTLP/JSON carries trace ids as hex strings.
    assert.ok(spans.toLowerCase().includes(traceId), 'span continues the incoming trace');
  } finally {
    await server.close();
    await telemetry.shutdown();
    await new Promise((r) => receiver.close(r));
    await repo.cleanup();
  }
});
