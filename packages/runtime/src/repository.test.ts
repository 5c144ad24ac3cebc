import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { call, startTestServer, tempDir, writeModel } from './_test-helpers.js';
import { exampleModel, exampleReference } from './onnx/index.js';
import { parseModelConfig, selectVersions } from './repository.js';
import type { RunningServer } from './serve.js';

const features = [1, 2, 3, 4];
const request = { inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: features }] };

/** The scores the example model of `version` gives for `features`. */
function scoresOf(version: number): number[] {
  return Array.from(exampleReference(version, Float32Array.from(features)).scores);
}

async function infer(server: RunningServer, path = '/v2/models/m/infer') {
  const res = await call(server, 'POST', path, request);
  const body = res.json as {
    model_version?: string;
    outputs?: Array<{ name: string; data: number[] }>;
    error?: string;
  };
  return {
    status: res.status,
    version: body.model_version,
    scores: body.outputs?.find((o) => o.name === 'scores')?.data,
    error: body.error,
  };
}

async function index(server: RunningServer) {
  return (await call(server, 'POST', '/v2/repository/index')).json as Array<Record<string, string>>;
}

describe('version policies', () => {
  test('latest N (default 1), specific and all', () => {
    assert.deepEqual(selectVersions({ kind: 'latest', count: 1 }, [1, 3, 2]), [3]);
    assert.deepEqual(selectVersions({ kind: 'latest', count: 2 }, [1, 3, 2]), [3, 2]);
    assert.deepEqual(selectVersions({ kind: 'specific', versions: [1, 5] }, [1, 3, 2]), [1]);
    assert.deepEqual(selectVersions({ kind: 'all' }, [1, 3, 2]), [3, 2, 1]);
    assert.deepEqual(parseModelConfig('{}', 'm'), { kind: 'latest', count: 1 });
    assert.deepEqual(parseModelConfig('{"version_policy":{"all":{}}}', 'm'), { kind: 'all' });
    assert.deepEqual(parseModelConfig('{"version_policy":{"specific":{"versions":[2]}}}', 'm'), {
      kind: 'specific',
      versions: [2],
    });
  });

  test('config errors name the file, the key and the value', () => {
    assert.throws(
      () => parseModelConfig('{"version_polcy":{}}', 'm'),
      /m\/config\.json: unknown key 'version_polcy'/,
    );
    assert.throws(
      () => parseModelConfig('{"version_policy":{"latest":{"num_versions":0}}}', 'm'),
      /m\/config\.json version_policy\.latest\.num_versions is 0: must be >= 1/,
    );
    assert.throws(
      () => parseModelConfig('{"version_policy":{"latest":{"num_versions":1},"all":{}}}', 'm'),
      /version_policy .*must NOT have more than 1 properties/,
    );
    assert.throws(() => parseModelConfig('{"name":"x"}', 'm'), /name is 'x' but the model directory is 'm'/);
    assert.throws(() => parseModelConfig('{', 'm'), /m\/config\.json is not valid JSON/);
  });
});

