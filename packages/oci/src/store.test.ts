import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestOf, type Digest } from './digest.js';
import { MediaTypes } from './media-types.js';
import { ContentStore, DigestMismatchError } from './store.js';

describe('content store', () => {
  let dir: string;
  let store: ContentStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-store-'));
    store = await ContentStore.open(join(dir, 'store'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('put, stat, read, ranges and usage', async () => {
    const blob = await store.put('hello world');
    assert.equal(blob.digest, digestOf('hello world'));
    assert.equal(blob.size, 11);
    assert.deepEqual(await store.stat(blob.digest), blob);
    assert.equal((await store.readBytes(blob.digest)).toString(), 'hello world');
    const chunks: Buffer[] = [];
    for await (const c of await store.read(blob.digest, { start: 6, end: 10 })) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'world');
    assert.equal(await store.stat(digestOf('absent')), undefined);
    await assert.rejects(store.readBytes(digestOf('absent')), /is not in the store/);
    const usage = await store.usage();
    assert.ok(usage.blobs >= 1 && usage.bytes >= 11);
  });

  test('a stream that does not match its digest or size is refused and nothing is kept', async () => {
    const before = await store.usage();
    const wrong = digestOf('expected content');
    await assert.rejects(
      store.putStream(Readable.from([Buffer.from('other content')]), { digest: wrong }),
      (e: unknown) => e instanceof DigestMismatchError && /expected sha256:/.test((e as Error).message),
    );
    await assert.rejects(
      store.putStream(Readable.from([Buffer.from('12345')]), { size: 3 }),
      /longer than the 3 bytes announced/,
    );
    await assert.rejects(store.put('abc', { size: 4 }), /is 3 bytes, expected 4/);
    assert.equal(await store.has(wrong), false);
    assert.deepEqual(await store.usage(), before);
    assert.deepEqual(await readdir(store.ingestDir), [], 'no temp files left');
  });

  test('concurrent writers of the same content end with one intact blob', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 7);
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        store.putStream(Readable.from([data.subarray(0, 1e6), data.subarray(1e6)])),
      ),
    );
    assert.ok(results.every((r) => r.digest === digestOf(data)));
    assert.ok((await store.readBytes(digestOf(data))).equals(data));
  });

  test('refs are set, read, listed and removed; bad keys are refused', async () => {
    const { digest } = await store.put('manifest');
    await store.setRef('repositories/a/b/tags/v1', digest);
    await store.setRef('repositories/a/b/tags/v2', digest);
    assert.equal(await store.getRef('repositories/a/b/tags/v1'), digest);
    assert.deepEqual(await store.listRefs('repositories/a/b/tags'), ['v1', 'v2']);
    assert.deepEqual(await store.listRefPrefixes('repositories/a'), ['b']);
    await store.deleteRef('repositories/a/b/tags/v1');
    assert.equal(await store.getRef('repositories/a/b/tags/v1'), undefined);
    for (const bad of ['../x', '/abs', 'a//b', 'a/../b', '']) {
      await assert.rejects(store.setRef(bad, digest), /is not a path of/);
    }
  });

  test('gc keeps what the roots reach (manifests, configs, layers) and young blobs, removes the rest', async () => {
    const gcStore = await ContentStore.open(join(dir, 'gc'));
    const layer = await gcStore.put('layer bytes');
    const config = await gcStore.put('{"config":1}');
    const manifest = await gcStore.put(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: { mediaType: MediaTypes.ociConfig, digest: config.digest, size: config.size },
        layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size }],
      }),
    );
    const index = await gcStore.put(
      JSON.stringify({ schemaVersion: 2, manifests: [{ digest: manifest.digest, size: manifest.size }] }),
    );
    const orphan = await gcStore.put('orphan');
    const young = await gcStore.put('young orphan');
    const old = new Date(Date.now() - 2 * 3_600_000);
    for (const d of [layer, config, manifest, index, orphan] as const)
      await utimes(gcStore.blobPath(d.digest), old, old);
    const result = await gcStore.gc({ roots: [index.digest] });
    assert.deepEqual(result.removed, [orphan.digest]);
    assert.equal(result.freedBytes, orphan.size);
    for (const d of [layer, config, manifest, index, young] as const)
      assert.ok(await gcStore.has(d.digest as Digest));
  });

  test('kill -9 in the middle of a write leaves no blob under its digest; the stale temp file is cleaned up', async () => {
    const killDir = join(dir, 'kill');
    await ContentStore.open(killDir);
    // A child process streams a large blob slowly; it is killed mid-write.
    const child = spawn(
      process.execPath,
      [
        '--conditions=@aiedge/source',
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `import { ContentStore } from '@aiedge/oci';
         const store = await ContentStore.open(${JSON.stringify(killDir)});
         const w = store.writer();
         const chunk = Buffer.alloc(1 << 20, 1);
         for (let i = 0; ; i++) { await w.write(chunk); if (i === 3) process.stdout.write('writing\\n'); await new Promise((r) => setTimeout(r, 5)); }`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], cwd: new URL('../../..', import.meta.url).pathname },
    );
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const ingest = join(killDir, 'ingest');
    assert.ok(
      (await readdir(ingest)).some((n) => n.endsWith('.tmp')),
      'a temp file exists while writing',
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const reopened = await ContentStore.open(killDir);
    assert.deepEqual(await reopened.usage(), { blobs: 0, bytes: 0 }, 'no partial blob was stored');
    // Another process may share the store, so a fresh temp file stays; a stale one is removed.
    const temps = (await readdir(ingest)).filter((n) => n.endsWith('.tmp'));
    assert.equal(temps.length, 1, 'the fresh temp file of a possibly live writer is kept');
    const old = new Date(Date.now() - 16 * 60_000);
    await utimes(join(ingest, temps[0]!), old, old);
    await ContentStore.open(killDir);
    assert.deepEqual(await readdir(ingest), [], 'a stale temp file is removed at open');
  });
});
