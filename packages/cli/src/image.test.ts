import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';

import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ContentStore,
  buildInferenceImage,
  readArchive,
  writeArchive,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  type InferenceImage,
} from '@aiedge/oci';
import { bundleRuntime, exampleModel, resolveServeOptions, startServer } from '@aiedge/runtime';
import { freePort, missingTool } from './_test-cli.js';
import { silentLogger } from '@aiedge/telemetry';

const run = promisify(execFile);
const SHARED = resolve(dirname(fileURLToPath(import.meta.url)), '../../../../shared');
const MNIST = join(SHARED, 'fixtures/models/onnx-mnist/1');

const runtime = (architecture: string) => bundleRuntime({ architecture });

/** The example model built as image `example` version `version`. */
function buildExample(store: ContentStore, modelPath: string, version: string): Promise<InferenceImage> {
  return buildInferenceImage({ store, modelPath, name: 'example', version, runtime });
}

async function manifestOf(
  store: ContentStore,
  root: Descriptor,
): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
  const manifest = await store.readJson<ImageManifest>(root.digest);
  return { manifest, config: await store.readJson<ImageConfig>(manifest.config.digest) };
}

describe('inference images', () => {
  let dir: string;
  let modelV1: string;
  let modelV2: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-image-'));
    modelV1 = join(dir, 'model-v1');
    modelV2 = join(dir, 'model-v2');
    await mkdir(modelV1);
    await mkdir(modelV2);
    await writeFile(join(modelV1, 'model.onnx'), exampleModel(1));
    await writeFile(join(modelV1, 'README.md'), 'example classifier v1\n');
    await writeFile(join(modelV2, 'model.onnx'), exampleModel(2));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the same inputs give the same digest, in two separate stores', async () => {
    const a = await ContentStore.open(join(dir, 'store-a'));
    const b = await ContentStore.open(join(dir, 'store-b'));
    const one = await buildExample(a, modelV1, '1');
    const two = await buildExample(b, modelV1, '1');
    assert.equal(one.root.digest, two.root.digest);
    // and again in the same store, where base and runtime come from the layer cache
    const three = await buildExample(a, modelV1, '1');
    assert.equal(three.root.digest, one.root.digest);
  });

  test('version 2 shares every layer but the model layer; the config says what is inside', async () => {
    const store = await ContentStore.open(join(dir, 'store-a'));
    const v1 = await buildExample(store, modelV1, '1');
    const v2 = await buildExample(store, modelV2, '2');
    const m1 = await manifestOf(store, v1.root);
    const m2 = await manifestOf(store, v2.root);
    assert.equal(m1.manifest.layers.length, 3);
    assert.deepEqual(
      m2.manifest.layers.slice(0, 2),
      m1.manifest.layers.slice(0, 2),
      'base and runtime identical',
    );
    assert.notEqual(m2.manifest.layers[2]!.digest, m1.manifest.layers[2]!.digest, 'model layer differs');
    const c = m2.config;
    assert.equal(c.architecture, process.arch === 'x64' ? 'amd64' : process.arch);
    assert.equal(c.os, 'linux');
    assert.equal(c.config?.User, '1001:0');
    assert.deepEqual(c.config?.ExposedPorts, { '8080/tcp': {} });
    assert.deepEqual(c.config?.Entrypoint, ['node', '/opt/aiedge/aiedge.js']);
    assert.deepEqual(c.config?.Cmd, ['serve']);
    assert.ok(c.config?.Env?.includes('AIEDGE_SERVE_MODEL_REPOSITORY=/models'));
    const labels = c.config?.Labels ?? {};
    assert.equal(labels['io.aiedge.model.name'], 'example');
    assert.equal(labels['io.aiedge.model.version'], '2');
    assert.equal(labels['io.aiedge.model.sha256'], v2.modelSha256);
    assert.equal(labels['io.aiedge.model.format'], 'onnx');
    assert.equal(labels['io.aiedge.runtime.version'], '0.1.0');
    assert.equal(labels['org.opencontainers.image.version'], '2');
    assert.equal(c.created, '1970-01-01T00:00:00Z');
    assert.equal(c.rootfs.diff_ids.length, 3);
    assert.equal(m2.manifest.annotations?.['org.opencontainers.image.title'], 'example');
  });

  test('bad model inputs are refused with what is wrong', async () => {
    const store = await ContentStore.open(join(dir, 'store-a'));
    const build = (modelPath: string, name = 'example', version = '1') =>
      buildInferenceImage({ store, modelPath, name, version, runtime });
    await assert.rejects(build(join(dir, 'nope')), /model path .*nope does not exist/);
    await assert.rejects(build(dir), /must hold exactly one \.onnx file at its top level; found 0/);
    await assert.rejects(build(modelV1, 'bad name'), /model name "bad name" must match/);
    await assert.rejects(build(modelV1, 'example', 'v1'), /model version "v1" must be a positive integer/);
    await assert.rejects(
      buildInferenceImage({
        store,
        modelPath: modelV1,
        name: 'e',
        version: '1',
        runtime,
        platforms: [{ os: 'linux', architecture: 'riscv64' }],
      }),
      /--base host builds only for this machine's platform/,
    );
  });

  test('oci-archive round trip keeps the digest; skopeo reads our archive', async () => {
    const store = await ContentStore.open(join(dir, 'store-a'));
    const v1 = await buildExample(store, modelV1, '1');
    const archive = join(dir, 'example-1.tar');
    await writeArchive(store, v1.root, archive, 'example:1');
    const other = await ContentStore.open(join(dir, 'store-c'));
    const loaded = await readArchive(other, archive);
    assert.equal(loaded.digest, v1.root.digest);
    const again = join(dir, 'example-1-again.tar');
    await writeArchive(other, loaded, again, 'example:1');
    const { stdout: sum1 } = await run('sha256sum', [archive]);
    const { stdout: sum2 } = await run('sha256sum', [again]);
    assert.equal(sum1.split(' ')[0], sum2.split(' ')[0], 'archives are byte-identical');
  });

  test(
    'skopeo inspects our oci-archive',
    { skip: missingTool('skopeo', 'apt-get install skopeo') },
    async () => {
      const store = await ContentStore.open(join(dir, 'store-a'));
      const v1 = await buildExample(store, modelV1, '1');
      const archive = join(dir, 'skopeo-1.tar');
      await writeArchive(store, v1.root, archive, 'example:1');
      const { stdout } = await run('skopeo', ['inspect', `oci-archive:${archive}`]);
      const info = JSON.parse(stdout) as { Digest: string; Labels: Record<string, string>; Layers: string[] };
      assert.equal(info.Digest, v1.root.digest);
      assert.equal(info.Labels['io.aiedge.model.name'], 'example');
      assert.equal(info.Layers.length, 3);
    },
  );
});

