/**
 * The quickstart end to end, as `npm start` runs it (the `aiedge quickstart` command, headless, in a
 * temp dir, on free ports): a core and two sites serving the example model, the printed curl
 * commands answering correctly; then version 2 through the pipeline (`aiedge quickstart ship`)
 * while both sites are under continuous load: zero failed requests; telemetry of both sites at the
 * core; the GitOps history and the model registry hold both versions; Ctrl-C leaves no process
 * behind; a second start reuses everything.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Deployment, PipelineRunSummary, TelemetrySummary } from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME } from '@aiedge/runtime';
import { ModelRegistryClient } from './_model-registry-client.js';
import { missingTool, runCli, startCli } from './_test-cli.js';
import { expectedInference, inferExample, readQuickstart } from './quickstart.js';

const SIGNAL_WAIT_MS = 30_000;

type Cli = ReturnType<typeof startCli>;

/** Waits until the quickstart printed its summary (or exited, or took too long). */
async function untilReady(cli: Cli, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  let out = '';
  cli.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  for (;;) {
    if (out.includes('Ctrl-C stops everything')) return out;
    if (cli.child.exitCode !== null) {
      const done = await cli.done;
      assert.fail(
        `the quickstart exited with ${done.code} before it was ready:\n${done.stdout}\n${done.stderr}`,
      );
    }
    if (Date.now() > end)
      assert.fail(`the quickstart was not ready within ${timeoutMs} ms:\n${cli.stderr()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Stops the quickstart with `signal` and returns how it ended. */
async function stopCli(cli: Cli, signal: NodeJS.Signals) {
  cli.child.kill(signal);
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), SIGNAL_WAIT_MS);
  const done = await cli.done;
  clearTimeout(timer);
  return done;
}

/** Pids of the processes whose command line mentions `dir` (inference servers of the quickstart). */
async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) pids.push(Number(entry));
  }
  return pids;
}

/** The printed curl commands, one string each (continuation lines joined). */
function printedCurls(out: string): string[] {
  const lines = out.split('\n');
  const curls: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line.startsWith('curl -s http://127.0.0.1:') || !line.includes('/infer')) continue;
    let command = line;
    while (command.endsWith('\\') && i + 1 < lines.length)
      command = `${command.slice(0, -1)} ${lines[++i]!.trim()}`;
    curls.push(command);
  }
  return curls;
}

async function api<T>(url: string, token: string, path: string): Promise<T> {
  const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await response.text();
  assert.equal(response.status, 200, `GET ${path}: ${text}`);
  return JSON.parse(text) as T;
}

/** Sends the example inference to `url` back to back until stopped; bounded in time and count. */
function loadLoop(url: string) {
  const failures: string[] = [];
  const versions: string[] = [];
  let ok = 0;
  let running = true;
  const end = Date.now() + 240_000;
  const loop = (async () => {
    for (let n = 0; running && n < 100_000 && Date.now() < end; n++) {
      try {
        const answer = await inferExample(url);
        const expected = expectedInference(Number(answer.version));
        assert.deepEqual(
          [answer.scores, answer.label],
          [expected.scores, expected.label],
          `version ${answer.version} outputs`,
        );
        ok++;
        if (versions.at(-1) !== answer.version) versions.push(answer.version);
      } catch (error) {
        failures.push((error as Error).message);
      }
      // Continuous, not flat out: the machine also builds and stages version 2.
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { ok, failures, versions };
    },
  };
}

describe('aiedge quickstart (npm start)', { timeout: 600_000 }, () => {
  it('starts a core and two serving sites, ships v2 with zero failed requests, stops cleanly, restarts fast', async (t) => {
    const skip = missingTool('curl', 'apt-get install curl') ?? missingTool('git', 'apt-get install git');
    if (skip !== undefined) return t.skip(skip);
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-quickstart-'));
    const data = join(dir, 'data');
    let cli: Cli | undefined;
    t.after(async () => {
      if (cli !== undefined && cli.child.exitCode === null) await stopCli(cli, 'SIGTERM');
      for (const pid of await processesUnder(data)) process.kill(pid, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    });

    // First start: everything from scratch.
    let started = Date.now();
    cli = startCli(['quickstart', '--data', data, '--port', '0']);
    let out = await untilReady(cli, 300_000);
    const firstMs = Date.now() - started;
    const handle = await readQuickstart(data);
    assert.ok(handle !== undefined, 'the quickstart state is on disk');
    const { coreUrl, adminToken } = handle;
    assert.ok(out.includes(`Dashboard     ${coreUrl}/`), out);
    assert.ok(out.includes(`Admin token   ${adminToken}`), out);
    assert.equal((await stat(join(data, 'admin-token'))).mode & 0o777, 0o600);
    assert.match(cli.stderr(), /both sites serve example-classifier version 1/);
    assert.match(cli.stderr(), /telemetry of every site reached the core/);

    // The printed curl commands, run as printed, answer version 1's outputs.
    const curls = printedCurls(out);
    assert.equal(curls.length, 2, out);
    const sites = curls.map((c) => /curl -s (http:\/\/127\.0\.0\.1:\d+)\//.exec(c)![1]!);
    for (const command of curls) {
      const run = spawnSync('sh', ['-c', command], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(run.status, 0, run.stderr);
      const body = JSON.parse(run.stdout) as {
        model_version: string;
        outputs: { name: string; data: number[] }[];
      };
      assert.equal(body.model_version, '1');
      assert.deepEqual(body.outputs.find((o) => o.name === 'scores')?.data, [10, 20, 30]);
      assert.deepEqual(body.outputs.find((o) => o.name === 'label')?.data, [2]);
    }

    // Version 2 through the pipeline while both sites are under continuous load.
    const loads = sites.map((url) => loadLoop(url));
    await new Promise((r) => setTimeout(r, 300));
    const shipped = await runCli(['quickstart', 'ship', '--data', data]);
    assert.equal(shipped.code, 0, `${shipped.stdout}\n${shipped.stderr}`);
    assert.match(shipped.stdout, /example-classifier version 2 is live/);
    await new Promise((r) => setTimeout(r, 300));
    for (const [i, load] of loads.entries()) {
      const result = await load.stop();
      assert.deepEqual(result.failures, [], `edge-${i + 1}: failed requests`);
      assert.deepEqual(result.versions, ['1', '2'], `edge-${i + 1} switched from 1 to 2 once`);
      assert.ok(result.ok > 20, `edge-${i + 1}: ${result.ok} requests`);
    }

    // Telemetry of both sites, both versions, at the core.
    const end = Date.now() + 60_000;
    let summaries: TelemetrySummary[] = [];
    for (;;) {
      summaries = await Promise.all(
        ['edge-1', 'edge-2'].map((site) =>
          api<TelemetrySummary>(
            coreUrl,
            adminToken,
            `/api/v1/telemetry/summary?site=${site}&windowSeconds=3600`,
          ),
        ),
      );
      const versionsOf = (s: TelemetrySummary) =>
        s.models.filter((m) => m.model === EXAMPLE_MODEL_NAME && m.requests > 0).map((m) => m.version);
      if (summaries.every((s) => versionsOf(s).includes('1') && versionsOf(s).includes('2'))) break;
      if (Date.now() > end)
        assert.fail(`telemetry of both versions at both sites: ${JSON.stringify(summaries)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    for (const [i, s] of summaries.entries()) {
      assert.ok(s.models.every((m) => m.site === `edge-${i + 1}`));
      assert.equal(s.total.errors, 0, JSON.stringify(s.total));
    }

    // The GitOps history: a commit per version.
    const log = spawnSync(
      'git',
      ['--git-dir', join(data, 'core', 'gitops.git'), 'log', '--format=%s', 'HEAD'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(log.status, 0, log.stderr);
    assert.match(log.stdout, /deploy example-classifier \(example-classifier v1, /);
    assert.match(log.stdout, /deploy example-classifier \(example-classifier v2, /);

    // The model registry: both versions, each with its image artifact; v2's image is deployed.
    const deployment = await api<Deployment>(
      coreUrl,
      adminToken,
      `/api/v1/deployments/${EXAMPLE_MODEL_NAME}`,
    );
    assert.equal(deployment.spec.model.version, '2');
    assert.deepEqual(
      deployment.sites.map((s) => [s.site, s.state, s.version, s.upToDate]),
      [
        ['edge-1', 'Serving', '2', true],
        ['edge-2', 'Serving', '2', true],
      ],
    );
    const registry = new ModelRegistryClient({ baseUrl: coreUrl, token: adminToken });
    const model = await registry.findRegisteredModel(EXAMPLE_MODEL_NAME);
    assert.ok(model !== undefined);
    const versions = await registry.listModelVersions(model.id);
    assert.deepEqual(versions.map((v) => v.name).sort(), ['1', '2']);
    const host = new URL(coreUrl).host;
    const images: Record<string, string> = {};
    for (const version of versions) {
      const artifacts = await registry.listVersionArtifacts(version.id);
      const image = artifacts.find((a) =>
        a.uri?.startsWith(`oci://${host}/models/${EXAMPLE_MODEL_NAME}@sha256:`),
      );
      assert.ok(image !== undefined, `version ${version.name} artifacts: ${JSON.stringify(artifacts)}`);
      images[version.name] = image.uri!.slice('oci://'.length);
    }
    assert.notEqual(images['1'], images['2']);
    assert.equal(deployment.spec.image, images['2']);

    // Ctrl-C: everything stops, no inference server is left.
    const stopped = await stopCli(cli, 'SIGINT');
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.match(stopped.stderr, /✔ stopped/);
    assert.deepEqual(await processesUnder(data), [], 'no process of the quickstart is left');
    const identities = await Promise.all(
      ['edge-1', 'edge-2'].map(async (s) => (await stat(join(data, 'sites', s, 'identity.json'))).mtimeMs),
    );

    // Another port than the first start's is refused, naming the one to use.
    const otherPort = await runCli(['quickstart', '--data', data, '--port', '1']);
    assert.equal(otherPort.code, 2, otherPort.stderr);
    assert.match(otherPort.stderr, new RegExp(`runs its core on port ${new URL(coreUrl).port}`));

    // Second start: the same core, token, sites and deployment; no enrollment, no pipeline run.
    started = Date.now();
    cli = startCli(['quickstart', '--data', data]);
    out = await untilReady(cli, 120_000);
    const secondMs = Date.now() - started;
    assert.ok(out.includes(`Dashboard     ${coreUrl}/`), out);
    assert.ok(out.includes(`Admin token   ${adminToken}`), 'the same admin token');
    assert.match(cli.stderr(), /admin token reused/);
    assert.match(cli.stderr(), /sites edge-1, edge-2 enrolled already/);
    assert.match(cli.stderr(), /no pipeline run/);
    assert.deepEqual(
      await Promise.all(
        ['edge-1', 'edge-2'].map(async (s) => (await stat(join(data, 'sites', s, 'identity.json'))).mtimeMs),
      ),
      identities,
      'no new enrollment',
    );
    const runs = await api<{ items: PipelineRunSummary[] }>(coreUrl, adminToken, '/api/v1/pipelines/runs');
    assert.equal(runs.items.length, 2, 'no new pipeline run');
    assert.deepEqual(printedCurls(out), curls, 'the same sites on the same ports');
    for (const url of sites) {
      const answer = await inferExample(url);
      assert.equal(answer.version, '2');
      assert.deepEqual(answer.scores, expectedInference(2).scores);
    }
    const second = await stopCli(cli, 'SIGTERM');
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(await processesUnder(data), [], 'no process of the quickstart is left');
    t.diagnostic(
      `first start ready in ${(firstMs / 1000).toFixed(1)} s, second in ${(secondMs / 1000).toFixed(1)} s`,
    );
  });
});
