import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';
import { UnauthorizedError } from '@aiedge/protocol';
import { checkout, commitAndPush, fileRemoteUrl, listFilesAt, readFileAt } from './git.js';
import { createBareRepo, startGitServer, type TestGitServer } from './_test-git-server.js';

const run = promisify(execFile);
const author = { name: 'Test', email: 'test@example.com' };

async function gitInstalled(): Promise<boolean> {
  try {
    await run('git', ['--version']);
    return true;
  } catch {
    return false;
  }
}
const hasGit = await gitInstalled();

function needGit(t: TestContext): boolean {
  if (hasGit) return true;
  if (process.env['CI'] === 'true') assert.fail('git not installed: apt-get install git');
  t.skip('git not installed: apt-get install git');
  return false;
}

async function gitOut(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, { cwd });
  return stdout;
}

describe('git over smart HTTP (git http-backend)', { skip: false }, () => {
  let tmp: string;
  let root: string;
  let server: TestGitServer | undefined;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'aiedge-git-'));
    root = join(tmp, 'repos');
    if (hasGit) server = await startGitServer({ root });
  });
  after(async () => {
    await server?.close();
    await rm(tmp, { recursive: true, force: true });
  });

  test('clone empty repo, push, real git sees it; no-change commit is skipped', async (t) => {
    if (!needGit(t) || !server) return;
    await createBareRepo(root, 'a.git');
    const remote = { url: `${server.url}/a.git` };
    const work = join(tmp, 'a-work');
    const co = await checkout(remote, work);
    assert.equal(co.head, '');
    const res = await commitAndPush(remote, work, {
      changes: [
        { path: 'sites/edge-1/app.yaml', content: 'kind: App\n' },
        { path: 'README.md', content: 'hello\n' },
      ],
      message: 'render edge-1',
      author,
    });
    assert.match(res.commit ?? '', /^[0-9a-f]{40}$/);
    assert.equal(res.branch, 'main');
    assert.equal(res.attempts, 1);

    const clone = join(tmp, 'a-clone');
    await run('git', ['clone', '--quiet', `${server.url}/a.git`, clone]);
    assert.match(await gitOut(clone, 'log', '--format=%H %s'), new RegExp(`${res.commit} render edge-1`));
    assert.equal(await gitOut(clone, 'show', 'HEAD:sites/edge-1/app.yaml'), 'kind: App\n');

    const same = await commitAndPush(remote, work, {
      changes: [{ path: 'README.md', content: 'hello\n' }],
      message: 'nothing',
      author,
    });
    assert.equal(same.commit, undefined);
    await run('git', ['pull', '--quiet'], { cwd: clone });
    assert.equal((await gitOut(clone, 'rev-list', '--count', 'HEAD')).trim(), '1');

    // deletion + re-checkout of an existing clone
    const del = await commitAndPush(remote, work, {
      changes: [{ path: 'README.md', content: null }],
      message: 'delete readme',
      author,
    });
    assert.ok(del.commit);
    const again = await checkout(remote, work);
    assert.equal(again.head, del.commit);
    assert.deepEqual(await listFilesAt(remote, work, 'main'), ['sites/edge-1/app.yaml']);
    assert.deepEqual(await listFilesAt(remote, work, 'main', 'sites/edge-1'), ['sites/edge-1/app.yaml']);
    assert.equal(await readFileAt(remote, work, res.commit ?? '', 'README.md'), 'hello\n');
    assert.equal(await readFileAt(remote, work, 'main', 'README.md'), undefined);
  });

  test('concurrent writers both land, one retries', async (t) => {
    if (!needGit(t) || !server) return;
    await createBareRepo(root, 'c.git');
    const remote = { url: `${server.url}/c.git` };
    const seed = join(tmp, 'c-seed');
    await checkout(remote, seed);
    await commitAndPush(remote, seed, {
      changes: [{ path: 'seed', content: '0\n' }],
      message: 'seed',
      author,
    });
    const w1 = join(tmp, 'c-1');
    const w2 = join(tmp, 'c-2');
    await checkout(remote, w1);
    await checkout(remote, w2);
    const [r1, r2] = await Promise.all([
      commitAndPush(remote, w1, {
        changes: async () => [{ path: 'sites/one/a.yaml', content: 'one\n' }],
        message: 'one',
        author,
      }),
      commitAndPush(remote, w2, {
        changes: [{ path: 'sites/two/b.yaml', content: 'two\n' }],
        message: 'two',
        author,
      }),
    ]);
    assert.ok(r1.commit && r2.commit);
    assert.ok(r1.attempts > 1 || r2.attempts > 1, `attempts ${r1.attempts}/${r2.attempts}`);
    const clone = join(tmp, 'c-clone');
    await run('git', ['clone', '--quiet', `${server.url}/c.git`, clone]);
    const files = (await gitOut(clone, 'ls-files')).trim().split('\n').sort();
    assert.deepEqual(files, ['seed', 'sites/one/a.yaml', 'sites/two/b.yaml']);
    const subjects = (await gitOut(clone, 'log', '--format=%s')).trim().split('\n').sort();
    assert.deepEqual(subjects, ['one', 'seed', 'two']);
  });

  test('review mode pushes a new branch and leaves main alone', async (t) => {
    if (!needGit(t) || !server) return;
    const bare = await createBareRepo(root, 'r.git');
    const remote = { url: `${server.url}/r.git` };
    const work = join(tmp, 'r-work');
    await checkout(remote, work);
    const base = await commitAndPush(remote, work, {
      changes: [{ path: 'x', content: '1\n' }],
      message: 'base',
      author,
    });
    const review = await commitAndPush(remote, work, {
      changes: [{ path: 'x', content: '2\n' }],
      message: 'review',
      author,
      reviewBranch: 'aiedge/mnist/abcdef12',
    });
    assert.equal(review.branch, 'aiedge/mnist/abcdef12');
    const refs = await gitOut(tmp, 'ls-remote', bare);
    assert.match(refs, new RegExp(`${base.commit}\\s+refs/heads/main`));
    assert.match(refs, new RegExp(`${review.commit}\\s+refs/heads/aiedge/mnist/abcdef12`));
  });

  test('token auth: rejected without, works with; no secret in messages', async (t) => {
    if (!needGit(t)) return;
    const token = 's3cr3t-token-value';
    const authRoot = join(tmp, 'auth-repos');
    await createBareRepo(authRoot, 'p.git');
    const secured = await startGitServer({ root: authRoot, token });
    try {
      const url = `${secured.url}/p.git`;
      await assert.rejects(checkout({ url }, join(tmp, 'p-none')), (e: unknown) => {
        assert.ok(e instanceof UnauthorizedError);
        assert.match(e.message, /authentication required/);
        return true;
      });
      await assert.rejects(
        checkout({ url, auth: { token: 'wrong' } }, join(tmp, 'p-wrong')),
        (e: unknown) => {
          assert.ok(e instanceof UnauthorizedError);
          assert.ok(!e.message.includes('wrong') || !e.message.includes(token));
          return true;
        },
      );
      const work = join(tmp, 'p-work');
      const remote = { url, auth: { token } };
      await checkout(remote, work);
      const res = await commitAndPush(remote, work, {
        changes: [{ path: 'f', content: 'x\n' }],
        message: 'm',
        author,
      });
      assert.ok(res.commit);
      // push with a checkout made with the token but now without credentials
      await assert.rejects(
        commitAndPush({ url }, work, { changes: [{ path: 'f', content: 'y\n' }], message: 'm2', author }),
        (e: unknown) => {
          assert.ok(e instanceof UnauthorizedError);
          assert.ok(!e.message.includes(token));
          assert.match(e.message, /push to .* was rejected: authentication required/);
          return true;
        },
      );
    } finally {
      await secured.close();
    }
  });
});

