// The embedded OCI registry at /v2/, authorized by core tokens: admins push and pull, sites pull.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ContentStore, RegistryClient, buildLayer, parseReference, writeImage } from '@aiedge/oci';
import { startTestCore, type TestCore } from './_test-core.js';

let t: TestCore;
let dir: string;
before(async () => {
  t = await startTestCore();
  dir = await mkdtemp(join(tmpdir(), 'aiedge-core-registry-'));
});
after(async () => {
  await t.close();
  await rm(dir, { recursive: true, force: true });
});

test('admin pushes, a site pulls the same digest, a site may not push, no token is challenged', async () => {
  const store = await ContentStore.open(join(dir, 'src'));
  const layer = await buildLayer(store, {
    entries: [
      {
        path: 'models/clf/1/model.onnx',
        type: 'file',
        mode: 0o644,
        content: new TextEncoder().encode('not really onnx'),
      },
    ],
    createdBy: 'test',
  });
  const root = await writeImage(store, {
    platform: { os: 'linux', architecture: 'amd64' },
    layers: [layer],
    config: { Cmd: ['serve'] },
    created: '2026-01-01T00:00:00Z',
  });
  const host = new URL(t.url).host;
  const ref = parseReference(`${host}/models/clf:1`);
  const admin = new RegistryClient({ credentials: { username: 'aiedge', password: t.adminToken } });
  const pushed = await admin.push(store, root, ref);
  assert.equal(pushed.digest, root.digest);
  await admin.close();

  const { token } = await t.enrollSite('puller');
  const site = new RegistryClient({ credentials: { username: 'puller', password: token } });
  const pulledStore = await ContentStore.open(join(dir, 'dst'));
  const pulled = await site.pull(parseReference(`${host}/models/clf@${root.digest}`), pulledStore);
  assert.equal(pulled.root.digest, root.digest);
  assert.ok(pulled.downloadedBytes > 0);
  await assert.rejects(site.push(store, root, parseReference(`${host}/models/clf:evil`)), (error: Error) =>
    /denied|may not push|403/i.test(error.message),
  );
  await site.close();

  const anonymous = new RegistryClient({ env: {} });
  await assert.rejects(anonymous.pull(ref, pulledStore), (error: Error) =>
    /401|unauthori|credentials/i.test(error.message),
  );
  await anonymous.close();
});
