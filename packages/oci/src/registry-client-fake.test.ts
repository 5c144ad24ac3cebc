/**
 * The registry client against small fake registries (node:http on 127.0.0.1) that misbehave on
 * purpose: wrong blob bytes, connections cut mid-blob, servers with and without Range support,
 * redirects to storage, flaky 503s, registry error codes, and the upload protocol's Location rules.
 */
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ForbiddenError, InputError, NotFoundError, UnavailableError } from '@aiedge/protocol';
import { digestOf, hexOf } from './digest.js';
import { parseReference } from './reference.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { ContentStore, DigestMismatchError } from './store.js';
import type { Descriptor } from './types.js';
import { buildImage, randomBytes, tempDir } from './_registry-test-helpers.js';

interface Logged {
  readonly method: string;
  readonly url: URL;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

type Hook = (req: Logged, res: ServerResponse) => boolean | Promise<boolean>;

/** A tiny in-memory registry: manifests, blobs, uploads (monolithic, chunked, mount), plus hooks to misbehave. */
class FakeRegistry {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { type: string; bytes: Buffer }>();
  readonly uploads = new Map<string, Buffer[]>();
  readonly log: Logged[] = [];
  hook: Hook | undefined;
  /** When set, /v2/ requests need exactly this Authorization (answered with a Basic challenge). */
  authorization: string | undefined;
  #server: Server | undefined;
  port = 0;

  get registry(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise((resolve) => this.#server?.close(resolve));
  }

  /** Serves an image from a store under `repo:tag`. */
  async serve(store: ContentStore, repo: string, tag: string, root: Descriptor): Promise<void> {
    for (const d of await store.reachable([root.digest]))
      this.blobs.set(`${repo}@${d}`, await store.readBytes(d));
    const bytes = await store.readBytes(root.digest);
    this.manifests.set(`${repo}:${tag}`, { type: root.mediaType, bytes });
    this.manifests.set(`${repo}:${root.digest}`, { type: root.mediaType, bytes });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const entry: Logged = {
      method: req.method ?? '',
      url: new URL(req.url ?? '/', `http://${this.registry}`),
      headers: req.headers,
      body: Buffer.concat(chunks),
    };
    this.log.push(entry);
    if (this.authorization !== undefined && req.headers.authorization !== this.authorization) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="fake"', 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }));
      return;
    }
    if (this.hook !== undefined && (await this.hook(entry, res))) return;
    this.#default(entry, res);
  }

