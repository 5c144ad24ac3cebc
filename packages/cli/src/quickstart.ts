/**
 * The whole system on one machine: a core (embedded SQLite, OCI registry and GitOps repository),
 * near-edge sites edge-1..edge-N (each a site agent with the process driver, its own data, serving
 * port and telemetry port), the example model registered in the core's model registry and
 * delivered to every site by the example pipeline (examples/registry-pipeline.yaml) run by the
 * core, and a little inference traffic whose telemetry reaches the core through each agent's relay.
 *
 * Everything lives in one data directory (default `./.aiedge`); a second start reuses it: the admin
 * token, the sites' identities and ports, and the deployed model (no new pipeline run while the
 * deployed model version is the one on disk).
 *
 * Layout of the data directory:
 *
 * ```
 * quickstart.json        core port, sites and their ports (written atomically)
 * admin-token            the admin token in plain text, mode 0600 (the core stores its hash only)
 * core/                  the core's data: core.db, registry/, gitops.git (bare), build-store/
 * sites/<site>/          each agent's data: identity.json (0600), store/, process/ (servers, logs)
 * models/                the example model repository (example-classifier/<version>/model.onnx)
 * pipelines/             the pipeline documents run, one per model version
 * logs/quickstart.log    JSON logs of the core and the agents
 * ```
 */
import { createHash } from 'node:crypto';
import { openSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseDocument } from 'yaml';
import {
  AGENT_VERSION,
  ProcessDriver,
  enrollSite,
  loadIdentity,
  readJsonFile,
  startAgent,
  writeJsonFile,
  type DeploymentReport,
  type Driver,
  type RunningAgent,
  type SiteIdentity,
} from '@aiedge/agent';
import {
  DefaultPipelineExecutor,
  authenticate,
  createToken,
  openCoreStore,
  resolveCoreConfig,
  startCore,
  type RunningCore,
} from '@aiedge/core';
import type { SiteDeployment } from '@aiedge/gitops';
import {
  ConflictError,
  InputError,
  NotFoundError,
  UnavailableError,
  describeValue,
  type Deployment,
  type PipelineRun,
  type TelemetrySummary,
} from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME, exampleModel, exampleReference } from '@aiedge/runtime';
import { createLogger, type LogLevel, type Logger } from '@aiedge/telemetry';
import { ModelRegistryClient } from './_model-registry-client.js';

/** Default data directory of the quickstart. */
export const QUICKSTART_DEFAULT_DATA_DIR = '.aiedge';
/** Core port of a first start when none is given. */
export const QUICKSTART_DEFAULT_PORT = 8080;
/** Number of sites of a first start when none is given. */
export const QUICKSTART_DEFAULT_SITES = 2;
/** Most sites the quickstart runs on one machine. */
export const QUICKSTART_MAX_SITES = 20;
/** The features every example inference of the quickstart sends (its printed curl too). */
export const QUICKSTART_FEATURES: readonly number[] = Object.freeze([1, 2, 3, 4]);

const STATE_FILE = 'quickstart.json';
const TOKEN_FILE = 'admin-token';
const ROLLOUT_TIMEOUT_MS = 180_000;
const TELEMETRY_TIMEOUT_MS = 30_000;
const POLL_MS = 250;
/** The runtimes export metrics this often at the quickstart's sites (the OTel default is 60 s). */
const METRIC_EXPORT_INTERVAL_MS = 5_000;
const TRAFFIC_REQUESTS_PER_SITE = 10;
const SITE_LABEL_KEY = 'aiedge.io/site';

/** The steps a quickstart goes through, in order (`ship` reuses model, pipeline and rollout). */
export const QuickstartSteps = [
  'core',
  'token',
  'sites',
  'agents',
  'model',
  'pipeline',
  'rollout',
  'traffic',
  'telemetry',
  'stop',
] as const;
/** One step of a quickstart. */
export type QuickstartStep = (typeof QuickstartSteps)[number];

/** What a quickstart reports while it works. */
export interface QuickstartProgress {
  readonly step: QuickstartStep;
  /**
   * `started` and `done` (with `elapsedMs`) frame a step; `update` is news during it (e.g. a
   * pipeline task finished); `skipped` means the existing state was reused; `warning` did not stop it.
   */
  readonly state: 'started' | 'update' | 'done' | 'skipped' | 'warning';
  readonly message: string;
  readonly elapsedMs?: number;
}

/** Options of {@link startQuickstart}. */
export interface QuickstartOptions {
  /** Data directory; default `./.aiedge` (relative to the current directory). */
  readonly dataDir?: string;
  /** Number of sites (edge-1..edge-N); default the previous start's, else 2. */
  readonly sites?: number;
  /**
   * Port of the core on 127.0.0.1: default the previous start's, else 8080. `0`: the previous
   * start's, else any free port (and free ports for the sites). Another port than the previous
   * start's is refused (the sites and the GitOps repository know the core by its URL).
   */
  readonly port?: number;
  /** Aborting it stops a start in progress (everything started is stopped), or stops a running one. */
  readonly signal?: AbortSignal;
  /** Called on every step's progress. */
  readonly onProgress?: (event: QuickstartProgress) => void;
  /** Level of the core's and agents' logs, written to `<data>/logs/quickstart.log`; default `info`. */
  readonly logLevel?: LogLevel;
}

