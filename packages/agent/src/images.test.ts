import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ContentStore,
  RegistryClient,
  buildLayer,
  hexOf,
  hostPlatform,
  parseReference,
  startRegistry,
  writeImage,
  type Descriptor,
  type Digest,
  type RunningRegistry,
} from '@aiedge/oci';
import { silentLogger } from '@aiedge/telemetry';
import { ImageCache } from './images.js';

async function buildImage(store: ContentStore, text: string): Promise<Descriptor> {
  const layer = await buildLayer(store, {
    entries: [
      { path: 'opt', type: 'dir', mode: 0o755 },
      { path: 'opt/hello.txt', type: 'file', mode: 0o644, content: new TextEncoder().encode(text) },
    ],
    createdBy: 'test',
  });
  return writeImage(store, {
    platform: hostPlatform(),
    layers: [layer],
    config: { Cmd: ['true'] },
    created: '1970-01-01T00:00:00Z',
  });
}

describe('ImageCache', () => {
  let dir: string;
  let registry: RunningRegistry;
  let host: string;
  const images: Array<{ ref: string; digest: Digest }> = [];
  const client = new RegistryClient();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-agent-images-'));
    registry = await startRegistry({ data: join(dir, 'registry'), host: '127.0.0.1', port: 0 });
    host = new URL(registry.url).host;
    const source = await ContentStore.open(join(dir, 'source'));
    for (const text of ['one', 'two', 'three', 'four']) {
      const root = await buildImage(source, text);
      await client.push(source, root, parseReference(`${host}/test/hello:${text}`));
      images.push({ ref: `${host}/test/hello@${root.digest}`, digest: root.digest });
    }
  });

  after(async () => {
    await client.close();
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('pulls once, unpacks with a marker, keeps the last K and garbage-collects the rest', async () => {
    const store = await ContentStore.open(join(dir, 'agent-store'));
    const cache = new ImageCache({
      store,
      dir: join(dir, 'agent', 'images'),
      registry: {},
      logger: silentLogger,
      keep: 2,
    });
    try {
      let pulls = 0;
      const first = images[0]!;
      const unpacked = await cache.ensure(first.ref, first.digest, { onPull: () => pulls++ });
      assert.equal(await readFile(join(unpacked.rootfs, 'opt', 'hello.txt'), 'utf8'), 'one');
      assert.ok((await stat(join(dir, 'agent', 'images', hexOf(unpacked.digest), 'complete.json'))).isFile());
      assert.equal(await store.getRef(`agent/images/${hexOf(unpacked.digest)}`), first.digest);
      await cache.ensure(first.ref, first.digest, { onPull: () => pulls++ });
      assert.equal(pulls, 1, 'an unpacked image is not pulled again');

      for (const image of images.slice(1)) {
        await cache.ensure(image.ref, image.digest);
        await new Promise((r) => setTimeout(r, 20)); // distinct marker mtimes
      }
      // The first image is in use: kept besides the most recent one.
      const { removed } = await cache.gc([first.digest]);
      const left = (await readdir(join(dir, 'agent', 'images'))).sort();
      assert.deepEqual(left, [hexOf(images[0]!.digest), hexOf(images[3]!.digest)].sort());
      assert.deepEqual(removed.sort(), [images[1]!.digest, images[2]!.digest].sort());
      assert.equal(await store.getRef(`agent/images/${hexOf(images[1]!.digest)}`), undefined);
    } finally {
      await cache.close();
    }
  });

  test('refuses a reference pinned to another digest', async () => {
    const store = await ContentStore.open(join(dir, 'agent-store-2'));
    const cache = new ImageCache({ store, dir: join(dir, 'agent2'), registry: {}, logger: silentLogger });
    try {
      await assert.rejects(cache.ensure(images[0]!.ref, images[1]!.digest), /pinned to/);
    } finally {
      await cache.close();
    }
  });
});
