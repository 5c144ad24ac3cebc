/**
 * The `podman` driver: runs each deployment's rendered Deployment manifest with `podman kube play`.
 *
 * - Images: pulled by the agent into its content store (only missing blobs, digest-verified), then
 *   loaded into podman from an OCI archive and tagged `localhost/aiedge-agent/image:<hex>`; podman
 *   never talks to the registry and needs no credentials. The last K images are kept for rollback.
 * - The manifest is played as rendered, with what a device without a cluster needs instead of a
 *   cluster's: host networking (no inbound port mapping; the server binds the agent's address on the
 *   deployment's port), the local image with pull policy Never, the agent's telemetry relay as OTLP
 *   endpoint, and no kubelet probes (the driver checks health itself: podman would run them with
 *   curl inside the image, which has none).
 * - Replace with health check: a new version first runs as a candidate pod on a temporary port and
 *   must load, answer ready, metadata and a smoke inference; only then is the serving pod replaced
 *   (a short gap while the new pod starts) and checked again; if that fails the previous manifest is
 *   played again (rollback). A version that fails is recorded and not retried until the desired
 *   state changes.
 * - Crash safety: `<dataDir>/podman/state.json` (temp + rename) records the serving pod, the
 *   candidate and a replacement in progress; `start()` removes a left-over candidate, plays the
 *   recorded manifest again when a replacement was interrupted or the pod is not healthy, and
 *   adopts healthy pods (pods outlive the agent).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CONTAINER_NAME, toYaml, type SiteDeployment } from '@aiedge/gitops';
import { writeArchive, writeFileAtomic, type Digest } from '@aiedge/oci';
import { InputError, UnavailableError, type DeploymentState } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { ImageCache, hostManifest } from '../images.js';
import {
  ReportBook,
  Serial,
  checkServing,
  errorText,
  freePort,
  versionReady,
  type ReportFields,
} from './_checks.js';
import type { DeploymentReport, Driver, DriverContext } from './types.js';

const run = promisify(execFile);

/** Options of {@link PodmanDriver}. */
export interface PodmanDriverOptions {
  /** Images kept for rollback (serving ones included); default 3. */
  readonly keepImages?: number;
  /** How long a pod may take to serve its model; default 120 s. */
  readonly readyTimeoutMs?: number;
  /** Seconds podman waits after SIGTERM before SIGKILL when removing a pod; default 5. */
  readonly stopGraceSeconds?: number;
  /** The podman binary; default `podman` on PATH. */
  readonly podman?: string;
  /** Address the servers listen on (host network); default 127.0.0.1. */
  readonly host?: string;
}

const DEFAULT_READY_TIMEOUT_MS = 120_000;
const IMAGE_REPOSITORY = 'localhost/aiedge-agent/image';

/** A pod the driver played. */
interface PodRecord {
  /** `metadata.name` in the played file; podman names the pod `<kubeName>-pod-0`. */
  readonly kubeName: string;
  /** The played kube YAML. */
  readonly file: string;
  readonly imageDigest: string;
  readonly port: number;
}

interface Serving {
  readonly spec: SiteDeployment;
  readonly pod: PodRecord;
}

interface DeploymentRecord {
  serving?: Serving;
  /** A pod checking a new version on a temporary port. */
  candidate?: PodRecord;
  /** Set while the serving pod is being replaced (cleared when the new one is recorded). */
  replacing?: true;
  failed?: { readonly key: string; readonly report: DeploymentReport };
}

