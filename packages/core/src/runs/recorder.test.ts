import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { RunStreamEvent } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';
import { openStore, type Store } from '../store/db.js';
import { RunRecorder, type RunRecorderOptions } from './recorder.js';

describe('run recorder', () => {
  let store: Store;
  let transactions: number;
  let counting: Store;
  beforeEach(async () => {
    store = await openStore({ sqlitePath: ':memory:' });
    transactions = 0;
    counting = { ...store, transaction: (fn) => (transactions++, store.transaction(fn)) };
    await store.db
      .insertInto('runs')
      .values({
        id: 'r1',
        pipeline: 'p',
        spec: '{}',
        params: '{}',
        status: 'queued',
        reason: null,
        created_at: new Date().toISOString(),
        started_at: null,
        finished_at: null,
        results: null,
        requested_by: null,
      })
      .execute();
    await store.db
      .insertInto('run_tasks')
      .values(
        ['a', 'b', 'c'].map((name, position) => ({
          run_id: 'r1',
          name,
          position,
          state: 'pending' as const,
          attempt: 0,
          started_at: null,
          finished_at: null,
          reason: null,
          results: '{}',
        })),
      )
      .execute();
  });
  afterEach(() => store.close());
  const open = (options: Partial<RunRecorderOptions> = {}) =>
    RunRecorder.open('r1', { store: counting, logger: silentLogger, now: () => new Date(), ...options });
  const lines = () => store.db.selectFrom('run_logs').selectAll().orderBy('seq').execute();

  test('batches lines: one transaction per interval, not per line', async () => {
    const recorder = await open({ flushIntervalMs: 100 });
    const events: RunStreamEvent[] = [];
    recorder.subscribe((e) => events.push(e));
    for (let i = 0; i < 50; i++) recorder.log('a', 'stdout', `line ${i}`);
    assert.equal(transactions, 0);
    assert.equal(events.length, 0, 'nothing is emitted before it is stored');
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(transactions, 1);
    assert.equal((await lines()).length, 50);
    assert.equal(events.length, 50);
    assert.equal(recorder.committedSeq, 50);

    // Many lines at once: a write per `flushLines`, in seq order.
    for (let i = 0; i < 2000; i++) recorder.log('a', 'stdout', `more ${i}`);
    await recorder.flush();
    assert.ok(transactions <= 6, `${transactions} transactions`);
    const stored = await lines();
    assert.equal(stored.length, 2050);
    stored.forEach((row, i) => assert.equal(row.seq, i + 1));
  });

  test('keeps the first maxLogBytes of a run, then one "log truncated" line', async () => {
    const recorder = await open({ maxLogBytes: 1000 });
    for (let i = 0; i < 100; i++) recorder.log('a', 'stdout', 'x'.repeat(99));
    await recorder.flush();
    const stored = await lines();
    assert.equal(stored.length, 11);
    assert.ok(stored.slice(0, 10).every((row) => row.line.length === 99 && row.task === 'a'));
    assert.deepEqual(
      { task: stored[10]!.task, stream: stored[10]!.stream, line: stored[10]!.line },
      {
        task: null,
        stream: 'system',
        line: "log truncated: this run's log reached its limit of 1000 bytes; later lines are not kept",
      },
    );
  });

  test('finish stores the outcome and closes the tasks the executor left open', async () => {
    const recorder = await open();
    const events: RunStreamEvent[] = [];
    recorder.subscribe((e) => events.push(e));
    await recorder.markRunning();
    recorder.task({ task: 'a', state: 'running', attempt: 1 });
    recorder.task({ task: 'a', state: 'succeeded', attempt: 1, results: { digest: 'sha256:1' } });
    recorder.task({ task: 'b', state: 'running', attempt: 1 });
    recorder.log('b', 'stderr', 'oops');
    const summary = await recorder.finish({ status: 'failed', reason: 'task b broke' });
    assert.equal(summary.status, 'failed');
    recorder.log('b', 'stdout', 'too late');
    recorder.task({ task: 'c', state: 'running', attempt: 1 });
    await recorder.flush();
    const run = await store.db.selectFrom('runs').selectAll().executeTakeFirstOrThrow();
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'task b broke');
    assert.ok(run.started_at !== null && run.finished_at !== null);
    const tasks = await store.db.selectFrom('run_tasks').selectAll().orderBy('position').execute();
    assert.deepEqual(
      tasks.map((t) => [t.name, t.state, t.reason, t.results]),
      [
        ['a', 'succeeded', null, '{"digest":"sha256:1"}'],
        ['b', 'failed', 'task b broke', '{}'],
        ['c', 'skipped', 'task b broke', '{}'],
      ],
    );
    assert.deepEqual(
      (await lines()).map((l) => l.line),
      ['oops'],
    );
    assert.deepEqual(
      events.map((e) =>
        e.event === 'task'
          ? `task:${e.data.name}:${e.data.state}`
          : e.event === 'log'
            ? `log:${e.data.line}`
            : `${e.event}:${e.data.status}`,
      ),
      [
        'status:running',
        'task:a:running',
        'task:a:succeeded',
        'task:b:running',
        'log:oops',
        'task:b:failed',
        'task:c:skipped',
        'status:failed',
        'end:failed',
      ],
    );
    assert.equal(
      (await recorder.finish({ status: 'succeeded', reason: null })).status,
      'failed',
      'the first finish wins',
    );
  });
});
