/** build → stage → push → gitops over one built image (the runtime bundle makes builds slow). */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ContentStore, startRegistry, type RunningRegistry } from '@aiedge/oci';
import { ForbiddenError } from '@aiedge/protocol';
import { fileRemoteUrl } from '@aiedge/gitops';
import { exampleReference } from '@aiedge/runtime';
import type { RunState } from '../types.js';
import { buildTask } from './build.js';
import { gitopsTask } from './gitops.js';
import { inspectTask } from './inspect.js';
import { pushTask } from './push.js';
import { stageTask } from './stage.js';
import { exampleFetched, tempDir, testContext, testSpec } from './_test-helpers.js';

const run = promisify(execFile);
const features = [0.5, -1, 2, 0.25, 1, 1, 1, 1];
const reference = exampleReference(1, Float32Array.from(features));
const request = { inputs: [{ name: 'features', datatype: 'FP32', shape: [2, 4], data: features }] };
const expected = [
  { name: 'scores', datatype: 'FP32', shape: [2, 3], data: [...reference.scores] },
  { name: 'label', datatype: 'INT64', shape: [2], data: [...reference.label].map(Number) },
];

let store: ContentStore;
let built: RunState;

before(async () => {
  store = await ContentStore.open(join(await tempDir(), 'store'));
  const context = await testContext({
    spec: testSpec({ image: { repository: 'x/y', labels: { team: 'edge' } } }),
    state: { fetched: await exampleFetched() },
    store,
  });
  await inspectTask(context);
  const results = await buildTask(context);
  assert.match(results['digest']!, /^sha256:[0-9a-f]{64}$/);
  built = context.state;
});

async function stageContext(test: Record<string, unknown> | undefined, baseDir?: string) {
  return testContext({
    spec: testSpec(test === undefined ? {} : { test }),
    state: structuredClone(built),
    store,
    ...(baseDir !== undefined ? { baseDir } : {}),
  });
}

describe('buildTask', () => {
  it('records the built image with the spec labels', async () => {
    assert.equal(built.built!.store, store.root);
    const manifest = await store.readJson<{ config: { digest: `sha256:${string}` } }>(
      built.built!.digest as `sha256:${string}`,
    );
    const config = await store.readJson<{ config: { Labels: Record<string, string> } }>(
      manifest.config.digest,
    );
    assert.equal(config.config.Labels['team'], 'edge');
    assert.equal(config.config.Labels['io.aiedge.model.sha256'], built.inspected!.sha256);
  });
});

describe('stageTask (process mode)', () => {
  it('passes with matching outputs and records RSS', async () => {
    const context = await stageContext({ requests: [{ name: 'two rows', request, expected }] });
    const results = await stageTask(context);
    assert.deepEqual(results, { mode: 'process', requests: '1', passed: '1', p95Ms: '' });
    assert.ok((context.state.staged!.rssBytes ?? 0) > 0);
  });

  it('checks readiness only when no test is configured, and says so', async () => {
    const context = await stageContext(undefined);
    await stageTask(context);
    assert.ok(context.lines.some((l) => /readiness only/.test(l)));
  });

  it('fails with a readable diff on a wrong expected output', async () => {
    const wrong = [{ ...expected[0]!, data: expected[0]!.data.map((v, i) => (i === 4 ? v + 1 : v)) }];
    const context = await stageContext({ requests: [{ request, expected: wrong }] });
    await assert.rejects(stageTask(context), (error: Error) => {
      assert.match(error.message, /staging test failed/);
      assert.match(
        error.message,
        /scores\[4\]: expected [-\d.e]+, got [-\d.e]+ \(\|diff\| .* > atol 0\.00001/,
      );
      assert.ok(error.message.split('\n').length <= 14);
      return true;
    });
  });

  it('fails when the latency gate is missed, naming both numbers', async () => {
    const context = await stageContext({ latency: { p95Ms: 0.0001, requests: 5 } });
    await assert.rejects(stageTask(context), /latency gate missed: p95 [\d.]+ ms > p95Ms 0\.0001 ms/);
  });

  it('accepts the data.json + output.json pair', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'data.json'), JSON.stringify(request));
    await writeFile(
      join(dir, 'output.json'),
      JSON.stringify({ model_name: 'example-classifier', model_version: '1', outputs: expected }),
    );
    const context = await stageContext({ dataJson: 'data.json', outputJson: 'output.json' }, dir);
    const results = await stageTask(context);
    assert.equal(results['passed'], '1');
  });
});

