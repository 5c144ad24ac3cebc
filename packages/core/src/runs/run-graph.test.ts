// The task graph of a run: each task says which tasks it runs after (the dashboard draws the graph),
// for command pipelines and ai-edge pipelines alike, on GET and in the event stream's task events.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { PipelineRun, RunTask } from '@aiedge/protocol';
import { startTestCore, type TestCore } from '../_test-core.js';
import { createRun, json, pipeline, readSse, sh, waitForStatus } from './_test-runs.js';

describe('run task graph', () => {
  let t: TestCore;
  before(async () => {
    t = await startTestCore();
  });
  after(() => t.close());

  test('a command pipeline: runAfter per task on GET and in the stream', async () => {
    const run = await createRun(
      t,
      pipeline('graph', [
        { name: 'fetch', command: sh('true') },
        { name: 'lint', command: sh('true') },
        { name: 'build', runAfter: ['fetch', 'lint'], command: sh('true') },
        { name: 'push', runAfter: ['build'], command: sh('true') },
      ]),
    );
    const graph = (r: { tasks: readonly RunTask[] }) =>
      Object.fromEntries(r.tasks.map((x) => [x.name, x.runAfter]));
    const expected = { fetch: [], lint: [], build: ['fetch', 'lint'], push: ['build'] };
    assert.deepEqual(graph(run), expected);
    await waitForStatus(t, run.id, 'succeeded');
    assert.deepEqual(
      graph(await json<PipelineRun>(await t.api(`/api/v1/pipelines/runs/${run.id}`))),
      expected,
    );
    const { events } = await readSse(await t.api(`/api/v1/pipelines/runs/${run.id}/logs`));
    const tasks = events.filter((e) => e.event === 'task').map((e) => e.data as RunTask);
    assert.deepEqual(graph({ tasks }), expected);
  });

  test('an ai-edge pipeline without a task list: the default graph', async () => {
    const run = await json<PipelineRun>(
      await t.api('/api/v1/pipelines/runs', {
        method: 'POST',
        json: {
          spec: {
            apiVersion: 'aiedge.io/v1alpha1',
            kind: 'Pipeline',
            metadata: { name: 'default-graph' },
            spec: {
              model: { name: 'm', version: '1', format: 'onnx' },
              source: { local: { path: '/nonexistent/model.onnx' } },
              image: { repository: '127.0.0.1:1/m' },
            },
          },
        },
      }),
      201,
    );
    assert.deepEqual(
      run.tasks.map((x) => [x.name, x.runAfter]),
      [
        ['fetch', []],
        ['inspect', ['fetch']],
        ['build', ['inspect']],
        ['stage', ['build']],
        ['push', ['stage']],
        ['gitops', ['push']],
      ],
    );
    await t.api(`/api/v1/pipelines/runs/${run.id}/cancel`, { method: 'POST' });
  });
});
