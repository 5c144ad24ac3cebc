import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, runCli, startCli } from './_test-cli.js';

describe('aiedge core', () => {
  let data: string;
  before(async () => {
    data = await mkdtemp(join(tmpdir(), 'aiedge-core-cli-'));
  });
  after(() => rm(data, { recursive: true, force: true }));

  test('token create / list / revoke work on the store, and the token works against the running core', async () => {
    const created = await runCli(['core', 'token', 'create', '--admin', '--quiet', '--data', data]);
    assert.equal(created.code, 0, created.stderr);
    const admin = created.stdout.trim();
    assert.match(admin, /^aie_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const port = await freePort();
    const core = startCli([
      'core',
      '--data',
      data,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
    ]);
    try {
      const url = `http://127.0.0.1:${port}`;
      let health = 0;
      for (let i = 0; i < 100 && health !== 200; i++) {
        health = await fetch(`${url}/healthz`).then(
          (r) => r.status,
          () => 0,
        );
        if (health !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(health, 200);
      const sites = await fetch(`${url}/api/v1/sites`, { headers: { authorization: `Bearer ${admin}` } });
      assert.equal(sites.status, 200);
      const enrollment = await runCli([
        'core',
        'token',
        'create',
        '--enrollment',
        '--site',
        'kiosk',
        '--json',
        '--data',
        data,
      ]);
      assert.equal(enrollment.code, 0, enrollment.stderr);
      const info = JSON.parse(enrollment.stdout) as {
        id: string;
        token: string;
        kind: string;
        expiresAt: string;
      };
      assert.equal(info.kind, 'enrollment');
      assert.ok(Date.parse(info.expiresAt) > Date.now() + 23 * 3600 * 1000);
      const list = await runCli(['core', 'token', 'list', '--data', data]);
      assert.match(list.stdout, new RegExp(`${info.id}\\tenrollment\\tkiosk\\tactive`));
      assert.ok(!list.stdout.includes(info.token.slice(22)), 'no secret in the listing');
      assert.equal((await runCli(['core', 'token', 'revoke', info.id, '--data', data])).code, 0);
      const refused = await fetch(`${url}/api/v1/sites/enroll`, {
        method: 'POST',
        headers: { authorization: `Bearer ${info.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'kiosk' }),
      });
      assert.equal(refused.status, 401);
      core.child.kill('SIGTERM');
      const end = await core.done;
      assert.equal(end.code, 0, end.stderr);
      assert.ok(!end.stdout.includes(admin) && !end.stderr.includes(admin), 'the token is never logged');
      assert.ok(!end.stdout.includes(info.token), 'the token is never logged');
    } finally {
      core.child.kill('SIGKILL');
    }
  });

  test('bad configuration names the key and where it came from', async () => {
    const env = await runCli(['core', 'token', 'list', '--data', data], { AIEDGE_CORE_PORT: 'eighty' });
    assert.equal(env.code, 2);
    assert.match(env.stderr, /environment AIEDGE_CORE_PORT is "eighty": expected a number/);
    const unknown = await runCli(['core', 'token', 'list', '--data', data], { AIEDGE_CORE_PROT: '1' });
    assert.match(unknown.stderr, /AIEDGE_CORE_PROT: unknown core setting/);
    const file = join(data, 'core.yaml');
    await writeFile(file, 'port: 8080\nsiteOfflineAfterSecond: 30\n');
    const fromFile = await runCli(['core', 'token', 'list', '--config', file, '--data', data]);
    assert.equal(fromFile.code, 2);
    assert.match(fromFile.stderr, new RegExp(`config file ${file}: unknown key 'siteOfflineAfterSecond'`));
    await writeFile(file, 'maxWaitSeconds: 0\n');
    const range = await runCli(['core', 'token', 'list', '--config', file, '--data', data]);
    assert.match(range.stderr, /maxWaitSeconds is 0/);
    const both = await runCli(['core', 'token', 'create', '--admin', '--enrollment', '--data', data]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --admin or --enrollment/);
  });
});
