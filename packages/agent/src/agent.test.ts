import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { SiteStatusReport } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';
import { startAgent } from './agent.js';
import type { Driver } from './drivers/types.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-agent-loop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A stand-in core: answers the desired state once (then 304 after a short hold) and records status. */
async function fakeCore(t: TestContext) {
  const statuses: SiteStatusReport[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.method === 'PUT') {
        statuses.push(JSON.parse(body) as SiteStatusReport);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"desiredRevision":"r1"}');
      } else if (req.url?.includes('known=r1') === true) {
        setTimeout(() => res.writeHead(304).end(), 50);
      } else {
        const desired = {
          site: 's1',
          revision: 'r1',
          commit: 'c1',
          repository: { url: 'file:///none', branch: 'main', path: 'sites/s1' },
          files: {},
        };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(desired));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, statuses };
}

describe('startAgent (fake driver)', () => {
  it('reconciles a new desired state, persists the applied revision, reports, and stops without stopping servers', async (t) => {
    const dataDir = tempDir(t);
    const core = await fakeCore(t);
    const calls: string[] = [];
    const agent = await startAgent({
      dataDir,
      identity: { core: core.url, site: 's1', token: 'tok' },
      logger: silentLogger,
      telemetry: false,
      statusDebounceMs: 10,
      createDriver: (context): Driver => ({
        kind: 'process',
        start: () => {
          calls.push('start');
          return Promise.resolve();
        },
        reconcile: (desired) => {
          calls.push(`reconcile ${desired.length}`);
          context.onReport({
            deployment: 'x',
            model: 'm',
            version: '1',
            state: 'Serving',
            since: new Date().toISOString(),
          });
          return Promise.resolve([]);
        },
        reports: () => [],
        close: (options) => {
          calls.push(`close ${String(options?.stopServing === true)}`);
          return Promise.resolve();
        },
      }),
    });
    const end = Date.now() + 5000;
    while (!core.statuses.some((s) => s.appliedRevision === 'r1')) {
      if (Date.now() > end) throw new Error('no status with the applied revision');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(agent.appliedRevision(), 'r1');
    assert.equal(
      (JSON.parse(readFileSync(join(dataDir, 'applied.json'), 'utf8')) as { revision: string }).revision,
      'r1',
    );
    await agent.stop();
    assert.deepEqual(calls, ['start', 'reconcile 0', 'close false']);
  });
});
