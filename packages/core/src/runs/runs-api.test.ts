import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { PipelineRun, PipelineRunSummary, RunList, RunLogLine, RunTask } from '@aiedge/protocol';
import { startTestCore, type TestCore } from '../_test-core.js';
import {
  alive,
  createRun,
  gone,
  json,
  node,
  pipeline,
  readSse,
  sh,
  waitForLog,
  waitForStatus,
} from './_test-runs.js';

const taskOf = (run: PipelineRun, name: string): RunTask => {
  const task = run.tasks.find((x) => x.name === name);
  assert.ok(task, `task ${name} in ${JSON.stringify(run.tasks)}`);
  return task;
};
const ms = (iso: string | null) => Date.parse(iso ?? 'invalid');

describe('pipeline runs', () => {
  let t: TestCore;
  before(async () => {
    process.env['AIEDGE_TEST_LEAK'] = 'secret';
    t = await startTestCore();
  });
  after(async () => {
    delete process.env['AIEDGE_TEST_LEAK'];
    await t.close();
  });

  test('a DAG of real commands succeeds with results, timings and logs', async () => {
    const spec = pipeline('hello', [
      {
        name: 'fetch',
        command: node(
          "console.log('hello'); console.log('::result greeting=hi ' + process.env.AIEDGE_PARAM_WHO); " +
            "console.log('::result leak=' + (process.env.AIEDGE_TEST_LEAK ?? 'none')); " +
            "require('fs').writeFileSync('model.txt', 'weights')",
        ),
      },
      {
        name: 'build',
        runAfter: ['fetch'],
        command: sh('sleep 0.3; echo built; echo "::result pwd=$(pwd)"; cat model.txt'),
      },
      { name: 'inspect', runAfter: ['fetch'], command: sh('echo inspecting >&2; sleep 0.3') },
      { name: 'push', runAfter: ['build', 'inspect'], command: sh('echo "::result home=$HOME"') },
    ]);
    const created = await createRun(t, spec, { who: 'world' });
    assert.match(created.id, /^[0-9a-f]{20}$/);
    assert.equal(created.pipeline, 'hello');
    assert.ok(created.status === 'queued' || created.status === 'running');
    assert.deepEqual(
      created.tasks.map((x) => [x.name, x.state]),
      [
        ['fetch', 'pending'],
        ['build', 'pending'],
        ['inspect', 'pending'],
        ['push', 'pending'],
      ],
    );
    assert.deepEqual(created.spec, spec);
    assert.deepEqual(created.params, { who: 'world' });

    const run = await waitForStatus(t, created.id, 'succeeded', 'failed', 'cancelled');
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    assert.equal(run.reason, null);
    const workspace = join(t.data, 'runs', run.id);
    assert.deepEqual(run.results, {
      'fetch.greeting': 'hi world',
      'fetch.leak': 'none',
      'build.pwd': workspace,
      'push.home': workspace,
    });
    for (const task of run.tasks) {
      assert.equal(task.state, 'succeeded', JSON.stringify(task));
      assert.equal(task.attempt, 1);
      assert.ok(task.durationMs !== null && task.durationMs >= 0);
    }
    // runAfter is respected: build and inspect start after fetch ends, push after both.
    assert.ok(ms(taskOf(run, 'build').startedAt) >= ms(taskOf(run, 'fetch').finishedAt));
    assert.ok(ms(taskOf(run, 'inspect').startedAt) >= ms(taskOf(run, 'fetch').finishedAt));
    assert.ok(ms(taskOf(run, 'push').startedAt) >= ms(taskOf(run, 'build').finishedAt));
    assert.ok(ms(taskOf(run, 'push').startedAt) >= ms(taskOf(run, 'inspect').finishedAt));
    // build and inspect ran side by side.
    assert.ok(ms(taskOf(run, 'inspect').startedAt) < ms(taskOf(run, 'build').finishedAt));
    assert.ok(taskOf(run, 'build').durationMs! >= 250);
    assert.ok(run.durationMs !== null && run.durationMs >= 300, `run took ${run.durationMs} ms`);
    assert.ok(run.queuedMs !== null && ms(run.startedAt) >= ms(run.createdAt));
    assert.equal(existsSync(workspace), false, 'the workspace is removed after the run');

    const text = await (await t.api(`/api/v1/pipelines/runs/${run.id}/logs?follow=false`)).text();
    assert.match(text, /^\[fetch\] hello$/m);
    assert.match(text, /^\[build\] built$/m);
    assert.match(text, /^\[build\] weights$/m);
    assert.match(text, /^\[inspect\] \(stderr\) inspecting$/m);
    assert.match(text, /^\[push\] \(system\) attempt 1 of 1: sh -c /m);
  });

  test('a failing task fails the run and skips what depends on it', async () => {
    const created = await createRun(
      t,
      pipeline('failing', [
        { name: 'build', command: sh('echo boom >&2; exit 3') },
        { name: 'push', runAfter: ['build'], command: sh('echo pushed') },
        { name: 'gitops', runAfter: ['push'], command: sh('echo committed') },
        { name: 'lint', command: sh('sleep 0.5; echo linted') },
        { name: 'report', runAfter: ['lint'], command: sh('echo reported') },
      ]),
    );
    const run = await waitForStatus(t, created.id, 'succeeded', 'failed');
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'task build failed: exit code 3');
    assert.deepEqual(run.results, {});
    assert.equal(taskOf(run, 'build').state, 'failed');
    assert.equal(taskOf(run, 'build').reason, 'exit code 3');
    assert.equal(taskOf(run, 'push').state, 'skipped');
    assert.equal(taskOf(run, 'push').reason, 'runAfter task build failed');
    assert.equal(taskOf(run, 'gitops').state, 'skipped');
    assert.equal(taskOf(run, 'gitops').reason, 'runAfter task push skipped');
    // A task already running finishes; nothing new starts after a failure.
    assert.equal(taskOf(run, 'lint').state, 'succeeded');
    assert.equal(taskOf(run, 'report').state, 'skipped');
    assert.equal(taskOf(run, 'report').reason, 'the run stopped: task build failed: exit code 3');
    assert.equal(taskOf(run, 'push').startedAt, null);
  });

  test('retries a failing task, and fails it after its last attempt', async () => {
    // A counter in the workspace: attempts 1 and 2 fail, attempt 3 succeeds.
    const flaky = sh(
      'n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo "attempt $n"; echo "::result n=$n"; [ $n -ge 3 ]',
    );
    const ok = await createRun(t, pipeline('retry-ok', [{ name: 'flaky', command: flaky, retries: 2 }]));
    const okRun = await waitForStatus(t, ok.id, 'succeeded', 'failed');
    assert.equal(okRun.status, 'succeeded');
    assert.equal(taskOf(okRun, 'flaky').attempt, 3);
    assert.deepEqual(okRun.results, { 'flaky.n': '3' });
    const log = await (await t.api(`/api/v1/pipelines/runs/${ok.id}/logs?follow=false`)).text();
    assert.match(log, /attempt 1 failed: exit code 1; retrying/);
    assert.match(log, /attempt 2 failed: exit code 1; retrying/);

    const bad = await createRun(t, pipeline('retry-bad', [{ name: 'flaky', command: flaky, retries: 1 }]));
    const badRun = await waitForStatus(t, bad.id, 'succeeded', 'failed');
    assert.equal(badRun.status, 'failed');
    assert.equal(taskOf(badRun, 'flaky').attempt, 2);
    assert.equal(taskOf(badRun, 'flaky').state, 'failed');
  });

  test('a task over its timeout is killed and fails', async () => {
    const started = Date.now();
    const created = await createRun(
      t,
      pipeline('slow', [
        { name: 'hang', command: sh('echo "::result pid=$$"; exec sleep 30'), timeoutSeconds: 0.5 },
      ]),
    );
    const run = await waitForStatus(t, created.id, 'succeeded', 'failed');
    assert.ok(Date.now() - started < 10_000);
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'task hang failed: timed out after 0.5 s');
    const hang = taskOf(run, 'hang');
    assert.equal(hang.reason, 'timed out after 0.5 s');
    await gone(Number(hang.results['pid']));
  });

  test('cancels a running run: its processes are gone', async () => {
    const created = await createRun(
      t,
      pipeline('cancel-me', [
        // The sleep runs in the background: cancel must kill the whole process group.
        { name: 'hold', command: sh('sleep 60 & echo "::result child=$!"; echo "::result pid=$$"; wait') },
        { name: 'after', runAfter: ['hold'], command: sh('echo never') },
      ]),
    );
    const [, child] = await waitForLog(t, created.id, /::result child=(\d+)/);
    const [, shell] = await waitForLog(t, created.id, /::result pid=(\d+)/);
    assert.ok(alive(Number(child)) && alive(Number(shell)));
    const cancelled = await json<PipelineRun>(
      await t.api(`/api/v1/pipelines/runs/${created.id}/cancel`, { method: 'POST' }),
    );
    assert.equal(cancelled.status, 'cancelled');
    assert.match(cancelled.reason ?? '', /^cancelled by token [0-9a-f]{16}$/);
    assert.equal(taskOf(cancelled, 'hold').state, 'cancelled');
    assert.equal(taskOf(cancelled, 'after').state, 'skipped');
    await gone(Number(child));
    await gone(Number(shell));
    assert.equal(existsSync(join(t.data, 'runs', created.id)), false);

    const again = await t.api(`/api/v1/pipelines/runs/${created.id}/cancel`, { method: 'POST' });
    assert.equal(again.status, 409);
    assert.match(((await again.json()) as { detail: string }).detail, /already finished \(cancelled\)/);
  });

  test('a missing program fails its task with a reason', async () => {
    const created = await createRun(
      t,
      pipeline('missing', [{ name: 'x', command: ['/nonexistent/aiedge-tool'] }]),
    );
    const run = await waitForStatus(t, created.id, 'succeeded', 'failed');
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'task x failed: cannot run /nonexistent/aiedge-tool: ENOENT');
  });

  test('streams events: replays stored lines, follows live ones and ends with the run', async () => {
    const gate = join(await mkdtemp(join(tmpdir(), 'aiedge-gate-')), 'open');
    const created = await createRun(
      t,
      pipeline('chatty', [
        {
          name: 'talk',
          command: sh(
            'echo line 1; echo line 2; while [ ! -e "$AIEDGE_PARAM_GATE" ]; do sleep 0.05; done; for i in 3 4 5; do echo line $i; sleep 0.05; done; echo "::result said=5"',
          ),
        },
        { name: 'done', runAfter: ['talk'], command: sh('echo bye') },
      ]),
      { gate },
    );
    await waitForLog(t, created.id, /line 2/);
    // Connected while the run is running: the first two lines are replayed, the rest follow live.
    const streaming = t.api(`/api/v1/pipelines/runs/${created.id}/logs`, {
      signal: AbortSignal.timeout(20_000),
    });
    const response = await streaming;
    const reading = readSse(response);
    await new Promise((r) => setTimeout(r, 200));
    await writeFile(gate, '');
    const { events, ended } = await reading;
    assert.equal(ended, true, 'the stream closes after end');
    await rm(join(gate, '..'), { recursive: true, force: true });

    const first = events[0]!;
    assert.equal(first.event, 'status');
    assert.equal((first.data as PipelineRunSummary).status, 'running');
    const logs = events.filter((e) => e.event === 'log').map((e) => e.data as RunLogLine);
    const lines = logs.filter((l) => l.stream === 'stdout' && l.task === 'talk').map((l) => l.line);
    assert.deepEqual(lines, ['line 1', 'line 2', 'line 3', 'line 4', 'line 5', '::result said=5']);
    // seq increases by one, and is the event id.
    logs.forEach((l, i) => assert.equal(l.seq, i + 1));
    for (const e of events.filter((x) => x.event === 'log'))
      assert.equal(e.id, String((e.data as RunLogLine).seq));
    const taskEvents = events.filter((e) => e.event === 'task').map((e) => e.data as RunTask);
    assert.ok(taskEvents.some((x) => x.name === 'talk' && x.state === 'succeeded'));
    assert.ok(taskEvents.some((x) => x.name === 'done' && x.state === 'running'));
    assert.ok(taskEvents.some((x) => x.name === 'done' && x.state === 'succeeded'));
    const last = events.at(-1)!;
    assert.equal(last.event, 'end');
    assert.equal((last.data as PipelineRunSummary).status, 'succeeded');
    assert.deepEqual((last.data as PipelineRunSummary).results, { 'talk.said': '5' });
    const statuses = events
      .filter((e) => e.event === 'status')
      .map((e) => (e.data as PipelineRunSummary).status);
    assert.deepEqual(statuses, ['running', 'succeeded']);

    // After the run: the whole log again, then end at once.
    const replay = await readSse(await t.api(`/api/v1/pipelines/runs/${created.id}/logs`));
    assert.deepEqual(
      replay.events.filter((e) => e.event === 'log').map((e) => (e.data as RunLogLine).seq),
      logs.map((l) => l.seq),
    );
    assert.equal(replay.events.at(-1)?.event, 'end');

    // Resume after seq 3 with Last-Event-ID, or with ?after=.
    const resumed = await readSse(
      await t.api(`/api/v1/pipelines/runs/${created.id}/logs`, { headers: { 'last-event-id': '3' } }),
    );
    const resumedSeqs = resumed.events
      .filter((e) => e.event === 'log')
      .map((e) => (e.data as RunLogLine).seq);
    assert.deepEqual(
      resumedSeqs,
      logs.map((l) => l.seq).filter((s) => s > 3),
    );
    const afterQuery = await readSse(
      await t.api(`/api/v1/pipelines/runs/${created.id}/logs?after=${logs.length - 1}`),
    );
    assert.deepEqual(
      afterQuery.events.filter((e) => e.event === 'log').map((e) => (e.data as RunLogLine).seq),
      [logs.length],
    );
    const badResume = await t.api(`/api/v1/pipelines/runs/${created.id}/logs`, {
      headers: { 'last-event-id': 'x' },
    });
    assert.equal(badResume.status, 400);
    assert.match(((await badResume.json()) as { detail: string }).detail, /last-event-id is "x"/);
  });

  test('a stream opened on a queued run follows it from the start', async () => {
    const created = await createRun(t, pipeline('quick', [{ name: 'a', command: sh('echo one; echo two') }]));
    const { events } = await readSse(await t.api(`/api/v1/pipelines/runs/${created.id}/logs`));
    const lines = events.filter((e) => e.event === 'log').map((e) => (e.data as RunLogLine).line);
    assert.ok(lines.includes('one') && lines.includes('two'), JSON.stringify(events));
    assert.equal(events.at(-1)?.event, 'end');
    assert.equal(events.filter((e) => e.event === 'end').length, 1);
  });

  test('lists runs newest first, with filters and paging', async () => {
    const ids: string[] = [];
    for (const n of [1, 2, 3])
      ids.push(
        (await createRun(t, pipeline('listed', [{ name: 'a', command: sh(`exit ${n === 2 ? 1 : 0}`) }]))).id,
      );
    for (const id of ids) await waitForStatus(t, id, 'succeeded', 'failed');
    const page1 = await json<RunList>(await t.api('/api/v1/pipelines/runs?pipeline=listed&limit=2'));
    assert.deepEqual(
      page1.items.map((r) => r.id),
      [ids[2], ids[1]],
    );
    assert.ok(page1.nextCursor !== null);
    const page2 = await json<RunList>(
      await t.api(`/api/v1/pipelines/runs?pipeline=listed&limit=2&cursor=${page1.nextCursor}`),
    );
    assert.deepEqual(
      page2.items.map((r) => r.id),
      [ids[0]],
    );
    assert.equal(page2.nextCursor, null);
    const failed = await json<RunList>(await t.api('/api/v1/pipelines/runs?pipeline=listed&status=failed'));
    assert.deepEqual(
      failed.items.map((r) => r.id),
      [ids[1]],
    );
    const all = await json<RunList>(await t.api('/api/v1/pipelines/runs'));
    assert.ok(all.items.length >= 3);
    assert.equal((all.items[0] as unknown as Record<string, unknown>)['spec'], undefined);
    const bad = await t.api('/api/v1/pipelines/runs?status=exploded');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { detail: string }).detail, /^querystring\.status/);
  });

  test('refuses bad input, naming the path', async () => {
    const refused = async (body: unknown, pattern: RegExp) => {
      const response = await t.api('/api/v1/pipelines/runs', { method: 'POST', json: body });
      const problem = (await response.json()) as { detail: string; code: string };
      assert.equal(response.status, 400, JSON.stringify(problem));
      assert.equal(problem.code, 'AIEDGE_ERR_INVALID_INPUT');
      assert.match(problem.detail, pattern);
    };
    const ok = { name: 'a', command: ['true'] };
    await refused(
      { spec: pipeline('p', [ok, { name: 'b', runAfter: ['x'], command: ['true'] }]) },
      /^body\.spec\.spec\.tasks\[1\]\.runAfter\[0\] "x" is not a task$/,
    );
    await refused(
      { spec: pipeline('p', [{ name: 'a', command: 'echo hi' }]) },
      /^body\.spec\.spec\.tasks\[0\]\.command is "echo hi": must be array$/,
    );
    await refused(
      {
        spec: pipeline('p', [
          { name: 'a', runAfter: ['c'], command: ['true'] },
          { name: 'b', runAfter: ['a'], command: ['true'] },
          { name: 'c', runAfter: ['b'], command: ['true'] },
        ]),
      },
      /^body\.spec\.spec\.tasks: runAfter forms a cycle: a runs after c, c runs after b, b runs after a$/,
    );
    await refused(
      { spec: pipeline('p', [ok, ok]) },
      /^body\.spec\.spec\.tasks\[1\]\.name "a" is already the name of body\.spec\.spec\.tasks\[0\]$/,
    );
    await refused(
      { spec: pipeline('p', []) },
      /^body\.spec\.spec\.tasks is \[\]: must NOT have fewer than 1 items$/,
    );
    await refused({ spec: { ...pipeline('p', [ok]), kind: 'Task' } }, /^body\.spec\.kind is "Task"/);
    await refused(
      { spec: pipeline('p', [{ ...ok, shell: 'bash' }]) },
      /^body\.spec\.spec\.tasks\[0\]: unknown key 'shell'$/,
    );
    await refused(
      { spec: pipeline('p', [{ ...ok, timeoutSeconds: -1 }]) },
      /^body\.spec\.spec\.tasks\[0\]\.timeoutSeconds is -1/,
    );
    await refused({ spec: 'kind: [unclosed' }, /^body\.spec is not valid YAML or JSON/);
    await refused(
      { spec: '- a\n- b\n' },
      /^body\.spec is text whose document is \["a","b"\]: expected a pipeline document/,
    );
    await refused(
      { spec: pipeline('p', [ok]), params: { 'not-ok': 'x' } },
      /^body\.params: "not-ok" is not a valid param name/,
    );
    await refused(
      { spec: pipeline('p', [ok]), params: { a: 'x', A: 'y' } },
      /^body\.params\.A: same environment name AIEDGE_PARAM_A as body\.params\.a$/,
    );
    await refused({ params: {} }, /^body: missing required key 'spec'$/);
    await refused({ spec: pipeline('p', [ok]), extra: 1 }, /^body: unknown key 'extra'$/);

    const notJson = await t.api('/api/v1/pipelines/runs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"spec": ',
    });
    assert.equal(notJson.status, 400);

    const unknown = await t.api('/api/v1/pipelines/runs/0000000000000000000f');
    assert.equal(unknown.status, 404);
    const malformed = await t.api('/api/v1/pipelines/runs/zzz');
    assert.equal(malformed.status, 400);
    const cancelUnknown = await t.api('/api/v1/pipelines/runs/0000000000000000000f/cancel', {
      method: 'POST',
    });
    assert.equal(cancelUnknown.status, 404);
    const logsUnknown = await t.api('/api/v1/pipelines/runs/0000000000000000000f/logs');
    assert.equal(logsUnknown.status, 404);
  });

  test('accepts the spec as YAML text', async () => {
    const yaml = [
      'apiVersion: aiedge.io/v1alpha1',
      'kind: Pipeline',
      'metadata: {name: from-yaml}',
      'spec:',
      '  tasks:',
      '    - name: hi',
      '      command: [sh, -c, echo "::result p=$AIEDGE_PARAM_X"]',
    ].join('\n');
    const created = await createRun(t, yaml, { x: '42' });
    assert.equal(created.pipeline, 'from-yaml');
    const run = await waitForStatus(t, created.id, 'succeeded', 'failed');
    assert.deepEqual(run.results, { 'hi.p': '42' });
  });

  test('only admin tokens may use the runs API', async () => {
    const { token } = await t.enrollSite('runs-site');
    const asSite = await t.api('/api/v1/pipelines/runs', { token });
    assert.equal(asSite.status, 403);
    const postAsSite = await t.api('/api/v1/pipelines/runs', {
      method: 'POST',
      token,
      json: { spec: pipeline('p', [{ name: 'a', command: ['true'] }]) },
    });
    assert.equal(postAsSite.status, 403);
    const anonymous = await t.api('/api/v1/pipelines/runs', { token: null });
    assert.equal(anonymous.status, 401);
    const anonymousLogs = await t.api('/api/v1/pipelines/runs/0000000000000000000f/logs', { token: null });
    assert.equal(anonymousLogs.status, 401);
    const list = await json<RunList>(await t.api('/api/v1/pipelines/runs'));
    assert.ok(list.items.every((r) => r.pipeline !== 'p'));
  });

  test('the routes are in the OpenAPI document', async () => {
    const doc = await json<{ paths: Record<string, Record<string, { tags?: string[] }>> }>(
      await t.api('/api/v1/openapi.json'),
    );
    for (const [path, method] of [
      ['/api/v1/pipelines/runs', 'post'],
      ['/api/v1/pipelines/runs', 'get'],
      ['/api/v1/pipelines/runs/{id}', 'get'],
      ['/api/v1/pipelines/runs/{id}/logs', 'get'],
      ['/api/v1/pipelines/runs/{id}/cancel', 'post'],
    ] as const) {
      assert.deepEqual(doc.paths[path]?.[method]?.tags, ['pipelines'], `${method} ${path}`);
    }
  });
});

