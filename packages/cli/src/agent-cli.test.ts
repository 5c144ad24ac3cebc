// End-to-end tests of `aiedge agent enroll` and `aiedge agent run` against a real core: enrollment,
// status, desired state by long-poll, Git fallback while the core is down, and reconnection.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createToken, resolveCoreConfig, startCore, type RunningCore } from '@aiedge/core';
import { commitAndPush, fileRemoteUrl, subtreeIds } from '@aiedge/gitops';
import type { Site } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';
import { until } from './_test-agent-world.js';
import { freePort, runCli, startCli } from './_test-cli.js';

function tempDir(t: TestContext, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function core(data: string, port: number): Promise<RunningCore> {
  return startCore({
    config: resolveCoreConfig({ values: { host: '127.0.0.1', port, logLevel: 'silent', data } }),
    logger: silentLogger,
  });
}

async function api<T>(url: string, token: string, method = 'GET', body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

describe('aiedge agent', () => {
  it('enroll → run → status, long-poll deployment, Git fallback with the core down, reconnect', async (t) => {
    const coreData = tempDir(t, 'aiedge-agent-core-');
    const agentData = join(tempDir(t, 'aiedge-agent-'), 'agent');
    const port = await freePort();
    let running: RunningCore | undefined = await core(coreData, port);
    t.after(() => running?.close());
    const admin = await createToken(running.context.store.db, { kind: 'admin' });
    const enrollment = await createToken(running.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });

    // A bad label is an input error naming the flag; nothing is written.
    const bad = await runCli([
      'agent',
      'enroll',
      '--core',
      running.url,
      '--token',
      enrollment.token,
      '--site',
      's1',
      '--label',
      'novalue',
      '--data',
      agentData,
    ]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--label "novalue": expected key=value/);

    const enrolled = await runCli([
      'agent',
      'enroll',
      '--core',
      running.url,
      '--token',
      enrollment.token,
      '--site',
      's1',
      '--label',
      'tier=small',
      '--kind',
      'device',
      '--data',
      agentData,
    ]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
    assert.match(enrolled.stdout, /site s1 enrolled/);
    const identityPath = join(agentData, 'identity.json');
    assert.equal(statSync(identityPath).mode & 0o777, 0o600);
    const identity = JSON.parse(readFileSync(identityPath, 'utf8')) as { token: string; site: string };
    assert.equal(identity.site, 's1');
    for (const secret of [identity.token, enrollment.token]) {
      assert.ok(!enrolled.stdout.includes(secret) && !enrolled.stderr.includes(secret), 'no token printed');
    }

    // The real process driver: the deployment's image does not exist, so it ends Failed, which
    // settles the reconcile all the same.
    const agent = startCli([
      'agent',
      'run',
      '--data',
      agentData,
      '--driver',
      'process',
      '--telemetry-port',
      '0',
      '--status-interval',
      '1',
      '--log-level',
      'debug',
    ]);
    t.after(() => {
      if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    });
    const site = () => api<Site>(`${running!.url}/api/v1/sites/s1`, admin.token);
    await until('the site online with a status', async () => {
      const s = await site();
      return s.online && s.statusUpdatedAt !== null && s.resources !== null ? s : undefined;
    });
    const first = await site();
    assert.ok((first.resources?.cpuCores ?? 0) > 0);
    assert.ok((first.resources?.diskFreeBytes ?? 0) > 0);
    assert.equal(first.agentVersion, '0.1.0');

    const image = `127.0.0.1:${port}/models/mnist@sha256:${'a'.repeat(64)}`;
    const created = Date.now();
    await api(`${running.url}/api/v1/deployments`, admin.token, 'POST', {
      name: 'mnist',
      image,
      model: { name: 'mnist', version: '1' },
      selector: { tier: 'small' },
    });
    const converged = await until('the applied revision to converge', async () => {
      const s = await site();
      return s.desiredRevision !== '' && s.appliedRevision === s.desiredRevision ? s : undefined;
    });
    assert.ok(Date.now() - created < 15_000, 'delivered by long-poll, not by a slow poll');
    assert.equal(converged.deployments[0]?.deployment, 'mnist');

    // Core down: the agent keeps running and reads the core's Git repository directly.
    await running.close();
    running = undefined;
    const checkoutDir = tempDir(t, 'aiedge-agent-git-');
    const remote = { url: fileRemoteUrl(join(coreData, 'gitops.git')), branch: 'main' };
    const pushed = await commitAndPush(remote, checkoutDir, {
      changes: [{ path: 'sites/s1/NOTES.md', content: 'maintenance window: Sunday\n' }],
      message: 'note for s1',
      author: { name: 'test', email: 'test@example.com' },
    });
    assert.ok(pushed.commit !== undefined);
    const gitRevision = (await subtreeIds(checkoutDir, pushed.commit, 'sites')).get('s1');
    assert.ok(gitRevision !== undefined && gitRevision !== converged.desiredRevision);
    await until(
      'the Git revision applied while the core is down',
      async () => {
        const applied = JSON.parse(await readFile(join(agentData, 'applied.json'), 'utf8')) as {
          revision: string;
        };
        return applied.revision === gitRevision ? true : undefined;
      },
      30_000,
    );
    assert.equal(agent.child.exitCode, null, 'the agent keeps running');

    // Core back: the newest status reaches it.
    const downAt = new Date().toISOString();
    running = await core(coreData, port);
    await until(
      'a status after the core came back',
      async () => {
        const s = await site();
        return s.statusUpdatedAt !== null &&
          s.statusUpdatedAt > downAt &&
          s.online &&
          s.appliedRevision === s.desiredRevision
          ? s
          : undefined;
      },
      40_000,
    );

    agent.child.kill('SIGTERM');
    const done = await agent.done;
    assert.equal(done.code, 0, done.stderr);
    for (const secret of [identity.token, enrollment.token]) {
      assert.ok(!done.stdout.includes(secret) && !done.stderr.includes(secret), 'no token in the logs');
    }
    assert.match(done.stderr, /core unreachable/);
  });
});