describe('podman runs the image built with --base host', () => {
  const skip =
    missingTool('podman', 'apt-get install podman runc && scripts/podman-setup.sh') ??
    (process.getuid?.() === 0 ? undefined : 'podman tests need root in this setup');
  const mnistMissing = spawnSync('test', ['-f', join(MNIST, 'mnist.onnx')]).status !== 0;

  test(
    'the mnist fixture answers health and inference from inside the container',
    { skip: skip ?? (mnistMissing ? `mnist fixture not found at ${MNIST}` : undefined) },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'aiedge-podman-'));
      const name = `aiedge-test-${process.pid}`;
      try {
        const model = join(dir, 'mnist');
        await cp(MNIST, model, { recursive: true });
        const store = await ContentStore.open(join(dir, 'store'));
        const built = await buildInferenceImage({
          store,
          modelPath: model,
          name: 'mnist',
          version: '1',
          runtime,
        });
        const archive = join(dir, 'mnist.tar');
        await writeArchive(store, built.root, archive, 'mnist:1');
        const port = await freePort();
        await run(
          'podman',
          [
            'run',
            '-d',
            '--rm',
            '--name',
            name,
            '--network',
            'host',
            '-e',
            `AIEDGE_SERVE_PORT=${port}`,
            '-e',
            'AIEDGE_SERVE_HOST=127.0.0.1',
            `oci-archive:${archive}`,
          ],
          { timeout: 300_000 },
        );
        const url = `http://127.0.0.1:${port}`;
        let ready = 0;
        for (let i = 0; i < 300 && ready !== 200; i++) {
          ready = await fetch(`${url}/v2/health/ready`).then(
            (r) => r.status,
            () => 0,
          );
          if (ready !== 200) await new Promise((r) => setTimeout(r, 200));
        }
        if (ready !== 200) {
          const logs = await run('podman', ['logs', name]).then(
            (r) => r.stdout + r.stderr,
            (e: Error) => e.message,
          );
          assert.fail(`container never became ready; logs:\n${logs}`);
        }
        const meta = (await (await fetch(`${url}/v2/models/mnist`)).json()) as {
          inputs: Array<{ name: string }>;
        };
        assert.equal(meta.inputs[0]?.name, 'Input3');
        // A blank image with one bright vertical stroke; compare with the same model run here.
        const pixels = new Array<number>(784).fill(0);
        for (let row = 4; row < 24; row++) pixels[row * 28 + 14] = 1;
        const res = await fetch(`${url}/v2/models/mnist/infer`, {
          method: 'POST',
          body: JSON.stringify({
            inputs: [{ name: 'Input3', shape: [1, 1, 28, 28], datatype: 'FP32', data: pixels }],
          }),
        });
        assert.equal(res.status, 200);
        const out = ((await res.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;
        // The same model served in this process by the same runtime code, outside any container.
        const local = await startServer(
          resolveServeOptions({
            models: [{ name: 'mnist', path: join(model, 'mnist.onnx') }],
            host: '127.0.0.1',
            port: 0,
            workers: 1,
          }),
          { logger: silentLogger },
        );
        let expected: number[];
        try {
          const r = await fetch(`${local.url}/v2/models/mnist/infer`, {
            method: 'POST',
            body: JSON.stringify({
              inputs: [{ name: 'Input3', shape: [1, 1, 28, 28], datatype: 'FP32', data: pixels }],
            }),
          });
          expected = ((await r.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]!.data;
        } finally {
          await local.close();
        }
        out.forEach((v, i) =>
          assert.ok(Math.abs(v - expected[i]!) < 1e-4, `logit ${i}: ${v} vs ${expected[i]}`),
        );
        const { stdout: user } = await run('podman', [
          'exec',
          name,
          'node',
          '-e',
          'process.stdout.write(`${process.getuid()}:${process.getgid()}`)',
        ]);
        assert.equal(user, '1001:0', 'runs as the non-root user in group 0');
      } finally {
        await run('podman', ['rm', '-f', name]).catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});
