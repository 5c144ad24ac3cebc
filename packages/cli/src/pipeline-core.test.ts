// A real ai-edge pipeline run by the core: model registry source → inspect → build → staging test
// → push to the core's registry → deployment through the core's GitOps; agents see the new digest.
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readSiteState } from '@aiedge/gitops';
import type { DesiredState } from '@aiedge/protocol';
import { writeExampleModelRepository } from '@aiedge/runtime';
import { createToken, resolveCoreConfig, startCore, type RunningCore } from '@aiedge/core';

const examples = resolve(fileURLToPath(new URL('../../../examples', import.meta.url)));
interface Core {
  readonly url: string;
  readonly adminToken: string;
  readonly core: RunningCore;
  api(path: string, init?: RequestInit & { token?: string; json?: unknown }): Promise<Response>;
  enrollSite(name: string, labels: Record<string, string>): Promise<{ token: string }>;
}
let t: Core;
let dir: string;
let previousToken: string | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-core-pipeline-'));
  const core = await startCore({
    config: resolveCoreConfig({
      values: { data: join(dir, 'core'), host: '127.0.0.1', port: 0, logLevel: 'silent' },
    }),
  });
  const admin = await createToken(core.context.store.db, { kind: 'admin' });
  const api: Core['api'] = (path, init = {}) => {
    const { token, json, ...rest } = init;
    const headers = new Headers(rest.headers);
    headers.set('authorization', `Bearer ${token ?? admin.token}`);
    if (json !== undefined) headers.set('content-type', 'application/json');
    return fetch(`${core.url}${path}`, {
      ...rest,
      headers,
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
  };
  t = {
    url: core.url,
    adminToken: admin.token,
    core,
    api,
    enrollSite: async (name, labels) => {
      const enrollment = await createToken(core.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
      const r = await api('/api/v1/sites/enroll', {
        method: 'POST',
        token: enrollment.token,
        json: { name, labels },
      });
      assert.equal(r.status, 201);
      return { token: ((await r.json()) as { token: string }).token };
    },
  };
  // The pipeline's tasks read secrets from the core's environment (here: this process).
  previousToken = process.env['AIEDGE_TOKEN'];
  process.env['AIEDGE_TOKEN'] = t.adminToken;
});
after(async () => {
  if (previousToken === undefined) delete process.env['AIEDGE_TOKEN'];
  else process.env['AIEDGE_TOKEN'] = previousToken;
  await t.core.close();
  await rm(dir, { recursive: true, force: true });
});

test('the core runs examples/registry-pipeline.yaml from its model registry to its sites', async () => {
  await writeExampleModelRepository(join(dir, 'models'));
  const { token: siteToken } = await t.enrollSite('edge-1', { tier: 'edge' });
  const api = '/api/model_registry/v1alpha3';
  const model = (await (
    await t.api(`${api}/registered_models`, { method: 'POST', json: { name: 'example-classifier' } })
  ).json()) as { id: string };
  const version = (await (
    await t.api(`${api}/registered_models/${model.id}/versions`, {
      method: 'POST',
      json: { name: '1', registeredModelId: model.id },
    })
  ).json()) as { id: string };
  const artifact = await t.api(`${api}/model_versions/${version.id}/artifacts`, {
    method: 'POST',
    json: {
      artifactType: 'model-artifact',
      name: 'onnx',
      uri: `file://${join(dir, 'models', 'example-classifier')}`,
      modelFormatName: 'onnx',
    },
  });
  assert.equal(artifact.status, 201, await artifact.clone().text());

  const host = new URL(t.url).host;
  const response = await t.api('/api/v1/pipelines/runs', {
    method: 'POST',
    json: {
      spec: await readFile(join(examples, 'registry-pipeline.yaml'), 'utf8'),
      params: { registryUrl: t.url, coreUrl: t.url, repository: `${host}/models/example-classifier` },
    },
  });
  assert.equal(response.status, 201, await response.clone().text());
  const run = (await response.json()) as { id: string };
  let final: { status: string; reason: string | null; results: Record<string, string> } | undefined;
  for (let i = 0; i < 600 && final === undefined; i++) {
    const r = (await (await t.api(`/api/v1/pipelines/runs/${run.id}`)).json()) as {
      status: string;
      reason: string | null;
      results: Record<string, string>;
    };
    if (['succeeded', 'failed', 'cancelled'].includes(r.status)) final = r;
    else await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (final?.status !== 'succeeded') {
    const logs = await (await t.api(`/api/v1/pipelines/runs/${run.id}/logs?follow=false`)).text();
    assert.fail(`run ${final?.status}: ${final?.reason}\n${logs.slice(-3000)}`);
  }
  const digest = final.results['build.digest'];
  assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/);

  // The site's desired state pins the pushed digest.
  const desired = (await (
    await t.api('/api/v1/sites/edge-1/desired', { token: siteToken })
  ).json()) as DesiredState;
  const state = await readSiteState((path) => desired.files[path.slice('sites/edge-1/'.length)], 'edge-1');
  assert.equal(state.deployments[0]?.imageDigest, digest);
  // The image is registered back on the model version.
  const artifacts = (await (await t.api(`${api}/model_versions/${version.id}/artifacts`)).json()) as {
    items: { uri: string }[];
  };
  assert.ok(
    artifacts.items.some((a) => a.uri === `oci://${host}/models/example-classifier@${digest}`),
    JSON.stringify(artifacts),
  );
});
