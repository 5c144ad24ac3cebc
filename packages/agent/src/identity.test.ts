import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { InputError, UnauthorizedError, UnavailableError } from '@aiedge/protocol';
import { agentDataDir, enrollSite, loadIdentity, parseLabels } from './identity.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-identity-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A stand-in for the core's enroll endpoint that records what it got. */
async function enrollServer(t: TestContext, status: number, answer: unknown) {
  const seen: { auth: string | undefined; body: unknown; url: string | undefined }[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ auth: req.headers.authorization, body: JSON.parse(body) as unknown, url: req.url });
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => server.close(r)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen };
}

describe('identity', () => {
  it('enrolls and stores the identity with mode 0600', async (t) => {
    const dataDir = join(tempDir(t), 'agent');
    const core = await enrollServer(t, 201, { site: {}, token: 'site-token-123' });
    const identity = await enrollSite({
      core: core.url,
      enrollmentToken: 'enr-token',
      site: 's1',
      labels: { tier: 'small' },
      kind: 'device',
      dataDir,
    });
    assert.deepEqual(core.seen, [
      {
        auth: 'Bearer enr-token',
        url: '/api/v1/sites/enroll',
        body: { name: 's1', labels: { tier: 'small' }, kind: 'device', agentVersion: '0.1.0' },
      },
    ]);
    assert.equal(identity.core, core.url.replace(/\/$/, ''));
    assert.equal(statSync(join(dataDir, 'identity.json')).mode & 0o777, 0o600);
    assert.deepEqual(await loadIdentity(dataDir), identity);
  });

  it('maps refusals and unreachable cores to errors that do not carry the token', async (t) => {
    const dataDir = tempDir(t);
    const refused = await enrollServer(t, 401, { message: 'invalid, expired or revoked token' });
    const options = { enrollmentToken: 'enr-secret', site: 's1', dataDir };
    await assert.rejects(enrollSite({ core: refused.url, ...options }), (e: unknown) => {
      assert.ok(e instanceof UnauthorizedError);
      assert.ok(!e.message.includes('enr-secret'));
      return true;
    });
    await assert.rejects(enrollSite({ core: 'http://127.0.0.1:1', ...options }), UnavailableError);
    await assert.rejects(enrollSite({ core: 'ftp://x', ...options }), /--core .*must be http/);
    await assert.rejects(enrollSite({ core: refused.url, ...options, site: 'Bad_Name' }), /--site/);
    await assert.rejects(loadIdentity(dataDir), /enroll first/);
  });

  it('parses labels and resolves the data directory', () => {
    assert.deepEqual(parseLabels(['a=1', 'example.com/b=']), { a: '1', 'example.com/b': '' });
    assert.throws(() => parseLabels(['x']), InputError);
    assert.throws(() => parseLabels(['a=1', 'a=2']), /given twice/);
    assert.throws(() => parseLabels(['a=has space']), /--label/);
    assert.equal(agentDataDir(undefined, {}), resolve('.aiedge/agent'));
    assert.equal(agentDataDir(undefined, { AIEDGE_AGENT_DATA: '/var/x' }), '/var/x');
    assert.equal(agentDataDir('/d', { AIEDGE_AGENT_DATA: '/var/x' }), '/d');
  });
});
