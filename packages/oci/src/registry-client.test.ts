/**
 * The registry client against a real Debian `docker-registry` (CNCF distribution 2.8): monolithic
 * and chunked pushes, pulls compared digest by digest, re-pushes that upload nothing, cross-repo
 * mounts, skopeo reading what we pushed, htpasswd Basic auth, token (Bearer) auth with a JWT-signing
 * token server, and TLS with a custom CA.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSign } from 'node:crypto';
import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { InputError, NotFoundError, UnauthorizedError } from '@aiedge/protocol';
import { digestOf } from './digest.js';
import { parseReference } from './reference.js';
import { RegistryClient, type RegistryProgressEvent } from './registry-client.js';
import { ContentStore } from './store.js';
import type { Descriptor } from './types.js';
import {
  DOCKER_REGISTRY,
  buildImage,
  buildIndex,
  imageDigests,
  missingTools,
  randomBytes,
  run,
  startDistribution,
  tempDir,
  type Distribution,
} from './_registry-test-helpers.js';

const skipRegistry = missingTools(DOCKER_REGISTRY);
const skipSkopeo = skipRegistry ?? missingTools('skopeo');
const skipOpenssl = skipRegistry ?? missingTools('openssl');

/** A bcrypt hash for htpasswd (distribution accepts bcrypt only), from whichever tool is here. */
function bcrypt(password: string): string | undefined {
  const tries: Array<[string, string[]]> = [
    // The lowest cost (4) keeps the registry's per-request bcrypt checks fast.
    ['htpasswd', ['-nbBC', '4', 'x', password]],
    ['mkpasswd', ['-m', 'bcrypt', '-R', '4', password]],
    [
      'python3',
      [
        '-W',
        'ignore',
        '-c',
        'import crypt,sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))',
        password,
      ],
    ],
  ];
  for (const [cmd, args] of tries) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    const hash = /\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}/.exec(r.stdout ?? '')?.[0];
    if (r.status === 0 && hash !== undefined) return hash;
  }
  return undefined;
}

/** Self-signed certificate and key for 127.0.0.1 (token signing and TLS). */
async function selfSigned(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return { cert, key };
}

const quietClient = (options: ConstructorParameters<typeof RegistryClient>[0] = {}): RegistryClient =>
  new RegistryClient({ env: {}, retryBaseDelayMs: 1, ...options });