describe('stageTask (podman mode)', () => {
  it('runs the image in podman and removes the container', async (t) => {
    try {
      await run('podman', ['info'], { timeout: 60_000 });
    } catch (error) {
      const why = `podman is not usable (${(error as Error).message.split('\n')[0]}): apt-get install podman runc && scripts/podman-setup.sh`;
      if (process.env['CI'] === 'true') assert.fail(why);
      t.skip(why);
      return;
    }
    const context = await stageContext({ mode: 'podman', requests: [{ request, expected }] });
    const results = await stageTask(context);
    assert.equal(results['mode'], 'podman');
    assert.equal(results['passed'], '1');
    const { stdout } = await run('podman', ['ps', '-a', '--format', '{{.Names}}']);
    assert.doesNotMatch(stdout, /aiedge-stage-run-1/);
  });
});

describe('pushTask', () => {
  let registry: RunningRegistry;
  let refusing: RunningRegistry;
  before(async () => {
    registry = await startRegistry({ data: await tempDir(), host: '127.0.0.1', port: 0 });
    refusing = await startRegistry({
      data: await tempDir(),
      host: '127.0.0.1',
      port: 0,
      authorize: (r) => {
        if (r.action === 'push') throw new ForbiddenError('pushes to this registry are closed');
      },
    });
  });
  after(async () => {
    await registry.close();
    await refusing.close();
  });

  it('pushes every tag and records repository@digest', async () => {
    const repository = `127.0.0.1:${registry.port}/models/example`;
    const context = await testContext({
      spec: testSpec({ image: { repository, tags: ['1', 'latest'] } }),
      state: structuredClone(built),
      store,
    });
    await pushTask(context);
    assert.deepEqual(context.state.pushed, {
      reference: `${repository}@${built.built!.digest}`,
      digest: built.built!.digest,
      tags: ['1', 'latest'],
    });
    const res = await fetch(`${registry.url}/v2/models/example/tags/list`);
    assert.deepEqual(((await res.json()) as { tags: string[] }).tags.sort(), ['1', 'latest']);
  });

  it('fails with the registry’s message when it refuses', async () => {
    const context = await testContext({
      spec: testSpec({ image: { repository: `127.0.0.1:${refusing.port}/models/example` } }),
      state: structuredClone(built),
      store,
    });
    await assert.rejects(pushTask(context), /pushes to this registry are closed/);
  });
});

describe('gitopsTask (repository)', () => {
  it('commits the intent pinned by digest; the same intent again makes no commit', async () => {
    const dir = await tempDir();
    const bare = join(dir, 'repo.git');
    await run('git', ['init', '--bare', '-b', 'main', bare]);
    await writeFile(
      join(dir, 'sites.yaml'),
      '- name: store-1\n  labels: {region: eu}\n- name: store-2\n  labels: {region: us}\n',
    );
    const digest = `sha256:${'a'.repeat(64)}`;
    const state: RunState = {
      ...structuredClone(built),
      pushed: { reference: `127.0.0.1:5000/models/example@${digest}`, digest, tags: ['1'] },
    };
    const spec = testSpec({
      gitops: { repo: fileRemoteUrl(bare), sites: 'sites.yaml' },
      deployment: { name: 'classifier', selector: { region: 'eu' } },
    });
    const first = await testContext({ spec, state: structuredClone(state), baseDir: dir });
    const results = await gitopsTask(first);
    assert.match(results['commit']!, /^[0-9a-f]{40}$/);
    assert.equal(results['branch'], 'main');
    const { stdout: intent } = await run('git', [
      '--git-dir',
      bare,
      'show',
      'main:deployments/classifier.yaml',
    ]);
    assert.match(intent, new RegExp(`image: 127.0.0.1:5000/models/example@${digest}`));
    const { stdout: site } = await run('git', [
      '--git-dir',
      bare,
      'show',
      'main:sites/store-1/classifier.yaml',
    ]);
    assert.match(site, new RegExp(digest));

    const second = await testContext({ spec, state: structuredClone(state), baseDir: dir });
    (second as { runId: string }).runId = 'run-2';
    const again = await gitopsTask(second);
    assert.equal(again['commit'], '');
    assert.equal(second.state.gitops!.commit, undefined);
  });
});

