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
import { join } from 'node:path';
import type { SiteDeployment } from '@aiedge/gitops';
import { ImagePaths, writeFileAtomic, type Digest, type ImageConfig } from '@aiedge/oci';
import { InputError, UnavailableError, type DeploymentState } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { ImageCache, type UnpackedImage } from '../images.js';
import {
  CheckFailed,
  ReportBook,
  Serial,
  checkServing,
  errorText,
  freePort,
  http,
  oipError,
  sleep,
  versionReady,
  type ReportFields,
} from './_checks.js';
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

/** Runs inference images as processes; see the file comment for how updates and crashes are handled. */
export class ProcessDriver implements Driver {
  readonly kind = 'process' as const;
  readonly #dir: string;
  readonly #images: ImageCache;
  readonly #logger: Logger;
  readonly #readyTimeoutMs: number;
  readonly #stopGraceMs: number;
  readonly #host: string;
  readonly #node: string;
  readonly #telemetryUrl: string | undefined;
  #state: StateFile = { version: 1, deployments: {} };
  readonly #reports: ReportBook;
  readonly #children = new Map<number, ChildProcess>();
  readonly #serial = new Serial();
  #closed = false;

  constructor(context: DriverContext, options: ProcessDriverOptions = {}) {
    this.#dir = join(context.dataDir, 'process');
    this.#logger = context.logger.child({ component: 'agent.driver.process' });
    this.#reports = new ReportBook(this.#logger, (report) => context.onReport(report));
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
    this.#telemetryUrl = context.telemetryUrl;
  }

  get #statePath(): string {
    return join(this.#dir, 'state.json');
  }

