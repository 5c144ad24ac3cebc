// The OCI source pulling from @aiedge/oci's registry server on 127.0.0.1.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ContentStore,
  MediaTypes,
  RegistryClient,
  buildLayer,
  hostPlatform,
  parseReference,
  startRegistry,
  writeImage,
  writeIndex,
  type Descriptor,
  type RunningRegistry,
} from '@aiedge/oci';
import { InputError, NotFoundError } from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { OciSource } from './oci.js';
import { testContext } from './_test-context.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const CREATED = '2024-01-01T00:00:00Z';

describe('oci source', () => {
  let tmp: string;
  let registry: RunningRegistry;
  let host: string;
  const model = Buffer.from(exampleModel(1));
  const other = Buffer.from(exampleModel(2));

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'aiedge-oci-source-'));
    registry = await startRegistry({ data: join(tmp, 'registry'), host: '127.0.0.1', port: 0 });
    host = new URL(registry.url).host;
    const store = await ContentStore.open(join(tmp, 'build'));
    const client = new RegistryClient();
    const push = (root: Descriptor, ref: string) =>
      client.push(store, root, parseReference(`${host}/${ref}`));

    // A model image: a "runtime" layer (with a symlink escaping to the host), then the model layer.
    const runtime = await buildLayer(store, {
      createdBy: 'runtime',
      entries: [
        { path: 'app/serve.js', type: 'file', mode: 0o644, content: Buffer.from('// runtime\n') },
        { path: 'app/passwd.onnx', type: 'symlink', mode: 0o777, linkname: '/etc/passwd' },
      ],
    });
    const modelLayer = await buildLayer(store, {
      createdBy: 'model',
      entries: [
        { path: 'models/classifier/1/model.onnx', type: 'file', mode: 0o644, content: model },
        {
          path: 'models/classifier/config.pbtxt',
          type: 'file',
          mode: 0o644,
          content: Buffer.from('name: "c"\n'),
        },
      ],
    });
    const image = await writeImage(store, {
      platform: hostPlatform(),
      layers: [runtime, modelLayer],
      config: { Cmd: ['serve'] },
      created: CREATED,
    });
    await push(image, 'models/classifier:1');
    await push(await writeIndex(store, [image]), 'models/classifier:index');

    // An image with two models.
    const two = await buildLayer(store, {
      createdBy: 'two',
      entries: [
        { path: 'a/model.onnx', type: 'file', mode: 0o644, content: model },
        { path: 'b/model.onnx', type: 'file', mode: 0o644, content: other },
      ],
    });
    await push(
      await writeImage(store, { platform: hostPlatform(), layers: [two], config: {}, created: CREATED }),
      'models/two:1',
    );

    // An ORAS-style artifact: the model as a raw blob layer named by its title annotation.
    const blob = await store.put(other);
    const config = await store.put('{}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        artifactType: 'application/vnd.aiedge.model.v1',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config.digest, size: config.size },
        layers: [
          {
            mediaType: 'application/vnd.onnx.model',
            digest: blob.digest,
            size: blob.size,
            annotations: { 'org.opencontainers.image.title': 'classifier.onnx' },
          },
        ],
      }),
    );
    const stored = await store.put(manifest);
    await push(
      { mediaType: MediaTypes.ociManifest, digest: stored.digest, size: stored.size },
      'models/artifact:1',
    );
    await client.close();
  });
  after(async () => {
    await registry.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('finds the single .onnx of a model image (ignoring a symlink to the host) and pins the digest', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new OciSource({ ref: `${host}/models/classifier:1` }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [{ path: 'model.onnx', bytes: model.length, sha256: sha(model) }]);
      assert.deepEqual(await readFile(join(ctx.modelDir, 'model.onnx')), model);
      assert.match(
        got.origin,
        new RegExp(`^oci://${host}/models/classifier@sha256:[0-9a-f]{64}#models/classifier/1/model\\.onnx$`),
      );
      assert.ok(ctx.events.length > 0);
    } finally {
      await ctx.cleanup();
    }
  });

  test('an index resolves to this platform; path selects a directory', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new OciSource({
        ref: `${host}/models/classifier:index`,
        path: '/models/classifier/',
      }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(
        got.files.map((f) => f.path),
        ['1/model.onnx', 'config.pbtxt'],
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('a path that is a symlink out of the image is refused', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new OciSource({ ref: `${host}/models/classifier:1`, path: 'app/passwd.onnx' }).fetch(
          ctx,
          ctx.modelDir,
        ),
        NotFoundError,
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('several .onnx files need a path', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new OciSource({ ref: `${host}/models/two:1` }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof InputError);
          assert.match(
            e.message,
            /holds 2 \.onnx files \(a\/model\.onnx, b\/model\.onnx\); set spec\.source\.oci\.path/,
          );
          return true;
        },
      );
      const got = await new OciSource({ ref: `${host}/models/two:1`, path: 'b/model.onnx' }).fetch(
        ctx,
        ctx.modelDir,
      );
      assert.deepEqual(got.files, [{ path: 'model.onnx', bytes: other.length, sha256: sha(other) }]);
    } finally {
      await ctx.cleanup();
    }
  });

  test('an artifact with a raw model blob (title annotation)', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new OciSource({ ref: `${host}/models/artifact:1` }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [{ path: 'classifier.onnx', bytes: other.length, sha256: sha(other) }]);
    } finally {
      await ctx.cleanup();
    }
  });

  test('a missing image is NotFoundError', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new OciSource({ ref: `${host}/models/none:1` }).fetch(ctx, ctx.modelDir),
        NotFoundError,
      );
    } finally {
      await ctx.cleanup();
    }
  });
});
