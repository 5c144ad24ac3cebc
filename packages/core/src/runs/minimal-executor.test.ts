import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { RunLogStream } from '@aiedge/protocol';
import type { RunEventSink, TaskTransition } from './executor.js';
import { MinimalPipelineExecutor } from './minimal-executor.js';
import { gone, node, pipeline, sh, waitFor, type TestTask } from './_test-runs.js';

/** A sink that keeps every event. */
function collect(): RunEventSink & {
  tasks: TaskTransition[];
  lines: { task: string | null; stream: RunLogStream; line: string }[];
} {
  const tasks: TaskTransition[] = [];
  const lines: { task: string | null; stream: RunLogStream; line: string }[] = [];
  return {
    tasks,
    lines,
    task: (t) => tasks.push(t),
    log: (task, stream, line) => lines.push({ task, stream, line }),
  };
}

describe('minimal executor: validation', () => {
  const executor = new MinimalPipelineExecutor();
  const refused = (tasks: unknown[], pattern: RegExp, params: Record<string, string> = {}) =>
    assert.throws(
      () => executor.validate({ spec: pipeline('p', tasks as TestTask[]), params }),
      (error: Error) => {
        assert.equal(error.name, 'InputError');
        assert.match(error.message, pattern);
        return true;
      },
    );

  test('accepts a DAG and returns its name and tasks in spec order', () => {
    const plan = executor.validate({
      spec: pipeline('ok', [
        { name: 'b', runAfter: ['a'], command: ['true'] },
        { name: 'a', command: ['true'], timeoutSeconds: 1.5, retries: 2 },
      ]),
      params: { model_uri: 's3://bucket/model' },
    });
    assert.deepEqual(plan, { name: 'ok', tasks: ['b', 'a'], runAfter: { b: ['a'], a: [] } });
  });

  test('names the failing path', () => {
    refused(
      [
        { name: 'a', command: ['true'] },
        { name: 'b', runAfter: ['x'], command: ['true'] },
      ],
      /^pipeline\.spec\.tasks\[1\]\.runAfter\[0\] "x" is not a task$/,
    );
    refused(
      [{ name: 'a', runAfter: ['a'], command: ['true'] }],
      /^pipeline\.spec\.tasks\[0\]\.runAfter\[0\] "a" is the task itself$/,
    );
    refused(
      [
        { name: 'a', runAfter: ['b'], command: ['true'] },
        { name: 'b', runAfter: ['a'], command: ['true'] },
      ],
      /runAfter forms a cycle: a runs after b, b runs after a$/,
    );
    refused(
      [{ name: 'A', command: ['true'] }],
      /^pipeline\.spec\.tasks\[0\]\.name is "A": must match pattern/,
    );
    refused(
      [{ name: 'a', command: [] }],
      /^pipeline\.spec\.tasks\[0\]\.command is \[\]: must NOT have fewer than 1 items$/,
    );
    refused(
      [{ name: 'a', command: [''] }],
      /^pipeline\.spec\.tasks\[0\]\.command\[0\] is "": expected a program$/,
    );
    refused(
      [{ name: 'a', command: ['true'], retries: 11 }],
      /^pipeline\.spec\.tasks\[0\]\.retries is 11: must be <= 10$/,
    );
    refused([{ name: 'a', command: ['true'] }], /^params: "1x" is not a valid param name/, { '1x': 'v' });
    assert.throws(
      () => executor.validate({ spec: 'text', params: {} }),
      /^InputError: pipeline is "text": must be object$/,
    );
    assert.throws(
      () =>
        executor.validate({
          spec: { apiVersion: 'aiedge.io/v1alpha1', kind: 'Pipeline', metadata: {}, spec: { tasks: [] } },
          params: {},
          specPath: 'file.yaml',
        }),
      /^InputError: file\.yaml\.metadata: missing required key 'name'$/,
    );
  });
});