/** One site of a running quickstart. */
export interface QuickstartSite {
  readonly name: string;
  /** Base URL of the site's inference server (Open Inference Protocol), e.g. `http://127.0.0.1:8081`. */
  readonly inferenceUrl: string;
  /** The agent's data directory. */
  readonly dataDir: string;
  /** The agent's OTLP/HTTP receiver the site's runtimes export to. */
  readonly telemetryUrl: string;
}

/** Where a quickstart keeps its state, and how to reach its core. */
export interface QuickstartHandle {
  /** Base URL of the core (API, dashboard at `/`, registry, OTLP receiver). */
  readonly coreUrl: string;
  /** An admin token of the core (also in `<data>/admin-token`). */
  readonly adminToken: string;
  /** The data directory (absolute). */
  readonly dataDir: string;
}

/** What {@link shipModelVersion} did. */
export interface ShippedVersion {
  readonly model: string;
  readonly version: string;
  /** Id of the pipeline run; undefined when the version was deployed already. */
  readonly runId: string | undefined;
  /** Digest of the inference image. */
  readonly imageDigest: string;
  /** The GitOps commit of the deployment (the core's repository). */
  readonly commit: string | undefined;
  /** The pipeline document that ran. */
  readonly pipelineFile: string;
}

/** A running quickstart. */
export interface RunningQuickstart extends QuickstartHandle {
  readonly sites: readonly QuickstartSite[];
  /** The core's GitOps repository (a bare Git repository). */
  readonly gitopsRepo: string;
  /** The example model repository the model registry's artifacts point at. */
  readonly modelsDir: string;
  /** Name of the deployment every site runs. */
  readonly deployment: string;
  /** The model version the sites serve after the start. */
  readonly model: { readonly name: string; readonly version: string };
  /** True when an earlier start's state was reused (no enrollment, no pipeline run when unchanged). */
  readonly reused: boolean;
  /** Ships a model version (default: the next one) through the pipeline and waits for every site. */
  shipModelVersion(options?: ShipOptions): Promise<ShippedVersion>;
  /** Stops the agents, their inference servers and the core. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link shipModelVersion}. */
export interface ShipOptions {
  /** The example model's version to ship (1..1000); default the deployed version + 1. */
  readonly version?: number;
  /** Sites that must serve the new version before it resolves; default every online site of the deployment. */
  readonly sites?: readonly string[];
  readonly signal?: AbortSignal;
  readonly onProgress?: (event: QuickstartProgress) => void;
}

/** `<data>/quickstart.json`. */
interface QuickstartState {
  readonly version: 1;
  readonly corePort: number;
  readonly sites: readonly SiteState[];
}

interface SiteState {
  readonly name: string;
  readonly port: number;
  readonly telemetryPort: number;
}

/** The path of `<data>/quickstart.json`, `<data>/admin-token`, … for a data directory. */
export function quickstartPaths(dataDir: string) {
  const root = resolve(dataDir);
  return {
    root,
    state: join(root, STATE_FILE),
    token: join(root, TOKEN_FILE),
    core: join(root, 'core'),
    gitopsRepo: join(root, 'core', 'gitops.git'),
    sites: join(root, 'sites'),
    models: join(root, 'models'),
    pipelines: join(root, 'pipelines'),
    logs: join(root, 'logs'),
  };
}

/** The example pipeline the quickstart runs (examples/registry-pipeline.yaml of this repository). */
export function examplePipelinePath(): string {
  return fileURLToPath(new URL('../../../examples/registry-pipeline.yaml', import.meta.url));
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function checkInteger(value: number, what: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InputError(`${what} is ${describeValue(value)}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  await new Promise<void>((resolvePromise, reject) => {
    const done = () => {
      signal?.removeEventListener('abort', onAbort);
      resolvePromise();
    };
    const timer = setTimeout(done, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A path as a person types it: relative to the current directory when inside it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Reports the steps of one flow. */
class Progress {
  readonly #emit: (event: QuickstartProgress) => void;
  readonly #started = new Map<QuickstartStep, number>();

  constructor(emit: ((event: QuickstartProgress) => void) | undefined) {
    this.#emit = (event) => {
      try {
        emit?.(event);
      } catch {
        // A failing observer must not break the flow.
      }
    };
  }

  start(step: QuickstartStep, message: string): void {
    this.#started.set(step, Date.now());
    this.#emit({ step, state: 'started', message });
  }

  update(step: QuickstartStep, message: string): void {
    this.#emit({ step, state: 'update', message });
  }

  done(step: QuickstartStep, message: string): void {
    const at = this.#started.get(step);
    this.#emit({ step, state: 'done', message, ...(at !== undefined ? { elapsedMs: Date.now() - at } : {}) });
  }

  skipped(step: QuickstartStep, message: string): void {
    this.#emit({ step, state: 'skipped', message });
  }

  warning(step: QuickstartStep, message: string): void {
    this.#emit({ step, state: 'warning', message });
  }
}

/** True when `port` can be bound on 127.0.0.1 now. */
async function portFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePromise(true)));
  });
}

/** A free port on 127.0.0.1 not in `taken`. */
async function freePort(taken: ReadonlySet<number>): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise<number>((resolvePromise, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const p = typeof address === 'object' && address !== null ? address.port : 0;
        server.close(() => resolvePromise(p));
      });
    });
    if (!taken.has(port)) return port;
  }
  throw new UnavailableError('found no free port on 127.0.0.1');
}

/** Writes a secret file atomically with mode 0600. */
async function writeSecretFile(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const handle = await open(temp, 'w', 0o600);
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

function parseState(value: unknown, path: string): QuickstartState | undefined {
  if (value === undefined) return undefined;
  const s = value as Partial<QuickstartState>;
  const bad = (what: string) => new InputError(`${path}: ${what}; remove the data directory to start afresh`);
  if (typeof s !== 'object' || s === null || s.version !== 1) throw bad('version is not 1');
  if (!Number.isSafeInteger(s.corePort) || (s.corePort ?? 0) <= 0) throw bad('corePort is not a port');
  if (!Array.isArray(s.sites)) throw bad('sites is not a list');
  s.sites.forEach((site, i) => {
    if (
      typeof site?.name !== 'string' ||
      !Number.isSafeInteger(site.port) ||
      !Number.isSafeInteger(site.telemetryPort)
    ) {
      throw bad(`sites[${i}] is not {name, port, telemetryPort}`);
    }
  });
  return s as QuickstartState;
}

/** Reads `<data>/quickstart.json` and the admin token of an earlier start; undefined when there is none. */
export async function readQuickstart(dataDir: string): Promise<QuickstartHandle | undefined> {
  const paths = quickstartPaths(dataDir);
  const state = parseState(await readJsonFile(paths.state), paths.state);
  if (state === undefined) return undefined;
  const token = (await readFile(paths.token, 'utf8').catch(() => '')).trim();
  if (token === '') return undefined;
  return { coreUrl: `http://127.0.0.1:${state.corePort}`, adminToken: token, dataDir: paths.root };
}

// ---------------------------------------------------------------------------------------------
// The core's API

/** A small client of the core's API with the admin token; errors name the request. */
class CoreApi {
  constructor(
    readonly url: string,
    readonly token: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const text = await this.text(path, signal, method, body);
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  /** The body of a successful answer as text. */
  async text(path: string, signal?: AbortSignal, method = 'GET', body?: unknown): Promise<string> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        signal:
          signal !== undefined
            ? AbortSignal.any([signal, AbortSignal.timeout(30_000)])
            : AbortSignal.timeout(30_000),
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
      throw new UnavailableError(`cannot reach the core at ${this.url}: ${cause}`, { cause: error });
    }
    const text = await response.text();
    if (!response.ok) {
      let message = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text) as { message?: unknown };
        if (typeof parsed.message === 'string') message = parsed.message;
      } catch {
        // not JSON: the text itself
      }
      const what = `core: ${method} ${path.split('?')[0]}: ${response.status} ${message}`;
      if (response.status === 404) throw new NotFoundError(what);
      if (response.status === 409) throw new ConflictError(what);
      throw response.status < 500 ? new InputError(what) : new UnavailableError(what);
    }
    return text;
  }

