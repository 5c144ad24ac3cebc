import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import type { PipelineRun, RunTask } from '@aiedge/protocol';
import { createToken } from '../auth.js';
import { resolveCoreConfig } from '../config.js';
import { startTestCore } from '../_test-core.js';
import { openCoreStore } from '../server.js';
import {
  alive,
  createRun,
  gone,
  json,
  pipeline,
  sh,
  waitForLog,
  waitForStatus,
  type Api,
} from './_test-runs.js';

const states = (run: PipelineRun) =>
  Object.fromEntries(run.tasks.map((x: RunTask) => [x.name, [x.state, x.reason]]));

/** A pipeline whose `hold` task prints its pid, then sleeps until killed. */
const holding = pipeline('holding', [
  { name: 'fetch', command: sh('echo fetched') },
  { name: 'hold', runAfter: ['fetch'], command: sh('echo "::result pid=$$"; exec sleep 120') },
  { name: 'push', runAfter: ['hold'], command: sh('echo pushed') },
]);
const quick = pipeline('quick', [{ name: 'a', command: sh('echo "::result ran=yes"') }]);

describe('runs across core restarts', () => {
  test('shutdown fails running runs ("core shut down") and keeps queued ones for the next start', async () => {
    const data = await mkdtemp(join(tmpdir(), 'aiedge-core-'));
    try {
      const first = await startTestCore({ data, config: { runConcurrency: 1 } });
      let running: PipelineRun;
      let queued: PipelineRun;
      let pid: number;
      try {
        running = await createRun(first, holding);
        queued = await createRun(first, quick);
        pid = Number((await waitForLog(first, running.id, /::result pid=(\d+)/))[1]);
        assert.equal((await waitForStatus(first, queued.id, 'queued')).status, 'queued');
      } finally {
        await first.close();
      }
      await gone(pid); // the task process is stopped at shutdown

      const second = await startTestCore({ data });
      try {
        const stopped = await json<PipelineRun>(await second.api(`/api/v1/pipelines/runs/${running.id}`));
        assert.equal(stopped.status, 'failed');
        assert.equal(stopped.reason, 'core shut down');
        assert.deepEqual(states(stopped), {
          fetch: ['succeeded', null],
          hold: ['cancelled', 'core shut down'],
          push: ['skipped', 'runAfter task hold cancelled'],
        });
        const resumed = await waitForStatus(second, queued.id, 'succeeded', 'failed');
        assert.equal(resumed.status, 'succeeded');
        assert.deepEqual(resumed.results, { 'a.ran': 'yes' });
      } finally {
        await second.close();
      }
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });

  test('after a crash (kill -9), running runs fail naming their task and the queued one runs', async () => {
    const data = await mkdtemp(join(tmpdir(), 'aiedge-core-'));
    const store = await openCoreStore(resolveCoreConfig({ values: { data, logLevel: 'silent' } }));
    const admin = await createToken(store.db, { kind: 'admin' });
    await store.close();
    // A core in its own process (default runConcurrency: 2), so it can really be killed.
    const child = spawn(
      process.execPath,
      [
        '--conditions=@aiedge/source',
        '--import',
        'tsx',
        new URL('../_test-core-main.ts', import.meta.url).pathname,
        data,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const orphans: number[] = [];
    try {
      const url = await (async () => {
        for await (const line of createInterface({ input: child.stdout })) {
          const m = /^listening (\S+)$/.exec(line);
          if (m !== null) return m[1]!;
        }
        throw new Error('the core process exited before listening');
      })();
      child.stdout.resume();
      const crashed: Api = {
        api: (path, init = {}) => {
          const { json: body, token: _token, ...rest } = init;
          return fetch(`${url}${path}`, {
            ...rest,
            headers: {
              authorization: `Bearer ${admin.token}`,
              ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            },
            ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          });
        },
      };
      const running = [await createRun(crashed, holding), await createRun(crashed, holding)];
      const queued = await createRun(crashed, quick);
      for (const run of running) {
        orphans.push(Number((await waitForLog(crashed, run.id, /::result pid=(\d+)/))[1]));
        assert.ok(existsSync(join(data, 'runs', run.id)));
      }
      assert.equal((await waitForStatus(crashed, queued.id, 'queued')).status, 'queued');

      child.kill('SIGKILL');
      await exited;
      // Nothing stopped the tasks: they outlive the killed core (each in its own process group).
      for (const pid of orphans) {
        assert.equal(alive(pid), true);
        process.kill(-pid, 'SIGKILL');
      }

      const restarted = await startTestCore({ data });
      try {
        for (const run of running) {
          const failed = await json<PipelineRun>(await restarted.api(`/api/v1/pipelines/runs/${run.id}`));
          assert.equal(failed.status, 'failed');
          assert.equal(failed.reason, 'core stopped while the run was running (at task hold)');
          assert.ok(failed.finishedAt !== null);
          assert.deepEqual(states(failed), {
            fetch: ['succeeded', null],
            hold: ['failed', 'core stopped while the task was running'],
            push: ['skipped', 'core stopped while the run was running (at task hold)'],
          });
          assert.equal(existsSync(join(data, 'runs', run.id)), false, 'the stale workspace is removed');
          const log = await (
            await restarted.api(`/api/v1/pipelines/runs/${run.id}/logs?follow=false`)
          ).text();
          assert.match(log, /^\[fetch\] fetched$/m, 'logs written before the crash are kept');
        }
        const resumed = await waitForStatus(restarted, queued.id, 'succeeded', 'failed');
        assert.equal(resumed.status, 'succeeded');
        assert.deepEqual(resumed.results, { 'a.ran': 'yes' });
      } finally {
        await restarted.close();
      }
    } finally {
      child.kill('SIGKILL');
      for (const pid of orphans) if (alive(pid)) process.kill(-pid, 'SIGKILL');
      await rm(data, { recursive: true, force: true });
    }
  });
});