  async #save(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    await writeFileAtomic(this.#statePath, `${JSON.stringify(this.#state, null, 2)}\n`);
  }

  #report(name: string, state: DeploymentState, fields: ReportFields): DeploymentReport {
    return this.#reports.set(name, state, fields);
  }

  start(): Promise<void> {
    return this.#serial.run(async () => {
      await mkdir(this.#dir, { recursive: true });
      try {
        const parsed = JSON.parse(await readFile(this.#statePath, 'utf8')) as StateFile;
        if (parsed.version === 1 && typeof parsed.deployments === 'object') this.#state = parsed;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#logger.error('driver state unreadable; starting empty', { err: error });
        }
      }
      await this.#sweepOrphans();
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
        if (record.switching !== undefined && (await alive(serving.server.pid, serving.server.rootfs))) {
          // Killed during an in-place version switch: back to the recorded version alone.
          await this.#restoreVersion(name, record, serving).catch((error: unknown) => {
            this.#logger.warn('restoring the recorded version failed; restarting the server', {
              deployment: name,
              err: error,
            });
          });
        }
        if (record.switching === undefined && (await this.#healthy(serving))) {
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
    // The repository may hold a half-done switch: it gets exactly the recorded version again.
    await this.#prepareRepo(serving.server.repoDir, image, serving.model, serving.version);
    const server = await this.#launch(name, image, serving.spec, serving.model, {
      port: serving.spec.port,
      repoDir: serving.server.repoDir,
    });
    record.serving = { ...serving, server };
    delete record.switching;
    await this.#save();
    await this.#checkServer(server, serving.model, serving.version);
  }

  /**
   * Stops servers of this driver that the state does not record: a kill between starting a
   * server and recording its pid leaves one (it would hold the stable port).
   */
  async #sweepOrphans(): Promise<void> {
    const recorded = new Set<number>();
    for (const record of Object.values(this.#state.deployments)) {
      if (record.serving !== undefined) recorded.add(record.serving.server.pid);
      if (record.candidate !== undefined) recorded.add(record.candidate.pid);
    }
    const mark = `${join(this.#dir, 'images')}/`;
    let pids: string[];
    try {
      pids = (await readdir('/proc')).filter((p) => /^\d+$/.test(p));
    } catch {
      return; // no /proc: nothing to sweep with
    }
    for (const entry of pids) {
      const pid = Number(entry);
      if (recorded.has(pid) || pid === process.pid) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!cmdline.includes(mark)) continue;
      this.#logger.warn('stopping a server the state does not record', { pid });
      await this.#stopPid(pid, mark);
    }
  }

  /**
   * After a kill during an in-place switch: the running server serves the recorded version alone
   * again (policy, load, the other version's files removed); the next reconcile redoes the switch.
   */
  async #restoreVersion(name: string, record: DeploymentRecord, serving: Serving): Promise<void> {
    const { repoDir } = serving.server;
    const model = serving.model;
    const image = await this.#images.unpacked(serving.server.imageDigest as Digest);
    if (image !== undefined) await this.#linkVersion(image, model, serving.version, repoDir);
    await this.#writePolicy(repoDir, model, [serving.version]);
    const loaded = await http(`${this.#url(serving.server.port)}/v2/repository/models/${model}/load`, {
      method: 'POST',
    });
    if (loaded.status !== 200) throw new CheckFailed(oipError(loaded));
    for (const entry of await readdir(join(repoDir, model), { withFileTypes: true })) {
      if (entry.isDirectory() && entry.name !== serving.version) {
        await rm(join(repoDir, model, entry.name), { recursive: true, force: true });
      }
    }
    delete record.switching;
    await this.#save();
    this.#logger.info('restored the recorded version after an interrupted switch', {
      deployment: name,
      version: serving.version,
    });
  }

  reconcile(desired: readonly SiteDeployment[], signal: AbortSignal): Promise<DeploymentReport[]> {
    return this.#serial.run(async () => {
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
    return this.#reports.all();
  }

  async close(options: { stopServing?: boolean } = {}): Promise<void> {
    await this.#serial.run(async () => {
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
      if (await this.#healthy(serving)) {
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
      if (serving === undefined || !(await this.#healthy(serving))) {
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
    return this.#reports.failed(
      name,
      fields,
      reason,
      serving && { model: serving.model, version: serving.version, imageDigest: serving.spec.imageDigest },
    );
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
      await checkServing(base, model, found.version, { timeoutMs: this.#readyTimeoutMs });
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
      // As the rendered manifest sets them, with the agent's relay as the endpoint.
      ...(this.#telemetryUrl !== undefined
        ? { OTEL_EXPORTER_OTLP_ENDPOINT: this.#telemetryUrl, OTEL_SERVICE_NAME: spec.name }
        : {}),
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

  /** The recorded server runs and its recorded model version is ready (not only the server). */
  async #healthy(serving: Serving): Promise<boolean> {
    const { server } = serving;
    if (!(await alive(server.pid, server.rootfs))) return false;
    return versionReady(this.#url(server.port), serving.model, serving.version);
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
    await checkServing(this.#url(server.port), model, version, {
      timeoutMs: this.#readyTimeoutMs,
      gone: async () =>
        (await alive(server.pid))
          ? undefined
          : `the server exited before it was ready: ${await this.#logTail(server)}`,
    });
  }

  /** Stops a server's process group: SIGTERM, then SIGKILL after the grace period. */
  async #stopServer(server: ServerRecord): Promise<void> {
    if (await this.#stopPid(server.pid, server.rootfs)) {
      this.#logger.info('server stopped', { pid: server.pid, port: server.port });
    }
  }

  /** Stops process group `pid` when it runs and its command line mentions `mark`; true when it ran. */
  async #stopPid(pid: number, mark: string): Promise<boolean> {
    if (!(await alive(pid, mark))) return false;
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-pid, signal);
      } catch {
        try {
          process.kill(pid, signal);
        } catch {
          // gone
        }
      }
    };
    signalGroup('SIGTERM');
    const deadline = Date.now() + this.#stopGraceMs;
    while (await alive(pid)) {
      if (Date.now() > deadline) {
        signalGroup('SIGKILL');
        await sleep(POLL_MS);
        if (!(await alive(pid))) break;
      }
      await sleep(POLL_MS);
    }
    return true;
  }
}