describe('registry client against docker-registry', { skip: skipRegistry }, () => {
  let registry: Distribution;
  let dir: string;
  let src: ContentStore;
  let image: Descriptor;
  let index: Descriptor;
  let client: RegistryClient;

  before(async () => {
    registry = await startDistribution();
    dir = await tempDir('registry-client');
    src = await ContentStore.open(join(dir, 'src'));
    image = await buildImage(src, {
      files: { 'model.bin': randomBytes(20_000, 7), 'etc/info.txt': 'hello\n' },
    });
    index = await buildIndex(src, [
      await buildImage(src, {
        platform: { os: 'linux', architecture: 'amd64' },
        files: { 'model.bin': randomBytes(9000, 1) },
      }),
      await buildImage(src, {
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
        files: { 'model.bin': randomBytes(9000, 2) },
      }),
    ]);
    client = quietClient();
  });
  after(async () => {
    await client?.close();
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const ref = (path: string) => parseReference(`${registry.registry}/${path}`);

  test('monolithic push, then pull into a fresh store gives the same digests', async () => {
    const events: RegistryProgressEvent[] = [];
    const pusher = quietClient({ onProgress: (e) => events.push(e) });
    try {
      const pushed = await pusher.push(src, image, ref('models/mono:1'));
      assert.equal(pushed.digest, image.digest);
      const blobs = (await imageDigests(src, image.digest)).filter((d) => d !== image.digest);
      const blobBytes = (await Promise.all(blobs.map(async (d) => (await src.stat(d))!.size))).reduce(
        (a, b) => a + b,
      );
      assert.equal(pushed.uploadedBytes, blobBytes);
      assert.deepEqual([pushed.skippedBlobs, pushed.mountedBlobs], [0, 0]);
      assert.ok(events.some((e) => e.action === 'upload' && e.bytes === e.total));
    } finally {
      await pusher.close();
    }

    const dst = await ContentStore.open(join(dir, 'pull-mono'));
    const pulled = await client.pull(ref('models/mono:1'), dst);
    assert.deepEqual(pulled.root, { mediaType: image.mediaType, digest: image.digest, size: image.size });
    assert.deepEqual(await imageDigests(dst, image.digest), await imageDigests(src, image.digest));
    for (const d of await imageDigests(src, image.digest)) {
      assert.ok((await dst.readBytes(d)).equals(await src.readBytes(d)), d);
    }
    assert.equal(pulled.skippedBlobs, 0);
    assert.ok(pulled.downloadedBytes > 20_000);
    assert.deepEqual(await readdir(dst.ingestDir), [], 'no partial files left');

    // Pulling again downloads only the manifest.
    const again = await client.pull(ref('models/mono:1'), dst);
    assert.equal(again.downloadedBytes, image.size);
    assert.equal(again.skippedBlobs, 2);
  });

  test('pushing again uploads nothing: every blob is skipped', async () => {
    const pushed = await client.push(src, image, ref('models/mono:1'));
    assert.deepEqual(
      {
        uploadedBytes: pushed.uploadedBytes,
        skippedBlobs: pushed.skippedBlobs,
        mountedBlobs: pushed.mountedBlobs,
      },
      { uploadedBytes: 0, skippedBlobs: 2, mountedBlobs: 0 },
    );
  });

  test('chunked push (PATCH chunks) round-trips', async () => {
    const events: RegistryProgressEvent[] = [];
    const chunked = quietClient({ chunkSize: 4096, onProgress: (e) => events.push(e) });
    try {
      const pushed = await chunked.push(src, image, ref('models/chunked:1'));
      assert.ok(pushed.uploadedBytes > 20_000);
    } finally {
      await chunked.close();
    }
    const layer = events.filter((e) => e.action === 'upload' && e.total > 20_000);
    assert.ok(layer.length >= 5, `progress per chunk: ${layer.length}`);
    const dst = await ContentStore.open(join(dir, 'pull-chunked'));
    const pulled = await client.pull(ref('models/chunked:1'), dst);
    assert.equal(pulled.root.digest, image.digest);
    assert.deepEqual(await imageDigests(dst, image.digest), await imageDigests(src, image.digest));
  });

  test('index push (children first) and pulls of all or some platforms', async () => {
    const pushed = await client.push(src, index, ref('models/multi:2'));
    assert.equal(pushed.digest, index.digest);

    const all = await ContentStore.open(join(dir, 'pull-all'));
    const pulled = await client.pull(ref('models/multi:2'), all);
    assert.equal(pulled.root.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(await imageDigests(all, index.digest), await imageDigests(src, index.digest));

    const arm = await ContentStore.open(join(dir, 'pull-arm'));
    await client.pull(ref('models/multi:2'), arm, { platforms: [{ os: 'linux', architecture: 'arm64' }] });
    const children = (await src.readJson<{ manifests: Descriptor[] }>(index.digest)).manifests;
    const [amd64, arm64] = children as [Descriptor, Descriptor];
    assert.ok(await arm.has(index.digest));
    assert.ok(!(await arm.has(amd64.digest)));
    for (const d of await imageDigests(src, arm64.digest)) assert.ok(await arm.has(d), d);
    for (const d of await imageDigests(src, amd64.digest)) assert.ok(!(await arm.has(d)), d);

    // An index whose store lacks a child can still be pushed where the child already is.
    const again = await client.push(arm, index, ref('models/multi:3'));
    assert.equal(again.digest, index.digest);
    await assert.rejects(client.push(arm, index, ref('models/other:1')), (error: unknown) => {
      assert.ok(error instanceof NotFoundError);
      assert.match(error.message, /neither in the store nor in the destination/);
      return true;
    });
  });

  test('cross-repository mount', async () => {
    await client.push(src, image, ref('team-a/app:1'));
    const mounted = await client.push(src, image, ref('team-b/app:1'), { mountFrom: 'team-a/app' });
    assert.deepEqual(
      {
        uploadedBytes: mounted.uploadedBytes,
        mountedBlobs: mounted.mountedBlobs,
        skippedBlobs: mounted.skippedBlobs,
      },
      { uploadedBytes: 0, mountedBlobs: 2, skippedBlobs: 0 },
    );
    // From a repository without the blobs the mount falls back to an upload.
    const fallback = await client.push(src, image, ref('team-c/app:1'), { mountFrom: 'nowhere/app' });
    assert.equal(fallback.mountedBlobs, 0);
    assert.ok(fallback.uploadedBytes > 20_000);
  });

  test('skopeo inspects what we pushed', { skip: skipSkopeo }, async () => {
    const home = await tempDir('skopeo-home');
    try {
      const env = { PATH: process.env['PATH'], HOME: home };
      const out = JSON.parse(
        await run(
          'skopeo',
          ['inspect', '--tls-verify=false', `docker://${registry.registry}/models/mono:1`],
          env,
        ),
      ) as { Digest: string; Architecture: string; Layers: string[] };
      assert.equal(out.Digest, image.digest);
      assert.equal(out.Architecture, 'amd64');
      const raw = await run(
        'skopeo',
        ['inspect', '--raw', '--tls-verify=false', `docker://${registry.registry}/models/multi:2`],
        env,
      );
      assert.equal(digestOf(raw), index.digest);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  test('tags, blob existence, resolve, delete and not-found errors', async () => {
    const repo = ref('models/mono');
    await client.push(src, image, ref('models/mono:2'));
    assert.deepEqual((await client.listTags(repo)).sort(), ['1', '2']);
    const manifest = await src.readJson<{ layers: Descriptor[] }>(image.digest);
    assert.equal(await client.blobExists(repo, manifest.layers[0]!.digest), true);
    assert.equal(await client.blobExists(repo, digestOf('nothing')), false);
    assert.equal((await client.resolve(ref('models/mono:2')))?.digest, image.digest);
    assert.equal(await client.resolve(ref('models/mono:nope')), undefined);

    const got = await client.getManifest(ref(`models/mono@${image.digest}`));
    assert.ok(got.bytes.equals(await src.readBytes(image.digest)));

    await assert.rejects(client.getManifest(ref('models/mono:nope')), (error: unknown) => {
      assert.ok(error instanceof NotFoundError);
      assert.match(error.message, /MANIFEST_UNKNOWN/);
      assert.match(error.message, /models\/mono:nope/);
      return true;
    });
    await assert.rejects(client.listTags(ref('no/such-repo')), NotFoundError);

    assert.equal(await client.deleteManifest(ref('models/chunked:1')), image.digest);
    await assert.rejects(client.getManifest(ref(`models/chunked@${image.digest}`)), NotFoundError);
  });
});

const HTPASSWD_PASSWORD = 'pa55:word-☃';
const htpasswdHash = skipRegistry === undefined ? bcrypt(HTPASSWD_PASSWORD) : undefined;
const skipHtpasswd =
  skipRegistry ??
  (htpasswdHash === undefined
    ? missingTools('htpasswd') // no bcrypt tool at all: skipped here, an error in CI
    : undefined);

describe('registry client with htpasswd (Basic) auth', { skip: skipHtpasswd }, () => {
  const password = HTPASSWD_PASSWORD;
  let registry: Distribution;
  let dir: string;
  let store: ContentStore;
  let image: Descriptor;

  before(async () => {
    dir = await tempDir('htpasswd');
    await writeFile(join(dir, 'htpasswd'), `alice:${htpasswdHash}\n`);
    registry = await startDistribution({
      auth: `  htpasswd:\n    realm: aiedge-test\n    path: ${join(dir, 'htpasswd')}`,
    });
    store = await ContentStore.open(join(dir, 'store'));
    image = await buildImage(store, { files: { 'model.bin': randomBytes(5000, 3) } });
  });
  after(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('push and pull with credentials from the option and from REGISTRY_AUTH_FILE', async () => {
    const ref = parseReference(`${registry.registry}/private/app:1`);
    const client = quietClient({ credentials: { username: 'alice', password } });
    try {
      assert.equal((await client.push(store, image, ref)).digest, image.digest);
    } finally {
      await client.close();
    }
    const authFile = join(dir, 'auth.json');
    await writeFile(
      authFile,
      JSON.stringify({
        auths: { [registry.registry]: { auth: Buffer.from(`alice:${password}`).toString('base64') } },
      }),
    );
    const fromFile = quietClient({ env: { REGISTRY_AUTH_FILE: authFile } });
    try {
      const dst = await ContentStore.open(join(dir, 'pulled'));
      assert.equal((await fromFile.pull(ref, dst)).root.digest, image.digest);
    } finally {
      await fromFile.close();
    }
  });

  test('wrong or missing credentials are an UnauthorizedError without the password', async () => {
    const ref = parseReference(`${registry.registry}/private/app:1`);
    const wrong = quietClient({ credentials: { username: 'alice', password: 'not-the-password' } });
    try {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(wrong.getManifest(ref), (error: unknown) => {
          assert.ok(error instanceof UnauthorizedError, String(error));
          assert.match(error.message, /credentials option/);
          assert.ok(!error.message.includes('not-the-password'), error.message);
          return true;
        });
      }
    } finally {
      await wrong.close();
    }
    const none = quietClient();
    try {
      await assert.rejects(none.getManifest(ref), (error: unknown) => {
        assert.ok(error instanceof UnauthorizedError, String(error));
        assert.match(error.message, /none were found/);
        return true;
      });
    } finally {
      await none.close();
    }
  });
});

/** A token server for distribution: checks Basic credentials, grants what is asked, signs RS256 JWTs with x5c. */
async function startTokenServer(options: {
  key: string;
  cert: string;
  users: Record<string, string>;
  service: string;
  issuer: string;
}): Promise<{ url: string; requests: URL[]; close: () => Promise<void> }> {
  const key = await readFile(options.key, 'utf8');
  const certPem = await readFile(options.cert, 'utf8');
  const x5c = certPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
  const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');
  const requests: URL[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    requests.push(url);
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const [name, ...rest] = Buffer.from(auth.replace(/^Basic /, ''), 'base64')
        .toString()
        .split(':');
      if (name === undefined || options.users[name] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = name;
    }
    const access = url.searchParams.getAll('scope').flatMap((scope) => {
      const m = /^repository:([^:]+):(.+)$/.exec(scope);
      return m === null || user === undefined
        ? []
        : [{ type: 'repository', name: m[1], actions: m[2]!.split(',') }];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [x5c] }));
    const claims = b64url(
      JSON.stringify({
        iss: options.issuer,
        sub: user ?? '',
        aud: options.service,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: String(requests.length),
        access,
      }),
    );
    const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key).toString('base64url');
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token: `${header}.${claims}.${signature}`, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('registry client with token (Bearer) auth', { skip: skipOpenssl }, () => {
  let registry: Distribution;
  let tokens: Awaited<ReturnType<typeof startTokenServer>>;
  let dir: string;
  let store: ContentStore;
  let image: Descriptor;
  const password = 'tok3n-pa55';

  before(async () => {
    dir = await tempDir('token-auth');
    const { cert, key } = await selfSigned(dir, 'token-signer');
    tokens = await startTokenServer({
      key,
      cert,
      users: { bob: password },
      service: 'aiedge-test',
      issuer: 'aiedge-issuer',
    });
    registry = await startDistribution({
      auth: [
        '  token:',
        `    realm: ${tokens.url}`,
        '    service: aiedge-test',
        '    issuer: aiedge-issuer',
        `    rootcertbundle: ${cert}`,
      ].join('\n'),
    });
    store = await ContentStore.open(join(dir, 'store'));
    image = await buildImage(store, { files: { 'model.bin': randomBytes(6000, 4) } });
  });
  after(async () => {
    await registry?.stop();
    await tokens?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('push, mount and pull with tokens fetched once per scope', async () => {
    const client = quietClient({ credentials: { username: 'bob', password } });
    try {
      const ref = parseReference(`${registry.registry}/tok/app:1`);
      await client.push(store, image, ref);
      const pushTokens = tokens.requests.length;
      assert.ok(pushTokens >= 1 && pushTokens <= 2, `token requests for a push: ${pushTokens}`);
      assert.ok(
        tokens.requests.some((u) => u.searchParams.getAll('scope').includes('repository:tok/app:pull,push')),
      );
      assert.ok(tokens.requests.every((u) => u.searchParams.get('service') === 'aiedge-test'));

      const mounted = await client.push(store, image, parseReference(`${registry.registry}/tok/copy:1`), {
        mountFrom: 'tok/app',
      });
      assert.equal(mounted.mountedBlobs, 2);
      const last = tokens.requests.at(-1)!;
      assert.deepEqual(last.searchParams.getAll('scope').slice(0, 2), [
        'repository:tok/copy:pull,push',
        'repository:tok/app:pull',
      ]);

      const dst = await ContentStore.open(join(dir, 'pulled'));
      const before = tokens.requests.length;
      assert.equal((await client.pull(ref, dst)).root.digest, image.digest);
      assert.equal(tokens.requests.length, before + 1, 'one token for the pull scope, reused for every blob');
    } finally {
      await client.close();
    }
  });

  test('a wrong password or no credentials is an UnauthorizedError without the password', async () => {
    const ref = parseReference(`${registry.registry}/tok/app:1`);
    const wrong = quietClient({ credentials: { username: 'bob', password: 'wrong-pa55' } });
    try {
      await assert.rejects(wrong.getManifest(ref), (error: unknown) => {
        assert.ok(error instanceof UnauthorizedError, String(error));
        assert.match(error.message, /rejected the credentials from the credentials option/);
        assert.ok(!error.message.includes('wrong-pa55'));
        return true;
      });
    } finally {
      await wrong.close();
    }
    const anonymous = quietClient();
    try {
      await assert.rejects(anonymous.getManifest(ref), (error: unknown) => {
        assert.ok(error instanceof UnauthorizedError, String(error));
        assert.match(error.message, /no credentials found/);
        return true;
      });
    } finally {
      await anonymous.close();
    }
  });
});

describe('registry client over TLS with a custom CA', { skip: skipOpenssl }, () => {
  let registry: Distribution;
  let dir: string;
  let cert: string;

  before(async () => {
    dir = await tempDir('tls');
    const pair = await selfSigned(dir, 'registry-tls');
    cert = pair.cert;
    registry = await startDistribution({ tls: { certificate: pair.cert, key: pair.key } });
  });
  after(async () => {
    await registry?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('push and pull over https trusting the CA; without it a clear, unretried error', async () => {
    const store = await ContentStore.open(join(dir, 'store'));
    const image = await buildImage(store, { files: { 'model.bin': randomBytes(3000, 5) } });
    const ref = parseReference(`${registry.registry}/tls/app:1`);
    const client = quietClient({ https: true, ca: await readFile(cert) });
    try {
      await client.push(store, image, ref);
      const dst = await ContentStore.open(join(dir, 'pulled'));
      assert.equal((await client.pull(ref, dst)).root.digest, image.digest);
    } finally {
      await client.close();
    }
    const untrusting = quietClient({ https: true, retryBaseDelayMs: 5000 });
    try {
      await assert.rejects(untrusting.getManifest(ref), (error: unknown) => {
        assert.ok(error instanceof InputError, String(error));
        assert.match(error.message, /TLS certificate is not trusted/);
        return true;
      });
    } finally {
      await untrusting.close();
    }
  });
});