  #error(res: ServerResponse, status: number, code: string, message: string): void {
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ errors: [{ code, message }] }));
  }

  #default(req: Logged, res: ServerResponse): void {
    const path = req.url.pathname;
    if (path === '/v2/') return void res.writeHead(200).end('{}');
    let m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(path);
    if (m !== null) {
      const [, repo, target] = m as unknown as [string, string, string];
      if (req.method === 'PUT') {
        const type = String(req.headers['content-type']);
        this.manifests.set(`${repo}:${target}`, { type, bytes: req.body });
        this.manifests.set(`${repo}:${digestOf(req.body)}`, { type, bytes: req.body });
        return void res.writeHead(201, { 'docker-content-digest': digestOf(req.body) }).end();
      }
      const found = this.manifests.get(`${repo}:${target}`);
      if (found === undefined) return this.#error(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      res.writeHead(200, {
        'content-type': found.type,
        'content-length': found.bytes.length,
        'docker-content-digest': digestOf(found.bytes),
      });
      return void res.end(req.method === 'HEAD' ? undefined : found.bytes);
    }
    m = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec(path);
    if (m !== null) {
      const [, repo, digest] = m as unknown as [string, string, string];
      const blob = this.blobs.get(`${repo}@${digest}`);
      if (blob === undefined) return this.#error(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
      res.writeHead(200, { 'content-length': blob.length, 'docker-content-digest': digest });
      return void res.end(req.method === 'HEAD' ? undefined : blob);
    }
    m = /^\/v2\/(.+)\/blobs\/uploads\/$/.exec(path);
    if (m !== null && req.method === 'POST') {
      const repo = m[1]!;
      const mount = req.url.searchParams.get('mount');
      const from = req.url.searchParams.get('from');
      if (mount !== null && from !== null) {
        const blob = this.blobs.get(`${from}@${mount}`);
        if (blob !== undefined) {
          this.blobs.set(`${repo}@${mount}`, blob);
          return void res.writeHead(201, { location: `/v2/${repo}/blobs/${mount}` }).end();
        }
      }
      const id = randomUUID();
      this.uploads.set(id, []);
      // A relative Location with state in the query, as distribution sends.
      return void res
        .writeHead(202, { location: `/v2/${repo}/blobs/uploads/${id}?_state=s0`, range: '0-0' })
        .end();
    }
    m = /^\/v2\/(.+)\/blobs\/uploads\/([0-9a-f-]+)$/.exec(path);
    if (m !== null) {
      const [, repo, id] = m as unknown as [string, string, string];
      const parts = this.uploads.get(id);
      if (parts === undefined) return this.#error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'upload unknown');
      if (req.method === 'PATCH') {
        parts.push(req.body);
        const size = parts.reduce((n, p) => n + p.length, 0);
        // An absolute Location this time.
        return void res
          .writeHead(202, {
            location: `http://${this.registry}/v2/${repo}/blobs/uploads/${id}?_state=s${parts.length}`,
            range: `0-${size - 1}`,
          })
          .end();
      }
      if (req.method === 'PUT') {
        parts.push(req.body);
        const blob = Buffer.concat(parts);
        const digest = req.url.searchParams.get('digest');
        if (digest !== digestOf(blob))
          return this.#error(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
        this.blobs.set(`${repo}@${digest}`, blob);
        this.uploads.delete(id);
        return void res
          .writeHead(201, { location: `/v2/${repo}/blobs/${digest}`, 'docker-content-digest': digest })
          .end();
      }
    }
    this.#error(res, 404, 'NOT_FOUND', `no route for ${req.method} ${path}`);
  }
}

const fast: RegistryClientOptions = { env: {}, retryBaseDelayMs: 1, retryMaxDelayMs: 5 };

