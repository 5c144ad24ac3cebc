import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readSiteState } from '@aiedge/gitops';
import type { Deployment, DesiredState, Site } from '@aiedge/protocol';
import { startTestCore, type TestCore } from './_test-core.js';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const image = (c: string) => `127.0.0.1:5000/models/clf@${digest(c)}`;

async function json<T>(response: Response, status = 200): Promise<T> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  return JSON.parse(text) as T;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('fleet', () => {
  let t: TestCore;
  let a: string;
  let b: string;
  before(async () => {
    t = await startTestCore();
    a = (await t.enrollSite('store-a', { zone: 'eu', tier: 'small' })).token;
    b = (await t.enrollSite('store-b', { zone: 'us', tier: 'small' })).token;
    await t.enrollSite('tower-c', { zone: 'eu', tier: 'large' });
  });
  after(() => t.close());

  test('lists sites with label selectors, counts and paging', async () => {
    const all = await json<{ items: Site[]; counts: { total: number } }>(await t.api('/api/v1/sites'));
    assert.deepEqual(
      all.items.map((s) => s.name),
      ['store-a', 'store-b', 'tower-c'],
    );
    assert.equal(all.counts.total, 3);
    const eu = await json<{ items: Site[] }>(await t.api('/api/v1/sites?selector=zone%3Deu'));
    assert.deepEqual(
      eu.items.map((s) => s.name),
      ['store-a', 'tower-c'],
    );
    const notLarge = await json<{ items: Site[] }>(
      await t.api('/api/v1/sites?selector=zone%3Deu,tier!%3Dlarge'),
    );
    assert.deepEqual(
      notLarge.items.map((s) => s.name),
      ['store-a'],
    );
    const page1 = await json<{ items: Site[]; nextCursor: string }>(await t.api('/api/v1/sites?limit=2'));
    assert.deepEqual(
      page1.items.map((s) => s.name),
      ['store-a', 'store-b'],
    );
    const page2 = await json<{ items: Site[]; nextCursor: string | null }>(
      await t.api(`/api/v1/sites?limit=2&cursor=${page1.nextCursor}`),
    );
    assert.deepEqual(
      page2.items.map((s) => s.name),
      ['tower-c'],
    );
    assert.equal(page2.nextCursor, null);
    const bad = await t.api('/api/v1/sites?selector=zone%3D%3D%3Deu');
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { detail: string }).detail, /querystring\.selector term 1/);
  });

  test('enrollment tokens are one-time and a site name enrolls once', async () => {
    const created = await json<{ token: string }>(
      await t.api('/api/v1/tokens', { method: 'POST', json: { kind: 'enrollment', site: 'kiosk-1' } }),
      201,
    );
    const wrongName = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: created.token,
      json: { name: 'kiosk-2' },
    });
    assert.equal(wrongName.status, 403);
    const ok = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: created.token,
      json: { name: 'kiosk-1' },
    });
    assert.equal(ok.status, 201);
    const again = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: created.token,
      json: { name: 'kiosk-1' },
    });
    assert.equal(again.status, 401);
    const other = await json<{ token: string }>(
      await t.api('/api/v1/tokens', { method: 'POST', json: { kind: 'enrollment' } }),
      201,
    );
    const duplicate = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: other.token,
      json: { name: 'kiosk-1' },
    });
    assert.equal(duplicate.status, 409);
    // The failed enrollment did not consume the token (the transaction rolled back).
    const retry = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: other.token,
      json: { name: 'kiosk-3' },
    });
    assert.equal(retry.status, 201);
    const bad = await t.api('/api/v1/sites/enroll', {
      method: 'POST',
      token: (
        await json<{ token: string }>(
          await t.api('/api/v1/tokens', { method: 'POST', json: { kind: 'enrollment' } }),
          201,
        )
      ).token,
      json: { name: 'Bad_Name', labels: { zone: 5 } },
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { detail: string }).detail, /body\.name is "Bad_Name"/);
    for (const name of ['kiosk-1', 'kiosk-3'])
      assert.equal((await t.api(`/api/v1/sites/${name}`, { method: 'DELETE' })).status, 204);
  });

  test('status pushes update the site, its history and lastSeen', async () => {
    const since = new Date().toISOString();
    const push = (state: string, reason?: string) =>
      t.api('/api/v1/sites/store-a/status', {
        method: 'PUT',
        token: a,
        json: {
          agentVersion: '1.2.3',
          appliedRevision: 'rev-1',
          deployments: [
            {
              deployment: 'clf',
              model: 'clf',
              version: '1',
              imageDigest: digest('a'),
              state,
              since,
              ...(reason ? { reason } : {}),
            },
          ],
          resources: { cpuCores: 4, memoryTotalBytes: 8e9 },
        },
      });
    assert.equal((await push('Pulling')).status, 200);
    assert.equal((await push('Pulling')).status, 200);
    assert.equal((await push('Starting')).status, 200);
    assert.equal((await push('Serving')).status, 200);
    const site = await json<Site>(await t.api('/api/v1/sites/store-a', { token: a }));
    assert.equal(site.agentVersion, '1.2.3');
    assert.equal(site.appliedRevision, 'rev-1');
    assert.equal(site.online, true);
    assert.equal(site.deployments[0]?.state, 'Serving');
    assert.equal(site.resources?.cpuCores, 4);
    const events = await json<{ items: { type: string; detail: { from: string | null; to: string } }[] }>(
      await t.api('/api/v1/sites/store-a/events', { token: a }),
    );
    const transitions = events.items
      .filter((e) => e.type === 'deployment.state')
      .map((e) => `${e.detail.from}->${e.detail.to}`)
      .reverse();
    assert.deepEqual(transitions, ['null->Pulling', 'Pulling->Starting', 'Starting->Serving']);
    // Site B may not push for A, nor read A.
    assert.equal(
      (await t.api('/api/v1/sites/store-a/status', { method: 'PUT', token: b, json: { deployments: [] } }))
        .status,
      403,
    );
    assert.equal((await t.api('/api/v1/sites/store-a', { token: b })).status, 403);
    const bad = await t.api('/api/v1/sites/store-a/status', {
      method: 'PUT',
      token: a,
      json: { deployments: [{ deployment: 'clf', model: 'clf', version: '1', state: 'Dancing', since }] },
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { detail: string }).detail, /body\.deployments\[0\]\.state/);
  });

  test('desired state long-poll wakes on a deployment and answers 304 on timeout', async () => {
    const first = await waitFor('first publish', async () => {
      const r = await t.api('/api/v1/sites/store-b/desired', { token: b });
      if (r.status !== 200) return undefined;
      const d = (await r.json()) as DesiredState;
      return d.revision !== '' ? d : undefined;
    });
    assert.equal(first.repository.path, 'sites/store-b');
    const timeout = await t.api(`/api/v1/sites/store-b/desired?known=${first.revision}&waitSeconds=1`, {
      token: b,
    });
    assert.equal(timeout.status, 304);

    const started = Date.now();
    const waitingB = t.api(`/api/v1/sites/store-b/desired?known=${first.revision}&waitSeconds=30`, {
      token: b,
    });
    const aDesired = await json<DesiredState>(await t.api('/api/v1/sites/store-a/desired', { token: a }));
    const waitingA = t.api(`/api/v1/sites/store-a/desired?known=${aDesired.revision}&waitSeconds=3`, {
      token: a,
    });
    await waitFor('two waiters', async () => (t.core.gitops.waiting >= 2 ? true : undefined));
    const created = await json<Deployment>(
      await t.api('/api/v1/deployments', {
        method: 'POST',
        json: {
          name: 'clf',
          image: image('b'),
          model: { name: 'clf', version: '2' },
          selector: { zone: 'us' },
        },
      }),
      201,
    );
    assert.match(created.commit ?? '', /^[0-9a-f]{40}$/);
    assert.deepEqual(
      created.sites.map((s) => s.site),
      ['store-b'],
    );
    const woke = await json<DesiredState>(await waitingB);
    assert.ok(Date.now() - started < 20_000);
    assert.notEqual(woke.revision, first.revision);
    assert.equal(woke.commit, created.commit);
    const state = await readSiteState((path) => woke.files[path.slice('sites/store-b/'.length)], 'store-b');
    assert.equal(state.deployments[0]?.image, image('b'));
    assert.equal(state.deployments[0]?.model.version, '2');
    // Site A is not selected: its long-poll is not woken and times out.
    assert.equal((await waitingA).status, 304);

    // Drift until B reports the new revision as applied.
    let site = await json<Site>(await t.api('/api/v1/sites/store-b'));
    assert.equal(site.drift, true);
    await t.api('/api/v1/sites/store-b/status', {
      method: 'PUT',
      token: b,
      json: {
        appliedRevision: woke.revision,
        deployments: [
          {
            deployment: 'clf',
            model: 'clf',
            version: '2',
            imageDigest: digest('b'),
            state: 'Serving',
            since: new Date().toISOString(),
          },
        ],
      },
    });
    site = await json<Site>(await t.api('/api/v1/sites/store-b'));
    assert.equal(site.drift, false);
    const deployment = await json<Deployment>(await t.api('/api/v1/deployments/clf'));
    assert.deepEqual(deployment.summary, { sites: 1, serving: 1, failed: 0, pending: 0 });

    // Relabelling store-a into the selector changes its desired state.
    const moved = t.api(`/api/v1/sites/store-a/desired?known=${aDesired.revision}&waitSeconds=30`, {
      token: a,
    });
    await json<Site>(
      await t.api('/api/v1/sites/store-a', { method: 'PATCH', json: { labels: { zone: 'us', tier: null } } }),
    );
    const movedState = await json<DesiredState>(await moved);
    assert.ok(Object.keys(movedState.files).includes('clf.yaml'));
    const relabelled = await json<Site>(await t.api('/api/v1/sites/store-a'));
    assert.deepEqual(relabelled.labels, { zone: 'us' });
  });

  test('deployments reject unpinned images and reserved env with the field path', async () => {
    const r = await t.api('/api/v1/deployments', {
      method: 'POST',
      json: { name: 'x', image: 'reg/x:latest', model: { name: 'x', version: '1' }, selector: {} },
    });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { detail: string }).detail, /body\.image/);
    const env = await t.api('/api/v1/deployments', {
      method: 'POST',
      json: {
        name: 'x',
        image: image('c'),
        model: { name: 'x', version: '1' },
        selector: {},
        env: { AIEDGE_SERVE_PORT: '1' },
      },
    });
    assert.equal(env.status, 400);
    assert.match(((await env.json()) as { detail: string }).detail, /body\.env\.AIEDGE_SERVE_PORT/);
    assert.equal((await t.api('/api/v1/deployments/x')).status, 404);
  });

  test('the same deployment from a new pipeline run is no change and makes no commit', async () => {
    const body = {
      name: 'same',
      image: image('d'),
      model: { name: 'same', version: '1' },
      selector: { zone: 'eu' },
    };
    const first = await json<Deployment>(
      await t.api('/api/v1/deployments', { method: 'POST', json: { ...body, pipelineRun: 'run-1' } }),
      201,
    );
    const head = t.core.gitops.head;
    const again = await json<Deployment>(
      await t.api('/api/v1/deployments', { method: 'POST', json: { ...body, pipelineRun: 'run-2' } }),
    );
    assert.equal(again.commit, first.commit);
    assert.equal(t.core.gitops.head, head);
    const changed = await json<Deployment>(
      await t.api('/api/v1/deployments', {
        method: 'POST',
        json: { ...body, replicas: 2, pipelineRun: 'run-3' },
      }),
    );
    assert.notEqual(changed.commit, first.commit);
    assert.equal((await t.api('/api/v1/deployments/same', { method: 'DELETE' })).status, 204);
  });

  test('a revoked site is refused and leaves the GitOps repository', async () => {
    const { token } = await t.enrollSite('doomed', { zone: 'eu' });
    await waitFor('doomed published', async () =>
      t.core.gitops.revisionOf('doomed') !== '' ? true : undefined,
    );
    const revoked = await json<Site>(await t.api('/api/v1/sites/doomed/revoke', { method: 'POST' }));
    assert.equal(revoked.revoked, true);
    assert.equal((await t.api('/api/v1/sites/doomed/desired', { token })).status, 401);
    await waitFor('doomed removed', async () =>
      t.core.gitops.revisionOf('doomed') === '' ? true : undefined,
    );
    assert.equal((await t.api('/api/v1/sites/doomed', { method: 'DELETE' })).status, 204);
    assert.equal((await t.api('/api/v1/sites/doomed')).status, 404);
  });
});
