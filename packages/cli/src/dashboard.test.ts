// The dashboard in a real browser (Debian chromium driven by playwright-core) against a core
// populated by the quickstart: two sites serving the example model through the registry pipeline,
// with telemetry. Each page shows what the API says; a run started from the UI shows live progress
// to success; a wrong token is refused. Screenshots go to test-results/dashboard/.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { Deployment, PipelineRun, RunList, TelemetrySummary } from '@aiedge/protocol';
import { missingTool } from './_test-cli.js';
import { startQuickstart, type RunningQuickstart } from './quickstart.js';

const root = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
/** Where the screenshots of each page are written. */
const SHOTS = join(root, 'test-results', 'dashboard');
const CHROMIUM = '/usr/bin/chromium';
/** Runs in the page: the controls with no accessible name (no aria-label, label element or text). */
const UNNAMED_CONTROLS = `[...document.querySelectorAll('button, a[href], input, select, textarea')]
  .filter((el) => (el.getAttribute('aria-label') ?? '') === '' && (el.labels?.length ?? 0) === 0
    && (el.textContent ?? '').trim() === '' && el.closest('label') === null)
  .map((el) => el.outerHTML.slice(0, 120))`;
const skip = existsSync(CHROMIUM)
  ? undefined
  : missingTool('chromium', 'apt-get install chromium (Debian), used at /usr/bin/chromium');

