// Every route group × every kind of caller: admin, site A, site B, no token, expired, revoked.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createToken } from './auth.js';
import { startTestCore, type TestCore } from './_test-core.js';

type Who = 'admin' | 'siteA' | 'siteB' | 'none' | 'expired' | 'revoked';
/** `ok` = any 2xx; otherwise the exact status. */
type Expect = 'ok' | 401 | 403;

interface Case {
  readonly group: string;
  readonly method: string;
  readonly path: string | (() => string);
  readonly body?: () => unknown;
  readonly contentType?: string;
  readonly admin: Expect;
  readonly siteA: Expect;
  readonly siteB: Expect;
}

let n = 0;
const unique = () => `m${++n}`;
const digest = `sha256:${'e'.repeat(64)}`;
const status = () => ({
  deployments: [
    {
      deployment: 'clf',
      model: 'clf',
      version: '1',
      imageDigest: digest,
      state: 'Serving',
      since: new Date().toISOString(),
    },
  ],
});
const pipeline = () => ({
  spec: {
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'noop' },
    spec: { tasks: [{ name: 'noop', command: [process.execPath, '-e', ''] }] },
  },
});

const cases: Case[] = [
  { group: 'sites', method: 'GET', path: '/api/v1/sites', admin: 'ok', siteA: 403, siteB: 403 },
  { group: 'sites', method: 'GET', path: '/api/v1/sites/site-a', admin: 'ok', siteA: 'ok', siteB: 403 },
  {
    group: 'sites',
    method: 'PATCH',
    path: '/api/v1/sites/site-a',
    body: () => ({ labels: { x: '1' } }),
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  {
    group: 'sites',
    method: 'GET',
    path: '/api/v1/sites/site-a/events',
    admin: 'ok',
    siteA: 'ok',
    siteB: 403,
  },
  {
    group: 'status',
    method: 'PUT',
    path: '/api/v1/sites/site-a/status',
    body: status,
    admin: 'ok',
    siteA: 'ok',
    siteB: 403,
  },
  {
    group: 'desired',
    method: 'GET',
    path: '/api/v1/sites/site-a/desired',
    admin: 'ok',
    siteA: 'ok',
    siteB: 403,
  },
  {
    group: 'enroll',
    method: 'POST',
    path: '/api/v1/sites/enroll',
    body: () => ({ name: unique() }),
    admin: 403,
    siteA: 403,
    siteB: 403,
  },
  {
    group: 'sites',
    method: 'POST',
    path: '/api/v1/sites/site-z/revoke',
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  {
    group: 'tokens',
    method: 'POST',
    path: '/api/v1/tokens',
    body: () => ({ kind: 'enrollment' }),
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  { group: 'tokens', method: 'GET', path: '/api/v1/tokens', admin: 'ok', siteA: 403, siteB: 403 },
  {
    group: 'deployments',
    method: 'POST',
    path: '/api/v1/deployments',
    body: () => ({
      name: 'clf',
      image: `reg/clf@${digest}`,
      model: { name: 'clf', version: '1' },
      selector: { ring: 'a' },
    }),
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  { group: 'deployments', method: 'GET', path: '/api/v1/deployments', admin: 'ok', siteA: 403, siteB: 403 },
  {
    group: 'model registry',
    method: 'GET',
    path: '/api/model_registry/v1alpha3/registered_models',
    admin: 'ok',
    siteA: 'ok',
    siteB: 'ok',
  },
  {
    group: 'model registry',
    method: 'POST',
    path: '/api/model_registry/v1alpha3/registered_models',
    body: () => ({ name: unique() }),
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  { group: 'runs', method: 'GET', path: '/api/v1/pipelines/runs', admin: 'ok', siteA: 403, siteB: 403 },
  {
    group: 'runs',
    method: 'POST',
    path: '/api/v1/pipelines/runs',
    body: pipeline,
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  {
    group: 'telemetry',
    method: 'POST',
    path: '/v1/metrics',
    body: () => ({ resourceMetrics: [] }),
    admin: 'ok',
    siteA: 'ok',
    siteB: 'ok',
  },
  {
    group: 'telemetry',
    method: 'POST',
    path: '/v1/traces',
    body: () => ({ resourceSpans: [] }),
    admin: 'ok',
    siteA: 'ok',
    siteB: 'ok',
  },
  {
    group: 'telemetry',
    method: 'GET',
    path: '/api/v1/telemetry/summary?site=site-a',
    admin: 'ok',
    siteA: 'ok',
    siteB: 403,
  },
  { group: 'registry', method: 'GET', path: '/v2/', admin: 'ok', siteA: 'ok', siteB: 'ok' },
  {
    group: 'registry',
    method: 'POST',
    path: '/v2/models/clf/blobs/uploads/',
    admin: 'ok',
    siteA: 403,
    siteB: 403,
  },
  { group: 'metrics', method: 'GET', path: '/metrics', admin: 'ok', siteA: 403, siteB: 403 },
  { group: 'openapi', method: 'GET', path: '/api/v1/openapi.json', admin: 'ok', siteA: 'ok', siteB: 'ok' },
  { group: 'sites', method: 'DELETE', path: '/api/v1/sites/site-y', admin: 'ok', siteA: 403, siteB: 403 },
];

let t: TestCore;
const tokens = {} as Record<Who, string | undefined>;
before(async () => {
  t = await startTestCore();
  tokens.admin = t.adminToken;
  tokens.siteA = (await t.enrollSite('site-a', { ring: 'a' })).token;
  tokens.siteB = (await t.enrollSite('site-b', { ring: 'b' })).token;
  await t.enrollSite('site-y');
  await t.enrollSite('site-z');
  tokens.none = undefined;
  const { db } = t.core.context.store;
  tokens.expired = (
    await createToken(db, { kind: 'admin', ttlSeconds: 60, now: new Date(Date.now() - 120_000) })
  ).token;
  const revoked = await createToken(db, { kind: 'admin' });
  assert.equal((await t.api(`/api/v1/tokens/${revoked.id}`, { method: 'DELETE' })).status, 204);
  tokens.revoked = revoked.token;
});
after(() => t.close());

// Callers without rights first, so destructive admin calls (revoke, delete) run last.
const order: Who[] = ['none', 'expired', 'revoked', 'siteB', 'siteA', 'admin'];

test('auth matrix: admin, site A, site B, none, expired, revoked over every route group', async () => {
  const failures: string[] = [];
  let checked = 0;
  for (const who of order) {
    for (const c of cases) {
      const expected: Expect = who === 'admin' || who === 'siteA' || who === 'siteB' ? c[who] : 401;
      const path = typeof c.path === 'function' ? c.path() : c.path;
      const body = c.body?.();
      const response = await t.api(path, {
        method: c.method,
        token: tokens[who] ?? null,
        ...(body !== undefined ? { json: body } : {}),
      });
      const text = await response.text();
      checked++;
      const ok =
        expected === 'ok' ? response.status >= 200 && response.status < 300 : response.status === expected;
      if (!ok)
        failures.push(
          `${who} ${c.method} ${path} (${c.group}): expected ${expected}, got ${response.status} ${text.slice(0, 160)}`,
        );
      if (response.status === 401 && !path.startsWith('/v2')) {
        assert.match(
          response.headers.get('www-authenticate') ?? '',
          /Bearer/,
          `${c.method} ${path} 401 challenge`,
        );
      }
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${checked} checks failed`);
  // /healthz is the one public route.
  for (const who of order)
    assert.equal((await t.api('/healthz', { token: tokens[who] ?? null })).status, 200);
});

test('tokens are never stored in clear and never echoed back by listings', async () => {
  const { db } = t.core.context.store;
  const rows = await db.selectFrom('tokens').selectAll().execute();
  const secrets = Object.values(tokens).filter((x): x is string => x !== undefined);
  for (const row of rows)
    for (const s of secrets) assert.ok(!JSON.stringify(row).includes(s.slice(21)), 'secret stored in clear');
  const listing = await (await t.api('/api/v1/tokens')).text();
  for (const s of secrets) assert.ok(!listing.includes(s.slice(21)), 'secret in the listing');
});
