import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { silentLogger } from '@aiedge/telemetry';
import type { CoreRequestOptions, CoreResponse } from './_core-client.js';
import { readJsonFile, writeJsonFile } from './state-file.js';
import {
  DESIRED_FILE,
  backoffDelayMs,
  runDesiredStateSync,
  type DesiredSnapshot,
  type DesiredUpdate,
  type GitReader,
} from './sync.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-sync-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const repository = { url: 'file:///nowhere/gitops.git', branch: 'main', path: 'sites/s1' };
const snapshot = (revision: string, source: 'core' | 'git' = 'core'): DesiredSnapshot => ({
  site: 's1',
  revision,
  commit: `c-${revision}`,
  repository,
  files: {},
  source,
  receivedAt: '2025-01-01T00:00:00.000Z',
});

type Answer = CoreResponse | Error;

/** A core answering from a script; records the paths asked for. */
function scriptedCore(answers: Answer[], fallback: Answer) {
  const paths: string[] = [];
  return {
    paths,
    request(_method: string, path: string, _options?: CoreRequestOptions): Promise<CoreResponse> {
      paths.push(path);
      const answer = answers.shift() ?? fallback;
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  };
}

/** An injected clock: sleeps are recorded, take no time, and the sync stops after `max` of them. */
function fakeTime(max: number) {
  const controller = new AbortController();
  const delays: number[] = [];
  let now = Date.parse('2025-01-01T00:00:00Z');
  return {
    signal: controller.signal,
    delays,
    now: () => new Date(now),
    sleep: (ms: number) => {
      delays.push(ms);
      now += ms;
      if (delays.length >= max) controller.abort();
      return Promise.resolve();
    },
  };
}

describe('desired-state sync', () => {
  it('computes capped exponential delays', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 40].map((n) => backoffDelayMs(n, 100, 1000)),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
    assert.equal(backoffDelayMs(0, 100, 1000), 0);
  });

  it('with the core unreachable backs off (capped) and reads Git each time; keeps what it has when Git fails too', async (t) => {
    const dataDir = tempDir(t);
    await writeJsonFile(join(dataDir, DESIRED_FILE), snapshot('r1'));
    const time = fakeTime(7);
    const core = scriptedCore([], new Error('connect ECONNREFUSED'));
    let gitReads = 0;
    const readGit: GitReader = (repo) => {
      gitReads++;
      assert.deepEqual(repo, repository);
      if (gitReads <= 2) return Promise.reject(new Error('git unreachable'));
      return Promise.resolve(snapshot(gitReads < 5 ? 'r1' : 'r2', 'git'));
    };
    const updates: DesiredUpdate[] = [];
    const reachability: boolean[] = [];
    await runDesiredStateSync({
      client: core,
      site: 's1',
      dataDir,
      logger: silentLogger,
      onDesired: (u) => updates.push(u),
      onCoreReachable: (r) => reachability.push(r),
      initialBackoffMs: 100,
      maxBackoffMs: 1000,
      waitSeconds: 60,
      signal: time.signal,
      sleep: time.sleep,
      now: time.now,
      readGit,
    });
    assert.deepEqual(time.delays, [100, 200, 400, 800, 1000, 1000, 1000]);
    assert.equal(gitReads, 7);
    assert.deepEqual(reachability, [false]);
    // The persisted state first, then the one Git gave once its revision changed.
    assert.deepEqual(
      updates.map((u) => [u.snapshot.revision, u.snapshot.source]),
      [
        ['r1', 'core'],
        ['r2', 'git'],
      ],
    );
    assert.equal(((await readJsonFile(join(dataDir, DESIRED_FILE))) as DesiredSnapshot).revision, 'r2');
    assert.ok(core.paths.every((p) => p.includes('known=r1') || p.includes('known=r2')));
  });

  it('long-polls the core with the known revision; 304 is no change; recovery resets the backoff', async (t) => {
    const dataDir = tempDir(t);
    const time = fakeTime(3);
    const ok = (rev: string): CoreResponse => ({
      status: 200,
      body: JSON.stringify({ ...snapshot(rev), source: undefined, receivedAt: undefined }),
    });
    const core = scriptedCore(
      [
        ok('r1'),
        { status: 304, body: '' },
        { status: 503, body: '{"message":"not published"}' },
        ok('r2'),
        { status: 502, body: '' },
        { status: 502, body: '' },
      ],
      { status: 403, body: '{"message":"site s1 is revoked"}' },
    );
    const updates: string[] = [];
    let gitReads = 0;
    await runDesiredStateSync({
      client: core,
      site: 's1',
      dataDir,
      logger: silentLogger,
      onDesired: (u) => updates.push(u.snapshot.revision),
      initialBackoffMs: 100,
      maxBackoffMs: 1000,
      waitSeconds: 5,
      signal: time.signal,
      sleep: time.sleep,
      readGit: () => {
        gitReads++;
        return Promise.reject(new Error('no git'));
      },
    });
    assert.deepEqual(updates, ['r1', 'r2']);
    assert.match(core.paths[0] ?? '', /^\/api\/v1\/sites\/s1\/desired\?waitSeconds=5$/);
    assert.match(core.paths[1] ?? '', /known=r1/);
    assert.match(core.paths[4] ?? '', /known=r2/);
    // 503 → 100; after the 200 the count restarts: 502, 502 → 100, 200. A 403 does not read Git.
    assert.deepEqual(time.delays, [100, 100, 200]);
    assert.equal(gitReads, 3);
    assert.equal(((await readJsonFile(join(dataDir, DESIRED_FILE))) as DesiredSnapshot).revision, 'r2');
  });
});
