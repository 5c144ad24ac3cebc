import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunTask } from '@aiedge/protocol';
import {
  elapsedMs,
  formatParams,
  graphColumns,
  graphEdges,
  mergeTask,
  parseParams,
  parseStageFailure,
  runCounts,
} from './run-state.js';

test('the task graph puts each task one column after the latest task it runs after', () => {
  const tasks = [
    { name: 'fetch' },
    { name: 'lint', runAfter: [] },
    { name: 'inspect', runAfter: ['fetch'] },
    { name: 'build', runAfter: ['inspect', 'lint'] },
    { name: 'docs', runAfter: ['fetch'] },
    { name: 'push', runAfter: ['build', 'docs', 'not-a-task'] },
  ];
  assert.deepEqual(graphColumns(tasks), [['fetch', 'lint'], ['inspect', 'docs'], ['build'], ['push']]);
  assert.deepEqual(graphEdges(tasks), [
    ['fetch', 'inspect'],
    ['inspect', 'build'],
    ['lint', 'build'],
    ['fetch', 'docs'],
    ['build', 'push'],
    ['docs', 'push'],
  ]);
  // Without runAfter every task stands alone in the first column; a cycle does not loop.
  assert.deepEqual(graphColumns([{ name: 'a' }, { name: 'b' }]), [['a', 'b']]);
  assert.equal(
    graphColumns([
      { name: 'a', runAfter: ['b'] },
      { name: 'b', runAfter: ['a'] },
    ]).flat().length,
    2,
  );
});

test('elapsed time is the duration when finished, else the time since start', () => {
  const now = Date.parse('2026-11-02T12:00:10Z');
  assert.equal(elapsedMs({ startedAt: '2026-11-02T12:00:00Z', durationMs: 4000 }, now), 4000);
  assert.equal(elapsedMs({ startedAt: '2026-11-02T12:00:00Z', durationMs: null }, now), 10_000);
  assert.equal(elapsedMs({ startedAt: null, durationMs: null }, now), null);
});

test('a task event replaces the task in place and keeps its runAfter', () => {
  const base: RunTask = {
    name: 'build',
    state: 'pending',
    attempt: 0,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    reason: null,
    results: {},
  };
  const tasks = [
    { ...base, name: 'fetch', runAfter: [] },
    { ...base, runAfter: ['fetch'] },
  ];
  const merged = mergeTask(tasks, { ...base, state: 'running', attempt: 1 });
  assert.equal(merged[1]?.state, 'running');
  assert.deepEqual(merged[1]?.runAfter, ['fetch']);
  assert.equal(merged[0], tasks[0]);
  assert.equal(mergeTask(tasks, { ...base, name: 'new' }).length, 3);
});

test('a staging test failure reason becomes a table of differences per request', () => {
  const reason = [
    'task stage failed: staging test failed: 2 of 3 requests did not match',
    'known-scores: outputs differ:',
    '  scores[0]: expected 10, got 11 (|diff| 1.00 > atol 0.00001 + rtol 0.001 × |expected|)',
    '  label[0]: expected 2, got 1',
    '  scores: shape [1,2], expected [1,3]',
    '  label: datatype FP32, expected INT64',
    '  extra: 2 elements, expected 3',
    '  … and 4 more differences',
    'second: HTTP 400: {"error":"bad input"}',
  ].join('\n');
  const failure = parseStageFailure(reason);
  assert.ok(failure);
  assert.equal(failure.summary, 'staging test failed: 2 of 3 requests did not match');
  assert.equal(failure.cases.length, 2);
  const [first, second] = failure.cases;
  assert.equal(first?.name, 'known-scores');
  assert.equal(first?.problem, 'outputs differ');
  assert.deepEqual(first?.differences, [
    {
      where: 'scores[0]',
      expected: '10',
      got: '11',
      note: '|diff| 1.00 > atol 0.00001 + rtol 0.001 × |expected|',
    },
    { where: 'label[0]', expected: '2', got: '1', note: '' },
    { where: 'scores shape', expected: '[1,3]', got: '[1,2]', note: '' },
    { where: 'label datatype', expected: 'INT64', got: 'FP32', note: '' },
    { where: 'extra elements', expected: '3', got: '2', note: '' },
  ]);
  assert.deepEqual(first?.other, ['… and 4 more differences']);
  assert.equal(second?.name, 'second');
  assert.equal(second?.problem, 'HTTP 400: {"error":"bad input"}');
  assert.equal(parseStageFailure('task build failed: exit code 2'), undefined);
  assert.equal(parseStageFailure(null), undefined);
});

test('run counts by status; params as name=value lines, with errors that name the line', () => {
  assert.deepEqual(runCounts([{ status: 'running' }, { status: 'failed' }, { status: 'failed' }]), {
    queued: 0,
    running: 1,
    succeeded: 0,
    failed: 2,
    cancelled: 0,
  });
  const parsed = parseParams(
    '# model\nmodelVersion = 2\n\nrepository=127.0.0.1:8080/models/x\nbad line\nmodelVersion=3',
  );
  assert.deepEqual(parsed.params, { modelVersion: '3', repository: '127.0.0.1:8080/models/x' });
  assert.deepEqual(parsed.errors, [
    'line 5 "bad line": expected name=value',
    'line 6: parameter modelVersion is given twice',
  ]);
  assert.equal(formatParams({ a: '1', b: 'x=y' }), 'a=1\nb=x=y');
  assert.deepEqual(parseParams(formatParams({ a: '1', b: 'x=y' })).params, { a: '1', b: 'x=y' });
});