describe('registry client against fake registries', () => {
  let dir: string;
  let src: ContentStore;
  let image: Descriptor;
  let layer: Descriptor;
  let layerBytes: Buffer;
  let fake: FakeRegistry;
  let client: RegistryClient;
  let store: ContentStore;

  before(async () => {
    dir = await tempDir('registry-fake');
    src = await ContentStore.open(join(dir, 'src'));
    image = await buildImage(src, { files: { 'model.bin': randomBytes(200_000, 11) } });
    layer = (await src.readJson<{ layers: Descriptor[] }>(image.digest)).layers[0]!;
    layerBytes = await src.readBytes(layer.digest);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    fake = await new FakeRegistry().start();
    await fake.serve(src, 'm/app', '1', image);
    client = new RegistryClient(fast);
    store = await ContentStore.open(join(dir, `dst-${randomUUID()}`));
  });
  afterEach(async () => {
    await client.close();
    await fake.close();
  });

  const ref = (text = 'm/app:1') => parseReference(`${fake.registry}/${text}`);
  const isLayer = (req: Logged): boolean =>
    req.method === 'GET' && req.url.pathname.endsWith(`/blobs/${layer.digest}`);

  test('a blob with wrong bytes fails the pull with a digest error and nothing is kept', async () => {
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      const wrong = Buffer.from(layerBytes);
      wrong[1000] = (wrong[1000]! + 1) & 0xff;
      res.writeHead(200, { 'content-length': wrong.length }).end(wrong);
      return true;
    };
    await assert.rejects(client.pull(ref(), store), (error: unknown) => {
      assert.ok(error instanceof DigestMismatchError, String(error));
      assert.match(error.message, new RegExp(`GET blob m/app@${layer.digest}: content digest is sha256:`));
      return true;
    });
    assert.equal(await store.has(layer.digest), false);
    assert.equal(await store.has(image.digest), false, 'the manifest is stored only after its blobs');
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('a blob longer than its descriptor is cut off and rejected', async () => {
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      res.writeHead(200).end(Buffer.concat([layerBytes, Buffer.from('extra')]));
      return true;
    };
    await assert.rejects(client.pull(ref(), store), /longer than the \d+ bytes its descriptor announces/);
    assert.equal(await store.has(layer.digest), false);
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('a connection cut mid-blob resumes with Range from what was received', async () => {
    const ranges: Array<string | undefined> = [];
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      const range = req.headers.range;
      ranges.push(range);
      if (range === undefined) {
        res.writeHead(200, { 'content-length': layerBytes.length });
        res.write(layerBytes.subarray(0, 80_000), () => setTimeout(() => res.socket?.end(), 20));
        return true;
      }
      const start = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
      res.writeHead(206, {
        'content-range': `bytes ${start}-${layerBytes.length - 1}/${layerBytes.length}`,
        'content-length': layerBytes.length - start,
      });
      res.end(layerBytes.subarray(start));
      return true;
    };
    const pulled = await client.pull(ref(), store);
    assert.equal(pulled.root.digest, image.digest);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], undefined);
    const start = Number(/^bytes=(\d+)-$/.exec(ranges[1] ?? '')?.[1]);
    assert.ok(start > 0 && start <= 80_000, `resumed from ${ranges[1]}`);
    assert.ok((await store.readBytes(layer.digest)).equals(layerBytes));
    const config = (await src.readJson<{ config: Descriptor }>(image.digest)).config;
    assert.equal(pulled.downloadedBytes, image.size + config.size + layer.size, 'no byte downloaded twice');
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('a server that ignores Range: the download starts over and still verifies', async () => {
    let calls = 0;
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      calls++;
      res.writeHead(200, { 'content-length': layerBytes.length });
      if (calls === 1)
        res.write(layerBytes.subarray(0, 50_000), () => setTimeout(() => res.socket?.end(), 20));
      else res.end(layerBytes);
      return true;
    };
    await client.pull(ref(), store);
    assert.equal(calls, 2);
    assert.ok((await store.readBytes(layer.digest)).equals(layerBytes));
  });

  test('retries are bounded; the partial file stays and a later pull resumes from it', async () => {
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      if (start > 0) {
        res.writeHead(503).end();
        return true;
      }
      res.writeHead(200, { 'content-length': layerBytes.length });
      res.write(layerBytes.subarray(0, 30_000), () => setTimeout(() => res.socket?.end(), 20));
      return true;
    };
    const limited = new RegistryClient({ ...fast, maxRetries: 2 });
    try {
      await assert.rejects(limited.pull(ref(), store), UnavailableError);
    } finally {
      await limited.close();
    }
    const partial = join(store.ingestDir, `${hexOf(layer.digest)}.partial`);
    const kept = (await stat(partial)).size;
    assert.ok(kept > 0 && kept <= 30_000);

    // The default blob handler ignores Range, so serve ranges here.
    const ranges: string[] = [];
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      ranges.push(req.headers.range ?? 'none');
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(start > 0 ? 206 : 200, {
        ...(start > 0
          ? { 'content-range': `bytes ${start}-${layerBytes.length - 1}/${layerBytes.length}` }
          : {}),
        'content-length': layerBytes.length - start,
      });
      res.end(layerBytes.subarray(start));
      return true;
    };
    await client.pull(ref(), store);
    assert.deepEqual(ranges, [`bytes=${kept}-`]);
    assert.ok((await store.readBytes(layer.digest)).equals(layerBytes));
    assert.deepEqual(await readdir(store.ingestDir), []);
  });

  test('a corrupt partial left by an earlier run is detected and downloaded again', async () => {
    const partial = join(store.ingestDir, `${hexOf(layer.digest)}.partial`);
    await writeFile(partial, randomBytes(1000, 99));
    const ranges: string[] = [];
    fake.hook = (req, res) => {
      if (!isLayer(req)) return false;
      ranges.push(req.headers.range ?? 'none');
      const start = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(start > 0 ? 206 : 200, {
        ...(start > 0
          ? { 'content-range': `bytes ${start}-${layerBytes.length - 1}/${layerBytes.length}` }
          : {}),
      });
      res.end(layerBytes.subarray(start));
      return true;
    };
    await client.pull(ref(), store);
    assert.deepEqual(ranges, ['bytes=1000-', 'none']);
    assert.ok((await store.readBytes(layer.digest)).equals(layerBytes));
  });

  test('blob redirects: relative and cross-origin, without credentials to the other origin', async () => {
    const storageHeaders: IncomingHttpHeaders[] = [];
    const storage = createServer((req, res) => {
      storageHeaders.push(req.headers);
      res.writeHead(200, { 'content-length': layerBytes.length }).end(layerBytes);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    const storagePort = (storage.address() as AddressInfo).port;
    const authorization = `Basic ${Buffer.from('u:p').toString('base64')}`;
    fake.authorization = authorization;
    fake.hook = (req, res) => {
      if (isLayer(req)) {
        res.writeHead(307, { location: `/redirected/${hexOf(layer.digest)}` }).end();
        return true;
      }
      if (req.url.pathname.startsWith('/redirected/')) {
        res
          .writeHead(302, {
            location: `http://127.0.0.1:${storagePort}/bucket/${hexOf(layer.digest)}?sig=secret`,
          })
          .end();
        return true;
      }
      return false;
    };
    const authed = new RegistryClient({ ...fast, credentials: { username: 'u', password: 'p' } });
    try {
      await authed.pull(ref(), store);
    } finally {
      await authed.close();
      storage.closeAllConnections();
      await new Promise((resolve) => storage.close(resolve));
    }
    assert.ok((await store.readBytes(layer.digest)).equals(layerBytes));
    assert.equal(storageHeaders.length, 1);
    assert.equal(storageHeaders[0]?.authorization, undefined);
    assert.ok(
      fake.log.some(
        (r) => r.url.pathname.startsWith('/redirected/') && r.headers.authorization === authorization,
      ),
    );
  });

  test('manifest digests are checked against the reference and Docker-Content-Digest', async () => {
    const bytes = await src.readBytes(image.digest);
    fake.hook = (req, res) => {
      if (!req.url.pathname.includes('/manifests/')) return false;
      res.writeHead(200, {
        'content-type': image.mediaType,
        'docker-content-digest': digestOf('something else'),
      });
      res.end(bytes);
      return true;
    };
    await assert.rejects(client.getManifest(ref()), /Docker-Content-Digest says sha256:/);
    fake.hook = (req, res) => {
      if (!req.url.pathname.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': image.mediaType }).end(Buffer.concat([bytes, Buffer.from(' ')]));
      return true;
    };
    await assert.rejects(client.getManifest(ref(`m/app@${image.digest}`)), DigestMismatchError);
    // By tag without Docker-Content-Digest there is nothing to check against: accepted.
    const got = await client.getManifest(ref());
    assert.equal(got.descriptor.digest, digestOf(Buffer.concat([bytes, Buffer.from(' ')])));
  });

  test('503s are retried with backoff; errors map to ai-edge errors with the registry code', async () => {
    let failures = 2;
    fake.hook = (req, res) => {
      if (req.url.pathname.includes('/manifests/') && failures > 0) {
        failures--;
        res.writeHead(503, { 'retry-after': '0' }).end();
        return true;
      }
      return false;
    };
    assert.equal((await client.getManifest(ref())).descriptor.digest, image.digest);
    assert.equal(failures, 0);

    fake.hook = (req, res) => {
      if (req.url.pathname.includes('/manifests/')) {
        res.writeHead(503).end();
        return true;
      }
      return false;
    };
    const before = fake.log.length;
    await assert.rejects(client.getManifest(ref()), UnavailableError);
    assert.equal(fake.log.length - before, 5, 'one try and 4 retries');

    fake.hook = (req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }],
        }),
      );
      return req.method !== '';
    };
    await assert.rejects(client.getManifest(ref()), (error: unknown) => {
      assert.ok(error instanceof ForbiddenError);
      assert.match(error.message, /DENIED: requested access to the resource is denied/);
      return true;
    });
    fake.hook = undefined;
    fake.blobs.delete(`m/app@${layer.digest}`);
    await assert.rejects(client.pull(ref(), store), (error: unknown) => {
      assert.ok(error instanceof NotFoundError);
      assert.match(error.message, /BLOB_UNKNOWN/);
      return true;
    });
  });

  test('uploads follow relative and absolute Locations, keep their state and send Content-Range chunks', async () => {
    const chunked = new RegistryClient({ ...fast, chunkSize: 64 * 1024 });
    try {
      const pushed = await chunked.push(src, image, ref('up/app:7'));
      assert.equal(pushed.digest, image.digest);
    } finally {
      await chunked.close();
    }
    const layerUpload = fake.log.filter((r) => r.method === 'PATCH' && r.body.length > 1000);
    assert.deepEqual(
      layerUpload.map((r) => r.headers['content-range']),
      ['0-65535', '65536-131071', '131072-196607', `196608-${layer.size - 1}`],
    );
    assert.deepEqual(
      layerUpload.map((r) => r.url.searchParams.get('_state')),
      ['s0', 's1', 's2', 's3'],
      'each PATCH goes to the Location of the previous answer',
    );
    const put = fake.log.find((r) => r.method === 'PUT' && r.url.searchParams.get('digest') === layer.digest);
    assert.equal(put?.url.searchParams.get('_state'), 's4');
    assert.equal(put?.body.length, 0);
    assert.ok(fake.blobs.get(`up/app@${layer.digest}`)?.equals(layerBytes));
    const manifestPuts = fake.log.filter((r) => r.method === 'PUT' && r.url.pathname.includes('/manifests/'));
    assert.deepEqual(
      manifestPuts.map((r) => r.url.pathname),
      [`/v2/up/app/manifests/${image.digest}`, '/v2/up/app/manifests/7'],
    );
    assert.equal(manifestPuts[0]?.headers['content-type'], image.mediaType);

    // Monolithic: POST then one PUT with the whole body.
    fake.log.length = 0;
    const pushed = await client.push(src, image, ref('mono/app:1'));
    assert.equal(
      pushed.uploadedBytes,
      layer.size + (await src.readJson<{ config: Descriptor }>(image.digest)).config.size,
    );
    const bodies = fake.log.filter((r) => r.method === 'PUT' && r.url.searchParams.has('digest'));
    assert.ok(bodies.some((r) => r.body.equals(layerBytes)));
    assert.equal(fake.log.filter((r) => r.method === 'PATCH').length, 0);
  });

  test('a mount answered 202 continues with that upload session', async () => {
    fake.hook = (req, res) => {
      if (req.method === 'POST' && req.url.searchParams.has('mount')) {
        const id = randomUUID();
        fake.uploads.set(id, []);
        res.writeHead(202, { location: `/v2/dst/app/blobs/uploads/${id}?_state=mounted` }).end();
        return true;
      }
      return false;
    };
    const pushed = await client.push(src, image, ref('dst/app:1'), { mountFrom: 'm/app' });
    assert.equal(pushed.mountedBlobs, 0);
    assert.ok(pushed.uploadedBytes > 0);
    assert.equal(fake.log.filter((r) => r.method === 'POST').length, 2, 'no second POST after the 202');
    assert.ok(fake.log.some((r) => r.method === 'PUT' && r.url.searchParams.get('_state') === 'mounted'));
  });
});

describe('registry client options', () => {
  test('unknown keys and bad values are rejected naming the key; credentials are never echoed', () => {
    assert.throws(
      () => new RegistryClient({ chunksize: 5 } as unknown as RegistryClientOptions),
      /unknown registry client option "chunksize"/,
    );
    assert.throws(() => new RegistryClient({ chunkSize: 0 }), /chunkSize is 0, expected an integer from 1/);
    assert.throws(() => new RegistryClient({ concurrency: 1.5 }), /concurrency/);
    assert.throws(
      () =>
        new RegistryClient({
          credentials: { username: 'u', pasword: 'hunter2' } as unknown as {
            username: string;
            password: string;
          },
        }),
      (error: unknown) => error instanceof InputError && !error.message.includes('hunter2'),
    );
  });

  test('plain http to a registry off this machine needs insecure', async () => {
    const client = new RegistryClient({ env: {}, https: false });
    try {
      await assert.rejects(
        client.getManifest(parseReference('registry.example.invalid/a:1')),
        /needs the insecure option/,
      );
    } finally {
      await client.close();
    }
  });
});
