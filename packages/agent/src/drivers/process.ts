/**
 * The `process` driver: runs each deployment's inference image as a plain child process (the
 * image's `aiedge serve` from its unpacked root filesystem, run by this machine's node), one server
 * per deployment on the deployment's stable port.
 *
 * Updates:
 * - a new model version on the same runtime is switched inside the running server with the
 *   runtime's repository API: the new version is linked into the server's model repository, the
 *   version policy (`config.json`, `specific`) lists old and new, `load` loads the new one (the old
 *   keeps serving), the driver checks it (ready, metadata, a smoke inference of zeros), then the
 *   policy lists only the new one and `load` retires the old one after its requests drained. No
 *   request is dropped. Note: `/v2/models/<m>/infer` serves the highest ready version, so when the
 *   new version number is higher, unversioned requests move to it as soon as it is loaded, and the
 *   checks run right after (a check failure moves them back, again without a gap).
 * - a changed runtime (any image layer but the model's, the image config, the env, or the model
 *   name or version number unchanged with new bytes) is checked on a second server on a temporary
 *   port first; only when it passes is the old server stopped and the new one started on the
 *   stable port: this leaves a short gap (the new server's start-up, about a second) during which
 *   connections to the port are refused. A TCP proxy on the stable port would close that gap; it is
 *   not implemented.
 *
 * Crash safety: `<dataDir>/process/state.json` (temp + rename) records every server (pid, port,
 * image, repository directory) and is written before and after each switch; `start()` adopts
 * servers that still run and answer ready, kills left-over candidate servers and restarts the
 * recorded image of the others.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, copyFile, mkdir, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { SiteDeployment } from '@aiedge/gitops';
import { ImagePaths, writeFileAtomic, type Digest, type ImageConfig } from '@aiedge/oci';
import { InputError, UnavailableError, type DeploymentState } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { ImageCache, type UnpackedImage } from '../images.js';
import type { DeploymentReport, Driver, DriverContext } from './types.js';

/** Options of {@link ProcessDriver}. */
export interface ProcessDriverOptions {
  /** Images kept for rollback (serving ones included); default 3. */
  readonly keepImages?: number;
  /** How long a server or a new version may take to become ready; default 60 s. */
  readonly readyTimeoutMs?: number;
  /** How long a stopped server may take before SIGKILL; default 5 s. */
  readonly stopGraceMs?: number;
  /** Address the servers listen on; default 127.0.0.1. */
  readonly host?: string;
  /** The node binary that runs the image's runtime; default this process's. */
  readonly nodePath?: string;
}

const DEFAULT_READY_TIMEOUT_MS = 60_000;
const DEFAULT_STOP_GRACE_MS = 5_000;
const POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_REASON = 4000;

/** A server process the driver started. */
interface ServerRecord {
  readonly pid: number;
  readonly port: number;
  readonly imageDigest: string;
  readonly rootfs: string;
  readonly repoDir: string;
  readonly runtimeKey: string;
  readonly log: string;
}

/** What serves for one deployment. */
interface Serving {
  readonly spec: SiteDeployment;
  /** Model name and version inside the image (`/models/<model>/<version>`). */
  readonly model: string;
  readonly version: string;
  readonly server: ServerRecord;
}

interface DeploymentRecord {
  serving?: Serving;
  /** Recorded before a switch, cleared after it. */
  switching?: { readonly imageDigest: string; readonly version: string };
  /** A temporary server checking a new runtime. */
  candidate?: ServerRecord;
  /** The last digest that failed, with its spec key: not retried until the desired state changes. */
  failed?: { readonly key: string; readonly report: DeploymentReport };
}

interface StateFile {
  readonly version: 1;
  readonly deployments: Record<string, DeploymentRecord>;
}

/** A check that failed: its message is the report's reason. */
class CheckFailed extends Error {}

