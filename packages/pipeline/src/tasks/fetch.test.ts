import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ContentStore } from '@aiedge/oci';
import { exampleModel } from '@aiedge/runtime';
import { parsePipeline } from '../spec.js';
import type { RunState, TaskContext } from '../types.js';
import { testContext } from '../sources/_test-context.js';
import { fetchTask, fetchedDigest } from './fetch.js';

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

function pipeline(source: unknown) {
  return parsePipeline({
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'p' },
    spec: {
      model: { name: 'classifier', version: '1' },
      source,
      image: { repository: '127.0.0.1:5000/models/classifier' },
    },
  });
}

test('fetch task: empties <workspace>/model, fetches, records state.fetched and returns results', async () => {
  const ctx = await testContext();
  try {
    const model = exampleModel(1);
    await mkdir(join(ctx.root, 'repo', '1'), { recursive: true });
    await writeFile(join(ctx.root, 'repo', '1', 'model.onnx'), model);
    await writeFile(join(ctx.root, 'repo', 'config.pbtxt'), 'x');
    await mkdir(join(ctx.workspace, 'model'), { recursive: true });
    await writeFile(join(ctx.workspace, 'model', 'stale.onnx'), 'left by an earlier attempt');
    const state: RunState = {};
    const task: TaskContext = {
      ...ctx,
      spec: pipeline({ local: { path: 'repo' } }),
      runId: 'run-1',
      state,
      store: await ContentStore.open(join(ctx.workspace, 'store')),
    };
    const results = await fetchTask(task);
    assert.deepEqual(await readdir(join(ctx.workspace, 'model')), ['1', 'config.pbtxt']);
    assert.equal(state.fetched?.dir, join(ctx.workspace, 'model'));
    assert.ok(!(await readdir(ctx.workspace)).includes('.fetch'));
    const listing = `${sha(model)}  1/model.onnx\n${sha('x')}  config.pbtxt\n`;
    assert.deepEqual(results, {
      origin: state.fetched?.origin ?? '',
      dir: join(ctx.workspace, 'model'),
      files: '2',
      bytes: String(model.length + 1),
      sha256: sha(listing),
    });
  } finally {
    await ctx.cleanup();
  }
});

test('fetchedDigest of one file is that file’s sha256', () => {
  assert.equal(
    fetchedDigest({ files: [{ path: 'm.onnx', bytes: 1, sha256: 'ab'.repeat(32) }] }),
    'ab'.repeat(32),
  );
});
