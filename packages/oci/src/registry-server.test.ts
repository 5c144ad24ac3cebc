import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import Fastify from 'fastify';
import { create as createTar } from 'tar';
import { ForbiddenError, UnauthorizedError } from '@aiedge/protocol';
import type { Digest } from './digest.js';
import { MediaTypes } from './media-types.js';
import {
  registryGc,
  registryRoutes,
  startRegistry,
  type RegistryAccessRequest,
  type RegistryAuthorizer,
  type RunningRegistry,
} from './registry-server.js';
import { ContentStore } from './store.js';

const execFileAsync = promisify(execFile);

function sha(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

const temps: string[] = [];
async function tempDir(prefix = 'aiedge-registry-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

interface TestRegistry extends RunningRegistry {
  readonly data: string;
  readonly calls: RegistryAccessRequest[];
}

async function startTestRegistry(
  options: { data?: string; authorize?: RegistryAuthorizer; wwwAuthenticate?: string } = {},
): Promise<TestRegistry> {
  const data = options.data ?? (await tempDir());
  const calls: RegistryAccessRequest[] = [];
  const registry = await startRegistry({
    data,
    host: '127.0.0.1',
    port: 0,
    authorize: async (req) => {
      calls.push(req);
      await options.authorize?.(req);
    },
    ...(options.wwwAuthenticate !== undefined ? { wwwAuthenticate: options.wwwAuthenticate } : {}),
  });
  return { ...registry, data, calls };
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A request with exact control over headers and body (no Content-Type added). */
function raw(
  url: string,
  method: string,
  options: { headers?: Record<string, string>; body?: Uint8Array | string } = {},
): Promise<RawResponse> {
  // host/port/path given apart: a URL string would be normalized (`/a/../b` → `/b`).
  const parsed = /^http:\/\/([^:/]+):(\d+)(\/.*)$/.exec(url);
  assert.ok(parsed !== null, url);
  const target = { host: parsed[1]!, port: Number(parsed[2]), path: parsed[3]! };
  return new Promise((resolve, reject) => {
    const req = httpRequest({ ...target, method, headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

async function errorCode(response: Response): Promise<string> {
  const body = (await response.json()) as { errors: Array<{ code: string; message: string }> };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'spec error body');
  assert.equal(typeof body.errors[0]!.message, 'string');
  return body.errors[0]!.code;
}

async function pushBlob(url: string, repo: string, data: Uint8Array | string): Promise<Digest> {
  const digest = sha(data);
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
  });
  assert.equal(res.status, 201, await res.text());
  return digest;
}

function imageManifest(config: Digest, configSize: number, layers: Array<[Digest, number]>, extra = {}) {
  return {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: config, size: configSize },
    layers: layers.map(([digest, size]) => ({ mediaType: MediaTypes.ociLayerGzip, digest, size })),
    ...extra,
  };
}

async function pushManifest(
  url: string,
  repo: string,
  reference: string,
  manifest: unknown,
  contentType: string = MediaTypes.ociManifest,
): Promise<{ response: Response; digest: Digest; bytes: string }> {
  const bytes = JSON.stringify(manifest);
  const response = await fetch(`${url}/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': contentType },
    body: bytes,
  });
  return { response, digest: sha(bytes), bytes };
}

/** Pushes a small image (config + one layer) and tags it; returns its manifest digest. */
async function pushImage(url: string, repo: string, tag: string, seed = tag): Promise<Digest> {
  const layer = Buffer.from(`layer of ${repo}:${seed}`);
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    seed,
    rootfs: { type: 'layers', diff_ids: [] },
  });
  const layerDigest = await pushBlob(url, repo, layer);
  const configDigest = await pushBlob(url, repo, config);
  const { response, digest } = await pushManifest(
    url,
    repo,
    tag,
    imageManifest(configDigest, Buffer.byteLength(config), [[layerDigest, layer.length]]),
  );
  assert.equal(response.status, 201, await response.text());
  return digest;
}

describe('registry protocol', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startTestRegistry();
  });
  after(async () => {
    await reg.close();
  });

  test('GET /v2/ answers {} with the API version header', async () => {
    for (const path of ['/v2/', '/v2']) {
      const res = await fetch(`${reg.url}${path}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.deepEqual(await res.json(), {});
    }
    const head = await fetch(`${reg.url}/v2/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });

  test('monolithic upload, HEAD and GET of a blob', async () => {
    const data = randomBytes(1000);
    const digest = sha(data);
    const res = await fetch(`${reg.url}/v2/mono/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('location'), `/v2/mono/blobs/${digest}`);
    assert.equal(res.headers.get('docker-content-digest'), digest);
    const head = await fetch(`${reg.url}/v2/mono/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '1000');
    assert.equal(head.headers.get('docker-content-digest'), digest);
    const get = await fetch(`${reg.url}/v2/mono/blobs/${digest}`);
    assert.equal(get.status, 200);
    assert.deepEqual(Buffer.from(await get.arrayBuffer()), data);
    // A monolithic upload whose body does not match its digest stores nothing.
    const wrong = await fetch(`${reg.url}/v2/mono/blobs/uploads/?digest=${sha('other')}`, {
      method: 'POST',
      body: 'not other',
    });
    assert.equal(wrong.status, 400);
    assert.equal(await errorCode(wrong), 'DIGEST_INVALID');
    assert.equal((await fetch(`${reg.url}/v2/mono/blobs/${sha('other')}`, { method: 'HEAD' })).status, 404);
  });

  test('chunked upload in three PATCHes (2.5 MiB, beyond any body limit) with status and out-of-order 416', async () => {
    const data = randomBytes(2.5 * 1024 * 1024);
    const digest = sha(data);
    const start = await fetch(`${reg.url}/v2/chunked/blobs/uploads/`, { method: 'POST' });
    assert.equal(start.status, 202);
    const uuid = start.headers.get('docker-upload-uuid');
    assert.match(uuid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(start.headers.get('range'), '0-0');
    let location = start.headers.get('location')!;
    assert.equal(location, `/v2/chunked/blobs/uploads/${uuid}`);
    const cuts = [0, 1_000_000, 2_000_000, data.length];
    for (let i = 0; i < 3; i++) {
      const chunk = data.subarray(cuts[i]!, cuts[i + 1]!);
      const patch = await fetch(`${reg.url}${location}`, {
        method: 'PATCH',
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${cuts[i]}-${cuts[i + 1]! - 1}`,
        },
        body: chunk,
      });
      assert.equal(patch.status, 202, await patch.text());
      assert.equal(patch.headers.get('range'), `0-${cuts[i + 1]! - 1}`);
      location = patch.headers.get('location')!;
      if (i === 1) {
        // A chunk that does not start where the upload ends is refused and changes nothing.
        const bad = await fetch(`${reg.url}${location}`, {
          method: 'PATCH',
          headers: { 'content-range': '5-9' },
          body: 'abcde',
        });
        assert.equal(bad.status, 416);
        assert.equal(bad.headers.get('range'), `0-${cuts[2]! - 1}`);
        assert.equal(bad.headers.get('location'), location);
        assert.equal(await errorCode(bad), 'RANGE_INVALID');
        const garbage = await fetch(`${reg.url}${location}`, {
          method: 'PATCH',
          headers: { 'content-range': 'bytes=lots' },
          body: 'abcde',
        });
        assert.equal(garbage.status, 416);
        const status = await fetch(`${reg.url}${location}`);
        assert.equal(status.status, 204);
        assert.equal(status.headers.get('range'), `0-${cuts[2]! - 1}`);
      }
    }
    const put = await fetch(`${reg.url}${location}?digest=${digest}`, { method: 'PUT' });
    assert.equal(put.status, 201, await put.text());
    assert.equal(put.headers.get('docker-content-digest'), digest);
    assert.equal(put.headers.get('location'), `/v2/chunked/blobs/${digest}`);
    const get = await fetch(`${reg.url}/v2/chunked/blobs/${digest}`);
    assert.equal(sha(Buffer.from(await get.arrayBuffer())), digest);
    // The finished session is gone.
    const gone = await fetch(`${reg.url}${location}`);
    assert.equal(gone.status, 404);
    assert.equal(await errorCode(gone), 'BLOB_UPLOAD_UNKNOWN');
  });

  test('streamed PATCH without Content-Range and a final chunk on PUT', async () => {
    const data = Buffer.from('hello, streamed world! and the rest');
    const start = await fetch(`${reg.url}/v2/streamed/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(data.subarray(0, 10));
        controller.enqueue(data.subarray(10, 20));
        controller.close();
      },
    });
    const patch = await fetch(`${reg.url}${location}`, {
      method: 'PATCH',
      body,
      duplex: 'half',
    } as RequestInit & { duplex: 'half' });
    assert.equal(patch.status, 202);
    assert.equal(patch.headers.get('range'), '0-19');
    const put = await fetch(`${reg.url}${location}?digest=${sha(data)}`, {
      method: 'PUT',
      headers: { 'content-range': `20-${data.length - 1}`, 'content-type': 'application/octet-stream' },
      body: data.subarray(20),
    });
    assert.equal(put.status, 201, await put.text());
  });

  test('a digest mismatch on PUT is 400 DIGEST_INVALID and stores nothing', async () => {
    const start = await fetch(`${reg.url}/v2/mismatch/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    await fetch(`${reg.url}${location}`, { method: 'PATCH', body: 'actual content' });
    const claimed = sha('claimed content');
    const put = await fetch(`${reg.url}${location}?digest=${claimed}`, { method: 'PUT' });
    assert.equal(put.status, 400);
    assert.equal(await errorCode(put), 'DIGEST_INVALID');
    const store = await ContentStore.open(reg.data);
    assert.equal(await store.has(claimed), false);
    assert.equal(await store.has(sha('actual content')), false);
    assert.equal((await fetch(`${reg.url}${location}`)).status, 404);
    assert.equal((await fetch(`${reg.url}/v2/mismatch/blobs/${sha('actual content')}`)).status, 404);
  });

  test('PUT without ?digest, DELETE of an upload, unknown and foreign uploads', async () => {
    const start = await fetch(`${reg.url}/v2/cancel/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    const noDigest = await fetch(`${reg.url}${location}`, { method: 'PUT' });
    assert.equal(noDigest.status, 400);
    assert.equal(await errorCode(noDigest), 'DIGEST_INVALID');
    // Another repository cannot use this session.
    const foreign = await fetch(`${reg.url}${location.replace('/cancel/', '/other/')}`);
    assert.equal(foreign.status, 404);
    assert.equal(await errorCode(foreign), 'BLOB_UPLOAD_UNKNOWN');
    const del = await fetch(`${reg.url}${location}`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    assert.equal((await fetch(`${reg.url}${location}`)).status, 404);
    for (const id of ['00000000-0000-0000-0000-000000000000', '..', '%2E%2E', 'not-a-uuid']) {
      // node:http sends the path as is (fetch would normalize `..` away).
      const res = await raw(`${reg.url}/v2/cancel/blobs/uploads/${id}`, 'PATCH', { body: 'x' });
      assert.equal(res.status, 404, id);
      assert.equal(JSON.parse(res.body.toString()).errors[0].code, 'BLOB_UPLOAD_UNKNOWN', id);
    }
  });

  test('Range reads: 206 with Content-Range, 416 when unsatisfiable or malformed', async () => {
    const data = Buffer.from('0123456789');
    const digest = await pushBlob(reg.url, 'ranges', data);
    const get = (range: string) => fetch(`${reg.url}/v2/ranges/blobs/${digest}`, { headers: { range } });
    const cases: Array<[string, string, string]> = [
      ['bytes=2-5', '2345', 'bytes 2-5/10'],
      ['bytes=7-', '789', 'bytes 7-9/10'],
      ['bytes=-3', '789', 'bytes 7-9/10'],
      ['bytes=8-100', '89', 'bytes 8-9/10'],
    ];
    for (const [range, body, contentRange] of cases) {
      const res = await get(range);
      assert.equal(res.status, 206, range);
      assert.equal(res.headers.get('content-range'), contentRange);
      assert.equal(await res.text(), body);
    }
    for (const range of ['bytes=10-20', 'bytes=5-2', 'bytes=abc', 'bytes=-0']) {
      const res = await get(range);
      assert.equal(res.status, 416, range);
      assert.equal(res.headers.get('content-range'), 'bytes */10');
      assert.equal(await errorCode(res), 'RANGE_INVALID');
    }
    const whole = await get('items=1-2');
    assert.equal(whole.status, 200);
    assert.equal(await whole.text(), '0123456789');
  });

  test('DELETE of a blob unlinks it from the repository', async () => {
    const digest = await pushBlob(reg.url, 'delblob', 'to be deleted');
    const del = await fetch(`${reg.url}/v2/delblob/blobs/${digest}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    const get = await fetch(`${reg.url}/v2/delblob/blobs/${digest}`);
    assert.equal(get.status, 404);
    assert.equal(await errorCode(get), 'BLOB_UNKNOWN');
    const again = await fetch(`${reg.url}/v2/delblob/blobs/${digest}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
  });

  test('repository A cannot read repository B’s blobs or manifests by digest', async () => {
    const digest = await pushBlob(reg.url, 'team-a/private', 'secret layer');
    const manifest = await pushImage(reg.url, 'team-a/private', 'v1');
    const blob = await fetch(`${reg.url}/v2/team-b/app/blobs/${digest}`);
    assert.equal(blob.status, 404);
    assert.equal(await errorCode(blob), 'BLOB_UNKNOWN');
    const head = await fetch(`${reg.url}/v2/team-b/app/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    const byDigest = await fetch(`${reg.url}/v2/team-b/app/manifests/${manifest}`);
    assert.equal(byDigest.status, 404);
    assert.equal(await errorCode(byDigest), 'MANIFEST_UNKNOWN');
    // Nor can B reference A's blobs from a manifest of its own.
    const config = 'x';
    const configDigest = await pushBlob(reg.url, 'team-b/app', config);
    const { response } = await pushManifest(
      reg.url,
      'team-b/app',
      'steal',
      imageManifest(configDigest, 1, [[digest, 12]]),
    );
    assert.equal(response.status, 400);
    assert.equal(await errorCode(response), 'MANIFEST_BLOB_UNKNOWN');
  });

  test('manifests: PUT by tag and digest, GET, HEAD, index, DELETE by tag and by digest', async () => {
    const digest = await pushImage(reg.url, 'library/app', '1.0');
    const byTag = await fetch(`${reg.url}/v2/library/app/manifests/1.0`, {
      headers: { accept: MediaTypes.ociManifest },
    });
    assert.equal(byTag.status, 200);
    assert.equal(byTag.headers.get('content-type'), MediaTypes.ociManifest);
    assert.equal(byTag.headers.get('docker-content-digest'), digest);
    const bytes = Buffer.from(await byTag.arrayBuffer());
    assert.equal(sha(bytes), digest, 'manifest bytes are served unchanged');
    const byDigest = await fetch(`${reg.url}/v2/library/app/manifests/${digest}`);
    assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), bytes);
    const head = await fetch(`${reg.url}/v2/library/app/manifests/1.0`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(bytes.length));
    assert.equal(head.headers.get('docker-content-digest'), digest);

    // PUT by digest (same bytes) and a digest that does not match the body.
    const exact = await fetch(`${reg.url}/v2/library/app/manifests/${digest}`, {
      method: 'PUT',
      headers: { 'content-type': MediaTypes.ociManifest },
      body: bytes,
    });
    assert.equal(exact.status, 201);
    assert.equal(exact.headers.get('location'), `/v2/library/app/manifests/${digest}`);
    const wrong = await fetch(`${reg.url}/v2/library/app/manifests/${sha('nope')}`, {
      method: 'PUT',
      headers: { 'content-type': MediaTypes.ociManifest },
      body: bytes,
    });
    assert.equal(wrong.status, 400);
    assert.equal(await errorCode(wrong), 'DIGEST_INVALID');

    // An index over the image; and one over an unknown manifest.
    const index = {
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: MediaTypes.ociManifest,
          digest,
          size: bytes.length,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    };
    const pushedIndex = await pushManifest(reg.url, 'library/app', 'multi', index, MediaTypes.ociIndex);
    assert.equal(pushedIndex.response.status, 201);
    const getIndex = await fetch(`${reg.url}/v2/library/app/manifests/multi`);
    assert.equal(getIndex.headers.get('content-type'), MediaTypes.ociIndex);
    const badIndex = await pushManifest(
      reg.url,
      'library/app',
      'broken',
      { ...index, manifests: [{ ...index.manifests[0]!, digest: sha('missing') }] },
      MediaTypes.ociIndex,
    );
    assert.equal(badIndex.response.status, 400);
    assert.equal(await errorCode(badIndex.response), 'MANIFEST_BLOB_UNKNOWN');

    // A Docker schema 2 manifest keeps its media type.
    const docker = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: {
        mediaType: MediaTypes.dockerConfig,
        digest: JSON.parse(bytes.toString()).config.digest,
        size: JSON.parse(bytes.toString()).config.size,
      },
      layers: [],
    };
    const pushedDocker = await pushManifest(
      reg.url,
      'library/app',
      'docker',
      docker,
      MediaTypes.dockerManifest,
    );
    assert.equal(pushedDocker.response.status, 201, await pushedDocker.response.text());
    const getDocker = await fetch(`${reg.url}/v2/library/app/manifests/docker`, { method: 'HEAD' });
    assert.equal(getDocker.headers.get('content-type'), MediaTypes.dockerManifest);

    // DELETE by tag removes only the tag.
    assert.equal(
      (await fetch(`${reg.url}/v2/library/app/manifests/multi`, { method: 'DELETE' })).status,
      202,
    );
    assert.equal((await fetch(`${reg.url}/v2/library/app/manifests/multi`)).status, 404);
    assert.equal((await fetch(`${reg.url}/v2/library/app/manifests/${pushedIndex.digest}`)).status, 200);
    // DELETE by digest removes the revision and every tag on it.
    assert.equal(
      (await fetch(`${reg.url}/v2/library/app/manifests/${digest}`, { method: 'DELETE' })).status,
      202,
    );
    const gone = await fetch(`${reg.url}/v2/library/app/manifests/1.0`);
    assert.equal(gone.status, 404);
    assert.equal(await errorCode(gone), 'MANIFEST_UNKNOWN');
    assert.equal((await fetch(`${reg.url}/v2/library/app/manifests/${digest}`)).status, 404);
    assert.equal(
      (await fetch(`${reg.url}/v2/library/app/manifests/${digest}`, { method: 'DELETE' })).status,
      404,
    );
  });

  test('manifest PUT validation: JSON, media type, schema, missing blobs', async () => {
    const layer = await pushBlob(reg.url, 'validate', 'L');
    const config = await pushBlob(reg.url, 'validate', 'C');
    const good = imageManifest(config, 1, [[layer, 1]]);
    const put = (body: string, contentType: string = MediaTypes.ociManifest) =>
      fetch(`${reg.url}/v2/validate/manifests/t`, {
        method: 'PUT',
        headers: { 'content-type': contentType },
        body,
      });
    const cases: Array<[string, string, string | undefined]> = [
      ['{not json', 'MANIFEST_INVALID', undefined],
      ['[1,2]', 'MANIFEST_INVALID', undefined],
      [JSON.stringify({ ...good, schemaVersion: 1 }), 'MANIFEST_INVALID', undefined],
      [
        JSON.stringify({ ...good, mediaType: 'application/x-unknown' }),
        'MANIFEST_INVALID',
        'application/json',
      ],
      [JSON.stringify(good), 'MANIFEST_INVALID', MediaTypes.ociIndex],
      [JSON.stringify({ ...good, layers: 'many' }), 'MANIFEST_INVALID', undefined],
      [
        JSON.stringify({ ...good, config: { ...good.config, digest: 'sha256:short' } }),
        'MANIFEST_INVALID',
        undefined,
      ],
      [JSON.stringify(imageManifest(config, 1, [[sha('absent'), 6]])), 'MANIFEST_BLOB_UNKNOWN', undefined],
      [JSON.stringify(imageManifest(sha('absent'), 6, [[layer, 1]])), 'MANIFEST_BLOB_UNKNOWN', undefined],
    ];
    for (const [body, code, contentType] of cases) {
      const res = await put(body, contentType);
      assert.equal(res.status, 400, body);
      assert.equal(await errorCode(res), code, body);
    }
    // Without a usable Content-Type the body's mediaType decides.
    const ok = await put(JSON.stringify(good), 'application/octet-stream');
    assert.equal(ok.status, 201);
    const bad = await fetch(`${reg.url}/v2/validate/manifests/-bad`, { method: 'PUT', body: '{}' });
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'TAG_INVALID');
  });

  test('tags list with n/last pagination and Link', async () => {
    const tags = ['b', 'a', '_under', 'C', '1.0', 'z-last'];
    const digest = await pushImage(reg.url, 'paged', 'first');
    const bytes = await (await fetch(`${reg.url}/v2/paged/manifests/first`)).arrayBuffer();
    for (const tag of tags) {
      const res = await fetch(`${reg.url}/v2/paged/manifests/${tag}`, {
        method: 'PUT',
        headers: { 'content-type': MediaTypes.ociManifest },
        body: bytes,
      });
      assert.equal(res.status, 201, tag);
      assert.equal(res.headers.get('docker-content-digest'), digest);
    }
    const expected = ['1.0', 'C', '_under', 'a', 'b', 'first', 'z-last'];
    const all = await fetch(`${reg.url}/v2/paged/tags/list`);
    assert.deepEqual(await all.json(), { name: 'paged', tags: expected });
    assert.equal(all.headers.get('link'), null);
    const seen: string[] = [];
    let next: string | undefined = '/v2/paged/tags/list?n=3';
    let pages = 0;
    while (next !== undefined) {
      const res: Response = await fetch(`${reg.url}${next}`);
      const body = (await res.json()) as { tags: string[] };
      assert.ok(body.tags.length <= 3);
      seen.push(...body.tags);
      const link = res.headers.get('link');
      next = link === null ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)![1];
      pages++;
    }
    assert.deepEqual(seen, expected);
    assert.equal(pages, 3);
    const afterLast = await fetch(`${reg.url}/v2/paged/tags/list?last=b`);
    assert.deepEqual(((await afterLast.json()) as { tags: string[] }).tags, ['first', 'z-last']);
    const zero = await fetch(`${reg.url}/v2/paged/tags/list?n=0`);
    assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, []);
    const badN = await fetch(`${reg.url}/v2/paged/tags/list?n=-1`);
    assert.equal(badN.status, 400);
    assert.equal((await fetch(`${reg.url}/v2/paged/manifests/_under`)).status, 200);
    const unknown = await fetch(`${reg.url}/v2/never/pushed/tags/list`);
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), 'NAME_UNKNOWN');
  });

  test('referrers: subject links, artifactType filter, OCI-Subject', async () => {
    const subject = await pushImage(reg.url, 'refs/app', 'v1');
    const subjectSize = Number(
      (await fetch(`${reg.url}/v2/refs/app/manifests/v1`, { method: 'HEAD' })).headers.get('content-length'),
    );
    const empty = '{}';
    const emptyDigest = await pushBlob(reg.url, 'refs/app', empty);
    const artifacts: Digest[] = [];
    for (const [artifactType, note] of [
      ['application/vnd.example.sbom', 'sbom'],
      ['application/vnd.example.signature', 'sig'],
    ] as const) {
      const manifest = {
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType,
        config: { mediaType: MediaTypes.ociEmpty, digest: emptyDigest, size: 2 },
        layers: [],
        subject: { mediaType: MediaTypes.ociManifest, digest: subject, size: subjectSize },
        annotations: { note },
      };
      const pushed = await pushManifest(reg.url, 'refs/app', sha(JSON.stringify(manifest)), manifest);
      assert.equal(pushed.response.status, 201, await pushed.response.text());
      assert.equal(pushed.response.headers.get('oci-subject'), subject);
      artifacts.push(pushed.digest);
    }
    const res = await fetch(`${reg.url}/v2/refs/app/referrers/${subject}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), MediaTypes.ociIndex);
    const index = (await res.json()) as {
      schemaVersion: number;
      mediaType: string;
      manifests: Array<{ digest: string; artifactType: string; annotations: Record<string, string> }>;
    };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, MediaTypes.ociIndex);
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [...artifacts].sort());
    const filtered = await fetch(
      `${reg.url}/v2/refs/app/referrers/${subject}?artifactType=${encodeURIComponent('application/vnd.example.sbom')}`,
    );
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    const only = (await filtered.json()) as typeof index;
    assert.equal(only.manifests.length, 1);
    assert.equal(only.manifests[0]!.artifactType, 'application/vnd.example.sbom');
    assert.deepEqual(only.manifests[0]!.annotations, { note: 'sbom' });
    // Another repository sees none of them; an unknown subject is an empty index.
    const elsewhere = await fetch(`${reg.url}/v2/refs/other/referrers/${subject}`);
    assert.deepEqual(((await elsewhere.json()) as typeof index).manifests, []);
    const none = await fetch(`${reg.url}/v2/refs/app/referrers/${sha('nothing')}`);
    assert.equal(none.status, 200);
    assert.deepEqual(((await none.json()) as typeof index).manifests, []);
    const bad = await fetch(`${reg.url}/v2/refs/app/referrers/sha256:zz`);
    assert.equal(bad.status, 400);
    assert.equal(await errorCode(bad), 'DIGEST_INVALID');
    // Deleting a referrer removes it from the list.
    await fetch(`${reg.url}/v2/refs/app/manifests/${artifacts[0]}`, { method: 'DELETE' });
    const afterDelete = (await (
      await fetch(`${reg.url}/v2/refs/app/referrers/${subject}`)
    ).json()) as typeof index;
    assert.deepEqual(
      afterDelete.manifests.map((m) => m.digest),
      [artifacts[1]],
    );
  });

  test('catalog with n/last pagination; nested names never collide with reserved keys', async () => {
    const own = await startTestRegistry();
    try {
      // `x/tags`, `x/blobs` and `x` coexist: the repository's own keys live under reserved segments.
      await pushImage(own.url, 'x', 'tags');
      await pushImage(own.url, 'x/tags', 'blobs');
      await pushImage(own.url, 'x/blobs', 'revisions');
      await pushBlob(own.url, 'a-b', 'blob');
      await pushBlob(own.url, 'a/b', 'blob');
      const expected = ['a-b', 'a/b', 'x', 'x/blobs', 'x/tags'];
      const all = await fetch(`${own.url}/v2/_catalog`);
      assert.deepEqual(await all.json(), { repositories: expected });
      const first = await fetch(`${own.url}/v2/_catalog?n=2`);
      assert.deepEqual(((await first.json()) as { repositories: string[] }).repositories, ['a-b', 'a/b']);
      assert.equal(first.headers.get('link'), '</v2/_catalog?n=2&last=a%2Fb>; rel="next"');
      const second = await fetch(`${own.url}/v2/_catalog?n=2&last=a%2Fb`);
      assert.deepEqual(((await second.json()) as { repositories: string[] }).repositories, ['x', 'x/blobs']);
      for (const [repo, tags] of [
        ['x', ['tags']],
        ['x/tags', ['blobs']],
        ['x/blobs', ['revisions']],
      ] as const) {
        const res = await fetch(`${own.url}/v2/${repo}/tags/list`);
        assert.deepEqual(await res.json(), { name: repo, tags: [...tags] });
      }
    } finally {
      await own.close();
    }
  });

  test('malformed names, digests, methods and URLs get spec errors; the server stays up', async () => {
    const cases: Array<[string, string, number, string]> = [
      ['GET', '/v2/UPPER/blobs/' + sha('x'), 400, 'NAME_INVALID'],
      ['GET', '/v2/a..b/tags/list', 400, 'NAME_INVALID'],
      ['GET', '/v2/-lead/manifests/latest', 400, 'NAME_INVALID'],
      ['POST', `/v2/${'a'.repeat(300)}/blobs/uploads/`, 400, 'NAME_INVALID'],
      ['GET', '/v2/ok/blobs/sha256:1234', 400, 'DIGEST_INVALID'],
      ['GET', '/v2/ok/blobs/md5:d41d8cd98f00b204e9800998ecf8427e', 400, 'DIGEST_INVALID'],
      ['GET', `/v2/ok/blobs/SHA256:${'A'.repeat(64)}`, 400, 'DIGEST_INVALID'],
      ['GET', '/v2/ok/manifests/-tag', 400, 'TAG_INVALID'],
      ['GET', `/v2/ok/manifests/${'t'.repeat(129)}`, 400, 'TAG_INVALID'],
      ['POST', '/v2/ok/blobs/uploads/?digest=sha256:bad', 400, 'DIGEST_INVALID'],
      ['POST', `/v2/ok/blobs/uploads/?mount=nope&from=x`, 400, 'DIGEST_INVALID'],
      ['PATCH', '/v2/ok/manifests/latest', 405, 'UNSUPPORTED'],
      ['POST', '/v2/ok/tags/list', 405, 'UNSUPPORTED'],
      ['GET', '/v2/ok/something/else', 404, 'UNSUPPORTED'],
      ['GET', '/v2/ok/blobs/' + sha('never'), 404, 'BLOB_UNKNOWN'],
      ['GET', '/v2/ok/manifests/latest', 404, 'MANIFEST_UNKNOWN'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await fetch(`${reg.url}${path}`, { method });
      assert.equal(res.status, status, `${method} ${path}`);
      assert.equal(await errorCode(res), code, `${method} ${path}`);
    }
    const badEncoding = await raw(`${reg.url}/v2/ok/blobs/%E0%A4%A`, 'GET');
    assert.equal(badEncoding.status, 400);
    assert.ok(JSON.parse(badEncoding.body.toString()).errors[0].code);
    const weird = await raw(`${reg.url}/v2/ok/manifests/latest`, 'PUT', {
      headers: { 'content-type': 'application/json; charset=' },
      body: '{',
    });
    assert.ok(weird.status >= 400 && weird.status < 500, String(weird.status));

    // A client that vanishes in the middle of a chunk leaves the upload where it was.
    const start = await fetch(`${reg.url}/v2/aborted/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    await fetch(`${reg.url}${location}`, { method: 'PATCH', body: 'first' });
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${reg.url}${location}`, {
        method: 'PATCH',
        headers: { 'content-length': '1000000' },
      });
      req.on('error', () => resolve());
      req.write(Buffer.alloc(5000, 1));
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 200);
    });
    await new Promise((r) => setTimeout(r, 200));
    const status = await fetch(`${reg.url}${location}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-4');
    const put = await fetch(`${reg.url}${location}?digest=${sha('first!')}`, { method: 'PUT', body: '!' });
    assert.equal(put.status, 201, await put.text());

    assert.equal((await fetch(`${reg.url}/v2/`)).status, 200);
  });
});

