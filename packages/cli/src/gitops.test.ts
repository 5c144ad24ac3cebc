import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { commitAndPush, fileRemoteUrl } from '@aiedge/gitops';
import { missingTool, runCli } from './_test-cli.js';

const run = promisify(execFile);
const digest = `sha256:${'a'.repeat(64)}`;

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.name === '.git') continue;
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-gitops-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test(
  'gitops render writes the repository, then show reads a site back from Git as the agent does',
  { skip: missingTool('git', 'apt-get install git') },
  async () => {
    await mkdir(join(dir, 'deployments'));
    await writeFile(
      join(dir, 'deployments', 'mnist.yaml'),
      `name: mnist\nmodel:\n  name: mnist\n  version: "1"\nimage: localhost:5000/models/mnist@${digest}\nselector:\n  tier: store\n`,
    );
    await writeFile(
      join(dir, 'sites.yaml'),
      '- name: edge-1\n  labels:\n    tier: store\n- name: edge-2\n  labels:\n    tier: factory\n',
    );
    const out = join(dir, 'work');
    const args = [
      'gitops',
      'render',
      '--deployments',
      join(dir, 'deployments'),
      '--sites',
      join(dir, 'sites.yaml'),
      '--out',
      out,
    ];
    const first = await runCli(args);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual(await files(out), [
      'argocd/applicationset.yaml',
      'deployments/mnist.yaml',
      'sites/edge-1/kustomization.yaml',
      'sites/edge-1/mnist.yaml',
      'sites/edge-2/kustomization.yaml',
    ]);
    const again = await runCli(args);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /no changes/);

    const bad = await runCli([
      'gitops',
      'render',
      '--deployments',
      join(dir, 'deployments'),
      '--sites',
      join(dir, 'deployments', 'mnist.yaml'),
      '--out',
      out,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /must be a YAML list of sites/);

    // Publish the rendered tree to a bare repository and read edge-1 back through Git.
    const bare = join(dir, 'gitops.git');
    await run('git', ['init', '--bare', '-b', 'main', bare]);
    const remote = { url: fileRemoteUrl(bare), branch: 'main' };
    const clone = join(dir, 'clone');
    const paths = await files(out);
    const pushed = await commitAndPush(remote, clone, {
      changes: await Promise.all(
        paths.map(async (p) => ({ path: p, content: await readFile(join(out, p), 'utf8') })),
      ),
      message: 'deploy mnist 1',
      author: { name: 'ai-edge test', email: 'test@aiedge.invalid' },
    });
    assert.ok(pushed.commit !== undefined);
    const shown = await runCli(['gitops', 'show', '--repo', remote.url, '--site', 'edge-1']);
    assert.equal(shown.code, 0, shown.stderr);
    const state = JSON.parse(shown.stdout) as {
      revision: string;
      site: string;
      deployments: Array<{ name: string; imageDigest: string; port: number }>;
    };
    assert.equal(state.revision, pushed.commit);
    assert.equal(state.site, 'edge-1');
    assert.deepEqual(
      state.deployments.map((d) => [d.name, d.imageDigest, d.port]),
      [['mnist', digest, 8080]],
    );
    const empty = await runCli(['gitops', 'show', '--repo', remote.url, '--site', 'edge-2']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual((JSON.parse(empty.stdout) as { deployments: unknown[] }).deployments, []);
  },
);