interface StateFile {
  readonly version: 1;
  readonly deployments: Record<string, DeploymentRecord>;
  /** Images loaded into podman: digest → last use (ms since the epoch). */
  readonly images: Record<string, number>;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What identifies a desired deployment for "do not retry until it changes". */
function specKey(spec: SiteDeployment): string {
  return createHash('sha256')
    .update(JSON.stringify([spec.imageDigest, spec.port, spec.manifest ?? null]))
    .digest('hex');
}

function imageTag(digest: string): string {
  return `${IMAGE_REPOSITORY}:${digest.slice('sha256:'.length)}`;
}

/** The pod name podman gives a played Deployment. */
function podName(kubeName: string): string {
  return `${kubeName}-pod-0`;
}

/**
 * The rendered Deployment adapted for podman on a device (see the file comment): one replica, host
 * network, the loaded image, the listen address, port and telemetry endpoint; no probes or ports.
 */
function podmanManifest(
  d: SiteDeployment,
  options: { kubeName: string; port: number; host: string; telemetryUrl?: string },
): Obj {
  if (d.manifest === undefined) {
    throw new InputError(`deployment ${d.name} has no rendered manifest to play with podman`);
  }
  const doc = structuredClone(d.manifest) as Obj;
  const at = `deployment ${d.name}`;
  const metadata = isObj(doc['metadata']) ? doc['metadata'] : {};
  const spec = doc['spec'];
  const template = isObj(spec) ? spec['template'] : undefined;
  const podSpec = isObj(template) ? template['spec'] : undefined;
  const containers = isObj(podSpec) ? podSpec['containers'] : undefined;
  if (!isObj(spec) || !isObj(podSpec) || !Array.isArray(containers)) {
    throw new InputError(`${at}: the manifest has no spec.template.spec.containers`);
  }
  const server = (containers as unknown[]).find((c) => isObj(c) && c['name'] === CONTAINER_NAME);
  if (!isObj(server)) {
    throw new InputError(`${at}: the manifest has no container named ${CONTAINER_NAME}`);
  }
  doc['metadata'] = { ...metadata, name: options.kubeName };
  spec['replicas'] = 1;
  podSpec['hostNetwork'] = true;
  server['image'] = imageTag(d.imageDigest);
  server['imagePullPolicy'] = 'Never';
  delete server['ports'];
  delete server['livenessProbe'];
  delete server['readinessProbe'];
  delete server['startupProbe'];
  const set: Record<string, string> = {
    AIEDGE_SERVE_HOST: options.host,
    AIEDGE_SERVE_PORT: String(options.port),
    ...(options.telemetryUrl !== undefined ? { OTEL_EXPORTER_OTLP_ENDPOINT: options.telemetryUrl } : {}),
  };
  const env = (Array.isArray(server['env']) ? (server['env'] as unknown[]) : []).filter(
    (e) => !(isObj(e) && typeof e['name'] === 'string' && e['name'] in set),
  );
  server['env'] = [...env, ...Object.entries(set).map(([name, value]) => ({ name, value }))];
  return doc;
}

/** Runs the rendered manifests with podman; see the file comment. */
export class PodmanDriver implements Driver {
  readonly kind = 'podman' as const;
  readonly #context: DriverContext;
  readonly #dir: string;
  readonly #images: ImageCache;
  readonly #logger: Logger;
  readonly #reports: ReportBook;
  readonly #readyTimeoutMs: number;
  readonly #stopGraceSeconds: number;
  readonly #podman: string;
  readonly #host: string;
  readonly #keep: number;
  #state: StateFile = { version: 1, deployments: {}, images: {} };
  readonly #serial = new Serial();
  #closed = false;

  constructor(context: DriverContext, options: PodmanDriverOptions = {}) {
    this.#context = context;
    this.#dir = join(context.dataDir, 'podman');
    this.#logger = context.logger.child({ component: 'agent.driver.podman' });
    this.#reports = new ReportBook(this.#logger, (report) => context.onReport(report));
    this.#keep = options.keepImages ?? 3;
    this.#images = new ImageCache({
      store: context.store,
      dir: join(this.#dir, 'unpacked'),
      registry: context.registry,
      logger: this.#logger,
      keep: this.#keep,
    });
    this.#readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.#stopGraceSeconds = options.stopGraceSeconds ?? 5;
    this.#podman = options.podman ?? 'podman';
    this.#host = options.host ?? '127.0.0.1';
  }