describe('model repository layout', () => {
  let repo: { path: string; cleanup: () => Promise<void> };
  let server: RunningServer;

  before(async () => {
    repo = await tempDir('layout');
    for (const v of [1, 2, 3]) await writeModel(repo.path, 'latest2', v, exampleModel(v));
    await writeFile(
      join(repo.path, 'latest2/config.json'),
      '{"version_policy":{"latest":{"num_versions":2}}}',
    );
    for (const v of [1, 2, 3]) await writeModel(repo.path, 'pinned', v, exampleModel(v));
    await writeFile(
      join(repo.path, 'pinned/config.json'),
      '{"version_policy":{"specific":{"versions":[1]}}}',
    );
    for (const v of [1, 2]) await writeModel(repo.path, 'every', v, exampleModel(v));
    await writeFile(join(repo.path, 'every/config.json'), '{"version_policy":{"all":{}}}');
    // any single *.onnx name works
    await mkdir(join(repo.path, 'renamed/7'), { recursive: true });
    await writeFile(join(repo.path, 'renamed/7/classifier.onnx'), exampleModel(7));
    // broken: two .onnx files; a bad config; not ONNX at all
    await writeModel(repo.path, 'two-files', 1, exampleModel(1));
    await writeFile(join(repo.path, 'two-files/1/other.onnx'), exampleModel(1));
    await writeModel(repo.path, 'bad-config', 1, exampleModel(1));
    await writeFile(join(repo.path, 'bad-config/config.json'), '{"version_policy":{"newest":{}}}');
    await writeModel(repo.path, 'garbage', 1, new TextEncoder().encode('not an onnx model'));
    const single = join(repo.path, '..', `${repo.path.split('/').pop()}-single.onnx`);
    await writeFile(single, exampleModel(2));
    server = await startTestServer({
      modelRepository: repo.path,
      models: [{ name: 'single', path: single }],
    });
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  test('each policy serves the versions it selects; unversioned requests go to the highest', async () => {
    const rows = await index(server);
    const ready = (name: string) =>
      rows.filter((r) => r['name'] === name && r['state'] === 'READY').map((r) => r['version']);
    assert.deepEqual(ready('latest2'), ['2', '3']);
    assert.deepEqual(ready('pinned'), ['1']);
    assert.deepEqual(ready('every'), ['1', '2']);
    assert.deepEqual(ready('renamed'), ['7']);
    assert.deepEqual(ready('single'), ['1']);
    assert.deepEqual((await infer(server, '/v2/models/latest2/infer')).scores, scoresOf(3));
    assert.deepEqual((await infer(server, '/v2/models/latest2/versions/2/infer')).scores, scoresOf(2));
    assert.equal((await infer(server, '/v2/models/latest2/versions/1/infer')).status, 404);
    assert.deepEqual((await infer(server, '/v2/models/every/versions/1/infer')).scores, scoresOf(1));
    assert.deepEqual((await infer(server, '/v2/models/single/infer')).scores, scoresOf(2));
    const meta = (await call(server, 'GET', '/v2/models/latest2')).json as { versions: string[] };
    assert.deepEqual(meta.versions, ['2', '3']);
  });

  test('broken models are reported with a reason and the rest still serve', async () => {
    const rows = await index(server);
    const row = (name: string) => rows.find((r) => r['name'] === name)!;
    assert.equal(row('two-files')['state'], 'UNAVAILABLE');
    assert.match(row('two-files')['reason']!, /more than one \.onnx file .*model\.onnx, other\.onnx/);
    assert.equal(row('bad-config')['state'], 'UNAVAILABLE');
    assert.match(
      row('bad-config')['reason']!,
      /bad-config\/config\.json version_policy: unknown key 'newest'/,
    );
    assert.equal(row('garbage')['state'], 'UNAVAILABLE');
    assert.match(row('garbage')['reason']!, /failed to load model\.onnx: .*(protobuf|parsing|Load model)/i);
    const notReady = await call(server, 'GET', '/v2/health/ready');
    assert.equal(notReady.status, 503, 'a model without a ready version makes the server not ready');
    assert.match((notReady.json as { error: string }).error, /garbage/);
    assert.equal((await call(server, 'GET', '/v2/models/garbage/ready')).status, 503);
    const res = await infer(server, '/v2/models/garbage/infer');
    assert.equal(res.status, 503);
    assert.match(res.error!, /no ready version: failed to load/);
  });
});

describe('live repository changes', () => {
  let repo: { path: string; cleanup: () => Promise<void> };
  let server: RunningServer;

  before(async () => {
    repo = await tempDir('live');
    await writeModel(repo.path, 'm', 1, exampleModel(1));
    server = await startTestServer({ modelRepository: repo.path, workers: 2 });
  });
  after(async () => {
    await server?.close();
    await repo?.cleanup();
  });

  test('load swaps to a new version with zero failed requests under continuous load', async () => {
    assert.deepEqual((await infer(server)).scores, scoresOf(1));
    let stop = false;
    const seen: Array<{ status: number; version: string | undefined }> = [];
    const readiness: number[] = [];
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const r = await infer(server);
        seen.push({ status: r.status, version: r.version });
        if (r.status === 200) {
          assert.deepEqual(r.scores, scoresOf(Number(r.version)), 'scores match the version that answered');
        }
      }
    });
    const probe = (async () => {
      while (!stop) readiness.push((await call(server, 'GET', '/v2/models/m/ready')).status);
    })();
    await new Promise((r) => setTimeout(r, 100));
    await writeModel(repo.path, 'm', 2, exampleModel(2));
    const load = await call(server, 'POST', '/v2/repository/models/m/load');
    assert.equal(load.status, 200, load.text);
    await new Promise((r) => setTimeout(r, 100));
    stop = true;
    await Promise.all([...loops, probe]);
    assert.ok(seen.length > 10, `requests ran during the swap: ${seen.length}`);
    const failed = seen.filter((s) => s.status !== 200);
    assert.deepEqual(failed, [], 'no request failed while the version changed');
    assert.ok(
      readiness.every((s) => s === 200),
      'the model never became unready',
    );
    assert.equal(seen.at(-1)?.version, '2');
    assert.deepEqual(await index(server), [{ name: 'm', version: '2', state: 'READY' }]);
  });

  test('a version that fails to load leaves the serving version untouched and says why', async () => {
    await writeModel(repo.path, 'm', 3, new TextEncoder().encode('broken'));
    const load = await call(server, 'POST', '/v2/repository/models/m/load');
    assert.equal(load.status, 200, 'the model still has a ready version');
    const rows = await index(server);
    assert.deepEqual(
      rows.find((r) => r['version'] === '2'),
      { name: 'm', version: '2', state: 'READY' },
    );
    const failed = rows.find((r) => r['version'] === '3')!;
    assert.equal(failed['state'], 'UNAVAILABLE');
    assert.match(failed['reason']!, /failed to load model\.onnx/);
    const res = await infer(server);
    assert.equal(res.status, 200);
    assert.equal(res.version, '2');
    assert.equal((await call(server, 'GET', '/v2/health/ready')).status, 200);
    await rm(join(repo.path, 'm/3'), { recursive: true });
    assert.equal((await call(server, 'POST', '/v2/repository/models/m/load')).status, 200);
    assert.deepEqual(await index(server), [{ name: 'm', version: '2', state: 'READY' }]);
  });

  test('a model whose every version fails answers load with 400 and the reason', async () => {
    await writeModel(repo.path, 'broken', 1, new TextEncoder().encode('broken'));
    const load = await call(server, 'POST', '/v2/repository/models/broken/load');
    assert.equal(load.status, 400);
    assert.match(
      (load.json as { error: string }).error,
      /failed to load model 'broken': failed to load model\.onnx/,
    );
    await rm(join(repo.path, 'broken'), { recursive: true });
    assert.equal((await call(server, 'POST', '/v2/repository/models/broken/load')).status, 404);
    await server.repository.refresh();
    assert.ok(!(await index(server)).some((r) => r['name'] === 'broken'));
  });

  test('unload stops serving after in-flight requests; load brings it back', async () => {
    const unload = await call(server, 'POST', '/v2/repository/models/m/unload');
    assert.equal(unload.status, 200);
    assert.deepEqual(await index(server), [{ name: 'm', state: 'UNAVAILABLE', reason: 'unloaded' }]);
    assert.equal((await infer(server)).status, 503);
    assert.equal(
      (await call(server, 'GET', '/v2/health/ready')).status,
      200,
      'unloaded on purpose is not unready',
    );
    await server.repository.refresh();
    assert.equal((await infer(server)).status, 503, 'a rescan does not reload a model unloaded on purpose');
    assert.equal((await call(server, 'POST', '/v2/repository/models/m/load')).status, 200);
    assert.deepEqual((await infer(server)).scores, scoresOf(2));
    assert.equal((await call(server, 'POST', '/v2/repository/models/nope/unload')).status, 404);
    assert.equal((await call(server, 'POST', '/v2/repository/models/nope/load')).status, 404);
  });
});

describe('repository polling', () => {
  test('a new version directory is picked up by polling and a removed model is unloaded', async () => {
    const repo = await tempDir('poll');
    await writeModel(repo.path, 'm', 1, exampleModel(1));
    const server = await startTestServer({ modelRepository: repo.path, repositoryPollSeconds: 0.1 });
    try {
      await writeModel(repo.path, 'm', 4, exampleModel(4));
      await writeModel(repo.path, 'n', 1, exampleModel(1));
      let res = await infer(server);
      for (let i = 0; i < 100 && res.version !== '4'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        res = await infer(server);
      }
      assert.equal(res.version, '4');
      assert.deepEqual(res.scores, scoresOf(4));
      await rm(join(repo.path, 'n'), { recursive: true });
      let rows = await index(server);
      for (let i = 0; i < 100 && rows.some((r) => r['name'] === 'n'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        rows = await index(server);
      }
      assert.deepEqual(rows, [{ name: 'm', version: '4', state: 'READY' }]);
      assert.equal((await infer(server, '/v2/models/n/infer')).status, 404);
    } finally {
      await server.close();
      await repo.cleanup();
    }
  });
});
