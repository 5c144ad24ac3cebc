import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { RunLogStream } from '@aiedge/protocol';
import { parsePipeline, type PipelineSpec } from './spec.js';
import { planTasks, runPipeline, runTask, type RunEvents, type TaskTransition } from './runner.js';
import type { ProgressEvent, TaskImplementation, TaskKind } from './types.js';

const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});
async function workspace(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'aiedge-runner-test-'));
  temps.push(dir);
  return dir;
}

type TaskDef = {
  name: string;
  uses: TaskKind;
  runAfter?: string[];
  retries?: number;
  timeoutSeconds?: number;
};

function pipeline(tasks?: TaskDef[]): PipelineSpec {
  return parsePipeline({
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'test' },
    spec: {
      model: { name: 'm', version: '1' },
      source: { local: { path: './model' } },
      image: { repository: '127.0.0.1:5000/m' },
      ...(tasks !== undefined ? { tasks } : {}),
    },
  });
}

function collect(): RunEvents & {
  transitions: TaskTransition[];
  lines: { task: string | null; stream: RunLogStream; line: string }[];
  progressed: { task: string; event: ProgressEvent }[];
} {
  const transitions: TaskTransition[] = [];
  const lines: { task: string | null; stream: RunLogStream; line: string }[] = [];
  const progressed: { task: string; event: ProgressEvent }[] = [];
  return {
    transitions,
    lines,
    progressed,
    task: (t) => transitions.push(t),
    log: (task, stream, line) => lines.push({ task, stream, line }),
    progress: (task, event) => progressed.push({ task, event }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every built-in kind doing nothing but succeed (so tests never load the real tasks). */
function noop(): Record<TaskKind, TaskImplementation> {
  const ok: TaskImplementation = async () => ({});
  return { fetch: ok, inspect: ok, build: ok, stage: ok, push: ok, gitops: ok };
}

describe('runner: the task graph', () => {
  test('default graph runs in order fetch → … → gitops, state is handed on and results collected', async () => {
    const order: string[] = [];
    const events = collect();
    const tasks = noop();
    tasks.fetch = async (ctx) => {
      order.push('fetch');
      ctx.state.fetched = { dir: join(ctx.workspace, 'model'), files: [], origin: 'local:x' };
      ctx.log('fetched');
      ctx.progress({ item: 'model.onnx', bytes: 10, total: 20 });
      return { origin: 'local:x' };
    };
    tasks.inspect = async (ctx) => {
      order.push('inspect');
      assert.equal(ctx.state.fetched?.origin, 'local:x');
      return { sha256: 'abc' };
    };
    for (const k of ['build', 'stage', 'push', 'gitops'] as const) {
      tasks[k] = async () => {
        order.push(k);
        return { done: k };
      };
    }
    const ws = await workspace();
    const result = await runPipeline(pipeline(), { workspace: ws, tasks, events, runId: 'r1' });
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(order, ['fetch', 'inspect', 'build', 'stage', 'push', 'gitops']);
    assert.equal(result.results['fetch.origin'], 'local:x');
    assert.equal(result.results['inspect.sha256'], 'abc');
    assert.equal(result.results['gitops.done'], 'gitops');
    assert.deepEqual(
      events.transitions.filter((t) => t.task === 'fetch').map((t) => t.state),
      ['running', 'succeeded'],
    );
    assert.deepEqual(events.transitions.find((t) => t.task === 'fetch' && t.state === 'succeeded')?.results, {
      origin: 'local:x',
    });
    assert.ok(events.lines.some((l) => l.task === 'fetch' && l.stream === 'stdout' && l.line === 'fetched'));
    assert.deepEqual(events.progressed, [
      { task: 'fetch', event: { item: 'model.onnx', bytes: 10, total: 20 } },
    ]);
    const saved = JSON.parse(await readFile(join(ws, 'state.json'), 'utf8'));
    assert.equal(saved.fetched.origin, 'local:x');
  });

  test('independent tasks run in parallel; a join waits for both', async () => {
    let running = 0;
    let peak = 0;
    const order: string[] = [];
    const slow =
      (name: string): TaskImplementation =>
      async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(80);
        running--;
        order.push(name);
        return {};
      };
    const tasks = noop();
    tasks.fetch = slow('a');
    tasks.inspect = slow('b');
    tasks.build = async () => {
      order.push('join');
      return {};
    };
    const spec = pipeline([
      { name: 'a', uses: 'fetch' },
      { name: 'b', uses: 'inspect' },
      { name: 'join', uses: 'build', runAfter: ['a', 'b'] },
    ]);
    const started = Date.now();
    const result = await runPipeline(spec, { workspace: await workspace(), tasks });
    assert.equal(result.status, 'succeeded');
    assert.equal(peak, 2);
    assert.equal(order.at(-1), 'join');
    assert.ok(Date.now() - started < 150, 'a and b overlapped');
  });

  test('a cycle or a self-reference is refused with the path', () => {
    assert.throws(
      () =>
        planTasks(
          pipeline([
            { name: 'a', uses: 'fetch', runAfter: ['b'] },
            { name: 'b', uses: 'inspect', runAfter: ['a'] },
          ]),
        ),
      /pipeline\.spec\.tasks: runAfter forms a cycle: a runs after b, b runs after a/,
    );
    assert.throws(
      () => planTasks(pipeline([{ name: 'a', uses: 'fetch', runAfter: ['a'] }])),
      /pipeline\.spec\.tasks\[0\]\.runAfter\[0\] "a" is the task itself/,
    );
  });
});

describe('runner: failures, retries, timeouts, cancel', () => {
  test('after a failure nothing new starts; the rest is skipped with a reason', async () => {
    const events = collect();
    const tasks = noop();
    let buildStarted = false;
    let parallelFinished = false;
    tasks.fetch = async () => {
      throw new Error('bucket not found');
    };
    tasks.stage = async () => {
      await sleep(50);
      parallelFinished = true;
      return { ok: 'yes' };
    };
    tasks.build = async () => {
      buildStarted = true;
      return {};
    };
    const spec = pipeline([
      { name: 'fetch', uses: 'fetch' },
      { name: 'side', uses: 'stage' },
      { name: 'inspect', uses: 'inspect', runAfter: ['fetch'] },
      { name: 'build', uses: 'build', runAfter: ['inspect'] },
      { name: 'late', uses: 'build', runAfter: ['side'] },
    ]);
    const result = await runPipeline(spec, { workspace: await workspace(), tasks, events });
    assert.equal(result.status, 'failed');
    assert.equal(result.reason, 'task fetch failed: bucket not found');
    assert.equal(buildStarted, false);
    assert.equal(parallelFinished, true, 'a running task finishes');
    const byName = Object.fromEntries(result.tasks.map((t) => [t.name, t]));
    assert.equal(byName['fetch']?.state, 'failed');
    assert.equal(byName['fetch']?.reason, 'bucket not found');
    assert.equal(byName['side']?.state, 'succeeded');
    assert.equal(byName['inspect']?.state, 'skipped');
    assert.equal(byName['inspect']?.reason, 'runAfter task fetch failed');
    assert.equal(byName['build']?.reason, 'runAfter task inspect skipped');
    assert.equal(byName['late']?.state, 'skipped');
    assert.match(byName['late']?.reason ?? '', /the run stopped: task fetch failed/);
    const skipped = events.transitions.filter((t) => t.state === 'skipped');
    assert.deepEqual(
      skipped.map((t) => t.attempt),
      [0, 0, 0],
    );
  });

  test('retries: a task that fails twice then succeeds, with attempts reported', async () => {
    const events = collect();
    const tasks = noop();
    let calls = 0;
    tasks.fetch = async () => {
      calls++;
      if (calls < 3) throw new Error(`flaky ${calls}`);
      return { n: String(calls) };
    };
    const spec = pipeline([{ name: 'fetch', uses: 'fetch', retries: 2 }]);
    const result = await runPipeline(spec, { workspace: await workspace(), tasks, events });
    assert.equal(result.status, 'succeeded');
    assert.equal(result.results['fetch.n'], '3');
    assert.equal(result.tasks[0]?.attempts, 3);
    assert.deepEqual(
      events.transitions.map((t) => `${t.state}#${t.attempt}`),
      ['running#1', 'running#2', 'running#3', 'succeeded#3'],
    );
    assert.ok(
      events.lines.some((l) => l.stream === 'system' && /attempt 1 failed: flaky 1; retrying/.test(l.line)),
    );

    calls = -10;
    const failed = await runPipeline(pipeline([{ name: 'fetch', uses: 'fetch', retries: 1 }]), {
      workspace: await workspace(),
      tasks,
    });
    assert.equal(failed.status, 'failed');
    assert.equal(failed.tasks[0]?.attempts, 2);
    assert.equal(failed.reason, 'task fetch failed: flaky -8');
  });

  test('timeout: the task signal aborts and the attempt fails, even when the task ignores it', async () => {
    const tasks = noop();
    let sawAbort = false;
    tasks.fetch = (ctx) =>
      new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => (sawAbort = true));
        setTimeout(() => resolve({}), 5000).unref();
      });
    const started = Date.now();
    const result = await runPipeline(pipeline([{ name: 'fetch', uses: 'fetch', timeoutSeconds: 1 }]), {
      workspace: await workspace(),
      tasks,
    });
    assert.equal(result.status, 'failed');
    assert.equal(result.reason, 'task fetch failed: timed out after 1 s');
    assert.ok(sawAbort);
    assert.ok(Date.now() - started < 2500);
  });

  test('cancel: running tasks are aborted and cancelled, the rest cancelled before start', async () => {
    const events = collect();
    const tasks = noop();
    const controller = new AbortController();
    tasks.fetch = (ctx) =>
      new Promise((_, reject) => {
        ctx.signal.addEventListener('abort', () => reject(new Error('stopped')));
        setTimeout(() => controller.abort(new Error('cancelled by admin')), 30);
      });
    const result = await runPipeline(pipeline(), {
      workspace: await workspace(),
      tasks,
      events,
      signal: controller.signal,
    });
    assert.equal(result.status, 'cancelled');
    assert.equal(result.reason, 'cancelled by admin');
    assert.equal(result.tasks[0]?.state, 'cancelled');
    assert.equal(result.tasks[0]?.reason, 'cancelled by admin');
    assert.ok(result.tasks.slice(1).every((t) => t.state === 'cancelled' && t.attempts === 0));
    assert.match(result.tasks[1]?.reason ?? '', /before the task started/);
    assert.equal(events.transitions.filter((t) => t.state === 'running').length, 1);
  });
});