describe('registry mounts and authorization', () => {
  test('cross-repository mount: 201 when linked in `from` and pull is allowed, else an upload session', async () => {
    const reg = await startTestRegistry({
      authorize: (req) => {
        if (req.repository === 'locked' && req.action === 'pull')
          throw new ForbiddenError('no pull on locked');
      },
    });
    try {
      const digest = await pushBlob(reg.url, 'source', 'shared layer');
      const mounted = await fetch(`${reg.url}/v2/target/blobs/uploads/?mount=${digest}&from=source`, {
        method: 'POST',
      });
      assert.equal(mounted.status, 201);
      assert.equal(mounted.headers.get('location'), `/v2/target/blobs/${digest}`);
      assert.equal(mounted.headers.get('docker-content-digest'), digest);
      assert.equal(await (await fetch(`${reg.url}/v2/target/blobs/${digest}`)).text(), 'shared layer');
      assert.ok(reg.calls.some((c) => c.repository === 'source' && c.action === 'pull'));

      // Not linked in `from`: a normal upload session.
      const notThere = await fetch(`${reg.url}/v2/target/blobs/uploads/?mount=${digest}&from=elsewhere`, {
        method: 'POST',
      });
      assert.equal(notThere.status, 202);
      assert.match(notThere.headers.get('location')!, /^\/v2\/target\/blobs\/uploads\/[0-9a-f-]{36}$/);

      // Linked in `from`, but the caller may not pull it: a session, and nothing leaks.
      await pushBlob(reg.url, 'locked', 'locked layer');
      const lockedDigest = sha('locked layer');
      const refused = await fetch(`${reg.url}/v2/thief/blobs/uploads/?mount=${lockedDigest}&from=locked`, {
        method: 'POST',
      });
      assert.equal(refused.status, 202);
      assert.equal((await fetch(`${reg.url}/v2/thief/blobs/${lockedDigest}`)).status, 404);
    } finally {
      await reg.close();
    }
  });

  test('authorizer: 401 with WWW-Authenticate, 403 DENIED, and the action of each endpoint', async () => {
    const reg = await startTestRegistry({
      wwwAuthenticate: 'Bearer realm="https://auth.example/token",service="aiedge"',
      authorize: (req) => {
        const auth = req.headers['authorization'];
        if (auth === undefined) throw new UnauthorizedError('credentials required');
        if (auth === 'Bearer reader' && req.action !== 'pull')
          throw new ForbiddenError(`${req.action} denied`);
      },
    });
    try {
      const anonymous = await fetch(`${reg.url}/v2/`);
      assert.equal(anonymous.status, 401);
      assert.equal(
        anonymous.headers.get('www-authenticate'),
        'Bearer realm="https://auth.example/token",service="aiedge"',
      );
      assert.equal(await errorCode(anonymous), 'UNAUTHORIZED');
      const anonHead = await fetch(`${reg.url}/v2/app/manifests/latest`, { method: 'HEAD' });
      assert.equal(anonHead.status, 401);
      assert.ok(anonHead.headers.get('www-authenticate'));

      const writer = { authorization: 'Bearer writer' };
      const reader = { authorization: 'Bearer reader' };
      const data = 'authorized';
      const push = await fetch(`${reg.url}/v2/app/blobs/uploads/?digest=${sha(data)}`, {
        method: 'POST',
        headers: writer,
        body: data,
      });
      assert.equal(push.status, 201);
      const denied = await fetch(`${reg.url}/v2/app/blobs/uploads/`, { method: 'POST', headers: reader });
      assert.equal(denied.status, 403);
      assert.equal(await errorCode(denied), 'DENIED');
      const read = await fetch(`${reg.url}/v2/app/blobs/${sha(data)}`, { headers: reader });
      assert.equal(read.status, 200);
      const del = await fetch(`${reg.url}/v2/app/blobs/${sha(data)}`, { method: 'DELETE', headers: reader });
      assert.equal(del.status, 403);
      const catalog = await fetch(`${reg.url}/v2/_catalog`, { headers: reader });
      assert.equal(catalog.status, 403);

      reg.calls.length = 0;
      await fetch(`${reg.url}/v2/app/tags/list`, { headers: writer });
      await fetch(`${reg.url}/v2/app/manifests/x`, { method: 'PUT', headers: writer, body: '{}' });
      await fetch(`${reg.url}/v2/app/manifests/x`, { method: 'DELETE', headers: writer });
      await fetch(`${reg.url}/v2/_catalog`, { headers: writer });
      assert.deepEqual(
        reg.calls.map((c) => [c.method, c.repository, c.action]),
        [
          ['GET', 'app', 'pull'],
          ['PUT', 'app', 'push'],
          ['DELETE', 'app', 'delete'],
          ['GET', undefined, 'catalog'],
        ],
      );
    } finally {
      await reg.close();
    }
  });
});

