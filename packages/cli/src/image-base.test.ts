import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Parser, type ReadEntry } from 'tar';
import {
  ContentStore,
  RegistryClient,
  buildLayer,
  parseReference,
  startRegistry,
  writeImage,
  writeIndex,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '@aiedge/oci';
import { exampleModel } from '@aiedge/runtime';
import { runCli } from './_test-cli.js';

/** Paths inside a gzip layer blob. */
async function layerPaths(store: ContentStore, digest: `sha256:${string}`): Promise<string[]> {
  const paths: string[] = [];
  const parser = new Parser({
    onReadEntry: (e: ReadEntry) => {
      paths.push(e.path);
      e.resume();
    },
  });
  await pipeline(await store.read(digest), parser);
  return paths;
}

let dir: string;
let registry: Awaited<ReturnType<typeof startRegistry>>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-base-'));
  registry = await startRegistry({ data: join(dir, 'registry'), host: '127.0.0.1', port: 0 });
});
after(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});

test('--base with a multi-arch base image gives a multi-arch index with the right runtime per platform', async () => {
  // A two-platform base image, as a UBI or Debian Node.js image would be, pushed to our registry.
  const baseStore = await ContentStore.open(join(dir, 'base-store'));
  const manifests = [];
  for (const architecture of ['amd64', 'arm64']) {
    const layer = await buildLayer(baseStore, {
      entries: [
        {
          path: `etc/base-${architecture}`,
          type: 'file',
          mode: 0o644,
          content: new TextEncoder().encode(architecture),
        },
      ],
      createdBy: `base ${architecture}`,
    });
    manifests.push(
      await writeImage(baseStore, {
        platform: { os: 'linux', architecture },
        layers: [layer],
        config: { Env: ['PATH=/usr/bin:/bin', 'BASE=yes'], User: '0' },
        created: '1970-01-01T00:00:00Z',
      }),
    );
  }
  const baseIndex = await writeIndex(baseStore, manifests);
  const host = registry.url.replace('http://', '');
  const client = new RegistryClient();
  await client.push(baseStore, baseIndex, parseReference(`${host}/base/node:20`));
  await client.close();

  await mkdir(join(dir, 'model'));
  await writeFile(join(dir, 'model', 'model.onnx'), exampleModel(1));
  const store = join(dir, 'store');
  const tag = `${host}/models/example:1`;
  const res = await runCli([
    'image',
    'build',
    '--model',
    join(dir, 'model'),
    '--name',
    'example',
    '--version',
    '1',
    '--tag',
    tag,
    '--base',
    `${host}/base/node:20`,
    '--platform',
    'linux/amd64,linux/arm64',
    '--push',
    '--store',
    store,
  ]);
  assert.equal(res.code, 0, res.stderr);
  const rootDigest = res.stdout.trim();
  assert.match(
    res.stderr,
    /2 mounted/,
    'both base layers are mounted from the base repository, not uploaded',
  );

  const check = await ContentStore.open(join(dir, 'check'));
  const pullClient = new RegistryClient();
  const pulled = await pullClient.pull(parseReference(tag), check);
  await pullClient.close();
  assert.equal(pulled.root.digest, rootDigest);
  const index = await check.readJson<ImageIndex>(rootDigest as `sha256:${string}`);
  assert.deepEqual(
    index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`),
    ['linux/amd64', 'linux/arm64'],
  );
  const images = await Promise.all(
    index.manifests.map(async (m) => {
      const manifest = await check.readJson<ImageManifest>(m.digest);
      return { manifest, config: await check.readJson<ImageConfig>(manifest.config.digest) };
    }),
  );
  const [amd, arm] = images as [(typeof images)[number], (typeof images)[number]];
  assert.equal(amd.manifest.layers.length, 3, 'base + runtime + model');
  assert.equal(amd.config.architecture, 'amd64');
  assert.equal(arm.config.architecture, 'arm64');
  assert.notEqual(
    amd.manifest.layers[0]!.digest,
    arm.manifest.layers[0]!.digest,
    'each platform keeps its base layer',
  );
  assert.notEqual(
    amd.manifest.layers[1]!.digest,
    arm.manifest.layers[1]!.digest,
    'runtime differs per platform',
  );
  assert.equal(amd.manifest.layers[2]!.digest, arm.manifest.layers[2]!.digest, 'the model layer is shared');
  assert.ok(amd.config.config?.Env?.includes('BASE=yes'), 'base environment kept');
  assert.equal(amd.config.config?.User, '1001:0', 'runs as the non-root user');
  assert.equal(amd.config.config?.Labels?.['org.opencontainers.image.base.name'], `${host}/base/node:20`);
  const armRuntime = await layerPaths(check, arm.manifest.layers[1]!.digest);
  const amdRuntime = await layerPaths(check, amd.manifest.layers[1]!.digest);
  assert.ok(
    armRuntime.some((p) => p.includes('bin/napi-v6/linux/arm64/libonnxruntime')),
    'arm64 ONNX Runtime',
  );
  assert.ok(!armRuntime.some((p) => p.includes('linux/x64')), 'no x64 libraries in the arm64 image');
  assert.ok(
    amdRuntime.some((p) => p.includes('bin/napi-v6/linux/x64/libonnxruntime')),
    'x64 ONNX Runtime',
  );
  assert.ok(amdRuntime.includes('opt/aiedge/aiedge.js'));
});
