/**
 * Test helper (not in the build): everything a site agent meets in production, real and on
 * 127.0.0.1: a core (embedded registry and store) publishing to a GitOps repository served over Git
 * smart HTTP (`git http-backend`), inference images v1, v2 and a broken v3 of the example model in
 * the core's registry, and an enrolled site whose `aiedge agent run` the test starts and kills.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createToken, resolveCoreConfig, startCore } from '@aiedge/core';
import { createBareRepo, startGitServer } from '@aiedge/gitops/testing';
import { ContentStore, RegistryClient, buildInferenceImage, parseReference } from '@aiedge/oci';
import type { Deployment, Site } from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME, bundleRuntime, exampleModel } from '@aiedge/runtime';
import { silentLogger } from '@aiedge/telemetry';
import { freePort, runCli, startCli } from './_test-cli.js';

/** The site the world enrolls. */
export const SITE = 'store-7';
/** The deployment the world creates. */
export const DEPLOYMENT = 'classifier';

/** Thrown by a check of {@link until} when waiting longer cannot help. */
export class GaveUp extends Error {}

/**
 * Polls `check` every `pollMs` until it returns a value; throws naming `what` after `timeoutMs`,
 * or at once when the check throws {@link GaveUp}.
 */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  pollMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      if (error instanceof GaveUp) throw new Error(`gave up waiting for ${what}: ${error.message}`);
      last = error;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${String(last)}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** A running world; see the module comment. */
export interface AgentWorld {
  readonly coreUrl: string;
  /** The port the deployment's server listens on at the site. */
  readonly servePort: number;
  /** The agent's data directory. */
  readonly agentData: string;
  /** Image digests by model version ('1', '2', '3': broken). */
  readonly digests: Readonly<Record<string, string>>;
  /** The current agent process, if one was started. */
  readonly agent: ReturnType<typeof startCli> | undefined;
  /** An admin call to the core's API; throws on a non-2xx answer. */
  api<T>(path: string, method?: string, body?: unknown): Promise<T>;
  /** Creates or replaces the deployment with model `version`'s image. */
  deploy(version: string): Promise<Deployment>;
  /** Waits until the core sees the site apply its desired revision with `version` in `state`. */
  settled(version: string, state?: string, timeoutMs?: number): Promise<Site>;
  /** Starts `aiedge agent run` for the site. */
  startAgent(): ReturnType<typeof startCli>;
  /** Stops the agent, then the inference servers (through a last `--stop-serving` run), core, Git; removes the data. */
  close(): Promise<void>;
}

/** Options of {@link startAgentWorld}. */
export interface AgentWorldOptions {
  /** How to run `aiedge` for the agent; default the TypeScript sources through tsx. */
  readonly command?: readonly string[];
}