  async deployment(name: string, signal?: AbortSignal): Promise<Deployment | undefined> {
    try {
      return await this.request<Deployment>(
        'GET',
        `/api/v1/deployments/${encodeURIComponent(name)}`,
        undefined,
        signal,
      );
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
  }
}

/** The outputs of the example model's `version` for {@link QUICKSTART_FEATURES}. */
export function expectedInference(version: number): { scores: number[]; label: number } {
  const reference = exampleReference(version, Float32Array.from(QUICKSTART_FEATURES));
  return { scores: [...reference.scores], label: Number(reference.label[0]) };
}

/** The body of the quickstart's example inference request. */
export function inferenceRequestBody(): string {
  return JSON.stringify({
    inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [...QUICKSTART_FEATURES] }],
  });
}

/** Sends the example inference to a site; resolves with the version that answered and its outputs. */
export async function inferExample(
  inferenceUrl: string,
  signal?: AbortSignal,
): Promise<{ version: string; scores: number[]; label: number }> {
  const response = await fetch(`${inferenceUrl}/v2/models/${EXAMPLE_MODEL_NAME}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: inferenceRequestBody(),
    signal:
      signal !== undefined
        ? AbortSignal.any([signal, AbortSignal.timeout(10_000)])
        : AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status !== 200)
    throw new UnavailableError(`${inferenceUrl}: HTTP ${response.status}: ${text}`);
  const body = JSON.parse(text) as { model_version?: string; outputs?: { name: string; data: number[] }[] };
  const output = (name: string) => body.outputs?.find((o) => o.name === name)?.data ?? [];
  return { version: body.model_version ?? '', scores: output('scores'), label: Number(output('label')[0]) };
}

/** True when the answer is the example model's `version` computed for {@link QUICKSTART_FEATURES}. */
function answersVersion(
  answer: { version: string; scores: number[]; label: number },
  version: number,
): boolean {
  const expected = expectedInference(version);
  return (
    answer.version === String(version) &&
    answer.label === expected.label &&
    answer.scores.length === expected.scores.length &&
    answer.scores.every((s, i) => Math.abs(s - (expected.scores[i] ?? NaN)) < 1e-4)
  );
}

// ---------------------------------------------------------------------------------------------
// A site of the quickstart on this machine

/**
 * The process driver of a quickstart site. Every site runs on this one machine, so each maps the
 * quickstart's deployment to its own serving port (as a container runtime maps a container port to
 * a host port), and its runtimes export metrics every few seconds (to the agent's relay, which the
 * process driver sets) so the core shows traffic soon after it happens.
 */
class QuickstartSiteDriver implements Driver {
  readonly #inner: Driver;
  readonly #deployment: string;
  readonly #port: number;
  readonly #env: Readonly<Record<string, string>>;

  constructor(inner: Driver, options: { deployment: string; port: number; env: Record<string, string> }) {
    this.#inner = inner;
    this.#deployment = options.deployment;
    this.#port = options.port;
    this.#env = options.env;
  }

  get kind(): Driver['kind'] {
    return this.#inner.kind;
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  reconcile(desired: readonly SiteDeployment[], signal: AbortSignal): Promise<DeploymentReport[]> {
    return this.#inner.reconcile(
      desired.map((d) => ({
        ...d,
        ...(d.name === this.#deployment ? { port: this.#port } : {}),
        env: { ...d.env, ...this.#env },
      })),
      signal,
    );
  }

  reports(): DeploymentReport[] {
    return this.#inner.reports();
  }

  close(options?: { stopServing?: boolean }): Promise<void> {
    return this.#inner.close(options);
  }
}

// ---------------------------------------------------------------------------------------------
// The model and the pipeline

interface PipelineFacts {
  readonly deployment: string;
  readonly selector: Record<string, string>;
}

/** Reads the example pipeline; its deployment name and site selector. */
async function examplePipeline(): Promise<{ text: string; facts: PipelineFacts }> {
  const path = examplePipelinePath();
  const text = await readFile(path, 'utf8').catch((error: unknown) => {
    throw new NotFoundError(
      `the example pipeline ${path} is missing: the quickstart runs from a checkout of the ai-edge repository`,
      { cause: error },
    );
  });
  const doc = parseDocument(text);
  const deployment = doc.getIn(['spec', 'deployment', 'name']);
  const selector = (
    doc.getIn(['spec', 'deployment', 'selector']) as { toJSON(): unknown } | undefined
  )?.toJSON();
  if (typeof deployment !== 'string' || typeof selector !== 'object' || selector === null) {
    throw new InputError(`${path}: spec.deployment needs a name and a selector`);
  }
  return { text, facts: { deployment, selector: selector as Record<string, string> } };
}

/**
 * Writes `<data>/pipelines/registry-pipeline-v<version>.yaml`: the example pipeline whose staging
 * test expects the outputs of the example model's `version` (the example file expects version 1's).
 */
async function pipelineForVersion(pipelinesDir: string, text: string, version: number): Promise<string> {
  const doc = parseDocument(text);
  const expected = expectedInference(version);
  const node = doc.createNode([
    { name: 'scores', datatype: 'FP32', shape: [1, expected.scores.length], data: expected.scores },
    { name: 'label', datatype: 'INT64', shape: [1], data: [expected.label] },
  ]);
  for (const item of node.items) (item as { flow?: boolean }).flow = true;
  doc.setIn(['spec', 'test', 'requests', 0, 'expected'], node);
  const path = join(pipelinesDir, `registry-pipeline-v${version}.yaml`);
  await mkdir(pipelinesDir, { recursive: true });
  await writeFile(path, doc.toString());
  return path;
}

/** Writes the example model's `version` (when missing or different) and returns its directory and sha256. */
async function writeExampleVersion(
  modelsDir: string,
  version: number,
): Promise<{ dir: string; sha256: string }> {
  const bytes = exampleModel(version);
  const dir = join(modelsDir, EXAMPLE_MODEL_NAME, String(version));
  const path = join(dir, 'model.onnx');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const current = await readFile(path).catch(() => undefined);
  if (current === undefined || createHash('sha256').update(current).digest('hex') !== sha256) {
    await mkdir(dir, { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    await writeFile(temp, bytes);
    await rename(temp, path);
  }
  return { dir, sha256 };
}

/** Registers the example model's `version` with a `file://` artifact (what exists already is kept). */
async function registerExampleVersion(api: CoreApi, version: number, dir: string): Promise<string> {
  const client = new ModelRegistryClient({ baseUrl: api.url, token: api.token });
  let model = await client.findRegisteredModel(EXAMPLE_MODEL_NAME);
  if (model === undefined) {
    try {
      model = await client.createRegisteredModel({
        name: EXAMPLE_MODEL_NAME,
        description: 'The example classifier of ai-edge (aiedge model example)',
      });
    } catch (error) {
      model =
        error instanceof ConflictError ? await client.findRegisteredModel(EXAMPLE_MODEL_NAME) : undefined;
      if (model === undefined) throw error;
    }
  }
  const name = String(version);
  let modelVersion = await client.findModelVersion(model.id, name);
  modelVersion ??= await client.createModelVersion(model.id, {
    name,
    state: 'LIVE',
    description: `aiedge model example --model-version ${version}`,
  });
  const uri = pathToFileURL(dir).toString();
  const artifacts = await client.listVersionArtifacts(modelVersion.id);
  if (!artifacts.some((a) => a.artifactType === 'model-artifact' && a.uri === uri)) {
    await client.createVersionArtifact(modelVersion.id, {
      name: EXAMPLE_MODEL_NAME,
      uri,
      modelFormatName: 'onnx',
      state: 'LIVE',
    });
  }
  return modelVersion.id;
}

const TASK_MARK: Record<string, string> = {
  succeeded: '✔',
  failed: '✘',
  running: '…',
  skipped: '-',
  cancelled: '✘',
};

/** Runs a pipeline on the core and follows it to its end; returns the run's results. */
async function runPipelineOnCore(
  api: CoreApi,
  spec: string,
  params: Record<string, string>,
  progress: Progress,
  signal: AbortSignal | undefined,
): Promise<{ id: string; results: Readonly<Record<string, string>>; tasks: string }> {
  const created = await api.request<PipelineRun>('POST', '/api/v1/pipelines/runs', { spec, params }, signal);
  progress.update('pipeline', `run ${created.id} of ${created.pipeline} ${created.status}`);
  let seen = '';
  try {
    for (;;) {
      const run = await api.request<PipelineRun>(
        'GET',
        `/api/v1/pipelines/runs/${created.id}`,
        undefined,
        signal,
      );
      const line = run.tasks
        .filter((t) => t.state !== 'pending')
        .map(
          (t) =>
            `${t.name} ${TASK_MARK[t.state] ?? t.state}${t.durationMs !== null ? ` ${seconds(t.durationMs)}` : ''}`,
        )
        .join('  ');
      if (line !== seen && line !== '') {
        seen = line;
        progress.update('pipeline', line);
      }
      if (run.status === 'succeeded') {
        const tasks = run.tasks
          .map((t) => `${t.name} ${t.durationMs !== null ? seconds(t.durationMs) : t.state}`)
          .join(' · ');
        return { id: run.id, results: run.results, tasks };
      }
      if (run.status === 'failed' || run.status === 'cancelled') {
        const logs = await api
          .text(`/api/v1/pipelines/runs/${run.id}/logs?follow=false`, signal)
          .catch(() => '');
        const tail = logs.trimEnd().split('\n').slice(-20).join('\n');
        throw new UnavailableError(
          `pipeline run ${run.id} ${run.status}: ${run.reason ?? 'no reason given'}${tail !== '' ? `\n${tail}` : ''}`,
        );
      }
      await sleep(POLL_MS, signal);
    }
  } catch (error) {
    if (signal?.aborted) {
      await api.request('POST', `/api/v1/pipelines/runs/${created.id}/cancel`).catch(() => undefined);
    }
    throw error;
  }
}

/** Waits until every site in `sites` serves `version` of the deployment, as the core sees it and as the sites answer. */
async function waitForRollout(
  api: CoreApi,
  deployment: string,
  version: number,
  sites: readonly { name: string; inferenceUrl?: string }[],
  progress: Progress,
  signal: AbortSignal | undefined,
): Promise<void> {
  const end = Date.now() + ROLLOUT_TIMEOUT_MS;
  let seen = '';
  for (;;) {
    const found = await api.deployment(deployment, signal);
    const states = sites.map((site) => {
      const s = found?.sites.find((x) => x.site === site.name);
      const serving = s?.state === 'Serving' && s.upToDate && s.version === String(version);
      return {
        site,
        serving,
        text: `${site.name} ${serving ? `serving v${version}` : (s?.state ?? 'waiting')}`,
      };
    });
    const line = states.map((s) => s.text).join(', ');
    if (line !== seen) {
      seen = line;
      progress.update('rollout', line);
    }
    if (states.every((s) => s.serving)) {
      // The core's view says so; the sites must answer with the version's outputs too.
      let answering = true;
      for (const { site } of states) {
        if (site.inferenceUrl === undefined) continue;
        const answer = await inferExample(site.inferenceUrl, signal).catch(() => undefined);
        if (answer === undefined || !answersVersion(answer, version)) answering = false;
      }
      if (answering) return;
    }
    const failed = found?.sites.find(
      (s) =>
        sites.some((x) => x.name === s.site) &&
        s.upToDate &&
        (s.state === 'Failed' || s.state === 'RolledBack'),
    );
    if (failed !== undefined) {
      throw new UnavailableError(
        `site ${failed.site}: ${deployment} ${failed.state}: ${failed.reason ?? 'no reason given'}`,
      );
    }
    if (Date.now() > end) {
      throw new UnavailableError(
        `the sites did not serve ${deployment} version ${version} within ${seconds(ROLLOUT_TIMEOUT_MS)}: ${line}`,
      );
    }
    await sleep(POLL_MS, signal);
  }
}

interface ShipContext {
  readonly api: CoreApi;
  readonly dataDir: string;
  readonly facts: PipelineFacts;
  readonly pipelineText: string;
  readonly sites: readonly { name: string; inferenceUrl?: string }[] | undefined;
}

async function ship(
  context: ShipContext,
  version: number,
  progress: Progress,
  signal?: AbortSignal,
): Promise<ShippedVersion> {
  const { api, facts } = context;
  const paths = quickstartPaths(context.dataDir);
  progress.start('model', `example model ${EXAMPLE_MODEL_NAME} version ${version}`);
  const written = await writeExampleVersion(paths.models, version);
  await registerExampleVersion(api, version, written.dir);
  progress.done('model', `${EXAMPLE_MODEL_NAME} version ${version} registered in the core's model registry`);

  const pipelineFile = await pipelineForVersion(paths.pipelines, context.pipelineText, version);
  const host = new URL(api.url).host;
  progress.start('pipeline', `pipeline: fetch → inspect → build → stage → push → gitops`);
  const run = await runPipelineOnCore(
    api,
    await readFile(pipelineFile, 'utf8'),
    {
      registryUrl: api.url,
      coreUrl: api.url,
      repository: `${host}/models/${EXAMPLE_MODEL_NAME}`,
      modelName: EXAMPLE_MODEL_NAME,
      modelVersion: String(version),
    },
    progress,
    signal,
  );
  const imageDigest = run.results['build.digest'] ?? '';
  progress.done('pipeline', `pipeline ${run.tasks}`);

  const sites =
    context.sites ??
    (await api.deployment(facts.deployment, signal))?.sites
      .filter((s) => s.online)
      .map((s) => ({ name: s.site })) ??
    [];
  progress.start('rollout', `rollout of version ${version} to ${sites.map((s) => s.name).join(', ')}`);
  await waitForRollout(api, facts.deployment, version, sites, progress, signal);
  progress.done(
    'rollout',
    `${sites.length === 2 ? 'both sites' : `${sites.length} sites`} serve ${EXAMPLE_MODEL_NAME} version ${version}`,
  );
  return {
    model: EXAMPLE_MODEL_NAME,
    version: String(version),
    runId: run.id,
    imageDigest,
    commit: run.results['gitops.commit'],
    pipelineFile,
  };
}

async function nextVersion(api: CoreApi, deployment: string, signal?: AbortSignal): Promise<number> {
  const found = await api.deployment(deployment, signal);
  const current = Number(found?.spec.model.version ?? '0');
  return Number.isSafeInteger(current) ? current + 1 : 1;
}

/**
 * Ships a version of the example model (default: the deployed version + 1) to a running
 * quickstart: writes it, registers it in the core's model registry, runs the example pipeline on
 * the core and waits until the sites serve it.
 */
export async function shipModelVersion(
  handle: QuickstartHandle,
  options: ShipOptions = {},
): Promise<ShippedVersion> {
  const api = new CoreApi(handle.coreUrl, handle.adminToken);
  const { text, facts } = await examplePipeline();
  const version =
    options.version !== undefined
      ? checkInteger(options.version, 'version', 1, 1000)
      : await nextVersion(api, facts.deployment, options.signal);
  return ship(
    {
      api,
      dataDir: handle.dataDir,
      facts,
      pipelineText: text,
      sites: options.sites?.map((name) => ({ name })),
    },
    version,
    new Progress(options.onProgress),
    options.signal,
  );
}

// ---------------------------------------------------------------------------------------------
// The quickstart

/** Reads the admin token file when it still authenticates as admin; else creates one and writes the file. */
async function adminToken(
  coreConfig: ReturnType<typeof resolveCoreConfig>,
  path: string,
): Promise<{ token: string; created: boolean }> {
  const store = await openCoreStore(coreConfig);
  try {
    const existing = (await readFile(path, 'utf8').catch(() => '')).trim();
    if (existing !== '') {
      const principal = await authenticate(store.db, existing).catch(() => undefined);
      if (principal?.kind === 'admin') return { token: existing, created: false };
    }
    const created = await createToken(store.db, { kind: 'admin', description: 'aiedge quickstart' });
    await writeSecretFile(path, `${created.token}\n`);
    return { token: created.token, created: true };
  } finally {
    await store.close();
  }
}

/**
 * Starts the quickstart (see the module comment) and resolves once every site serves the model and
 * telemetry reached the core. Stop it with `stop()` (or the signal).
 */
export async function startQuickstart(options: QuickstartOptions = {}): Promise<RunningQuickstart> {
  const { signal } = options;
  throwIfAborted(signal);
  const progress = new Progress(options.onProgress);
  const paths = quickstartPaths(options.dataDir ?? QUICKSTART_DEFAULT_DATA_DIR);
  if (options.port !== undefined) checkInteger(options.port, 'port', 0, 65535);
  if (options.sites !== undefined) checkInteger(options.sites, 'sites', 1, QUICKSTART_MAX_SITES);
  await mkdir(paths.logs, { recursive: true });
  const previous = parseState(await readJsonFile(paths.state), paths.state);
  if (
    previous !== undefined &&
    options.port !== undefined &&
    options.port !== 0 &&
    options.port !== previous.corePort
  ) {
    throw new InputError(
      `port ${options.port}: the quickstart in ${paths.root} runs its core on port ${previous.corePort} ` +
        `(its sites and GitOps repository know that URL); use --port ${previous.corePort}, or remove ${paths.root} to start afresh`,
    );
  }
  const siteCount = options.sites ?? previous?.sites.length ?? QUICKSTART_DEFAULT_SITES;
  // The logs of the core and the agents go to a file; the fd stays open while this process runs
  // (a late log line of a closing component must not hit a closed descriptor).
  const logger: Logger = createLogger({
    component: 'quickstart',
    level: options.logLevel ?? 'info',
    destination: openSync(join(paths.logs, 'quickstart.log'), 'a'),
  });

  // Everything started is stopped again when a later step fails or the signal aborts.
  const agents: RunningAgent[] = [];
  let core: RunningCore | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (core === undefined) return;
      progress.start('stop', 'stopping the agents, their inference servers and the core');
      await Promise.allSettled(agents.map((agent) => agent.stop({ stopServing: true })));
      await core.close();
      progress.done('stop', 'stopped');
      logger.info('quickstart stopped');
    })());

  try {
    // The core.
    const requestedPort = options.port ?? previous?.corePort ?? QUICKSTART_DEFAULT_PORT;
    const corePort = previous?.corePort ?? requestedPort;
    const coreConfig = resolveCoreConfig({
      values: { data: paths.core, host: '127.0.0.1', port: corePort, logLevel: options.logLevel ?? 'info' },
    });
    progress.start('token', 'admin token');
    const token = await adminToken(coreConfig, paths.token);
    if (token.created) progress.done('token', `admin token created (${displayPath(paths.token)}, mode 0600)`);
    else progress.skipped('token', `admin token reused (${displayPath(paths.token)})`);
    throwIfAborted(signal);

    progress.start('core', `core on 127.0.0.1:${corePort === 0 ? 'a free port' : corePort}`);
    core = await startCore({
      config: coreConfig,
      logger: logger.child({ component: 'core' }),
      // The pipelines the core runs read their secrets (AIEDGE_TOKEN) from this environment.
      pipelineExecutor: new DefaultPipelineExecutor(join(paths.core, 'build-store'), {
        ...process.env,
        AIEDGE_TOKEN: token.token,
      }),
    }).catch((error: unknown) => {
      if ((error as { code?: string }).code === 'EADDRINUSE') {
        throw new UnavailableError(
          `port ${corePort} on 127.0.0.1 is in use: stop what uses it` +
            (previous === undefined
              ? ', or pick another with --port'
              : ` (the quickstart in ${paths.root} uses this port)`),
          { cause: error },
        );
      }
      throw error;
    });
    const coreUrl = core.url;
    const api = new CoreApi(coreUrl, token.token);
    progress.done('core', `core listening on ${coreUrl} (data in ${displayPath(paths.core)})`);

    // The sites' ports: an earlier start's, else next to the core's (or free ones).
    const taken = new Set<number>([core.port]);
    const siteStates: SiteState[] = [];
    for (let i = 1; i <= siteCount; i++) {
      const name = `edge-${i}`;
      const known = previous?.sites.find((s) => s.name === name);
      if (known !== undefined) {
        siteStates.push(known);
        taken.add(known.port).add(known.telemetryPort);
        continue;
      }
      const preferred = requestedPort === 0 ? undefined : core.port + i;
      const port =
        preferred !== undefined && !taken.has(preferred) && (await portFree(preferred))
          ? preferred
          : await freePort(taken);
      taken.add(port);
      const telemetryPort = await freePort(taken);
      taken.add(telemetryPort);
      siteStates.push({ name, port, telemetryPort });
    }
    const others = (previous?.sites ?? []).filter((s) => !siteStates.some((x) => x.name === s.name));
    await writeJsonFile(paths.state, {
      version: 1,
      corePort: core.port,
      sites: [...siteStates, ...others],
    } satisfies QuickstartState);

    // Enrollment (once per site: the identity stays in the site's data directory).
    const { text: pipelineText, facts } = await examplePipeline();
    progress.start('sites', `sites ${siteStates.map((s) => s.name).join(', ')}`);
    const identities: SiteIdentity[] = [];
    const enrolled: string[] = [];
    for (const site of siteStates) {
      throwIfAborted(signal);
      const dataDir = join(paths.sites, site.name);
      if (await exists(join(dataDir, 'identity.json'))) {
        identities.push({ ...(await loadIdentity(dataDir)), core: coreUrl });
        continue;
      }
      const enrollment = await createToken(core.context.store.db, {
        kind: 'enrollment',
        site: site.name,
        ttlSeconds: 600,
        description: 'aiedge quickstart',
      });
      identities.push(
        await enrollSite({
          core: coreUrl,
          enrollmentToken: enrollment.token,
          site: site.name,
          labels: { ...facts.selector, [SITE_LABEL_KEY]: site.name },
          kind: 'device',
          dataDir,
          agentVersion: AGENT_VERSION,
          ...(signal !== undefined ? { signal } : {}),
        }),
      );
      enrolled.push(site.name);
    }
    if (enrolled.length === 0)
      progress.skipped('sites', `sites ${siteStates.map((s) => s.name).join(', ')} enrolled already`);
    else
      progress.done(
        'sites',
        `enrolled ${enrolled.join(', ')} (labels ${Object.entries(facts.selector)
          .map(([k, v]) => `${k}=${v}`)
          .join(',')})`,
      );

    // The agents.
    progress.start('agents', `agents of ${siteStates.map((s) => s.name).join(', ')}`);
    const sites: QuickstartSite[] = [];
    for (const [i, site] of siteStates.entries()) {
      throwIfAborted(signal);
      const dataDir = join(paths.sites, site.name);
      const telemetryUrl = `http://127.0.0.1:${site.telemetryPort}`;
      const agent = await startAgent({
        dataDir,
        identity: identities[i]!,
        createDriver: (context) =>
          new QuickstartSiteDriver(new ProcessDriver(context), {
            deployment: facts.deployment,
            port: site.port,
            env: {
              OTEL_METRIC_EXPORT_INTERVAL: String(METRIC_EXPORT_INTERVAL_MS),
            },
          }),
        logger: logger.child({ component: 'agent', site: site.name }),
        agentVersion: AGENT_VERSION,
        telemetry: { host: '127.0.0.1', port: site.telemetryPort },
        statusIntervalMs: 10_000,
      }).catch((error: unknown) => {
        if ((error as { code?: string }).code === 'EADDRINUSE') {
          throw new UnavailableError(
            `site ${site.name}: telemetry port ${site.telemetryPort} on 127.0.0.1 is in use (recorded in ${paths.state})`,
            { cause: error },
          );
        }
        throw error;
      });
      agents.push(agent);
      sites.push({ name: site.name, inferenceUrl: `http://127.0.0.1:${site.port}`, dataDir, telemetryUrl });
    }
    progress.done(
      'agents',
      `agents running: ${sites.map((s) => `${s.name} → ${s.inferenceUrl}`).join(', ')}`,
    );

    // The model: shipped unless the deployed version is the example model on disk.
    const deployed = await api.deployment(facts.deployment, signal);
    const deployedVersion = Number(deployed?.spec.model.version ?? 'NaN');
    let version = 1;
    let reusedModel = false;
    if (
      deployed !== undefined &&
      Number.isSafeInteger(deployedVersion) &&
      deployedVersion >= 1 &&
      deployedVersion <= 1000
    ) {
      const onDisk = await writeExampleVersion(paths.models, deployedVersion);
      if (deployed.spec.model.sha256 === onDisk.sha256 && deployed.spec.model.name === EXAMPLE_MODEL_NAME) {
        version = deployedVersion;
        reusedModel = true;
      }
    }
    const context: ShipContext = { api, dataDir: paths.root, facts, pipelineText, sites };
    if (reusedModel) {
      progress.skipped('model', `${EXAMPLE_MODEL_NAME} version ${version} is deployed already (same sha256)`);
      progress.skipped('pipeline', `no pipeline run: the deployed image was built from the same model`);
      progress.start('rollout', `sites serving ${EXAMPLE_MODEL_NAME} version ${version}`);
      await waitForRollout(api, facts.deployment, version, sites, progress, signal);
      progress.done(
        'rollout',
        `${sites.length === 2 ? 'both sites' : `${sites.length} sites`} serve ${EXAMPLE_MODEL_NAME} version ${version}`,
      );
    } else {
      await ship(context, version, progress, signal);
    }

    // A little traffic, and its telemetry at the core.
    progress.start('traffic', `${TRAFFIC_REQUESTS_PER_SITE} inference requests to each site`);
    const summary = (site: string) =>
      api.request<TelemetrySummary>(
        'GET',
        `/api/v1/telemetry/summary?site=${site}&windowSeconds=86400`,
        undefined,
        signal,
      );
    const before = new Map<string, number>();
    for (const site of sites) before.set(site.name, (await summary(site.name)).total.requests);
    for (const site of sites) {
      for (let i = 0; i < TRAFFIC_REQUESTS_PER_SITE; i++) {
        const answer = await inferExample(site.inferenceUrl, signal);
        if (!answersVersion(answer, version)) {
          throw new UnavailableError(
            `${site.name} answered ${JSON.stringify(answer)}, not version ${version}'s outputs`,
          );
        }
      }
    }
    progress.done(
      'traffic',
      `${TRAFFIC_REQUESTS_PER_SITE * sites.length} inference requests answered correctly`,
    );
    progress.start('telemetry', 'telemetry from the sites to the core (runtime → agent relay → core)');
    const end = Date.now() + TELEMETRY_TIMEOUT_MS;
    const arrived = new Set<string>();
    while (arrived.size < sites.length && Date.now() < end) {
      for (const site of sites) {
        if (
          !arrived.has(site.name) &&
          (await summary(site.name)).total.requests > (before.get(site.name) ?? 0)
        ) {
          arrived.add(site.name);
          progress.update('telemetry', `telemetry from ${[...arrived].join(', ')}`);
        }
      }
      if (arrived.size < sites.length) await sleep(500, signal);
    }
    if (arrived.size === sites.length) progress.done('telemetry', `telemetry of every site reached the core`);
    else {
      progress.warning(
        'telemetry',
        `no telemetry yet from ${sites
          .filter((s) => !arrived.has(s.name))
          .map((s) => s.name)
          .join(', ')} ` +
          `after ${seconds(TELEMETRY_TIMEOUT_MS)} (see ${displayPath(join(paths.logs, 'quickstart.log'))})`,
      );
    }

    const running: RunningQuickstart = {
      coreUrl,
      adminToken: token.token,
      dataDir: paths.root,
      sites,
      gitopsRepo: paths.gitopsRepo,
      modelsDir: paths.models,
      deployment: facts.deployment,
      model: { name: EXAMPLE_MODEL_NAME, version: String(version) },
      reused: previous !== undefined,
      shipModelVersion: async (shipOptions = {}) => {
        const next =
          shipOptions.version !== undefined
            ? checkInteger(shipOptions.version, 'version', 1, 1000)
            : await nextVersion(api, facts.deployment, shipOptions.signal);
        return ship(
          {
            ...context,
            ...(shipOptions.sites !== undefined
              ? { sites: sites.filter((s) => shipOptions.sites!.includes(s.name)) }
              : {}),
          },
          next,
          new Progress(shipOptions.onProgress),
          shipOptions.signal,
        );
      },
      stop,
    };
    signal?.addEventListener('abort', () => void stop(), { once: true });
    logger.info('quickstart running', { core: coreUrl, sites: sites.map((s) => s.name) });
    return running;
  } catch (error) {
    logger.error('quickstart failed', { err: error });
    await stop().catch(() => undefined);
    throw error;
  }
}