describe('git over file://', () => {
  test('checkout, push, read older revision', async (t) => {
    if (!needGit(t)) return;
    const tmp = await mkdtemp(join(tmpdir(), 'aiedge-git-file-'));
    try {
      const bare = await createBareRepo(tmp, 'f.git');
      const remote = { url: fileRemoteUrl(bare) };
      const work = join(tmp, 'work');
      await checkout(remote, work);
      const first = await commitAndPush(remote, work, {
        changes: [{ path: 'sites/s1/m.yaml', content: 'v1\n' }],
        message: 'v1',
        author,
      });
      const second = await commitAndPush(remote, work, {
        changes: [{ path: 'sites/s1/m.yaml', content: 'v2\n' }],
        message: 'v2',
        author,
      });
      assert.equal(await readFileAt(remote, work, first.commit ?? '', 'sites/s1/m.yaml'), 'v1\n');
      assert.equal(await readFileAt(remote, work, second.commit ?? '', 'sites/s1/m.yaml'), 'v2\n');
      assert.equal(await readFileAt(remote, work, 'main', 'sites/s1/m.yaml'), 'v2\n');
      assert.equal(await gitOut(tmp, '--git-dir', bare, 'show', 'main:sites/s1/m.yaml'), 'v2\n');
      const fresh = join(tmp, 'fresh');
      const co = await checkout(remote, fresh);
      assert.equal(co.head, second.commit);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  test('rejects plain http to a non-loopback host', async () => {
    await assert.rejects(
      checkout({ url: 'http://example.com/r.git' }, join(tmpdir(), 'never')),
      /non-loopback/,
    );
  });
});