describe('dashboard in chromium, against the quickstart', { skip: skip ?? false }, () => {
  let dir: string;
  let qs: RunningQuickstart;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const r = await fetch(`${qs.coreUrl}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${qs.adminToken}`, 'content-type': 'application/json' },
    });
    assert.ok(r.ok, `${path}: ${r.status} ${await r.clone().text()}`);
    return (await r.json()) as T;
  };
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  before(async () => {
    // The core serves packages/web/dist (npm ci builds it); build it when this checkout has not.
    if (!existsSync(join(root, 'packages', 'web', 'dist', 'index.html'))) {
      const built = spawnSync('npm', ['run', 'build', '-w', 'packages/web'], { cwd: root, encoding: 'utf8' });
      assert.equal(built.status, 0, `building the dashboard failed:\n${built.stdout}\n${built.stderr}`);
    }
    await mkdir(SHOTS, { recursive: true });
    dir = await mkdtemp(join(tmpdir(), 'aiedge-dashboard-'));
    qs = await startQuickstart({ dataDir: join(dir, 'qs'), port: 0, sites: 2, logLevel: 'warn' });
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // A fresh profile per launch (playwright makes one); no background traffic to the closed network.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: qs.coreUrl });
    page = await context.newPage();
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await qs?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('sign-in refuses a wrong token with a clear message, keeps a good one out of the URL', async () => {
    await page.goto('/');
    await page.waitForURL(/\/sign-in$/);
    const token = page.getByLabel('Token');
    await token.fill('hunter2');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('This is not an ai-edge token').waitFor();
    // Well-formed, but not a token of this core.
    await token.fill(`aie_0123456789abcdef_${'A'.repeat(43)}`);
    await page.getByRole('button', { name: 'Sign in' }).click();
    const refused = page.getByRole('alert');
    await refused.getByText('The core refused this token: invalid, expired or revoked token').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('aiedge.token')"), null);
    await shot('sign-in-refused');

    await token.fill(qs.adminToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    assert.ok(!page.url().includes('aie_'), page.url());
    assert.equal(await page.evaluate("sessionStorage.getItem('aiedge.token')"), qs.adminToken);
  });

  test('fleet: both sites online, serving the example model, in sync, with counts; filter by label', async () => {
    const sites = await api<{ counts: { total: number; online: number; drift: number } }>('/api/v1/sites');
    assert.equal(sites.counts.total, 2);
    await page.goto('/');
    const table = page.getByRole('table', { name: 'Sites' });
    for (const site of qs.sites) {
      const row = table.locator(`tr[data-site="${site.name}"]`);
      await row.getByText('Online').waitFor();
      await row.getByText(`${qs.model.name} v${qs.model.version}`).waitFor();
      await row.getByText('Serving').waitFor();
      await row.getByText('Healthy').waitFor();
      await row.getByText(/in sync at [0-9a-f]{8}/).waitFor();
    }
    const counts = page.getByRole('region', { name: 'Fleet counts' });
    const stat = (label: string) => counts.locator('.stat', { hasText: label }).locator('.stat-value');
    assert.equal(await stat('Sites').textContent(), String(sites.counts.total));
    assert.equal(await stat('Online').textContent(), String(sites.counts.online));
    assert.equal(await stat('Drifting').textContent(), String(sites.counts.drift));
    assert.equal(await stat('Model versions serving').textContent(), '1');
    await page.waitForTimeout(300); // let the live indicator settle for the picture
    await shot('fleet');

    // Click a site's own label: the filter keeps that site only.
    const first = qs.sites[0]!.name;
    await table
      .locator(`tr[data-site="${first}"]`)
      .getByRole('button', { name: `Filter by label aiedge.io/site=${first}` })
      .click();
    await page.waitForURL(/selector=/);
    await counts.locator('.stat', { hasText: 'Sites matching' }).getByText('1').waitFor();
    assert.equal(await table.locator('tbody tr').count(), 1);
    await page.getByRole('searchbox', { name: 'Filter by label' }).fill('tier=nowhere');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.getByText('No site matches this filter').waitFor();
    await page.getByRole('searchbox', { name: 'Filter by label' }).fill('tier=');
    await page.getByRole('button', { name: 'Clear filter' }).click();
    await table.locator('tbody tr').nth(1).waitFor();

    // Live: a label set through the API shows up without a reload, and goes again.
    const navigations: string[] = [];
    const onNavigate = (f: { url(): string }) => navigations.push(f.url());
    page.on('framenavigated', onNavigate);
    const second = qs.sites[1]!.name;
    const label = async (value: string | null) =>
      api(`/api/v1/sites/${second}`, { method: 'PATCH', body: JSON.stringify({ labels: { zone: value } }) });
    await label('lab');
    await table.locator(`tr[data-site="${second}"]`).getByText('zone=lab').waitFor({ timeout: 15_000 });
    await label(null);
    await table
      .locator(`tr[data-site="${second}"]`)
      .getByText('zone=lab')
      .waitFor({ state: 'detached', timeout: 15_000 });
    page.off('framenavigated', onNavigate);
    assert.deepEqual(navigations, [], 'the fleet page updated without a reload');

    // Tablet width: the page fits; wide tables scroll inside their frame.
    await page.setViewportSize({ width: 820, height: 1180 });
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `the fleet page is ${overflow}px wider than a tablet`);
    await shot('fleet-tablet');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  test('site: deployment with its state history, telemetry numbers and charts per model', async () => {
    const site = qs.sites[0]!.name;
    await page.goto('/');
    await page.getByRole('link', { name: site, exact: true }).click();
    await page.waitForURL(new RegExp(`/sites/${site}$`));
    const deployment = page.getByRole('article', { name: `Deployment ${qs.deployment}` });
    await deployment.locator('.card-header').getByText('Serving').waitFor();
    const history = deployment.getByRole('list', { name: `State history of ${qs.deployment}` });
    await history.getByText('Serving').waitFor();
    // The numbers match the telemetry API (the charts' range, one hour).
    const summary = await api<TelemetrySummary>(`/api/v1/telemetry/summary?site=${site}&windowSeconds=3600`);
    const model = summary.models.find((m) => m.model === qs.model.name);
    assert.ok(model !== undefined && model.requests > 0, JSON.stringify(summary));
    const requests = page.locator(`tr[data-model="${qs.model.name}"] [data-metric="requests"]`);
    await requests.waitFor();
    let shown = Number((await requests.textContent())?.replace(/,/g, ''));
    for (let i = 0; i < 40 && shown < model.requests; i++) {
      await page.waitForTimeout(500);
      shown = Number((await requests.textContent())?.replace(/,/g, ''));
    }
    assert.ok(
      shown >= model.requests && shown > 0,
      `dashboard shows ${shown} requests, API ${model.requests}`,
    );
    const charts = page.getByRole('article', { name: `Charts of ${qs.model.name}` });
    for (const title of ['Request rate', 'Latency', 'Errors']) {
      await charts.getByRole('img', { name: new RegExp(`^${title}: `) }).waitFor();
    }
    const rate = await charts.getByRole('img', { name: /^Request rate: / }).getAttribute('aria-label');
    assert.match(rate ?? '', /latest requests\/s/, 'the rate chart has data');
    await page.getByRole('heading', { name: 'Resources' }).waitFor();
    await shot('site');
  });

  test('deployments: per-site progress and the GitOps commit', async () => {
    const { items } = await api<{ items: Deployment[] }>('/api/v1/deployments');
    const expected = items.find((d) => d.name === qs.deployment);
    assert.ok(expected?.commit, JSON.stringify(items));
    await page.getByRole('link', { name: 'Deployments' }).click();
    const card = page.getByRole('article', { name: `Deployment ${qs.deployment}` });
    await card.getByText(`2 of 2 sites serving`).waitFor();
    assert.equal(await card.locator('[data-commit] code').getAttribute('title'), expected.commit);
    assert.equal(await card.locator('[data-commit] code').textContent(), expected.commit.slice(0, 12));
    for (const site of qs.sites)
      await card.locator(`tr[data-site="${site.name}"]`).getByText('Serving').waitFor();
    await shot('deployments');
  });

  test('models: the registered model, its version and the image built from it', async () => {
    const { items } = await api<{ items: Deployment[] }>('/api/v1/deployments');
    const digest = items[0]!.spec.image.split('@')[1]!;
    await page.getByRole('link', { name: 'Models' }).click();
    const card = page.getByRole('article', { name: `Model ${qs.model.name}` });
    const version = card.locator(`tr[data-version="${qs.model.version}"]`);
    await version.waitFor();
    await version.getByText('onnx').first().waitFor();
    assert.equal(await version.locator('[data-image] code[title]').first().getAttribute('title'), digest);
    await shot('models');
  });

  test(
    'pipelines: a run started from the UI shows live progress to success',
    { timeout: 300_000 },
    async () => {
      const before = await api<RunList>('/api/v1/pipelines/runs');
      const quickstartRun = before.items.find((r) => r.status === 'succeeded');
      assert.ok(quickstartRun !== undefined, JSON.stringify(before));
      await page.getByRole('link', { name: 'Pipelines' }).click();
      const row = page.locator(`tr[data-run="${quickstartRun.id}"]`);
      await row.getByText('succeeded').waitFor();
      await shot('pipelines');

      // The quickstart's run: its graph, all six tasks succeeded, its results.
      await row.getByRole('link').click();
      const graph = page.getByRole('list', { name: 'Task graph' });
      for (const task of ['fetch', 'inspect', 'build', 'stage', 'push', 'gitops'])
        await graph.locator(`[data-task="${task}"][data-state="succeeded"]`).waitFor();
      await page.locator('[data-result="build.digest"]').waitFor();

      // Run it again from the UI: the form is filled with its spec and params; start it.
      await page.getByRole('button', { name: 'Run again' }).click();
      await page.getByText(`Filled in from run ${quickstartRun.id}`).waitFor();
      assert.match(await page.getByLabel('Pipeline spec (YAML or JSON)').inputValue(), /"kind": "Pipeline"/);
      assert.match(await page.getByLabel(/^Parameters/).inputValue(), /modelVersion=1/);
      await page.getByRole('button', { name: 'Start run' }).click();
      await page.waitForURL(/\/pipelines\/runs\/[^/]+$/);
      const id = decodeURIComponent(page.url().split('/').pop()!);
      assert.notEqual(id, quickstartRun.id);

      // Live: tasks change state and log lines arrive without a reload.
      const navigations: string[] = [];
      page.on('framenavigated', (f) => navigations.push(f.url()));
      await graph.locator('[data-state="running"]').first().waitFor({ timeout: 120_000 });
      await shot('run-live');
      const linesWhileRunning = Number(await page.getByLabel('Run log').getAttribute('data-lines'));
      await page.getByRole('status').getByText('Finished').waitFor({ timeout: 240_000 });
      const final = await api<PipelineRun>(`/api/v1/pipelines/runs/${id}`);
      assert.equal(final.status, 'succeeded', final.reason ?? '');
      for (const task of final.tasks)
        await graph.locator(`[data-task="${task.name}"][data-state="succeeded"]`).waitFor();
      const lines = Number(await page.getByLabel('Run log').getAttribute('data-lines'));
      assert.ok(lines > linesWhileRunning, `log lines grew live (${linesWhileRunning} → ${lines})`);
      assert.deepEqual(navigations, [], 'no reload while the run progressed');
      assert.equal(
        await page.locator('[data-result="build.digest"] td code').textContent(),
        final.results['build.digest'],
      );
      await page.getByRole('heading', { name: /succeeded/ }).waitFor();
      await shot('run');
    },
  );

  test(
    'a pasted spec whose staging test fails shows the expected-vs-actual diff',
    { timeout: 300_000 },
    async () => {
      const { items } = await api<RunList>('/api/v1/pipelines/runs?status=succeeded');
      const template = await api<PipelineRun>(`/api/v1/pipelines/runs/${items.at(-1)!.id}`);
      // The example model answers scores [10, 20, 30] for the features [1, 2, 3, 4]; expect 31.
      const spec = structuredClone(template.spec) as {
        spec: { test: { requests: { expected: { name: string; data: number[] }[] }[] } };
      };
      const scores = spec.spec.test.requests[0]!.expected.find((e) => e.name === 'scores')!;
      const actual = scores.data[2]!;
      scores.data[2] = actual + 1;
      await page.goto('/pipelines/new');
      await page.getByLabel('Pipeline spec (YAML or JSON)').fill(JSON.stringify(spec, null, 2));
      await page.getByLabel(/^Parameters/).fill(
        Object.entries(template.params)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n'),
      );
      await page.getByRole('button', { name: 'Start run' }).click();
      await page.waitForURL(/\/pipelines\/runs\/[^/]+$/);
      await page.getByRole('status').getByText('Finished').waitFor({ timeout: 240_000 });
      const graph = page.getByRole('list', { name: 'Task graph' });
      await graph.locator('[data-task="stage"][data-state="failed"]').waitFor();
      await graph.locator('[data-task="push"][data-state="skipped"]').waitFor();
      const diff = page.getByRole('table', { name: 'Differences of known-scores' });
      const row = diff.getByRole('row', { name: /scores\[2\]/ });
      await row.waitFor();
      assert.equal(await row.locator('.diff-expected').textContent(), String(actual + 1));
      assert.equal(await row.locator('.diff-got').textContent(), String(actual));
      await shot('run-failed');
    },
  );

  test('a token revoked while signed in signs the tab out, saying why; another tab stays signed in', async () => {
    const created = await api<{ id: string; token: string }>('/api/v1/tokens', {
      method: 'POST',
      body: JSON.stringify({ kind: 'admin', description: 'dashboard test' }),
    });
    const other = await browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: qs.coreUrl });
    try {
      const tab = await other.newPage();
      await tab.goto('/deployments');
      await tab.waitForURL(/\/sign-in\?next=%2Fdeployments$/);
      await tab.getByLabel('Token').fill(created.token);
      await tab.getByRole('button', { name: 'Sign in' }).click();
      await tab.waitForURL(/\/deployments$/);
      await tab.getByRole('heading', { name: 'Deployments' }).waitFor();
      const revoked = await fetch(`${qs.coreUrl}/api/v1/tokens/${created.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${qs.adminToken}` },
      });
      assert.equal(revoked.status, 204);
      // The page's next refresh is refused: back to sign-in with the reason, the token forgotten.
      await tab
        .getByText('You were signed out: invalid, expired or revoked token.')
        .waitFor({ timeout: 20_000 });
      assert.equal(await tab.evaluate("sessionStorage.getItem('aiedge.token')"), null);
      // The first tab has its own session.
      await page.goto('/deployments');
      await page.getByRole('heading', { name: 'Deployments' }).waitFor();
    } finally {
      await other.close();
    }
  });

  test('every page has accessible names on its controls, and fits 1280 px and a tablet', async () => {
    const { items } = await api<RunList>('/api/v1/pipelines/runs');
    const pages = [
      '/',
      `/sites/${qs.sites[0]!.name}`,
      '/pipelines',
      `/pipelines/runs/${items[0]!.id}`,
      '/pipelines/new',
      '/models',
      '/deployments',
    ];
    for (const width of [1280, 820]) {
      await page.setViewportSize({ width, height: 1000 });
      for (const path of pages) {
        await page.goto(path);
        await page.locator('main h1').first().waitFor();
        await page.waitForTimeout(300);
        const unnamed = await page.evaluate<string[]>(UNNAMED_CONTROLS);
        assert.deepEqual(unnamed, [], `${path}: controls without an accessible name`);
        const overflow = await page.evaluate<number>(
          'document.documentElement.scrollWidth - window.innerWidth',
        );
        assert.ok(overflow <= 0, `${path} is ${overflow}px wider than a ${width}px window`);
      }
    }
    await shot('deployments-tablet');
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});