describe('runner: state across processes', () => {
  test('runTask runs one task alone against the workspace an earlier task wrote', async () => {
    const ws = await workspace();
    const spec = pipeline();
    const tasks = noop();
    tasks.fetch = async (ctx) => {
      ctx.state.fetched = { dir: join(ctx.workspace, 'model'), files: [], origin: 'local:y' };
      return { origin: 'local:y' };
    };
    let seen: string | undefined;
    tasks.inspect = async (ctx) => {
      seen = ctx.state.fetched?.origin;
      ctx.state.inspected = {
        modelPath: 'm.onnx',
        layout: 'file',
        bytes: 1,
        sha256: 'f'.repeat(64),
        inputs: [],
        outputs: [],
      };
      return { sha256: 'f'.repeat(64) };
    };
    const first = await runTask(spec, 'fetch', { workspace: ws, tasks });
    assert.equal(first.state, 'succeeded');
    assert.deepEqual(first.results, { origin: 'local:y' });
    const second = await runTask(spec, 'inspect', { workspace: ws, tasks });
    assert.equal(second.state, 'succeeded');
    assert.equal(seen, 'local:y');
    const saved = JSON.parse(await readFile(join(ws, 'state.json'), 'utf8'));
    assert.equal(saved.inspected.sha256, 'f'.repeat(64));
    assert.equal(saved.fetched.origin, 'local:y');
    await assert.rejects(
      runTask(spec, 'nope', { workspace: ws, tasks }),
      /task "nope" is not a task of the pipeline/,
    );
  });

  test('runTask reports a failure as the outcome, and the store defaults to <workspace>/store', async () => {
    const ws = await workspace();
    const tasks = noop();
    let root = '';
    tasks.build = async (ctx) => {
      root = ctx.store.root;
      throw new Error('no base image');
    };
    const outcome = await runTask(pipeline(), 'build', { workspace: ws, tasks });
    assert.equal(outcome.state, 'failed');
    assert.equal(outcome.reason, 'no base image');
    assert.equal(root, join(ws, 'store'));
  });
});
