import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileRemoteUrl, type GitRemote } from './git.js';
import type { DeploymentSpec, SiteSpec } from './model.js';
import { publishRepository } from './publish.js';

const run = promisify(execFile);

function missingGit(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v git']).status === 0) return undefined;
  if (process.env['CI'] === 'true') throw new Error('git is not installed: apt-get install git');
  return 'git is not installed: apt-get install git';
}

const image = (hex: string) => `localhost:5000/models/mnist@sha256:${hex.repeat(64)}`;
const deployment = (name: string, hex: string, version: string): DeploymentSpec => ({
  name,
  model: { name: 'mnist', version },
  image: image(hex),
  selector: { tier: 'store' },
});
const sites: SiteSpec[] = [
  { name: 'edge-1', labels: { tier: 'store' } },
  { name: 'edge-2', labels: { tier: 'store' } },
];
const author = { name: 'ai-edge test', email: 'test@aiedge.invalid' };

describe('publishing the rendered repository', { skip: missingGit() }, () => {
  let dir: string;
  let bare: string;
  let remote: GitRemote;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-publish-'));
    bare = join(dir, 'gitops.git');
    await run('git', ['init', '--bare', '-b', 'main', bare]);
    remote = { url: fileRemoteUrl(bare), branch: 'main' };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const git = async (...args: string[]) => (await run('git', ['--git-dir', bare, ...args])).stdout;

  test('a commit says what changed; publishing the same again makes no commit', async () => {
    const input = {
      deployments: [deployment('mnist', 'a', '1'), deployment('other', 'b', '3')],
      sites,
      repoUrl: remote.url,
    };
    const first = await publishRepository({
      remote,
      workDir: join(dir, 'work'),
      input,
      author,
      runId: 'run-7',
    });
    assert.ok(first.commit !== undefined);
    assert.ok(first.changed.includes('sites/edge-1/mnist.yaml'));
    const message = await git('log', '-1', '--format=%B', 'main');
    assert.match(
      message,
      /^aiedge: deploy mnist \(mnist v1, aaaaaaaaaaaa\), other \(mnist v3, bbbbbbbbbbbb\)/,
    );
    assert.match(message, /Pipeline-Run: run-7/);
    assert.match(message, /updated sites\/edge-2\/other\.yaml/);
    assert.equal(
      (await git('log', '-1', '--format=%an <%ae>', 'main')).trim(),
      'ai-edge test <test@aiedge.invalid>',
    );

    const again = await publishRepository({
      remote,
      workDir: join(dir, 'work'),
      input,
      author,
      runId: 'run-8',
    });
    assert.equal(again.commit, undefined);
    assert.equal((await git('rev-list', '--count', 'main')).trim(), '1', 'nothing changed, no commit');
  });

  test('a deployment that is no longer rendered is removed from every site', async () => {
    const input = { deployments: [deployment('mnist', 'c', '2')], sites, repoUrl: remote.url };
    const result = await publishRepository({
      remote,
      workDir: join(dir, 'work'),
      input,
      author,
      runId: 'run-9',
    });
    assert.ok(result.commit !== undefined);
    const tree = await git('ls-tree', '-r', '--name-only', 'main');
    assert.ok(!tree.includes('other.yaml'), tree);
    assert.ok(tree.includes('sites/edge-1/mnist.yaml'));
    const message = await git('log', '-1', '--format=%B', 'main');
    assert.match(message, /^aiedge: deploy mnist \(mnist v2, cccccccccccc\), remove other/);
    assert.match(message, /deleted deployments\/other\.yaml/);
  });

  test('review mode pushes aiedge/<deployment>/<short-digest> and leaves main alone', async () => {
    const mainBefore = (await git('rev-parse', 'main')).trim();
    const input = { deployments: [deployment('mnist', 'd', '3')], sites, repoUrl: remote.url };
    const result = await publishRepository({
      remote,
      workDir: join(dir, 'review'),
      input,
      author,
      review: true,
    });
    assert.equal(result.branch, 'aiedge/mnist/dddddddd');
    assert.equal((await git('rev-parse', 'main')).trim(), mainBefore);
    assert.match(await git('show', 'aiedge/mnist/dddddddd:sites/edge-1/mnist.yaml'), /@sha256:d{64}/);
  });
});