function clip(text: string): string {
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 1)}…` : text;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** True when `pid` runs (not a zombie) and, when given, its command line mentions `mark`. */
async function alive(pid: number, mark?: string): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/\) Z /.test(stat)) return false;
    if (mark !== undefined) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      return cmdline.includes(mark);
    }
  } catch {
    // no /proc: trust kill(0)
  }
  return true;
}

interface HttpResult {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

async function http(url: string, init: { method?: string; body?: unknown } = {}): Promise<HttpResult> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    ...(init.body !== undefined
      ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }
      : {}),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

function oipError(r: HttpResult): string {
  const e = (r.body as { error?: unknown } | undefined)?.error;
  return typeof e === 'string' ? e : `HTTP ${r.status} ${r.text.slice(0, 500)}`;
}

/** Everything that needs a new server process when it changes. */
function runtimeKeyOf(image: UnpackedImage, spec: SiteDeployment, model: string): string {
  const c = image.config.config ?? {};
  return createHash('sha256')
    .update(
      JSON.stringify({
        layers: image.manifest.layers.slice(0, -1).map((l) => l.digest),
        entrypoint: c.Entrypoint ?? null,
        cmd: c.Cmd ?? null,
        env: c.Env ?? null,
        workdir: c.WorkingDir ?? null,
        deploymentEnv: Object.entries(spec.env).sort(),
        port: spec.port,
        model,
      }),
    )
    .digest('hex');
}

/** What identifies a desired deployment for "do not retry until it changes". */
function specKey(spec: SiteDeployment): string {
  return JSON.stringify([spec.imageDigest, spec.port, Object.entries(spec.env).sort(), spec.model]);
}

/** A request of zeros for the model's inputs (dynamic dimensions as 1). */
function zerosRequest(metadata: unknown): unknown {
  const inputs = (metadata as { inputs?: unknown } | undefined)?.inputs;
  if (!Array.isArray(inputs)) return undefined;
  return {
    inputs: inputs.map((t: { name: string; datatype: string; shape: number[] }) => {
      const shape = t.shape.map((d) => (d < 0 ? 1 : d));
      const n = shape.reduce((a, b) => a * b, 1);
      const zero = t.datatype === 'BOOL' ? false : t.datatype === 'BYTES' ? '' : 0;
      return { name: t.name, datatype: t.datatype, shape, data: new Array<unknown>(n).fill(zero) };
    }),
  };
}

/** Runs inference images as processes; see the file comment for how updates and crashes are handled. */
export class ProcessDriver implements Driver {
  readonly kind = 'process' as const;
  readonly #context: DriverContext;
  readonly #dir: string;
  readonly #images: ImageCache;
  readonly #logger: Logger;
  readonly #readyTimeoutMs: number;
  readonly #stopGraceMs: number;
  readonly #host: string;
  readonly #node: string;
  #state: StateFile = { version: 1, deployments: {} };
  readonly #reports = new Map<string, DeploymentReport>();
  readonly #children = new Map<number, ChildProcess>();
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(context: DriverContext, options: ProcessDriverOptions = {}) {
    this.#context = context;
    this.#dir = join(context.dataDir, 'process');
    this.#logger = context.logger.child({ component: 'agent.driver.process' });
    this.#images = new ImageCache({
      store: context.store,
      dir: join(this.#dir, 'images'),
      registry: context.registry,
      logger: this.#logger,
      ...(options.keepImages !== undefined ? { keep: options.keepImages } : {}),
    });
    this.#readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.#stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    this.#host = options.host ?? '127.0.0.1';
    this.#node = options.nodePath ?? process.execPath;
  }

  /** Runs `task` after the driver's earlier work. */
  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  get #statePath(): string {
    return join(this.#dir, 'state.json');
  }

  async #save(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    await writeFileAtomic(this.#statePath, `${JSON.stringify(this.#state, null, 2)}\n`);
  }

  #report(
    name: string,
    state: DeploymentState,
    fields: { model: string; version: string; imageDigest?: string; reason?: string },
  ): DeploymentReport {
    const previous = this.#reports.get(name);
    const report: DeploymentReport = {
      deployment: name,
      model: fields.model,
      version: fields.version,
      ...(fields.imageDigest !== undefined ? { imageDigest: fields.imageDigest } : {}),
      state,
      ...(fields.reason !== undefined ? { reason: clip(fields.reason) } : {}),
      since:
        previous !== undefined &&
        previous.state === state &&
        previous.imageDigest === fields.imageDigest &&
        previous.version === fields.version
          ? previous.since
          : new Date().toISOString(),
    };
    const same =
      previous !== undefined &&
      previous.state === report.state &&
      previous.reason === report.reason &&
      previous.imageDigest === report.imageDigest &&
      previous.version === report.version &&
      previous.model === report.model;
    this.#reports.set(name, report);
    if (!same) {
      this.#logger.info('deployment state', { ...report });
      try {
        this.#context.onReport(report);
      } catch (error) {
        this.#logger.warn('onReport failed', { err: error });
      }
    }
    return report;
  }

  start(): Promise<void> {
    return this.#serialize(async () => {
      await mkdir(this.#dir, { recursive: true });
      try {
        const parsed = JSON.parse(await readFile(this.#statePath, 'utf8')) as StateFile;
        if (parsed.version === 1 && typeof parsed.deployments === 'object') this.#state = parsed;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#logger.error('driver state unreadable; starting empty', { err: error });
        }
      }
      for (const [name, record] of Object.entries(this.#state.deployments)) {
        if (record.candidate !== undefined) {
          await this.#stopServer(record.candidate);
          await rm(record.candidate.repoDir, { recursive: true, force: true });
          delete record.candidate;
          await this.#save();
        }
        const serving = record.serving;
        if (serving === undefined) continue;
        const fields = {
          model: serving.model,
          version: serving.version,
          imageDigest: serving.spec.imageDigest,
        };
        if (await this.#healthy(serving.server)) {
          this.#logger.info('adopted a running server', { deployment: name, pid: serving.server.pid });
          this.#report(name, 'Serving', fields);
          continue;
        }
        this.#report(name, 'Starting', { ...fields, reason: 'restarting the recorded server' });
        try {
          await this.#restartRecorded(name, record, serving);
          this.#report(name, 'Serving', fields);
        } catch (error) {
          this.#report(name, 'Failed', { ...fields, reason: `restart failed: ${errorText(error)}` });
        }
      }
    });
  }

  async #restartRecorded(name: string, record: DeploymentRecord, serving: Serving): Promise<void> {
    await this.#stopServer(serving.server);
    const image = await this.#images.unpacked(serving.server.imageDigest as Digest);
    if (image === undefined)
      throw new UnavailableError(`image ${serving.server.imageDigest} is not unpacked`);
    const server = await this.#launch(name, image, serving.spec, serving.model, {
      port: serving.spec.port,
      repoDir: serving.server.repoDir,
    });
    record.serving = { ...serving, server };
    delete record.switching;
    await this.#save();
    await this.#checkServer(server, serving.model, serving.version);
  }

  reconcile(desired: readonly SiteDeployment[], signal: AbortSignal): Promise<DeploymentReport[]> {
    return this.#serialize(async () => {
      if (this.#closed) throw new UnavailableError('the process driver is closed');
      const names = new Set(desired.map((d) => d.name));
      for (const name of Object.keys(this.#state.deployments)) {
        if (!names.has(name)) await this.#remove(name);
      }
      for (const d of desired) {
        if (!this.#reports.has(d.name)) {
          this.#report(d.name, 'Pending', {
            model: d.model.name,
            version: d.model.version,
            imageDigest: d.imageDigest,
          });
        }
      }
      await Promise.all(desired.map((d) => this.#apply(d, signal)));
      const inUse = Object.values(this.#state.deployments).flatMap((r) =>
        r.serving !== undefined ? [r.serving.server.imageDigest] : [],
      );
      await this.#images.gc(inUse).catch((error: unknown) => {
        this.#logger.warn('image garbage collection failed', { err: error });
      });
      return desired.map((d) => this.#reports.get(d.name)!);
    });
  }

  reports(): DeploymentReport[] {
    return [...this.#reports.values()].sort((a, b) => a.deployment.localeCompare(b.deployment));
  }

  async close(options: { stopServing?: boolean } = {}): Promise<void> {
    await this.#serialize(async () => {
      this.#closed = true;
      if (options.stopServing === true) {
        for (const record of Object.values(this.#state.deployments)) {
          if (record.candidate !== undefined) await this.#stopServer(record.candidate);
          if (record.serving !== undefined) await this.#stopServer(record.serving.server);
        }
      }
      for (const child of this.#children.values()) child.unref();
      await this.#images.close();
    });
  }

  async #remove(name: string): Promise<void> {
    const record = this.#state.deployments[name];
    if (record === undefined) return;
    if (record.candidate !== undefined) await this.#stopServer(record.candidate);
    if (record.serving !== undefined) await this.#stopServer(record.serving.server);
    delete this.#state.deployments[name];
    await this.#save();
    await rm(join(this.#dir, 'repos', name), { recursive: true, force: true });
    await rm(join(this.#dir, 'repos', `${name}.candidate`), { recursive: true, force: true });
    this.#reports.delete(name);
    this.#logger.info('deployment removed', { deployment: name });
  }

  async #apply(d: SiteDeployment, signal: AbortSignal): Promise<void> {
    const record = (this.#state.deployments[d.name] ??= {});
    const serving = record.serving;
    const key = specKey(d);
    const desiredFields = { model: d.model.name, version: d.model.version, imageDigest: d.imageDigest };
    if (serving !== undefined && specKey(serving.spec) === key) {
      // Already there: make sure it still runs.
      const fields = { model: serving.model, version: serving.version, imageDigest: d.imageDigest };
      if (await this.#healthy(serving.server)) {
        this.#report(d.name, 'Serving', fields);
        return;
      }
      this.#report(d.name, 'Starting', { ...fields, reason: 'the server stopped; restarting it' });
      try {
        await this.#restartRecorded(d.name, record, serving);
        this.#report(d.name, 'Serving', fields);
      } catch (error) {
        this.#report(d.name, 'Failed', { ...fields, reason: `restart failed: ${errorText(error)}` });
      }
      return;
    }
    if (record.failed !== undefined) {
      if (record.failed.key === key) {
        const r = record.failed.report;
        this.#report(d.name, r.state, {
          model: r.model,
          version: r.version,
          ...(r.imageDigest !== undefined ? { imageDigest: r.imageDigest } : {}),
          ...(r.reason !== undefined ? { reason: r.reason } : {}),
        });
        return;
      }
      delete record.failed;
    }

    // Pull and unpack.
    let image: UnpackedImage;
    try {
      image = await this.#images.ensure(d.image, d.imageDigest, {
        signal,
        onPull: () => this.#report(d.name, 'Pulling', desiredFields),
      });
    } catch (error) {
      if (signal.aborted) return;
      // Not recorded as failed: a pull error is often the link's; the next reconcile retries.
      const reason = `pulling ${d.image} failed: ${errorText(error)}`;
      this.#failReport(d.name, serving, desiredFields, reason);
      return;
    }
    if (signal.aborted) return;

    this.#report(d.name, 'Starting', desiredFields);
    let found: { model: string; version: string };
    try {
      found = await this.#findModel(image, d);
    } catch (error) {
      await this.#recordFailure(d, record, desiredFields, errorText(error));
      return;
    }
    const fields = { model: found.model, version: found.version, imageDigest: d.imageDigest };
    const runtimeKey = runtimeKeyOf(image, d, found.model);
    try {
      if (serving === undefined || !(await this.#healthy(serving.server))) {
        if (serving !== undefined) await this.#stopServer(serving.server);
        await this.#freshStart(d, record, image, found);
      } else if (
        serving.server.runtimeKey === runtimeKey &&
        serving.model === found.model &&
        serving.version !== found.version
      ) {
        await this.#switchVersion(d, record, serving, image, found);
      } else {
        await this.#switchServer(d, record, serving, image, found, runtimeKey);
      }
      this.#report(d.name, 'Serving', fields);
    } catch (error) {
      await this.#recordFailure(d, record, fields, errorText(error));
    }
  }

  #failReport(
    name: string,
    serving: Serving | undefined,
    fields: { model: string; version: string; imageDigest: string },
    reason: string,
  ): DeploymentReport {
    if (serving !== undefined) {
      return this.#report(name, 'RolledBack', {
        ...fields,
        reason: `${reason}; still serving ${serving.model} version ${serving.version} (${serving.spec.imageDigest})`,
      });
    }
    return this.#report(name, 'Failed', { ...fields, reason });
  }

  async #recordFailure(
    d: SiteDeployment,
    record: DeploymentRecord,
    fields: { model: string; version: string; imageDigest: string },
    reason: string,
  ): Promise<void> {
    // serving is re-read: a failed switch leaves the old one (or none) recorded.
    const report = this.#failReport(d.name, record.serving, fields, reason);
    record.failed = { key: specKey(d), report };
    await this.#save();
  }

  /** The model name and version the image serves: the deployment's when present, else the only one. */
  async #findModel(image: UnpackedImage, d: SiteDeployment): Promise<{ model: string; version: string }> {
    const models = join(image.rootfs, this.#modelRoot(image.config));
    try {
      await stat(join(models, d.model.name, d.model.version));
      return { model: d.model.name, version: d.model.version };
    } catch {
      // fall through
    }
    const found: Array<{ model: string; version: string }> = [];
    for (const model of await readdir(models).catch(() => [] as string[])) {
      for (const version of await readdir(join(models, model)).catch(() => [] as string[])) {
        if (/^\d{1,15}$/.test(version)) found.push({ model, version });
      }
    }
    if (found.length !== 1) {
      throw new InputError(
        `image ${d.imageDigest} has ${found.length === 0 ? 'no model' : `${found.length} model versions`} under ${this.#modelRoot(image.config)}; expected ${d.model.name}/${d.model.version}`,
      );
    }
    return found[0]!;
  }

  #modelRoot(config: ImageConfig): string {
    for (const kv of config.config?.Env ?? []) {
      if (kv.startsWith('AIEDGE_SERVE_MODEL_REPOSITORY=')) return kv.slice(kv.indexOf('=') + 1);
    }
    return ImagePaths.models;
  }

  /** Links (or copies) one version's files from the image into a repository directory. */
  async #linkVersion(image: UnpackedImage, model: string, version: string, repoDir: string): Promise<void> {
    const from = join(image.rootfs, this.#modelRoot(image.config), model, version);
    const to = join(repoDir, model, version);
    await rm(to, { recursive: true, force: true });
    const walk = async (src: string, dst: string): Promise<void> => {
      await mkdir(dst, { recursive: true });
      for (const e of await readdir(src, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(src, e.name), join(dst, e.name));
        else if (e.isFile()) {
          await link(join(src, e.name), join(dst, e.name)).catch(() =>
            copyFile(join(src, e.name), join(dst, e.name)),
          );
        }
      }
    };
    await walk(from, to);
  }

  async #writePolicy(repoDir: string, model: string, versions: readonly string[]): Promise<void> {
    await mkdir(join(repoDir, model), { recursive: true });
    await writeFileAtomic(
      join(repoDir, model, 'config.json'),
      `${JSON.stringify({ version_policy: { specific: { versions: versions.map(Number) } } })}\n`,
    );
  }

  /** A repository directory holding exactly one version, ready for a new server. */
  async #prepareRepo(repoDir: string, image: UnpackedImage, model: string, version: string): Promise<void> {
    await rm(repoDir, { recursive: true, force: true });
    await this.#linkVersion(image, model, version, repoDir);
    await this.#writePolicy(repoDir, model, [version]);
  }

  async #freshStart(
    d: SiteDeployment,
    record: DeploymentRecord,
    image: UnpackedImage,
    found: { model: string; version: string },
  ): Promise<void> {
    const repoDir = join(this.#dir, 'repos', d.name);
    await this.#prepareRepo(repoDir, image, found.model, found.version);
    const server = await this.#launch(d.name, image, d, found.model, { port: d.port, repoDir });
    record.serving = { spec: d, model: found.model, version: found.version, server };
    delete record.switching;
    await this.#save();
    try {
      await this.#checkServer(server, found.model, found.version);
    } catch (error) {
      await this.#stopServer(server);
      delete record.serving;
      await this.#save();
      throw error;
    }
  }

  /** Switches the model version inside the running server; no request is dropped. */
  async #switchVersion(
    d: SiteDeployment,
    record: DeploymentRecord,
    serving: Serving,
    image: UnpackedImage,
    found: { model: string; version: string },
  ): Promise<void> {
    const { repoDir } = serving.server;
    const base = this.#url(serving.server.port);
    const model = found.model;
    record.switching = { imageDigest: d.imageDigest, version: found.version };
    await this.#save();
    await this.#linkVersion(image, model, found.version, repoDir);
    await this.#writePolicy(repoDir, model, [serving.version, found.version]);
    try {
      const loaded = await http(`${base}/v2/repository/models/${model}/load`, { method: 'POST' });
      if (loaded.status !== 200) throw new CheckFailed(oipError(loaded));
      await this.#waitLoaded(base, model, found.version);
      await this.#checkVersion(base, model, found.version);
    } catch (error) {
      // Roll back: the old version keeps (or again) serves alone.
      await this.#writePolicy(repoDir, model, [serving.version]);
      const back = await http(`${base}/v2/repository/models/${model}/load`, { method: 'POST' }).catch(
        (e: unknown) => ({ status: 0, body: undefined, text: errorText(e) }),
      );
      if (back.status !== 200) {
        this.#logger.error('rollback load failed', { deployment: d.name, reason: oipError(back) });
      }
      await rm(join(repoDir, model, found.version), { recursive: true, force: true });
      delete record.switching;
      await this.#save();
      throw error;
    }
    await this.#writePolicy(repoDir, model, [found.version]);
    const retired = await http(`${base}/v2/repository/models/${model}/load`, { method: 'POST' });
    if (retired.status !== 200) {
      this.#logger.warn('retiring the old version failed', { deployment: d.name, reason: oipError(retired) });
    }
    const server: ServerRecord = { ...serving.server, imageDigest: d.imageDigest };
    record.serving = { spec: d, model, version: found.version, server };
    delete record.switching;
    await this.#save();
    await rm(join(repoDir, model, serving.version), { recursive: true, force: true });
  }

  /** Checks a new runtime on a temporary port, then replaces the server on the stable port. */
  async #switchServer(
    d: SiteDeployment,
    record: DeploymentRecord,
    serving: Serving,
    image: UnpackedImage,
    found: { model: string; version: string },
    runtimeKey: string,
  ): Promise<void> {
    const candidateRepo = join(this.#dir, 'repos', `${d.name}.candidate`);
    await this.#prepareRepo(candidateRepo, image, found.model, found.version);
    const port = await freePort(this.#host);
    const candidate = await this.#launch(`${d.name}.candidate`, image, d, found.model, {
      port,
      repoDir: candidateRepo,
    });
    record.candidate = candidate;
    await this.#save();
    try {
      await this.#checkServer(candidate, found.model, found.version);
    } finally {
      await this.#stopServer(candidate);
      await rm(candidateRepo, { recursive: true, force: true });
      delete record.candidate;
      await this.#save();
    }
    // Passed: replace the stable server (a short gap while the new one starts).
    record.switching = { imageDigest: d.imageDigest, version: found.version };
    await this.#save();
    await this.#stopServer(serving.server);
    const repoDir = serving.server.repoDir;
    try {
      await this.#prepareRepo(repoDir, image, found.model, found.version);
      const server = await this.#launch(d.name, image, d, found.model, { port: d.port, repoDir });
      if (server.runtimeKey !== runtimeKey) throw new Error('runtime key mismatch');
      record.serving = { spec: d, model: found.model, version: found.version, server };
      await this.#save();
      await this.#checkServer(server, found.model, found.version);
      delete record.switching;
      await this.#save();
    } catch (error) {
      this.#logger.error('the new server failed on the stable port; restarting the old one', {
        deployment: d.name,
        err: error,
      });
      if (record.serving !== serving) await this.#stopServer(record.serving!.server);
      record.serving = serving;
      const old = await this.#images.unpacked(serving.server.imageDigest as Digest);
      if (old !== undefined) await this.#prepareRepo(repoDir, old, serving.model, serving.version);
      await this.#restartRecorded(d.name, record, serving);
      throw error;
    }
  }

  #url(port: number): string {
    return `http://${this.#host === '0.0.0.0' ? '127.0.0.1' : this.#host}:${port}`;
  }

  /** Starts `aiedge serve` of an unpacked image, detached in its own process group. */
  async #launch(
    name: string,
    image: UnpackedImage,
    spec: SiteDeployment,
    model: string,
    where: { port: number; repoDir: string },
  ): Promise<ServerRecord> {
    const c = image.config.config ?? {};
    const rootfs = image.rootfs;
    const inRoot = (p: string): string => (p.startsWith('/') ? join(rootfs, p) : p);
    const [program, ...args] = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
    if (program === undefined) throw new InputError(`image ${image.digest} has no Entrypoint or Cmd to run`);
    const executable = program === 'node' || program.endsWith('/node') ? this.#node : inRoot(program);
    const imageEnv: Record<string, string> = {};
    for (const kv of c.Env ?? []) {
      const at = kv.indexOf('=');
      if (at > 0) imageEnv[kv.slice(0, at)] = kv.slice(at + 1);
    }
    const home = join(this.#dir, 'home', name);
    await mkdir(home, { recursive: true });
    const env: Record<string, string> = {
      ...imageEnv,
      ...spec.env,
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: home,
      AIEDGE_SERVE_MODEL_REPOSITORY: where.repoDir,
    };
    if (env['SSL_CERT_FILE'] !== undefined) env['SSL_CERT_FILE'] = inRoot(env['SSL_CERT_FILE']);
    const argv = [
      ...args.map(inRoot),
      '--model-repository',
      where.repoDir,
      '--host',
      this.#host,
      '--port',
      String(where.port),
    ];
    const logs = join(this.#dir, 'logs');
    await mkdir(logs, { recursive: true });
    const log = join(logs, `${name}.log`);
    const out = await open(log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(executable, argv, {
        cwd: c.WorkingDir !== undefined ? inRoot(c.WorkingDir) : rootfs,
        env,
        detached: true,
        stdio: ['ignore', out.fd, out.fd],
      });
    } finally {
      await out.close();
    }
    const pid = child.pid;
    if (pid === undefined) {
      const error = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new UnavailableError(`could not start ${executable}: ${error.message}`);
    }
    child.on('error', () => undefined);
    child.once('exit', () => this.#children.delete(pid));
    child.unref();
    this.#children.set(pid, child);
    this.#logger.info('server started', { deployment: name, pid, port: where.port, log });
    return {
      pid,
      port: where.port,
      imageDigest: image.digest,
      rootfs,
      repoDir: where.repoDir,
      runtimeKey: runtimeKeyOf(image, spec, model),
      log,
    };
  }

  async #healthy(server: ServerRecord): Promise<boolean> {
    if (!(await alive(server.pid, server.rootfs))) return false;
    try {
      return (await http(`${this.#url(server.port)}/v2/health/ready`)).status === 200;
    } catch {
      return false;
    }
  }

  async #logTail(server: ServerRecord): Promise<string> {
    try {
      const text = await readFile(server.log, 'utf8');
      return text.trimEnd().split('\n').slice(-10).join('\n');
    } catch {
      return '';
    }
  }

  /** Waits until a freshly started server serves `model/version` and passes the checks. */
  async #checkServer(server: ServerRecord, model: string, version: string): Promise<void> {
    const base = this.#url(server.port);
    await this.#waitLoaded(base, model, version, server);
    await this.#checkVersion(base, model, version);
  }

  /**
   * Polls the repository index until `model/version` is READY; fails at once when it is
   * UNAVAILABLE with a reason (ORT's load error) or when the server exits.
   */
  async #waitLoaded(base: string, model: string, version: string, server?: ServerRecord): Promise<void> {
    const deadline = Date.now() + this.#readyTimeoutMs;
    let last = 'no answer yet';
    for (;;) {
      if (server !== undefined && !(await alive(server.pid))) {
        throw new CheckFailed(`the server exited before it was ready: ${await this.#logTail(server)}`);
      }
      try {
        const index = await http(`${base}/v2/repository/index`, { method: 'POST', body: {} });
        if (index.status === 200 && Array.isArray(index.body)) {
          const rows = index.body as Array<{
            name: string;
            version?: string;
            state: string;
            reason?: string;
          }>;
          const row = rows.find(
            (r) => r.name === model && (r.version === version || r.version === undefined),
          );
          if (row?.state === 'READY') return;
          if (row?.state === 'UNAVAILABLE' && row.reason !== undefined) {
            throw new CheckFailed(`${model} version ${version} failed to load: ${row.reason}`);
          }
          last = row === undefined ? 'not in the repository index' : row.state;
        } else {
          last = oipError(index);
        }
      } catch (error) {
        if (error instanceof CheckFailed) throw error;
        last = errorText(error);
      }
      if (Date.now() > deadline) {
        throw new CheckFailed(
          `${model} version ${version} was not ready within ${this.#readyTimeoutMs} ms (${last})`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Ready, metadata and a smoke inference of zeros on the version's own endpoints. */
  async #checkVersion(base: string, model: string, version: string): Promise<void> {
    const at = `${base}/v2/models/${model}/versions/${version}`;
    const deadline = Date.now() + this.#readyTimeoutMs;
    for (;;) {
      const ready = await http(`${at}/ready`).catch((e: unknown) => ({
        status: 0,
        body: undefined,
        text: errorText(e),
      }));
      if (ready.status === 200) break;
      if (ready.status === 404 || Date.now() > deadline) {
        throw new CheckFailed(`${model} version ${version} is not ready: ${oipError(ready)}`);
      }
      await sleep(POLL_MS);
    }
    const metadata = await http(at);
    if (metadata.status !== 200) {
      throw new CheckFailed(`${model} version ${version} metadata failed: ${oipError(metadata)}`);
    }
    const request = zerosRequest(metadata.body);
    if (request === undefined) {
      throw new CheckFailed(
        `${model} version ${version} metadata has no inputs: ${metadata.text.slice(0, 200)}`,
      );
    }
    const inferred = await http(`${at}/infer`, { method: 'POST', body: request });
    if (inferred.status !== 200) {
      throw new CheckFailed(`${model} version ${version} smoke inference failed: ${oipError(inferred)}`);
    }
  }

  /** Stops a server's process group: SIGTERM, then SIGKILL after the grace period. */
  async #stopServer(server: ServerRecord): Promise<void> {
    if (!(await alive(server.pid, server.rootfs))) return;
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-server.pid, signal);
      } catch {
        try {
          process.kill(server.pid, signal);
        } catch {
          // gone
        }
      }
    };
    signalGroup('SIGTERM');
    const deadline = Date.now() + this.#stopGraceMs;
    while (await alive(server.pid)) {
      if (Date.now() > deadline) {
        signalGroup('SIGKILL');
        await sleep(POLL_MS);
        if (!(await alive(server.pid))) break;
      }
      await sleep(POLL_MS);
    }
    this.#logger.info('server stopped', { pid: server.pid, port: server.port });
  }
}
