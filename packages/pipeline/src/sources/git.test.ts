// The Git source against a bare repository made with the git CLI, reached over file://.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext as NodeTestContext } from 'node:test';
import { promisify } from 'node:util';
import { fileRemoteUrl } from '@aiedge/gitops';
import { InputError, NotFoundError } from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { GitSource, lfsPointer } from './git.js';
import { testContext } from './_test-context.js';

const run = promisify(execFile);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const hasGit = await run('git', ['--version']).then(
  () => true,
  () => false,
);
function needGit(t: NodeTestContext): boolean {
  if (hasGit) return true;
  if (process.env['CI'] === 'true') assert.fail('git not installed: apt-get install git');
  t.skip('git not installed');
  return false;
}

describe('git source (file:// bare repository)', () => {
  let tmp: string;
  let url: string;
  let first: string;
  let second: string;
  const v1 = Buffer.from(exampleModel(1));
  const v2 = Buffer.from(exampleModel(2));
  const pointer =
    'version https://git-lfs.github.com/spec/v1\n' +
    'oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n';

  before(async () => {
    if (!hasGit) return;
    tmp = await mkdtemp(join(tmpdir(), 'aiedge-git-source-'));
    const bare = join(tmp, 'models.git');
    const work = join(tmp, 'work');
    const git = (cwd: string, ...args: string[]) =>
      run('git', ['-c', 'user.name=Test', '-c', 'user.email=t@example.com', ...args], { cwd });
    await run('git', ['init', '--bare', '--initial-branch=main', bare]);
    await mkdir(join(work, 'models', 'classifier', '1'), { recursive: true });
    await git(work, 'init', '--initial-branch=main');
    await writeFile(join(work, 'models', 'classifier', '1', 'model.onnx'), v1);
    await writeFile(join(work, 'models', 'classifier', 'config.pbtxt'), 'name: "classifier"\n');
    await writeFile(join(work, 'README.md'), '# models\n');
    await mkdir(join(work, 'lfs'), { recursive: true });
    await writeFile(join(work, 'lfs', 'model.onnx'), pointer);
    await git(work, 'add', '.');
    await git(work, 'commit', '-m', 'v1');
    first = (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
    await writeFile(join(work, 'models', 'classifier', '1', 'model.onnx'), v2);
    await git(work, 'commit', '-am', 'v2');
    second = (await git(work, 'rev-parse', 'HEAD')).stdout.trim();
    await git(work, 'push', bare, 'main');
    url = fileRemoteUrl(bare);
  });
  after(async () => {
    if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
  });

  test('a subpath at the branch head, with the commit in the origin', async (t) => {
    if (!needGit(t)) return;
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new GitSource({ url, path: 'models/classifier' }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [
        { path: '1/model.onnx', bytes: v2.length, sha256: sha(v2) },
        {
          path: 'config.pbtxt',
          bytes: 'name: "classifier"\n'.length,
          sha256: sha(Buffer.from('name: "classifier"\n')),
        },
      ]);
      assert.deepEqual(await readFile(join(ctx.modelDir, '1', 'model.onnx')), v2);
      assert.equal(got.origin, `git+${url}@${second}#models/classifier`);
    } finally {
      await ctx.cleanup();
    }
  });

  test('a single file pinned to an older (abbreviated) commit', async (t) => {
    if (!needGit(t)) return;
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new GitSource({
        url,
        ref: 'main',
        commit: first.slice(0, 10),
        path: 'models/classifier/1/model.onnx',
      }).fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [{ path: 'model.onnx', bytes: v1.length, sha256: sha(v1) }]);
      assert.deepEqual(await readFile(join(ctx.modelDir, 'model.onnx')), v1);
      assert.match(got.origin, new RegExp(`@${first}#`));
    } finally {
      await ctx.cleanup();
    }
  });

  test('a Git LFS pointer is reported as such, never served', async (t) => {
    if (!needGit(t)) return;
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new GitSource({ url, path: 'lfs/model.onnx' }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof InputError);
          assert.match(
            e.message,
            /lfs\/model\.onnx at commit [0-9a-f]{12} is a Git LFS pointer, not the model: oid sha256:4d7a/,
          );
          return true;
        },
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('unknown path, commit or branch are NotFoundError', async (t) => {
    if (!needGit(t)) return;
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(new GitSource({ url, path: 'nope' }).fetch(ctx, ctx.modelDir), (e: unknown) => {
        assert.ok(e instanceof NotFoundError);
        assert.match(e.message, /spec\.source\.git\.path "nope" does not exist/);
        return true;
      });
      await assert.rejects(
        new GitSource({ url, commit: 'abcdef1234' }).fetch(ctx, ctx.modelDir),
        /spec\.source\.git\.commit abcdef1234 is not in the history/,
      );
      await assert.rejects(new GitSource({ url, ref: 'release' }).fetch(ctx, ctx.modelDir), NotFoundError);
    } finally {
      await ctx.cleanup();
    }
  });

  test('lfsPointer recognises pointer files only', () => {
    assert.equal(
      lfsPointer(Buffer.from(pointer)),
      'oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393, size 12345 bytes',
    );
    assert.equal(lfsPointer(exampleModel(1)), undefined);
  });

  test('auth env vars must be set; token and user/password are exclusive', async () => {
    assert.throws(
      () => new GitSource({ url: 'https://x', tokenEnv: 'T', usernameEnv: 'U', passwordEnv: 'P' }),
      InputError,
    );
    const ctx = await testContext();
    try {
      await assert.rejects(
        new GitSource({ url: 'https://git.example.com/m.git', tokenEnv: 'GIT_TOKEN' }).fetch(
          ctx,
          ctx.modelDir,
        ),
        /spec\.source\.git\.tokenEnv names environment variable GIT_TOKEN, which is not set/,
      );
    } finally {
      await ctx.cleanup();
    }
  });
});
