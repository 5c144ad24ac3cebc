// The model registry source against a small Kubeflow Model Registry stand-in (fastify on 127.0.0.1)
// serving the four GET endpoints the source uses, shaped per the Kubeflow Model Registry OpenAPI.
// An end-to-end test against the core's own registry belongs in core or cli (pipeline must not import core).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  InputError,
  MODEL_REGISTRY_API_PATH,
  NotFoundError,
  UnauthorizedError,
  type ModelArtifact,
  type ModelVersion,
  type RegisteredModel,
} from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { RegistrySource, chooseArtifact, parseGitUri, sourceForUri } from './registry.js';
import { testContext } from './_test-context.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const TOKEN = 'registry-token-123';
const times = { createTimeSinceEpoch: '1700000000000', lastUpdateTimeSinceEpoch: '1700000000000' };

function artifact(id: string, uri: string, extra: Partial<ModelArtifact> = {}): ModelArtifact {
  return {
    id,
    artifactType: 'model-artifact',
    name: `artifact-${id}`,
    uri,
    state: 'LIVE',
    customProperties: {},
    ...times,
    ...extra,
  } as ModelArtifact;
}

describe('registry source', () => {
  let app: FastifyInstance;
  let base: string;
  let tmp: string;
  const model = Buffer.from(exampleModel(1));
  const localModel = Buffer.from(exampleModel(2));
  const versions = new Map<string, ModelArtifact[]>();

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'aiedge-registry-source-'));
    await writeFile(join(tmp, 'local.onnx'), localModel);
    app = Fastify();
    app.addHook('onRequest', async (req, reply) => {
      if (req.url.startsWith(MODEL_REGISTRY_API_PATH) && req.headers.authorization !== `Bearer ${TOKEN}`) {
        await reply.code(401).send({ code: '401', message: 'missing or invalid token' });
      }
    });
    const registered: RegisteredModel = {
      id: '1',
      name: 'classifier',
      state: 'LIVE',
      customProperties: {},
      ...times,
    } as RegisteredModel;
    app.get<{ Querystring: { name?: string } }>(
      `${MODEL_REGISTRY_API_PATH}/registered_model`,
      async (req, reply) =>
        req.query.name === registered.name
          ? registered
          : reply
              .code(404)
              .send({ code: '404', message: `no registered model named ${req.query.name ?? ''}` }),
    );
    app.get<{ Querystring: { name?: string; parentResourceId?: string } }>(
      `${MODEL_REGISTRY_API_PATH}/model_version`,
      async (req, reply) => {
        const name = req.query.name ?? '';
        if (req.query.parentResourceId !== registered.id || !versions.has(name)) {
          return reply.code(404).send({ code: '404', message: `no version ${name}` });
        }
        return {
          id: `v-${name}`,
          name,
          registeredModelId: registered.id,
          state: 'LIVE',
          customProperties: {},
          ...times,
        } as ModelVersion;
      },
    );
    // One artifact per page, so the source has to follow nextPageToken.
    app.get<{ Params: { id: string }; Querystring: { nextPageToken?: string } }>(
      `${MODEL_REGISTRY_API_PATH}/model_versions/:id/artifacts`,
      async (req, reply) => {
        const items = versions.get(req.params.id.replace(/^v-/, ''));
        if (items === undefined) return reply.code(404).send({ code: '404', message: 'no such version' });
        const at = Number(req.query.nextPageToken ?? '0');
        const page = items.slice(at, at + 1);
        return {
          items: page,
          size: page.length,
          pageSize: 1,
          nextPageToken: at + 1 < items.length ? String(at + 1) : '',
        };
      },
    );
    app.get('/files/classifier.onnx', async (_req, reply) =>
      reply.type('application/octet-stream').send(model),
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;

    versions.set('v1', [
      artifact('10', `oci://127.0.0.1:1/models/classifier@sha256:${'0'.repeat(64)}`, {
        modelFormatName: 'onnx',
      }),
      artifact('11', `${base}/files/classifier.onnx`, {
        modelFormatName: 'onnx',
        customProperties: { sha256: { metadataType: 'MetadataStringValue', string_value: sha(model) } },
      }),
    ]);
    versions.set('v2', [artifact('20', pathToFileURL(join(tmp, 'local.onnx')).toString())]);
    versions.set('v3', [artifact('30', `${base}/files/classifier.onnx`)]);
  });
  after(async () => {
    await app.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('resolves model and version, prefers a non-oci ONNX artifact, fetches it over http with its sha256', async () => {
    const ctx = await testContext({ REG_TOKEN: TOKEN });
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new RegistrySource({
        url: base,
        model: 'classifier',
        version: 'v1',
        tokenEnv: 'REG_TOKEN',
      }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [{ path: 'classifier.onnx', bytes: model.length, sha256: sha(model) }]);
      assert.deepEqual(await readFile(join(ctx.modelDir, 'classifier.onnx')), model);
      assert.match(
        got.origin,
        /#classifier\/v1\/artifact\/11 → http:\/\/127\.0\.0\.1:\d+\/files\/classifier\.onnx#sha256=/,
      );
      assert.ok(!JSON.stringify(ctx.logs).includes(TOKEN));
    } finally {
      await ctx.cleanup();
    }
  });

  test('a file:// artifact is copied', async () => {
    const ctx = await testContext({ REG_TOKEN: TOKEN });
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new RegistrySource({
        url: `${base}${MODEL_REGISTRY_API_PATH}`,
        model: 'classifier',
        version: 'v2',
        tokenEnv: 'REG_TOKEN',
      }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [
        { path: 'local.onnx', bytes: localModel.length, sha256: sha(localModel) },
      ]);
    } finally {
      await ctx.cleanup();
    }
  });

  test('an http artifact without a sha256 property fails clearly', async () => {
    const ctx = await testContext({ REG_TOKEN: TOKEN });
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new RegistrySource({ url: base, model: 'classifier', version: 'v3', tokenEnv: 'REG_TOKEN' }).fetch(
          ctx,
          ctx.modelDir,
        ),
        (e: unknown) => {
          assert.ok(e instanceof InputError);
          assert.match(e.message, /artifact 30 uri is an http\(s\) URL .*needs a custom property sha256/);
          return true;
        },
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('unknown model or version is NotFoundError; a missing token is UnauthorizedError', async () => {
    const ctx = await testContext({ REG_TOKEN: TOKEN });
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new RegistrySource({ url: base, model: 'nope', version: 'v1', tokenEnv: 'REG_TOKEN' }).fetch(
          ctx,
          ctx.modelDir,
        ),
        (e: unknown) => e instanceof NotFoundError && /no registered model named "nope"/.test(e.message),
      );
      await assert.rejects(
        new RegistrySource({ url: base, model: 'classifier', version: 'v9', tokenEnv: 'REG_TOKEN' }).fetch(
          ctx,
          ctx.modelDir,
        ),
        (e: unknown) =>
          e instanceof NotFoundError && /model "classifier" has no version "v9"/.test(e.message),
      );
      await assert.rejects(
        new RegistrySource({ url: base, model: 'classifier', version: 'v1' }).fetch(ctx, ctx.modelDir),
        (e: unknown) =>
          e instanceof UnauthorizedError && /set spec\.source\.registry\.tokenEnv/.test(e.message),
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('chooseArtifact: onnx before others, oci last, deleted never first', () => {
    const a = artifact('1', 'oci://r/m:1', { modelFormatName: 'onnx' });
    const b = artifact('2', 's3://b/k', { modelFormatName: 'tensorflow' });
    const c = artifact('3', 's3://b/k.onnx', { modelFormatName: 'onnx', state: 'DELETED' });
    const d = artifact('4', 'https://h/m.onnx', { modelFormatName: 'ONNX' });
    assert.equal(chooseArtifact([a, b, c, d])?.id, '4');
    assert.equal(chooseArtifact([a, b, c])?.id, '2');
    assert.equal(chooseArtifact([a])?.id, '1');
    assert.equal(chooseArtifact([]), undefined);
  });

  test('URI forms map to sources', () => {
    const env = { AWS_ENDPOINT_URL: 'http://127.0.0.1:9000' };
    assert.equal(
      sourceForUri(
        's3://bucket/models/m.onnx?endpoint=http://minio:9000&defaultRegion=eu-1',
        {},
        { env },
        'uri',
      ).kind,
      's3',
    );
    assert.equal(sourceForUri('oci://registry.example.com/m:1', {}, { env }, 'uri').kind, 'oci');
    assert.equal(sourceForUri('/models/m.onnx', {}, { env }, 'uri').kind, 'local');
    assert.equal(
      sourceForUri('git+https://git.example.com/m.git@main#subdirectory=models', {}, { env }, 'uri').kind,
      'git',
    );
    assert.throws(() => sourceForUri('hf://org/model', {}, { env }, 'uri'), /unsupported scheme hf/);
    assert.deepEqual(
      parseGitUri('git+https://git.example.com/org/m.git@release-1#subdirectory=models/c', 'uri'),
      {
        url: 'https://git.example.com/org/m.git',
        ref: 'release-1',
        path: 'models/c',
      },
    );
    const commit = 'a'.repeat(40);
    assert.deepEqual(parseGitUri(`git+file:///srv/m.git@${commit}`, 'uri'), {
      url: 'file:///srv/m.git',
      commit,
    });
    assert.deepEqual(parseGitUri('git+https://user@host/m.git', 'uri'), { url: 'https://user@host/m.git' });
  });
});