describe('minimal executor: execution', () => {
  let dir: string;
  let workspace: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-exec-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const run = async (
    tasks: TestTask[],
    options: {
      params?: Record<string, string>;
      signal?: AbortSignal;
      executor?: MinimalPipelineExecutor;
    } = {},
  ) => {
    workspace = await mkdtemp(join(dir, `run-${n++}-`));
    const events = collect();
    const executor = options.executor ?? new MinimalPipelineExecutor();
    const outcome = executor.execute({
      id: 'r1',
      spec: pipeline('p', tasks),
      params: options.params ?? {},
      workspace,
      signal: options.signal ?? new AbortController().signal,
      events,
    });
    return { events, outcome };
  };

  test('reports transitions in order and collects results', async () => {
    const { events, outcome } = await run(
      [
        { name: 'a', command: node("console.log('::result x=1'); console.log('::result y=a=b')") },
        {
          name: 'b',
          runAfter: ['a'],
          command: sh('echo "::result env=$AIEDGE_RUN_ID/$AIEDGE_TASK/$AIEDGE_PARAM_MODEL_URI"'),
        },
      ],
      { params: { model_uri: 'oci://m' } },
    );
    assert.deepEqual(await outcome, { results: { 'a.x': '1', 'a.y': 'a=b', 'b.env': 'r1/b/oci://m' } });
    assert.deepEqual(
      events.tasks.map((t) => `${t.task}:${t.state}:${t.attempt}`),
      ['a:running:1', 'a:succeeded:1', 'b:running:1', 'b:succeeded:1'],
    );
    assert.deepEqual(events.tasks[1]?.results, { x: '1', y: 'a=b' });
  });

  test('keeps every line of a chatty task, and cuts very long lines', async () => {
    const { events, outcome } = await run([
      {
        name: 'chatty',
        command: node(
          "for (let i = 0; i < 20000; i++) console.log('line ' + i); process.stderr.write('x'.repeat(40000) + '\\npartial')",
        ),
      },
    ]);
    await outcome;
    const stdout = events.lines.filter((l) => l.stream === 'stdout').map((l) => l.line);
    assert.equal(stdout.length, 20000);
    assert.equal(stdout[19999], 'line 19999');
    const stderr = events.lines.filter((l) => l.stream === 'stderr').map((l) => l.line);
    assert.deepEqual(
      stderr.map((l) => l.length),
      [16384, 16384, 40000 - 2 * 16384, 'partial'.length],
    );
  });

  test('escalates to SIGKILL when a cancelled task ignores SIGTERM', async () => {
    const controller = new AbortController();
    const executor = new MinimalPipelineExecutor({ killGraceMs: 200 });
    const { events, outcome } = await run(
      [
        { name: 'stubborn', command: sh('trap "" TERM; sleep 60 & echo "::result pid=$!"; wait; wait') },
        { name: 'next', runAfter: ['stubborn'], command: ['true'] },
      ],
      { signal: controller.signal, executor },
    );
    const pid = await waitFor('the pid line', async () => {
      const line = events.lines.find((l) => l.line.startsWith('::result pid='));
      return line === undefined ? undefined : Number(line.line.slice('::result pid='.length));
    });
    const started = Date.now();
    controller.abort(new Error('cancelled by test'));
    await assert.rejects(outcome, /^Error: cancelled by test$/);
    assert.ok(Date.now() - started < 3000);
    await gone(pid);
    assert.deepEqual(
      events.tasks.map((t) => [t.task, t.state, t.reason]),
      [
        ['stubborn', 'running', undefined],
        ['stubborn', 'cancelled', 'cancelled by test'],
        ['next', 'skipped', 'runAfter task stubborn cancelled'],
      ],
    );
  });

  test('an aborted run starts nothing', async () => {
    const controller = new AbortController();
    controller.abort(new Error('core shut down'));
    const { events, outcome } = await run([{ name: 'a', command: ['true'] }], { signal: controller.signal });
    await assert.rejects(outcome, /core shut down/);
    assert.deepEqual(
      events.tasks.map((t) => [t.task, t.state, t.reason]),
      [['a', 'cancelled', 'core shut down before the task started']],
    );
  });
});