describe('registry state', () => {
  test('an upload survives a restart: the hash is recomputed from the data file', async () => {
    const data = await tempDir();
    const first = await startTestRegistry({ data });
    const start = await fetch(`${first.url}/v2/restart/blobs/uploads/`, { method: 'POST' });
    const location = start.headers.get('location')!;
    await fetch(`${first.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-range': '0-5' },
      body: 'before',
    });
    await first.close();
    const second = await startTestRegistry({ data });
    try {
      const patch = await fetch(`${second.url}${location}`, {
        method: 'PATCH',
        headers: { 'content-range': '6-11' },
        body: '-after',
      });
      assert.equal(patch.status, 202);
      const put = await fetch(`${second.url}${location}?digest=${sha('before-after')}`, { method: 'PUT' });
      assert.equal(put.status, 201, await put.text());
    } finally {
      await second.close();
    }
  });

  test('registryGc keeps what tags and revisions reach and drops the rest, dead links and idle uploads', async () => {
    const reg = await startTestRegistry();
    try {
      const kept = await pushImage(reg.url, 'gc/app', 'v1');
      const orphan = await pushBlob(reg.url, 'gc/app', 'orphan blob');
      const doomed = await pushImage(reg.url, 'gc/app', 'v2');
      const doomedManifest = JSON.parse(
        await (await fetch(`${reg.url}/v2/gc/app/manifests/${doomed}`)).text(),
      ) as { layers: Array<{ digest: Digest }> };
      assert.equal(
        (await fetch(`${reg.url}/v2/gc/app/manifests/${doomed}`, { method: 'DELETE' })).status,
        202,
      );
      const idle = await fetch(`${reg.url}/v2/gc/app/blobs/uploads/`, { method: 'POST' });
      const idleId = idle.headers.get('docker-upload-uuid')!;
      const store = await ContentStore.open(reg.data);
      const old = new Date(Date.now() - 2 * 3_600_000);
      for (const file of ['meta.json', 'data'])
        await utimes(join(store.ingestDir, 'uploads', idleId, file), old, old);

      // Within the grace period nothing goes.
      const graced = await registryGc(store);
      assert.deepEqual(graced.removed, []);
      const result = await registryGc(store, { graceMs: 0 });
      assert.ok(result.removed.includes(orphan));
      assert.ok(result.removed.includes(doomed));
      assert.ok(result.removed.includes(doomedManifest.layers[0]!.digest));
      assert.ok(result.freedBytes > 0);
      assert.equal(await store.has(kept), true);
      assert.equal((await fetch(`${reg.url}/v2/gc/app/manifests/v1`)).status, 200);
      const manifest = (await (await fetch(`${reg.url}/v2/gc/app/manifests/v1`)).json()) as {
        layers: Array<{ digest: Digest }>;
      };
      assert.equal((await fetch(`${reg.url}/v2/gc/app/blobs/${manifest.layers[0]!.digest}`)).status, 200);
      assert.equal((await fetch(`${reg.url}/v2/gc/app/blobs/${orphan}`)).status, 404);
      assert.deepEqual(
        (await store.listRefs('repositories/gc/app/blobs_')).includes(orphan.slice(7)),
        false,
        'the dead blob link is dropped',
      );
      assert.equal(existsSync(join(store.ingestDir, 'uploads', idleId)), false, 'the idle upload is removed');
    } finally {
      await reg.close();
    }
  });

  test('mounted beside a parent app’s routes: parent parsers and routes keep working', async () => {
    const data = await tempDir();
    const store = await ContentStore.open(data);
    const app = Fastify({ logger: false });
    app.post('/api/echo', async (request) => ({ echoed: request.body }));
    app.get('/v2/models/:model', async (request) => ({ model: (request.params as { model: string }).model }));
    await app.register(registryRoutes, { store, maxManifestBytes: 512 });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    try {
      const echo = await fetch(`${url}/api/echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
      assert.deepEqual(await echo.json(), { echoed: { a: 1 } });
      assert.deepEqual(await (await fetch(`${url}/v2/models/mnist`)).json(), { model: 'mnist' });
      assert.equal((await fetch(`${url}/v2/`)).status, 200);
      const digest = await pushBlob(url, 'inner', 'inside a parent');
      assert.equal(await (await fetch(`${url}/v2/inner/blobs/${digest}`)).text(), 'inside a parent');
      // A manifest sent as application/json still reaches the registry as raw bytes.
      const big = await fetch(`${url}/v2/inner/manifests/big`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ schemaVersion: 2, padding: 'x'.repeat(1000) }),
      });
      assert.equal(big.status, 413);
      assert.equal(await errorCode(big), 'SIZE_INVALID');
    } finally {
      await app.close();
    }
  });
});