  async #save(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    await writeFileAtomic(join(this.#dir, 'state.json'), `${JSON.stringify(this.#state, null, 2)}\n`);
  }

  #report(name: string, state: DeploymentState, fields: ReportFields): DeploymentReport {
    return this.#reports.set(name, state, fields);
  }

  async #run(args: string[], timeoutMs = 300_000): Promise<string> {
    try {
      return (await run(this.#podman, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (error) {
      const e = error as Error & { stderr?: string; code?: unknown };
      if (e.code === 'ENOENT') {
        throw new UnavailableError(`${this.#podman} is not installed (apt-get install podman)`, {
          cause: error,
        });
      }
      throw new UnavailableError(
        `podman ${args.slice(0, 2).join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`,
        { cause: error },
      );
    }
  }

  start(): Promise<void> {
    return this.#serial.run(async () => {
      await mkdir(this.#dir, { recursive: true });
      await this.#run(['version', '--format', '{{.Client.Version}}'], 60_000);
      try {
        const parsed = JSON.parse(await readFile(join(this.#dir, 'state.json'), 'utf8')) as StateFile;
        if (parsed.version === 1 && isObj(parsed.deployments)) {
          this.#state = { version: 1, deployments: parsed.deployments, images: parsed.images ?? {} };
        }
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
          this.#logger.error('driver state unreadable; starting empty', { err: error });
        }
      }
      for (const [name, record] of Object.entries(this.#state.deployments)) {
        if (record.candidate !== undefined) {
          await this.#down(record.candidate);
          delete record.candidate;
          await this.#save();
        }
        const serving = record.serving;
        if (serving === undefined) continue;
        const fields = this.#fields(serving.spec);
        if (record.replacing === undefined && (await this.#healthy(serving))) {
          this.#logger.info('adopted a running pod', {
            deployment: name,
            pod: podName(serving.pod.kubeName),
          });
          this.#report(name, 'Serving', fields);
          continue;
        }
        this.#report(name, 'Starting', { ...fields, reason: 'playing the recorded manifest again' });
        try {
          await this.#replay(record, serving);
          this.#report(name, 'Serving', fields);
        } catch (error) {
          this.#report(name, 'Failed', { ...fields, reason: `restart failed: ${errorText(error)}` });
        }
      }
    });
  }

  reconcile(desired: readonly SiteDeployment[], signal: AbortSignal): Promise<DeploymentReport[]> {
    return this.#serial.run(async () => {
      if (this.#closed) throw new UnavailableError('the podman driver is closed');
      const names = new Set(desired.map((d) => d.name));
      for (const name of Object.keys(this.#state.deployments)) {
        if (!names.has(name)) await this.#remove(name);
      }
      for (const d of desired) {
        if (!this.#reports.has(d.name)) this.#report(d.name, 'Pending', this.#fields(d));
      }
      // One at a time: podman's vfs storage copies every image it starts.
      for (const d of desired) {
        if (signal.aborted) break;
        await this.#apply(d, signal);
      }
      await this.#gc().catch((error: unknown) => {
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
          if (record.candidate !== undefined) await this.#down(record.candidate);
          if (record.serving !== undefined) await this.#down(record.serving.pod);
        }
      }
      await this.#images.close();
    });
  }

  #fields(spec: SiteDeployment): ReportFields {
    return { model: spec.model.name, version: spec.model.version, imageDigest: spec.imageDigest };
  }

  #url(port: number): string {
    return `http://${this.#host === '0.0.0.0' ? '127.0.0.1' : this.#host}:${port}`;
  }

  async #remove(name: string): Promise<void> {
    const record = this.#state.deployments[name];
    if (record === undefined) return;
    if (record.candidate !== undefined) await this.#down(record.candidate);
    if (record.serving !== undefined) await this.#down(record.serving.pod);
    delete this.#state.deployments[name];
    await this.#save();
    this.#reports.delete(name);
    this.#logger.info('deployment removed', { deployment: name });
  }

  async #apply(d: SiteDeployment, signal: AbortSignal): Promise<void> {
    const record = (this.#state.deployments[d.name] ??= {});
    const serving = record.serving;
    const key = specKey(d);
    const fields = this.#fields(d);
    if (serving !== undefined && specKey(serving.spec) === key) {
      if (await this.#healthy(serving)) {
        this.#report(d.name, 'Serving', fields);
        return;
      }
      this.#report(d.name, 'Starting', { ...fields, reason: 'the pod is not serving; playing it again' });
      try {
        await this.#replay(record, serving);
        this.#report(d.name, 'Serving', fields);
      } catch (error) {
        this.#report(d.name, 'Failed', { ...fields, reason: `restart failed: ${errorText(error)}` });
      }
      return;
    }
    if (record.failed !== undefined) {
      if (record.failed.key === key) {
        const { state, deployment: _deployment, since: _since, ...rest } = record.failed.report;
        this.#report(d.name, state, rest);
        return;
      }
      delete record.failed;
    }

    try {
      await this.#ensureImage(d, signal);
    } catch (error) {
      if (signal.aborted) return;
      // Not recorded as failed: a pull error is often the link's; the next reconcile retries.
      this.#failReport(d.name, serving, fields, `pulling ${d.image} failed: ${errorText(error)}`);
      return;
    }
    if (signal.aborted) return;
    this.#report(d.name, 'Starting', fields);
    try {
      if (serving !== undefined && (await this.#healthy(serving))) {
        await this.#replace(d, record, serving);
      } else {
        if (serving !== undefined) await this.#down(serving.pod);
        const pod = await this.#play(d, d.name, d.port);
        record.serving = { spec: d, pod };
        await this.#save();
        try {
          await this.#check(pod, d);
        } catch (error) {
          await this.#down(pod);
          delete record.serving;
          await this.#save();
          throw error;
        }
      }
      this.#report(d.name, 'Serving', fields);
    } catch (error) {
      const report = this.#failReport(d.name, record.serving, fields, errorText(error));
      record.failed = { key, report };
      await this.#save();
    }
  }

  #failReport(
    name: string,
    serving: Serving | undefined,
    fields: ReportFields,
    reason: string,
  ): DeploymentReport {
    return this.#reports.failed(
      name,
      fields,
      reason,
      serving && {
        model: serving.spec.model.name,
        version: serving.spec.model.version,
        imageDigest: serving.spec.imageDigest,
      },
    );
  }

  /** Candidate on a temporary port, then the serving pod replaced; rollback on failure. */
  async #replace(d: SiteDeployment, record: DeploymentRecord, serving: Serving): Promise<void> {
    const port = await freePort(this.#host);
    const candidate = await this.#play(d, `${d.name}-candidate`, port);
    record.candidate = candidate;
    await this.#save();
    try {
      await this.#check(candidate, d);
    } finally {
      await this.#down(candidate);
      delete record.candidate;
      await this.#save();
    }
    record.replacing = true;
    await this.#save();
    await this.#down(serving.pod);
    try {
      const pod = await this.#play(d, d.name, d.port);
      record.serving = { spec: d, pod };
      await this.#save();
      await this.#check(pod, d);
      delete record.replacing;
      await this.#save();
    } catch (error) {
      this.#logger.error('the new pod failed on the stable port; playing the previous one again', {
        deployment: d.name,
        err: error,
      });
      record.serving = serving;
      await this.#replay(record, serving);
      throw error;
    }
  }

  /** Plays a recorded pod's manifest again (replacing whatever pod has its name) and checks it. */
  async #replay(record: DeploymentRecord, serving: Serving): Promise<void> {
    await this.#ensureImage(serving.spec);
    await this.#run(['kube', 'play', '--replace', serving.pod.file]);
    delete record.replacing;
    await this.#save();
    await this.#check(serving.pod, serving.spec);
  }

  async #play(d: SiteDeployment, kubeName: string, port: number): Promise<PodRecord> {
    const doc = podmanManifest(d, {
      kubeName,
      port,
      host: this.#host,
      ...(this.#context.telemetryUrl !== undefined ? { telemetryUrl: this.#context.telemetryUrl } : {}),
    });
    const dir = join(this.#dir, 'manifests');
    await mkdir(dir, { recursive: true });
    const file = join(dir, `${kubeName}-${d.imageDigest.slice(7, 19)}.yaml`);
    await writeFileAtomic(file, toYaml(doc));
    await this.#run(['kube', 'play', '--replace', file]);
    this.#logger.info('pod played', { deployment: d.name, pod: podName(kubeName), port });
    return { kubeName, file, imageDigest: d.imageDigest, port };
  }

  async #down(pod: PodRecord): Promise<void> {
    await this.#run([
      'pod',
      'rm',
      '--force',
      '--ignore',
      '--time',
      String(this.#stopGraceSeconds),
      podName(pod.kubeName),
    ]);
  }

  /** The pod's container state (`running`, `exited`, …), or undefined when it does not exist. */
  async #containerState(pod: PodRecord): Promise<string | undefined> {
    const out = await this.#run([
      'container',
      'inspect',
      '--format',
      '{{.State.Status}}',
      `${podName(pod.kubeName)}-${CONTAINER_NAME}`,
    ]).catch(() => undefined);
    return out?.trim() || undefined;
  }

  async #healthy(serving: Serving): Promise<boolean> {
    if ((await this.#containerState(serving.pod)) !== 'running') return false;
    return versionReady(this.#url(serving.pod.port), serving.spec.model.name, serving.spec.model.version);
  }

  async #check(pod: PodRecord, d: SiteDeployment): Promise<void> {
    await checkServing(this.#url(pod.port), d.model.name, d.model.version, {
      timeoutMs: this.#readyTimeoutMs,
      gone: async () => {
        const state = await this.#containerState(pod);
        if (state === undefined || state === 'running' || state === 'created' || state === 'configured') {
          return undefined;
        }
        const logs = await this.#run([
          'logs',
          '--tail',
          '10',
          `${podName(pod.kubeName)}-${CONTAINER_NAME}`,
        ]).catch(() => '');
        return `the container is ${state}: ${logs.trim()}`;
      },
    });
  }

  /** Pulls the image into the agent's store and loads it into podman, unless podman has it. */
  async #ensureImage(d: SiteDeployment, signal?: AbortSignal): Promise<void> {
    const tag = imageTag(d.imageDigest);
    this.#state.images[d.imageDigest] = Date.now();
    const exists = await run(this.#podman, ['image', 'exists', tag]).then(
      () => true,
      () => false,
    );
    if (exists) return;
    if (!(await this.#context.store.has(d.imageDigest as Digest))) {
      this.#report(d.name, 'Pulling', this.#fields(d));
    }
    await this.#images.pull(d.image, d.imageDigest, signal);
    const manifestDigest = await hostManifest(this.#context.store, d.imageDigest as Digest);
    const manifest = await this.#context.store.readBytes(manifestDigest);
    const mediaType = (JSON.parse(manifest.toString('utf8')) as { mediaType?: string }).mediaType;
    const dir = join(this.#dir, 'load');
    await mkdir(dir, { recursive: true });
    const archive = join(dir, `${d.imageDigest.slice(7)}.tar`);
    try {
      await writeArchive(
        this.#context.store,
        {
          mediaType: mediaType ?? 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
        },
        archive,
      );
      const loaded = await this.#run(['load', '--quiet', '--input', archive]);
      const id = /Loaded image(?:\(s\))?:\s*(?:sha256:)?(\S+)/.exec(loaded)?.[1];
      if (id === undefined) throw new UnavailableError(`podman load printed no image: ${loaded.trim()}`);
      await this.#run(['tag', id, tag]);
    } finally {
      await rm(archive, { force: true });
    }
    await this.#save();
    this.#logger.info('image loaded into podman', { digest: d.imageDigest, tag });
  }

  /** Keeps the images in use and the most recently used up to K; removes the others from podman and the store. */
  async #gc(): Promise<void> {
    const inUse = new Set<string>();
    for (const record of Object.values(this.#state.deployments)) {
      if (record.serving !== undefined) inUse.add(record.serving.spec.imageDigest);
    }
    const byUse = Object.entries(this.#state.images).sort((a, b) => b[1] - a[1]);
    let kept = [...inUse].length;
    const keep = new Set(inUse);
    for (const [digest] of byUse) {
      if (keep.has(digest)) continue;
      if (kept < this.#keep) {
        keep.add(digest);
        kept++;
        continue;
      }
      await this.#run(['rmi', '--force', '--ignore', imageTag(digest)]).catch((error: unknown) => {
        this.#logger.warn('podman rmi failed', { digest, err: error });
      });
      delete this.#state.images[digest];
    }
    await this.#save();
    await this.#images.gc(keep);
  }
}