describe('the run pool', () => {
  let t: TestCore;
  let gateDir: string;
  before(async () => {
    t = await startTestCore({ config: { runConcurrency: 2 } });
    gateDir = await mkdtemp(join(tmpdir(), 'aiedge-gate-'));
  });
  after(async () => {
    await t.close();
    await rm(gateDir, { recursive: true, force: true });
  });

  test('runs at most runConcurrency runs at once, the others wait in FIFO order', async () => {
    const gate = join(gateDir, 'open');
    const wait = pipeline('gated', [
      { name: 'wait', command: sh('while [ ! -e "$AIEDGE_PARAM_GATE" ]; do sleep 0.05; done') },
    ]);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await createRun(t, wait, { gate })).id);
    await waitForStatus(t, ids[0]!, 'running');
    await waitForStatus(t, ids[1]!, 'running');
    await new Promise((r) => setTimeout(r, 300));
    for (const id of ids.slice(2)) {
      const run = await json<PipelineRun>(await t.api(`/api/v1/pipelines/runs/${id}`));
      assert.equal(run.status, 'queued');
      assert.equal(run.startedAt, null);
    }
    const queued = await json<RunList>(await t.api('/api/v1/pipelines/runs?status=queued&pipeline=gated'));
    assert.equal(queued.items.length, 2);
    // A queued run can be cancelled without ever starting.
    const cancelled = await json<PipelineRun>(
      await t.api(`/api/v1/pipelines/runs/${ids[3]}/cancel`, { method: 'POST' }),
    );
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.startedAt, null);
    assert.deepEqual(
      cancelled.tasks.map((x) => x.state),
      ['cancelled'],
    );

    await writeFile(gate, '');
    const runs = await Promise.all(ids.slice(0, 3).map((id) => waitForStatus(t, id, 'succeeded', 'failed')));
    assert.deepEqual(
      runs.map((r) => r.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    const firstEnd = Math.min(ms(runs[0]!.finishedAt), ms(runs[1]!.finishedAt));
    assert.ok(ms(runs[2]!.startedAt) >= firstEnd, 'the third run started only when a slot was free');
    const metrics = await (await t.api('/metrics')).text();
    assert.match(metrics, /aiedge_core_pipeline_runs_finished_total\{status="succeeded"\} 3/);
    assert.match(metrics, /aiedge_core_pipeline_runs_finished_total\{status="cancelled"\} 1/);
  });
});

describe('run log streams and shutdown', () => {
  test('a follower is ended when the core shuts down', async () => {
    const t = await startTestCore();
    try {
      const created = await createRun(
        t,
        pipeline('long', [{ name: 'hold', command: sh('echo start; exec sleep 60') }]),
      );
      await waitForLog(t, created.id, /start/);
      const response = await t.api(`/api/v1/pipelines/runs/${created.id}/logs`, {
        signal: AbortSignal.timeout(20_000),
      });
      const reading = readSse(response);
      await new Promise((r) => setTimeout(r, 200));
      await t.core.close();
      const { events, ended } = await reading;
      assert.equal(ended, true);
      assert.ok(events.some((e) => e.event === 'log' && (e.data as RunLogLine).line === 'start'));
    } finally {
      await t.close();
    }
  });
});