// --- real peers: skopeo and Debian's docker-registry ---------------------------------------

function have(binary: string): boolean {
  return ['/usr/bin', '/usr/local/bin', '/bin'].some((dir) => existsSync(join(dir, binary)));
}

function requireTool(t: TestContext, binary: string, install: string): boolean {
  if (have(binary)) return true;
  if (process.env['CI'] === 'true') assert.fail(`${binary} is required in CI: ${install}`);
  t.skip(`${binary} not installed: ${install}`);
  return false;
}

async function skopeo(...args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync('skopeo', ['--insecure-policy', ...args], {
      maxBuffer: 16 * 1024 * 1024,
      timeout: 120_000,
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
  }
}

/** A small OCI image layout made by hand: one gzip layer, a config, a manifest, index.json. */
async function makeOciLayout(dir: string, tag: string): Promise<{ manifestDigest: Digest }> {
  const src = join(dir, '..', `${tag}-rootfs`);
  await mkdir(join(src, 'app'), { recursive: true });
  await writeFile(join(src, 'app', 'hello.txt'), 'hello from the test image\n');
  await writeFile(join(src, 'app', 'model.bin'), randomBytes(200_000));
  const tarChunks: Buffer[] = [];
  for await (const chunk of createTar({ cwd: src, portable: true, mtime: new Date(0) }, ['app'])) {
    tarChunks.push(Buffer.from(chunk as Uint8Array));
  }
  const layerTar = Buffer.concat(tarChunks);
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/true'] },
      rootfs: { type: 'layers', diff_ids: [sha(layerTar)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify(imageManifest(sha(config), config.length, [[sha(layer), layer.length]])),
  );
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  for (const blob of [layer, config, manifest]) await writeFile(join(blobs, sha(blob).slice(7)), blob);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaTypes.ociIndex,
      manifests: [
        {
          mediaType: MediaTypes.ociManifest,
          digest: sha(manifest),
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return { manifestDigest: sha(manifest) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function startDockerRegistry(): Promise<{ host: string; stop(): Promise<void> }> {
  const root = await tempDir('aiedge-docker-registry-');
  const port = await freePort();
  const config = join(root, 'config.yml');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(root, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
    try {
      if ((await fetch(`http://${host}/v2/`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 100) throw new Error(`docker-registry did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

async function ociIndexDigest(dir: string): Promise<string> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string }>;
  };
  return index.manifests[0]!.digest;
}

describe('registry with real peers', () => {
  test('skopeo pushes an OCI layout in, inspects, lists tags and pulls it back out', async (t) => {
    if (!requireTool(t, 'skopeo', 'apt-get install skopeo')) return;
    const reg = await startTestRegistry();
    try {
      const work = await tempDir();
      const layout = join(work, 'layout');
      const { manifestDigest } = await makeOciLayout(layout, '1.0');
      const host = reg.url.replace('http://', '');
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${layout}:1.0`,
        `docker://${host}/models/demo:1.0`,
      );
      await skopeo(
        'copy',
        '--dest-tls-verify=false',
        `oci:${layout}:1.0`,
        `docker://${host}/models/demo:latest`,
      );

      const inspect = JSON.parse(
        await skopeo('inspect', '--tls-verify=false', `docker://${host}/models/demo:1.0`),
      ) as { Digest: string; Architecture: string; Os: string; Layers: string[] };
      assert.equal(inspect.Digest, manifestDigest);
      assert.equal(inspect.Architecture, 'amd64');
      assert.equal(inspect.Layers.length, 1);
      const raw = await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${host}/models/demo:1.0`);
      assert.equal(sha(raw), manifestDigest);
      const tags = JSON.parse(
        await skopeo('list-tags', '--tls-verify=false', `docker://${host}/models/demo`),
      ) as {
        Tags: string[];
      };
      assert.deepEqual(tags.Tags.sort(), ['1.0', 'latest']);

      const out = join(work, 'pulled');
      await skopeo('copy', '--src-tls-verify=false', `docker://${host}/models/demo:1.0`, `oci:${out}:1.0`);
      assert.equal(await ociIndexDigest(out), manifestDigest);
      const pulledBlobs = (await readdir(join(out, 'blobs', 'sha256'))).sort();
      const sourceBlobs = (await readdir(join(layout, 'blobs', 'sha256'))).sort();
      assert.deepEqual(pulledBlobs, sourceBlobs);
    } finally {
      await reg.close();
    }
  });

  test('skopeo copies between our registry and docker-registry in both directions, digests preserved', async (t) => {
    if (!requireTool(t, 'skopeo', 'apt-get install skopeo')) return;
    if (!requireTool(t, 'docker-registry', 'apt-get install docker-registry')) return;
    const reg = await startTestRegistry();
    const docker = await startDockerRegistry();
    try {
      const work = await tempDir();
      const layout = join(work, 'layout');
      const { manifestDigest } = await makeOciLayout(layout, 'v1');
      const ours = reg.url.replace('http://', '');
      await skopeo('copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${ours}/edge/model:v1`);

      // ours → docker-registry
      await skopeo(
        'copy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${ours}/edge/model:v1`,
        `docker://${docker.host}/mirror/model:v1`,
      );
      const there = JSON.parse(
        await skopeo('inspect', '--tls-verify=false', `docker://${docker.host}/mirror/model:v1`),
      ) as { Digest: string };
      assert.equal(there.Digest, manifestDigest);

      // docker-registry → ours (another repository)
      await skopeo(
        'copy',
        '--src-tls-verify=false',
        '--dest-tls-verify=false',
        `docker://${docker.host}/mirror/model:v1`,
        `docker://${ours}/back/model:v1`,
      );
      const back = JSON.parse(
        await skopeo('inspect', '--tls-verify=false', `docker://${ours}/back/model:v1`),
      ) as {
        Digest: string;
      };
      assert.equal(back.Digest, manifestDigest);
      const head = await fetch(`${reg.url}/v2/back/model/manifests/v1`, { method: 'HEAD' });
      assert.equal(head.headers.get('docker-content-digest'), manifestDigest);
      const catalog = (await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.deepEqual(catalog.repositories, ['back/model', 'edge/model']);
    } finally {
      await docker.stop();
      await reg.close();
    }
  });
});
