import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ContentStore,
  RegistryClient,
  buildInferenceImage,
  parseReference,
  startRegistry,
  type ImageManifest,
  type InferenceImage,
} from '@aiedge/oci';
import { bundleRuntime, exampleModel } from '@aiedge/runtime';
import { freePort, missingTool } from './_test-cli.js';

const run = promisify(execFile);

function missingTools(): string | undefined {
  return (
    missingTool('docker-registry', 'apt-get install docker-registry') ??
    missingTool('skopeo', 'apt-get install skopeo') ??
    missingTool('podman', 'apt-get install podman runc && scripts/podman-setup.sh')
  );
}

/** Starts Debian's docker-registry (CNCF distribution) on 127.0.0.1. */
async function startDistribution(dir: string): Promise<{ host: string; child: ChildProcess }> {
  const port = await freePort();
  const config = join(dir, 'distribution.yml');
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'distribution-data')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const host = `127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (
      (await fetch(`http://${host}/v2/`).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      return { host, child };
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill();
  throw new Error('docker-registry did not start');
}

describe('inference images through real registries', { skip: missingTools() }, () => {
  let dir: string;
  let distribution: { host: string; child: ChildProcess };
  let ours: Awaited<ReturnType<typeof startRegistry>>;
  let store: ContentStore;
  let v1: InferenceImage;
  let v2: InferenceImage;
  const client = new RegistryClient();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-image-registry-'));
    distribution = await startDistribution(dir);
    ours = await startRegistry({ data: join(dir, 'ours'), host: '127.0.0.1', port: 0 });
    store = await ContentStore.open(join(dir, 'store'));
    const runtime = (architecture: string) => bundleRuntime({ architecture });
    for (const v of [1, 2]) {
      await mkdir(join(dir, `m${v}`));
      await writeFile(join(dir, `m${v}`, 'model.onnx'), exampleModel(v));
    }
    v1 = await buildInferenceImage({
      store,
      modelPath: join(dir, 'm1'),
      name: 'example',
      version: '1',
      runtime,
    });
    v2 = await buildInferenceImage({
      store,
      modelPath: join(dir, 'm2'),
      name: 'example',
      version: '2',
      runtime,
    });
  });
  after(async () => {
    await client.close();
    distribution?.child.kill();
    await ours?.close();
    await run('podman', ['rmi', '-f', `${ours?.url.replace('http://', '')}/models/example:2`]).catch(
      () => undefined,
    );
    await rm(dir, { recursive: true, force: true });
  });

  test('version 2 uploads only its model layer and config to the distribution registry', async () => {
    const repo = `${distribution.host}/models/example`;
    const first = await client.push(store, v1.root, parseReference(`${repo}:1`));
    const all = v1.manifests[0]!;
    assert.ok(first.uploadedBytes >= all.base[0]!.size + all.runtime.size + all.model.size);
    const second = await client.push(store, v2.root, parseReference(`${repo}:2`));
    const manifest = await store.readJson<ImageManifest>(v2.root.digest);
    assert.equal(second.skippedBlobs, 2, 'base and runtime layers are already there');
    assert.equal(
      second.uploadedBytes,
      v2.manifests[0]!.model.size + manifest.config.size,
      'only model layer + config',
    );
    const fresh = await ContentStore.open(join(dir, 'fresh'));
    const pulled = await client.pull(parseReference(`${repo}:2`), fresh);
    assert.equal(pulled.root.digest, v2.root.digest);
    const { stdout } = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${repo}:2`]);
    assert.equal((JSON.parse(stdout) as { Digest: string }).Digest, v2.root.digest);
  });

  test('skopeo copies from the distribution registry into ours; we and podman pull it', async () => {
    const from = `docker://${distribution.host}/models/example:2`;
    const host = ours.url.replace('http://', '');
    await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      from,
      `docker://${host}/models/example:2`,
    ]);
    const fresh = await ContentStore.open(join(dir, 'fresh-ours'));
    const pulled = await client.pull(parseReference(`${host}/models/example:2`), fresh);
    assert.equal(pulled.root.digest, v2.root.digest, 'digest preserved through skopeo and both registries');
    await run('podman', ['pull', '--tls-verify=false', `${host}/models/example:2`], { timeout: 300_000 });
    const { stdout } = await run('podman', [
      'image',
      'inspect',
      '--format',
      '{{.Digest}}',
      `${host}/models/example:2`,
    ]);
    assert.equal(stdout.trim(), v2.root.digest);
  });
});