/** A stand-in HTTP server recording requests (the core and its model registry are not importable here). */
async function recorder(
  answer: (req: IncomingMessage, body: unknown) => { status: number; body: unknown },
): Promise<{
  url: string;
  seen: Array<{ method: string; url: string; auth: string; body: unknown }>;
  server: Server;
}> {
  const seen: Array<{ method: string; url: string; auth: string; body: unknown }> = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const body: unknown = text === '' ? undefined : JSON.parse(text);
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        auth: req.headers.authorization ?? '',
        body,
      });
      const a = answer(req, body);
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, seen, server };
}

describe('pushTask (model registry)', () => {
  it('registers the image as a model artifact, creating model and version', async () => {
    const registry = await startRegistry({ data: await tempDir(), host: '127.0.0.1', port: 0 });
    const mr = await recorder((req) => {
      if (req.method === 'GET') return { status: 404, body: { code: '404', message: 'not found' } };
      if (req.url?.endsWith('/registered_models')) return { status: 201, body: { id: '7', name: 'm' } };
      if (req.url?.endsWith('/versions')) return { status: 201, body: { id: '8', name: '1' } };
      return { status: 201, body: { id: '9' } };
    });
    try {
      const repository = `127.0.0.1:${registry.port}/models/example`;
      const context = await testContext({
        spec: testSpec({ image: { repository }, registry: { url: mr.url, tokenEnv: 'MR_TOKEN' } }),
        state: structuredClone(built),
        store,
        env: { MR_TOKEN: 'secret' },
      });
      await pushTask(context);
      assert.equal(context.state.pushed!.artifactId, '9');
      const artifact = mr.seen.at(-1)!;
      assert.equal(artifact.url, '/api/model_registry/v1alpha3/model_versions/8/artifacts');
      assert.equal(artifact.auth, 'Bearer secret');
      assert.deepEqual(
        { ...(artifact.body as object), description: undefined },
        {
          artifactType: 'model-artifact',
          uri: `oci://${repository}@${built.built!.digest}`,
          modelFormatName: 'onnx',
          description: undefined,
        },
      );
    } finally {
      mr.server.close();
      await registry.close();
    }
  });
});

describe('gitopsTask (core)', () => {
  it('posts the deployment request with the bearer token and reports the commit', async () => {
    const core = await recorder(() => ({ status: 201, body: { name: 'classifier', commit: 'c0ffee' } }));
    try {
      const digest = `sha256:${'b'.repeat(64)}`;
      const context = await testContext({
        spec: testSpec({
          gitops: { core: { url: core.url, tokenEnv: 'CORE_TOKEN' } },
          deployment: { name: 'classifier', selector: { region: 'eu' }, replicas: 2 },
        }),
        state: { ...structuredClone(built), pushed: { reference: `r/m@${digest}`, digest, tags: ['1'] } },
        env: { CORE_TOKEN: 't0k' },
      });
      const results = await gitopsTask(context);
      assert.deepEqual(results, { commit: 'c0ffee', branch: 'core' });
      assert.equal(core.seen[0]!.url, '/api/v1/deployments');
      assert.equal(core.seen[0]!.auth, 'Bearer t0k');
      assert.deepEqual(core.seen[0]!.body, {
        name: 'classifier',
        image: `r/m@${digest}`,
        model: { name: 'example-classifier', version: '1', sha256: built.inspected!.sha256 },
        selector: { region: 'eu' },
        replicas: 2,
        pipelineRun: 'run-1',
      });
    } finally {
      core.server.close();
    }
  });
});

describe('stageTask (abort)', () => {
  it('stops the server when the run is aborted', async () => {
    const controller = new AbortController();
    const context = await testContext({
      spec: testSpec({ test: { latency: { p95Ms: 10_000, requests: 100_000 } } }),
      state: structuredClone(built),
      store,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('cancelled by test')), 4_000);
    await assert.rejects(stageTask(context), /cancelled by test|aborted/);
    const port = /127\.0\.0\.1:(\d+)/.exec(context.lines[0] ?? '')?.[1];
    await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/health/live`));
  });
});
