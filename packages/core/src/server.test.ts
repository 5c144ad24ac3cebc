import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { resolveCoreConfig } from './config.js';
import { startTestCore, type TestCore } from './_test-core.js';

describe('core server', () => {
  let t: TestCore;
  before(async () => {
    t = await startTestCore();
  });
  after(() => t.close());

  test('the OpenAPI document covers every API group and is served to tokens only', async () => {
    assert.equal((await t.api('/api/v1/openapi.json', { token: null })).status, 401);
    const doc = (await (await t.api('/api/v1/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, unknown>;
    };
    assert.equal(doc.openapi, '3.1.0');
    for (const path of [
      '/api/v1/sites/enroll',
      '/api/v1/sites/{site}/desired',
      '/api/v1/sites/{site}/status',
      '/api/v1/deployments',
      '/api/v1/tokens',
      '/api/v1/pipelines/runs',
    ]) {
      assert.ok(Object.hasOwn(doc.paths, path), `${path} missing from the OpenAPI document`);
    }
    assert.ok(
      !Object.keys(doc.paths).some((p) => p.startsWith('/v2')),
      'registry routes are not ai-edge API',
    );
  });

  test('errors are problem documents naming what is wrong', async () => {
    const missing = await t.api('/api/v1/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('content-type'), 'application/problem+json; charset=utf-8');
    const malformed = await t.api('/api/v1/deployments', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": ',
    });
    assert.equal(malformed.status, 400);
    const body = (await malformed.json()) as { code: string; detail: string; status: number };
    assert.equal(body.code, 'AIEDGE_ERR_MALFORMED_JSON');
    const unknown = await t.api('/api/v1/tokens', { method: 'POST', json: { kind: 'admin', colour: 'red' } });
    assert.equal(unknown.status, 400);
    assert.match(((await unknown.json()) as { detail: string }).detail, /body: unknown key 'colour'/);
    const typed = await t.api('/api/v1/tokens', {
      method: 'POST',
      json: { kind: 'admin', ttlSeconds: '3600' },
    });
    assert.equal(typed.status, 400, 'body values are not coerced');
    assert.match(((await typed.json()) as { detail: string }).detail, /body\.ttlSeconds is "3600"/);
    const big = await t.api('/api/v1/tokens', {
      method: 'POST',
      json: { kind: 'admin', description: 'x'.repeat(17 * 2 ** 20) },
    });
    assert.equal(big.status, 413);
    assert.equal((await t.api('/healthz', { token: null })).status, 200);
  });
});

test('TLS: the core serves HTTPS with the given certificate', async (t) => {
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) {
    if (process.env['CI'] === 'true') throw new Error('openssl is not installed: apt-get install -y openssl');
    t.skip('openssl is not installed: apt-get install -y openssl');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'aiedge-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const core = await startTestCore({
      config: { tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') },
    });
    try {
      assert.match(core.url, /^https:\/\//);
      const agent = new Agent({ connect: { ca: readFileSync(join(dir, 'cert.pem')) } });
      const r = await request(`${core.url}/api/v1/sites`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${core.adminToken}` },
      });
      assert.equal(r.statusCode, 200);
      await r.body.text();
      await agent.close();
    } finally {
      await core.close();
    }
    assert.throws(
      () => resolveCoreConfig({ values: { tlsCert: join(dir, 'cert.pem') } }),
      /tlsCert and tlsKey must be given together/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
