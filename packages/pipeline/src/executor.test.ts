import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createPipelineExecutor } from './executor.js';
import type { TaskTransition } from './runner.js';
import type { TaskImplementation, TaskKind } from './types.js';

const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

function document(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'classifier' },
    spec: {
      params: [{ name: 'repo', default: '127.0.0.1:8080/models/classifier' }],
      model: { name: 'classifier', version: '1' },
      source: { local: { path: './model' } },
      image: { repository: '$(params.repo)' },
      ...extra,
    },
  };
}

function tasks(
  overrides: Partial<Record<TaskKind, TaskImplementation>> = {},
): Record<TaskKind, TaskImplementation> {
  const ok: TaskImplementation = async (ctx) => {
    ctx.log(`hello from ${ctx.runId}`);
    return { image: ctx.spec.spec.image.repository };
  };
  return { fetch: ok, inspect: ok, build: ok, stage: ok, push: ok, gitops: ok, ...overrides };
}

describe('pipeline executor', () => {
  const executor = createPipelineExecutor({ tasks: tasks() });

  test('validate returns the name, the task names and the graph (default graph)', () => {
    assert.deepEqual(executor.validate({ spec: document(), params: {} }), {
      name: 'classifier',
      tasks: ['fetch', 'inspect', 'build', 'stage', 'push', 'gitops'],
      runAfter: {
        fetch: [],
        inspect: ['fetch'],
        build: ['inspect'],
        stage: ['build'],
        push: ['stage'],
        gitops: ['push'],
      },
    });
  });

  test('validate errors name the path of the document and of the params', () => {
    assert.throws(
      () =>
        executor.validate({
          spec: document({ source: { s3: {} } }),
          params: {},
          specPath: 'body.spec',
          paramsPath: 'body.params',
        }),
      /body\.spec/,
    );
    assert.throws(
      () =>
        executor.validate({
          spec: document(),
          params: { nope: 'x' },
          specPath: 'body.spec',
          paramsPath: 'body.params',
        }),
      /body\.params\.nope: the pipeline declares no such parameter/,
    );
    assert.throws(
      () =>
        executor.validate({
          spec: document({
            tasks: [
              { name: 'a', uses: 'fetch', runAfter: ['b'] },
              { name: 'b', uses: 'inspect', runAfter: ['a'] },
            ],
          }),
          params: {},
          specPath: 'body.spec',
        }),
      /body\.spec\.spec\.tasks: runAfter forms a cycle/,
    );
  });

  test('execute runs the tasks, reports events and resolves with <task>.<result>', async () => {
    const workspace = await mkdtemp(join(tmpdir(), 'aiedge-exec-test-'));
    temps.push(workspace);
    const transitions: TaskTransition[] = [];
    const lines: string[] = [];
    const outcome = await executor.execute({
      id: 'run-1',
      spec: document(),
      params: { repo: 'reg.example/x' },
      workspace,
      signal: new AbortController().signal,
      events: {
        task: (t) => transitions.push(t),
        log: (task, _s, line) => lines.push(`${task ?? 'run'}: ${line}`),
      },
    });
    assert.equal(outcome.results['push.image'], 'reg.example/x');
    assert.equal(Object.keys(outcome.results).length, 6);
    assert.equal(transitions.filter((t) => t.state === 'succeeded').length, 6);
    assert.ok(lines.includes('fetch: hello from run-1'));
  });

  test('execute rejects with the failure reason', async () => {
    const workspace = await mkdtemp(join(tmpdir(), 'aiedge-exec-test-'));
    temps.push(workspace);
    const failing = createPipelineExecutor({
      tasks: tasks({
        build: async () => {
          throw new Error('exit code 2');
        },
      }),
    });
    const transitions: TaskTransition[] = [];
    await assert.rejects(
      failing.execute({
        id: 'run-2',
        spec: document(),
        params: {},
        workspace,
        signal: new AbortController().signal,
        events: { task: (t) => transitions.push(t), log: () => {} },
      }),
      { message: 'task build failed: exit code 2' },
    );
    assert.deepEqual(
      transitions.filter((t) => t.state === 'skipped').map((t) => t.task),
      ['stage', 'push', 'gitops'],
    );
  });
});