/** Starts a world whose agent uses `driver`. */
export async function startAgentWorld(
  driver: 'process' | 'podman',
  options: AgentWorldOptions = {},
): Promise<AgentWorld> {
  const dir = await mkdtemp(join(tmpdir(), `aiedge-agent-${driver}-`));
  await mkdir(join(dir, 'git'));
  await createBareRepo(join(dir, 'git'), 'gitops.git');
  const git = await startGitServer({ root: join(dir, 'git') });
  const servePort = await freePort();
  const core = await startCore({
    config: resolveCoreConfig({
      values: {
        host: '127.0.0.1',
        port: await freePort(),
        logLevel: 'silent',
        data: join(dir, 'core'),
        gitopsRepo: `${git.url}/gitops.git`,
      },
    }),
    logger: silentLogger,
  });
  const admin = (await createToken(core.context.store.db, { kind: 'admin' })).token;
  const registryHost = new URL(core.url).host;

  // v1 and v2 of the example model, and a v3 that ONNX Runtime refuses (its staging bypassed).
  const digests: Record<string, string> = {};
  const store = await ContentStore.open(join(dir, 'build-store'));
  const client = new RegistryClient({ credentials: { username: 'aiedge', password: admin } });
  for (const v of ['1', '2', '3']) {
    const modelDir = join(dir, `model-${v}`);
    await mkdir(modelDir);
    await writeFile(
      join(modelDir, 'model.onnx'),
      v === '3' ? Buffer.from('not an onnx model') : exampleModel(Number(v)),
    );
    const built = await buildInferenceImage({
      store,
      modelPath: modelDir,
      name: EXAMPLE_MODEL_NAME,
      version: v,
      runtime: (architecture) => bundleRuntime({ architecture }),
    });
    await client.push(store, built.root, parseReference(`${registryHost}/models/example:${v}`));
    digests[v] = built.root.digest;
  }
  await client.close();

  const agentData = join(dir, 'agent');
  const enrollment = await createToken(core.context.store.db, { kind: 'enrollment', ttlSeconds: 600 });
  const enrolled = await runCli([
    'agent',
    'enroll',
    '--core',
    core.url,
    '--token',
    enrollment.token,
    '--site',
    SITE,
    '--label',
    'tier=e2e',
    '--data',
    agentData,
  ]);
  assert.equal(enrolled.code, 0, enrolled.stderr);

  const api = async <T>(path: string, method = 'GET', body?: unknown): Promise<T> => {
    const response = await fetch(`${core.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${admin}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text) as T;
  };
  let agent: ReturnType<typeof startCli> | undefined;
  const run = (...extra: string[]) =>
    startCli(
      ['agent', 'run', '--data', agentData, '--driver', driver, '--telemetry-port', '0', ...extra],
      {},
      options.command,
    );

  return {
    coreUrl: core.url,
    servePort,
    agentData,
    digests,
    get agent() {
      return agent;
    },
    api,
    deploy: (version) =>
      api<Deployment>('/api/v1/deployments', 'POST', {
        name: DEPLOYMENT,
        image: `${registryHost}/models/example@${digests[version]!}`,
        model: { name: EXAMPLE_MODEL_NAME, version },
        selector: { tier: 'e2e' },
        port: servePort,
      }),
    settled: (version, state = 'Serving', timeoutMs = 90_000) =>
      until(
        `${SITE} to report version ${version} ${state}`,
        async () => {
          const s = await api<Site>(`/api/v1/sites/${SITE}`);
          const d = s.deployments.find((x) => x.deployment === DEPLOYMENT);
          if (
            s.desiredRevision !== '' &&
            s.appliedRevision === s.desiredRevision &&
            d?.state === state &&
            d.imageDigest === digests[version]
          ) {
            return s;
          }
          // Becomes the timeout's message: what the site reported last, and the agent's last words.
          const log = agent?.stderr().trimEnd().split('\n').slice(-5).join('\n') ?? '';
          const settledOtherwise =
            d !== undefined &&
            d.imageDigest === digests[version] &&
            s.appliedRevision === s.desiredRevision &&
            ['Serving', 'Failed', 'RolledBack'].includes(d.state);
          throw new (settledOtherwise ? GaveUp : Error)(
            `applied ${s.appliedRevision ?? 'none'} of ${s.desiredRevision}; ${d === undefined ? 'no report' : `${d.state} ${d.version} ${d.reason ?? ''}`}\nagent log:\n${log}`,
          );
        },
        timeoutMs,
      ),
    startAgent: () => {
      agent = run('--status-interval', '1');
      return agent;
    },
    close: async () => {
      if (agent !== undefined && agent.child.exitCode === null) {
        agent.child.kill('SIGTERM');
        await agent.done;
      }
      // The servers outlive the agent by design; a last run stops them on its way out.
      const stopper = run('--stop-serving');
      await until(
        'the last agent run to start',
        async () => (/aiedge agent running/.test(stopper.stderr()) ? true : undefined),
        60_000,
      ).catch(() => undefined);
      stopper.child.kill('SIGTERM');
      await stopper.done;
      // Whatever still runs from this world's directory (a failed test's servers) goes too.
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue;
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmdline.includes(dir)) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      await core.close();
      await git.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
