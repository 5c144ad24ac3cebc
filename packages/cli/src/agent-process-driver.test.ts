/**
 * The agent's process driver end to end: real inference images (v1, v2 and a broken v3) in a real
 * registry, real `aiedge serve` processes, a load loop that must see no failed request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessDriver, type DeploymentReport } from '@aiedge/agent';
import type { SiteDeployment } from '@aiedge/gitops';
import {
  ContentStore,
  RegistryClient,
  buildInferenceImage,
  parseReference,
  startRegistry,
  type RunningRegistry,
} from '@aiedge/oci';
import { EXAMPLE_MODEL_NAME, bundleRuntime, exampleModel } from '@aiedge/runtime';
import { silentLogger } from '@aiedge/telemetry';
import { freePort } from './_test-cli.js';
import { assertVersion, infer, loadLoop } from './_test-inference.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('agent process driver (real images, registry and servers)', { timeout: 600_000 }, () => {
  let dir: string;
  let registry: RunningRegistry;
  let store: ContentStore;
  const digests: Record<string, string> = {};
  let host: string;
  let port: number;
  const reports: DeploymentReport[] = [];
  const drivers: ProcessDriver[] = [];

  const deployment = (v: '1' | '2' | '3', env: Record<string, string> = {}): SiteDeployment => ({
    name: 'classifier',
    namespace: 'default',
    model: { name: EXAMPLE_MODEL_NAME, version: v },
    image: `${host}/models/example@${digests[v]!}`,
    imageDigest: digests[v]!,
    port,
    replicas: 1,
    env,
    resources: { requests: {}, limits: {} },
    probes: { liveness: '/v2/health/live', readiness: '/v2/health/ready' },
  });

  const newDriver = async (agentDir = 'agent'): Promise<ProcessDriver> => {
    const agentStore = await ContentStore.open(join(dir, agentDir, 'store'));
    const driver = new ProcessDriver(
      {
        dataDir: join(dir, agentDir),
        store: agentStore,
        registry: {},
        logger: silentLogger,
        onReport: (r) => reports.push(r),
      },
      { readyTimeoutMs: 60_000 },
    );
    drivers.push(driver);
    return driver;
  };

  const recordedPid = async (): Promise<number> => {
    const state = JSON.parse(await readFile(join(dir, 'agent', 'process', 'state.json'), 'utf8')) as {
      deployments: Record<string, { serving?: { server: { pid: number } } }>;
    };
    return state.deployments['classifier']!.serving!.server.pid;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-agent-process-'));
    registry = await startRegistry({ data: join(dir, 'registry'), host: '127.0.0.1', port: 0 });
    host = new URL(registry.url).host;
    port = await freePort();
    store = await ContentStore.open(join(dir, 'build-store'));
    const client = new RegistryClient();
    const runtime = (architecture: string) => bundleRuntime({ architecture });
    for (const v of ['1', '2', '3'] as const) {
      const modelDir = join(dir, `model-${v}`);
      await mkdir(modelDir);
      // v3 is garbage: ONNX Runtime refuses it when the server loads it.
      await writeFile(
        join(modelDir, 'model.onnx'),
        v === '3' ? Buffer.from('this is not an onnx model') : exampleModel(Number(v)),
      );
      const built = await buildInferenceImage({
        store,
        modelPath: modelDir,
        name: EXAMPLE_MODEL_NAME,
        version: v,
        runtime,
      });
      await client.push(store, built.root, parseReference(`${host}/models/example:${v}`));
      digests[v] = built.root.digest;
    }
    await client.close();
  });

  after(async () => {
    for (const d of drivers) await d.close({ stopServing: true }).catch(() => undefined);
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('deploys v1, updates to v2 without a failed request, rolls back a broken v3, adopts, removes', async () => {
    const signal = new AbortController().signal;
    let driver = await newDriver();
    await driver.start();

    // v1
    let [report] = await driver.reconcile([deployment('1')], signal);
    assert.equal(report?.state, 'Serving', report?.reason);
    assert.equal(report.version, '1');
    assert.deepEqual(
      reports.map((r) => r.state),
      ['Pending', 'Pulling', 'Starting', 'Serving'],
    );
    assertVersion(await infer(port), 1);
    const pid = await recordedPid();

    // v2 under load: the same server switches versions in place.
    let load = loadLoop(port);
    await new Promise((r) => setTimeout(r, 200));
    [report] = await driver.reconcile([deployment('2')], signal);
    await new Promise((r) => setTimeout(r, 200));
    let result = await load.stop();
    assert.equal(report?.state, 'Serving', report?.reason);
    assert.equal(report.version, '2');
    assert.deepEqual(result.failures, []);
    assert.ok(result.ok > 10, `${result.ok} requests`);
    assert.equal(result.versions.at(-1), '2');
    assert.ok(result.versions.includes('1'), 'v1 served while v2 was loading');
    assertVersion(await infer(port), 2);
    assert.equal(await recordedPid(), pid, 'a model update keeps the server process');

    // Broken v3: rolled back with ORT's reason; v2 keeps serving, no failed request.
    load = loadLoop(port);
    [report] = await driver.reconcile([deployment('3')], signal);
    result = await load.stop();
    assert.equal(report?.state, 'RolledBack');
    assert.equal(report.imageDigest, digests['3']);
    assert.match(report.reason ?? '', /failed to load model\.onnx: .*Protobuf parsing failed/);
    assert.ok((report.reason ?? '').includes(`still serving ${EXAMPLE_MODEL_NAME} version 2`), report.reason);
    assert.deepEqual(result.failures, []);
    assert.deepEqual(result.versions, ['2']);
    assertVersion(await infer(port), 2);

    // Not retried while the desired state is the same.
    const before = reports.length;
    [report] = await driver.reconcile([deployment('3')], signal);
    assert.equal(report?.state, 'RolledBack');
    assert.equal(reports.length, before, 'no new attempt, no new report');

    // Back to v2: already serving.
    [report] = await driver.reconcile([deployment('2')], signal);
    assert.equal(report?.state, 'Serving');
    assert.equal(report.version, '2');

    // A new driver (agent restart) adopts the running server.
    await driver.close();
    assert.ok(alive(pid), 'closing the driver leaves the server running');
    driver = await newDriver();
    await driver.start();
    assert.equal(driver.reports()[0]?.state, 'Serving');
    assert.equal(await recordedPid(), pid, 'adopted, not restarted');
    [report] = await driver.reconcile([deployment('2')], signal);
    assert.equal(report?.state, 'Serving');
    assertVersion(await infer(port), 2);

    // The server died while the agent was down: the next agent restarts the recorded image.
    await driver.close();
    process.kill(-pid, 'SIGKILL');
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    driver = await newDriver();
    await driver.start();
    assert.equal(driver.reports()[0]?.state, 'Serving', driver.reports()[0]?.reason);
    const restarted = await recordedPid();
    assert.notEqual(restarted, pid);
    assertVersion(await infer(port), 2);

    // A runtime change (here: the deployment's env) replaces the server after checking it aside.
    [report] = await driver.reconcile([deployment('2', { AIEDGE_TEST: '1' })], signal);
    assert.equal(report?.state, 'Serving', report?.reason);
    const replaced = await recordedPid();
    assert.notEqual(replaced, restarted);
    assert.ok(!alive(restarted), 'the old server stopped');
    assertVersion(await infer(port), 2);

    // Removed: the server stops.
    const all = await driver.reconcile([], signal);
    assert.deepEqual(all, []);
    for (let i = 0; i < 50 && alive(replaced); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(!alive(replaced), 'the server stopped');
    await assert.rejects(infer(port));
  });
  test('a corrupted blob from the registry is refused and the serving version keeps serving', async () => {
    const signal = new AbortController().signal;
    // A fresh agent: it has none of version 2's blobs yet.
    const driver = await newDriver('agent-2');
    await driver.start();
    let [report] = await driver.reconcile([deployment('1')], signal);
    assert.equal(report?.state, 'Serving', report?.reason);

    // A proxy in front of the registry flips one byte of every blob it serves.
    let corrupted = 0;
    const proxy: Server = createServer((req, res) => {
      void (async () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(req.headers)) {
          if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers.set(k, v);
        }
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const upstream = await fetch(`${registry.url}${req.url ?? '/'}`, {
          method: req.method ?? 'GET',
          headers,
          ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}),
          redirect: 'manual',
        });
        const body = Buffer.from(await upstream.arrayBuffer());
        if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '') && body.length > 0) {
          body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
          corrupted++;
        }
        const out: Record<string, string> = {};
        upstream.headers.forEach((v, k) => {
          if (!['content-length', 'content-encoding', 'transfer-encoding', 'connection'].includes(k))
            out[k] = v;
        });
        res.writeHead(upstream.status, { ...out, 'content-length': String(body.length) });
        res.end(req.method === 'HEAD' ? undefined : body);
      })().catch((error: unknown) => res.destroy(error as Error));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const proxyHost = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const v2 = deployment('2');
      const tampered: SiteDeployment = { ...v2, image: v2.image.replace(host, proxyHost) };
      const load = loadLoop(port);
      [report] = await driver.reconcile([tampered], signal);
      const result = await load.stop();
      assert.ok(corrupted > 0, 'the proxy served a corrupted blob');
      assert.notEqual(report?.state, 'Serving', 'the corrupted image must not serve');
      assert.match(report?.reason ?? '', /digest|sha256/i, report?.reason);
      assert.deepEqual(result.failures, []);
      assert.deepEqual(result.versions, ['1'], 'version 1 kept serving');
      assertVersion(await infer(port), 1);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
      await driver.reconcile([], signal);
    }
  });
});
