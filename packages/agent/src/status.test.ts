import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SiteStatusReport } from '@aiedge/protocol';
import { silentLogger } from '@aiedge/telemetry';
import type { CoreRequestOptions, CoreResponse } from './_core-client.js';
import type { DeploymentReport } from './drivers/types.js';
import { StatusReporter } from './status.js';

/** A core that fails while `down` and records the reports it accepted. */
function fakeCore() {
  const accepted: SiteStatusReport[] = [];
  let attempts = 0;
  const core = {
    down: false,
    accepted,
    get attempts() {
      return attempts;
    },
    request(method: string, path: string, options: CoreRequestOptions = {}): Promise<CoreResponse> {
      attempts++;
      assert.equal(method, 'PUT');
      assert.equal(path, '/api/v1/sites/s1/status');
      if (core.down) return Promise.reject(new Error('connect ECONNREFUSED'));
      accepted.push(options.body as SiteStatusReport);
      return Promise.resolve({ status: 200, body: '{"desiredRevision":""}' });
    },
  };
  return core;
}

const report = (state: DeploymentReport['state']): DeploymentReport => ({
  deployment: 'mnist',
  model: 'mnist',
  version: '1',
  state,
  since: '2025-01-01T00:00:00.000Z',
});

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('StatusReporter', () => {
  it('sends once at start, debounces changes into one report', async (t) => {
    const core = fakeCore();
    let state: DeploymentReport['state'] = 'Pending';
    const reporter = new StatusReporter({
      client: core,
      site: 's1',
      agentVersion: '0.1.0',
      logger: silentLogger,
      collect: () => ({ appliedRevision: 'r1', deployments: [report(state)] }),
      debounceMs: 50,
      intervalMs: 60_000,
    });
    t.after(() => reporter.close());
    reporter.start();
    await until(() => core.accepted.length === 1, 'first report');
    for (const s of ['Pulling', 'Starting', 'Serving'] as const) {
      state = s;
      reporter.changed();
    }
    await until(() => core.accepted.length === 2, 'debounced report');
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(core.accepted.length, 2);
    assert.equal(core.accepted[1]?.deployments[0]?.state, 'Serving');
    assert.equal(core.accepted[1]?.appliedRevision, 'r1');
    assert.equal(core.accepted[1]?.agentVersion, '0.1.0');
  });

  it('while the core is down keeps only the newest status and sends it on reconnect', async (t) => {
    const core = fakeCore();
    core.down = true;
    let state: DeploymentReport['state'] = 'Pending';
    let applied = 'r0';
    // Retries wait on an injected sleep that only returns when told (or on a wake-up).
    const waits: number[] = [];
    const sleep = (ms: number, signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        waits.push(ms);
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
    const reporter = new StatusReporter({
      client: core,
      site: 's1',
      agentVersion: '0.1.0',
      logger: silentLogger,
      collect: () => ({ appliedRevision: applied, deployments: [report(state)] }),
      debounceMs: 10,
      intervalMs: 30_000,
      initialRetryMs: 1000,
      sleep,
    });
    t.after(() => reporter.close());
    reporter.start();
    await until(() => core.attempts === 1, 'first attempt');
    for (const [s, r] of [
      ['Pulling', 'r1'],
      ['Starting', 'r1'],
      ['Serving', 'r2'],
    ] as const) {
      state = s;
      applied = r;
      reporter.changed();
      const before = core.attempts;
      await until(() => core.attempts > before, 'retry after change');
    }
    assert.equal(core.accepted.length, 0);
    assert.ok(reporter.stats().pending);
    assert.ok(waits.every((w) => w <= 30_000));
    assert.deepEqual(waits.slice(0, 3), [1000, 2000, 4000]);
    core.down = false;
    reporter.reconnected();
    await until(() => core.accepted.length === 1, 'report after reconnect');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(core.accepted.length, 1, 'only the newest status is sent');
    assert.equal(core.accepted[0]?.appliedRevision, 'r2');
    assert.equal(core.accepted[0]?.deployments[0]?.state, 'Serving');
    assert.equal(reporter.stats().pending, false);
    assert.equal(reporter.stats().failed, 4);
  });
});
