// The dashboard's static files at `/`: a build on disk (the files the web build writes), the SPA
// fallback, caching, and the server's own paths left alone; and the page that says how to build it.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { resolveDashboardDir } from './dashboard.js';
import { startTestCore, type TestCore } from './_test-core.js';

const INDEX =
  '<!doctype html><html><head><script type="module" src="/assets/index-Ab12Cd34.js"></script></head><body><div id="root"></div></body></html>';
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});\n`;

describe('dashboard served by the core', () => {
  let dir: string;
  let t: TestCore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-dashboard-'));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'index.html'), INDEX);
    await writeFile(join(dir, 'assets', 'index-Ab12Cd34.js'), SCRIPT);
    await writeFile(join(dir, 'assets', 'index-Ab12Cd34.js.gz'), gzipSync(SCRIPT));
    await writeFile(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    t = await startTestCore({ config: { dashboardDir: dir } });
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('/ and client routes answer the app, without a token, with a strict CSP and no caching', async () => {
    for (const path of ['/', '/sites/edge-1', '/pipelines/runs/r-1', '/models', '/sign-in?next=%2Fmodels']) {
      const r = await t.api(path, { token: null });
      assert.equal(r.status, 200, path);
      assert.match(r.headers.get('content-type') ?? '', /^text\/html/, path);
      assert.equal(r.headers.get('cache-control'), 'no-cache', path);
      assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'self'/);
      assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
      assert.equal(await r.text(), INDEX, path);
    }
    const head = await t.api('/', { method: 'HEAD', token: null });
    assert.equal(head.status, 200);
  });

  test('hashed assets are cached for a year and sent gzip-compressed to clients that accept it', async () => {
    const plain = await request(`${t.url}/assets/index-Ab12Cd34.js`, {
      headers: { 'accept-encoding': 'identity' },
    });
    assert.equal(plain.statusCode, 200);
    assert.match(String(plain.headers['content-type']), /javascript/);
    assert.equal(plain.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(await plain.body.text(), SCRIPT);
    const gz = await request(`${t.url}/assets/index-Ab12Cd34.js`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(gz.statusCode, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok(Number(gz.headers['content-length']) < SCRIPT.length / 10, 'compressed');
    await gz.body.dump();
    const icon = await t.api('/favicon.svg', { token: null });
    assert.equal(icon.status, 200);
    assert.equal(icon.headers.get('cache-control'), 'no-cache');
  });

  test('missing files are 404 problem documents, not the app; nothing outside the build is served', async () => {
    for (const path of ['/assets/index-Zz99.js', '/robots.txt', '/sites/logo.png']) {
      const r = await t.api(path, { token: null });
      assert.equal(r.status, 404, path);
      assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/, path);
    }
    // Encoded dot segments (a URL parser resolves plain ones before the request is sent).
    for (const path of [
      '/..%2f..%2f..%2fetc%2fpasswd',
      '/assets/..%2f..%2fcore.db',
      '/a/%2e%2e%2fpackage.json',
    ]) {
      const r = await request(`${t.url}${path}`);
      const body = await r.body.text();
      assert.ok(r.statusCode === 404 || r.statusCode === 403, `${path}: ${r.statusCode}`);
      assert.ok(!body.includes('root:'), path);
    }
  });

  test('the API, the registry, OTLP, /metrics and /healthz are untouched', async () => {
    const api = await t.api('/api/v1/sites', { token: null });
    assert.equal(api.status, 401);
    const unknown = await t.api('/api/v1/no-such-thing', { token: null });
    assert.equal(unknown.status, 404);
    assert.match(
      ((await unknown.json()) as { detail: string }).detail,
      /no route for GET \/api\/v1\/no-such-thing/,
    );
    assert.equal((await t.api('/api/v1/sites')).status, 200);
    assert.equal((await t.api('/metrics', { token: null })).status, 401);
    assert.equal((await t.api('/metrics')).status, 200);
    assert.equal((await t.api('/v1/metrics', { token: null })).status, 404);
    assert.equal((await t.api('/v2/', { token: null })).status, 401);
    assert.equal((await t.api('/healthz', { token: null })).status, 200);
    const post = await t.api('/sites/edge-1', { method: 'POST', token: null, json: {} });
    assert.equal(post.status, 404);
    // The OpenAPI document does not list the dashboard.
    const doc = (await (await t.api('/api/v1/openapi.json')).json()) as { paths: Record<string, unknown> };
    assert.ok(!Object.keys(doc.paths).some((p) => p === '/' || p === '/*'), Object.keys(doc.paths).join());
  });
});

describe('dashboard not built', () => {
  let dir: string;
  let t: TestCore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'aiedge-dashboard-empty-'));
    t = await startTestCore({ config: { dashboardDir: join(dir, 'dist') } });
  });
  after(async () => {
    await t.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('/ says how to build it, and serves it as soon as it is built', async () => {
    const r = await t.api('/', { token: null });
    assert.equal(r.status, 503);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    const page = await r.text();
    assert.match(page, /The dashboard is not built/);
    assert.match(page, /npm run build -w packages\/web/);
    assert.ok(page.includes(join(dir, 'dist', 'index.html')), 'names the missing file');
    assert.equal((await t.api('/fleet', { token: null })).status, 503);
    assert.equal((await t.api('/api/v1/sites')).status, 200);

    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'index.html'), INDEX);
    const built = await t.api('/', { token: null });
    assert.equal(built.status, 200);
    assert.equal(await built.text(), INDEX);
  });

  test('by default the build is the dist folder of the installed @aiedge/web', () => {
    const root = resolve(new URL('../../..', import.meta.url).pathname);
    assert.equal(resolveDashboardDir(undefined), join(root, 'packages', 'web', 'dist'));
    assert.equal(resolveDashboardDir('rel/dir'), resolve('rel/dir'));
  });
});
