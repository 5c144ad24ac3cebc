/**
 * The model repository: the OVMS/Triton/KServe layout `DIR/<model>/<version>/<file>.onnx`, version
 * policies from `DIR/<model>/config.json`, and live changes that never leave a model without a
 * serving version.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Type } from '@sinclair/typebox';
import {
  ErrorCodes,
  InputError,
  NotFoundError,
  UnavailableError,
  type ModelState,
  type RepositoryIndexEntry,
  validateWith,
} from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { ModelIO } from './codec.js';
import type { WorkerPool } from './pool.js';

const strict = { additionalProperties: false } as const;

/** Schema of `DIR/<model>/config.json` (Triton's `version_policy` shape). */
export const ModelConfigSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    version_policy: Type.Optional(
      Type.Object(
        {
          latest: Type.Optional(Type.Object({ num_versions: Type.Integer({ minimum: 1 }) }, strict)),
          specific: Type.Optional(
            Type.Object({ versions: Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }) }, strict),
          ),
          all: Type.Optional(Type.Object({}, strict)),
        },
        { ...strict, minProperties: 1, maxProperties: 1 },
      ),
    ),
  },
  strict,
);

/** Which versions of a model to serve. */
export type VersionPolicy =
  | { readonly kind: 'latest'; readonly count: number }
  | { readonly kind: 'specific'; readonly versions: readonly number[] }
  | { readonly kind: 'all' };

/** A model given on the command line: a model directory with version folders, or one .onnx file. */
export interface ExplicitModel {
  readonly name: string;
  readonly path: string;
}

/** Observer of model loads (for metrics). */
export type LoadObserver = (
  model: string,
  version: string,
  outcome: 'success' | 'failure',
  seconds: number,
) => void;

/** Options of {@link ModelRepository}. */
export interface ModelRepositoryOptions {
  readonly root: string | undefined;
  readonly models: readonly ExplicitModel[];
  readonly pool: WorkerPool;
  readonly logger: Logger;
  readonly onLoad?: LoadObserver;
}

/** A version ready to take a request; call `release` when the request is done. */
export interface AcquiredVersion {
  readonly key: string;
  readonly version: string;
  readonly io: ModelIO;
  release(): void;
}

interface VersionEntry {
  readonly version: number;
  state: ModelState;
  reason: string | undefined;
  key: string | undefined;
  io: ModelIO | undefined;
  fingerprint: string | undefined;
}

interface ModelEntry {
  readonly name: string;
  readonly versions: Map<number, VersionEntry>;
  /** Why the model as a whole cannot be served (bad config, missing directory). */
  reason: string | undefined;
  /** Set by the unload API; polling leaves the model alone until it is loaded again. */
  unloaded: boolean;
}

interface ScannedVersion {
  readonly path?: string;
  readonly fingerprint?: string;
  readonly error?: string;
}

interface ScannedModel {
  readonly versions: Map<number, ScannedVersion>;
  readonly policy: VersionPolicy;
  readonly error?: string;
}

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VERSION_DIR = /^\d{1,15}$/;

/** The versions a policy selects from those present. */
export function selectVersions(policy: VersionPolicy, present: readonly number[]): number[] {
  const sorted = [...present].sort((a, b) => b - a);
  switch (policy.kind) {
    case 'latest':
      return sorted.slice(0, policy.count);
    case 'specific':
      return sorted.filter((v) => policy.versions.includes(v));
    case 'all':
      return sorted;
  }
}

/** Parses a model's config.json contents into its version policy. */
export function parseModelConfig(text: string, modelName: string): VersionPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${modelName}/config.json is not valid JSON: ${(error as Error).message}`, {
      code: ErrorCodes.INVALID_MODEL_CONFIG,
    });
  }
  const config = validateWith(ModelConfigSchema, raw, `${modelName}/config.json`);
  if (config.name !== undefined && config.name !== modelName) {
    throw new InputError(
      `${modelName}/config.json name is '${config.name}' but the model directory is '${modelName}'`,
      { code: ErrorCodes.INVALID_MODEL_CONFIG },
    );
  }
  const policy = config.version_policy;
  if (policy?.latest !== undefined) return { kind: 'latest', count: policy.latest.num_versions };
  if (policy?.specific !== undefined) return { kind: 'specific', versions: policy.specific.versions };
  if (policy?.all !== undefined) return { kind: 'all' };
  return { kind: 'latest', count: 1 };
}

async function fingerprintOf(path: string): Promise<string> {
  const s = await stat(path);
  return `${s.size}:${s.mtimeMs}:${s.ino}`;
}

async function scanVersionDir(dir: string): Promise<ScannedVersion> {
  const files = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith('.onnx'))
    .map((e) => e.name)
    .sort();
  if (files.length === 0) return { error: `no .onnx file in ${dir}` };
  if (files.length > 1)
    return { error: `more than one .onnx file in ${dir} (${files.join(', ')}); keep exactly one` };
  const path = join(dir, files[0]!);
  return { path, fingerprint: await fingerprintOf(path) };
}

/** Reads one model's versions and policy from disk. */
async function scanModel(name: string, path: string): Promise<ScannedModel> {
  const versions = new Map<number, ScannedVersion>();
  let info;
  try {
    info = await stat(path);
  } catch {
    return { versions, policy: { kind: 'latest', count: 1 }, error: `${path} does not exist` };
  }
  if (info.isFile()) {
    if (!path.endsWith('.onnx')) {
      return {
        versions,
        policy: { kind: 'all' },
        error: `${path} is not an .onnx file or a model directory`,
      };
    }
    versions.set(1, { path, fingerprint: await fingerprintOf(path) });
    return { versions, policy: { kind: 'all' } };
  }
  let policy: VersionPolicy = { kind: 'latest', count: 1 };
  try {
    policy = parseModelConfig(await readFile(join(path, 'config.json'), 'utf8'), name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      return { versions, policy, error: (error as Error).message };
    }
  }
  for (const entry of await readdir(path, { withFileTypes: true })) {
    if (!entry.isDirectory() || !VERSION_DIR.test(entry.name)) continue;
    try {
      versions.set(Number(entry.name), await scanVersionDir(join(path, entry.name)));
    } catch (error) {
      versions.set(Number(entry.name), { error: (error as Error).message });
    }
  }
  if (versions.size === 0) {
    return {
      versions,
      policy,
      error: `no version directories (like ${join(path, '1')}/model.onnx) in ${path}`,
    };
  }
  return { versions, policy };
}

/** Models, their versions and states; loads and unloads versions in the worker pool. */
export class ModelRepository {
  readonly #options: ModelRepositoryOptions;
  readonly #models = new Map<string, ModelEntry>();
  readonly #inflight = new Map<string, number>();
  readonly #drained = new Map<string, () => void>();
  #chain: Promise<unknown> = Promise.resolve();
  #generation = 0;
  #initialized = false;
  #pollTimer: NodeJS.Timeout | undefined;

  constructor(options: ModelRepositoryOptions) {
    this.#options = options;
  }

  /** Runs `task` after every earlier repository change has finished. */
  #serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Where each model lives: explicit models first, then the repository directory's folders. */
  async #sources(): Promise<Map<string, string>> {
    const sources = new Map<string, string>();
    const { root } = this.#options;
    if (root !== undefined) {
      let entries: Dirent[];
      try {
        entries = await readdir(root, { withFileTypes: true });
      } catch (error) {
        this.#options.logger.error('cannot read the model repository', { root, err: error });
        entries = [];
      }
      for (const e of entries) {
        if (e.isDirectory() && MODEL_NAME.test(e.name)) sources.set(e.name, join(root, e.name));
      }
    }
    for (const m of this.#options.models) sources.set(m.name, m.path);
    return sources;
  }

  /** Scans the repository and loads what the version policies select. */
  refresh(): Promise<void> {
    return this.#serialize(async () => {
      const sources = await this.#sources();
      for (const [name, path] of sources) {
        const model = this.#models.get(name);
        if (model?.unloaded === true) continue;
        await this.#reconcile(name, path);
      }
      for (const [name, model] of this.#models) {
        if (sources.has(name)) continue;
        await this.#retireAll(model, 'removed from the repository');
        this.#models.delete(name);
      }
      this.#initialized = true;
    });
  }

  /** Triton `load`: (re)reads a model from disk and loads its selected versions. */
  load(name: string): Promise<void> {
    return this.#serialize(async () => {
      const path = (await this.#sources()).get(name);
      if (path === undefined) throw new NotFoundError(`model '${name}' is not in the model repository`);
      const model = this.#models.get(name);
      if (model !== undefined) model.unloaded = false;
      await this.#reconcile(name, path);
      const entry = this.#models.get(name)!;
      if (![...entry.versions.values()].some((v) => v.state === 'READY')) {
        const reasons = [entry.reason, ...[...entry.versions.values()].map((v) => v.reason)].filter(Boolean);
        throw new InputError(`failed to load model '${name}': ${reasons.join('; ') || 'no version loaded'}`, {
          code: ErrorCodes.MODEL_LOAD_FAILED,
        });
      }
    });
  }

  /** Triton `unload`: stops serving every version of a model once its requests finish. */
  unload(name: string): Promise<void> {
    return this.#serialize(async () => {
      const model = this.#models.get(name);
      if (model === undefined) throw new NotFoundError(`model '${name}' is not loaded`);
      model.unloaded = true;
      await this.#retireAll(model, 'unloaded');
    });
  }

  async #reconcile(name: string, path: string): Promise<void> {
    let model = this.#models.get(name);
    if (model === undefined) {
      model = { name, versions: new Map(), reason: undefined, unloaded: false };
      this.#models.set(name, model);
    }
    const scanned = await scanModel(name, path);
    model.reason = scanned.error;
    if (scanned.error !== undefined && scanned.versions.size === 0) {
      this.#options.logger.warn('model cannot be served', { model: name, reason: scanned.error });
      if (![...model.versions.values()].some((v) => v.state === 'READY')) model.versions.clear();
      return;
    }
    if (scanned.error !== undefined) {
      // A broken config.json keeps the versions that serve now; nothing new is loaded.
      this.#options.logger.warn('model config is invalid; keeping the serving versions', {
        model: name,
        reason: scanned.error,
      });
      return;
    }
    const present = [...scanned.versions.keys()];
    const desired = selectVersions(scanned.policy, present);
    let failures = 0;
    for (const version of desired) {
      const found = scanned.versions.get(version)!;
      const entry = model.versions.get(version);
      if (entry?.state === 'READY' && entry.fingerprint === found.fingerprint) continue;
      if (found.path === undefined) {
        failures++;
        this.#fail(model, version, found.error ?? 'unreadable version directory');
        continue;
      }
      if (!(await this.#loadVersion(model, version, found.path, found.fingerprint))) failures++;
    }
    if (failures > 0) return; // a failed update never takes away what serves now
    for (const [version, entry] of model.versions) {
      if (desired.includes(version)) continue;
      if (entry.state === 'READY') await this.#retire(entry, `not selected by the version policy`);
      model.versions.delete(version);
    }
  }

  #fail(model: ModelEntry, version: number, reason: string): void {
    const entry = model.versions.get(version);
    if (entry?.state === 'READY') {
      entry.reason = `an update failed, still serving the previous file: ${reason}`;
      return;
    }
    model.versions.set(version, {
      version,
      state: 'UNAVAILABLE',
      reason,
      key: undefined,
      io: undefined,
      fingerprint: undefined,
    });
  }

  async #loadVersion(
    model: ModelEntry,
    version: number,
    path: string,
    fingerprint: string | undefined,
  ): Promise<boolean> {
    let entry = model.versions.get(version);
    if (entry === undefined) {
      entry = {
        version,
        state: 'LOADING',
        reason: undefined,
        key: undefined,
        io: undefined,
        fingerprint: undefined,
      };
      model.versions.set(version, entry);
    } else if (entry.state !== 'READY') {
      entry.state = 'LOADING';
      entry.reason = undefined;
    }
    const key = `${model.name}/${version}#${++this.#generation}`;
    const started = performance.now();
    const logger = this.#options.logger;
    try {
      const io = await this.#options.pool.load(key, path);
      const seconds = (performance.now() - started) / 1000;
      this.#options.onLoad?.(model.name, String(version), 'success', seconds);
      const previousKey = entry.state === 'READY' ? entry.key : undefined;
      Object.assign(entry, { state: 'READY', reason: undefined, key, io, fingerprint });
      logger.info('model version ready', { model: model.name, version, path, seconds });
      if (previousKey !== undefined) await this.#drainAndUnload(previousKey);
      return true;
    } catch (error) {
      const seconds = (performance.now() - started) / 1000;
      this.#options.onLoad?.(model.name, String(version), 'failure', seconds);
      const reason = `failed to load ${basename(path)}: ${(error as Error).message}`;
      logger.error('model version failed to load', { model: model.name, version, path, reason });
      this.#fail(model, version, reason);
      return false;
    }
  }

  async #retireAll(model: ModelEntry, reason: string): Promise<void> {
    for (const entry of model.versions.values()) {
      if (entry.state === 'READY') await this.#retire(entry, reason);
    }
    model.versions.clear();
    model.reason = reason;
  }

  async #retire(entry: VersionEntry, reason: string): Promise<void> {
    const key = entry.key;
    entry.state = 'UNLOADING';
    entry.reason = reason;
    if (key !== undefined) await this.#drainAndUnload(key);
    entry.state = 'UNAVAILABLE';
    entry.key = undefined;
  }

  async #drainAndUnload(key: string): Promise<void> {
    if ((this.#inflight.get(key) ?? 0) > 0) {
      await new Promise<void>((resolve) => this.#drained.set(key, resolve));
    }
    this.#options.pool.unload(key);
  }

  /**
   * Picks the version to serve a request: the given one, or the highest ready version. Holds it
   * until `release` so that an unload waits for the request.
   */
  acquire(name: string, version?: string): AcquiredVersion {
    const entry = this.#entryFor(name, version);
    const key = entry.key!;
    this.#inflight.set(key, (this.#inflight.get(key) ?? 0) + 1);
    let released = false;
    return {
      key,
      version: String(entry.version),
      io: entry.io!,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.#inflight.get(key) ?? 1) - 1;
        if (left > 0) {
          this.#inflight.set(key, left);
          return;
        }
        this.#inflight.delete(key);
        const waiter = this.#drained.get(key);
        this.#drained.delete(key);
        waiter?.();
      },
    };
  }

  #entryFor(name: string, version: string | undefined): VersionEntry {
    const model = this.#models.get(name);
    if (model === undefined) throw new NotFoundError(`model '${name}' is not in the model repository`);
    if (version !== undefined) {
      const entry = VERSION_DIR.test(version) ? model.versions.get(Number(version)) : undefined;
      if (entry === undefined) {
        const known = [...model.versions.keys()].sort((a, b) => a - b).join(', ') || 'none';
        throw new NotFoundError(`model '${name}' has no version '${version}'; versions: ${known}`);
      }
      if (entry.state !== 'READY') {
        throw new UnavailableError(
          `model '${name}' version ${version} is ${entry.state}${entry.reason ? `: ${entry.reason}` : ''}`,
        );
      }
      return entry;
    }
    let best: VersionEntry | undefined;
    for (const entry of model.versions.values()) {
      if (entry.state === 'READY' && (best === undefined || entry.version > best.version)) best = entry;
    }
    if (best === undefined) {
      const reasons = [model.reason, ...[...model.versions.values()].map((v) => v.reason)].filter(Boolean);
      throw new UnavailableError(
        `model '${name}' has no ready version${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`,
      );
    }
    return best;
  }

  /** Metadata view of a model: its ready versions and the inputs/outputs of the addressed one. */
  describe(name: string, version?: string): { version: string; versions: string[]; io: ModelIO } {
    const entry = this.#entryFor(name, version);
    const versions = [...this.#models.get(name)!.versions.values()]
      .filter((v) => v.state === 'READY')
      .map((v) => v.version)
      .sort((a, b) => a - b)
      .map(String);
    return { version: String(entry.version), versions, io: entry.io! };
  }

  /** True once the first scan finished and every model not unloaded on purpose has a ready version. */
  isReady(): boolean {
    if (!this.#initialized) return false;
    for (const model of this.#models.values()) {
      if (model.unloaded) continue;
      if (![...model.versions.values()].some((v) => v.state === 'READY')) return false;
    }
    return true;
  }

  /** Triton's repository index: every model and version with its state and reason. */
  index(): RepositoryIndexEntry[] {
    const rows: RepositoryIndexEntry[] = [];
    for (const model of [...this.#models.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      if (model.versions.size === 0) {
        rows.push({
          name: model.name,
          state: 'UNAVAILABLE',
          ...(model.reason ? { reason: model.reason } : {}),
        });
        continue;
      }
      for (const v of [...model.versions.values()].sort((a, b) => a.version - b.version)) {
        rows.push({
          name: model.name,
          version: String(v.version),
          state: v.state,
          ...(v.reason !== undefined ? { reason: v.reason } : {}),
        });
      }
    }
    return rows;
  }

  /** Re-scans the repository every `seconds` until {@link stop}. */
  startPolling(seconds: number): void {
    if (seconds <= 0 || this.#pollTimer !== undefined) return;
    this.#pollTimer = setInterval(() => {
      this.refresh().catch((error: unknown) =>
        this.#options.logger.error('repository poll failed', { err: error }),
      );
    }, seconds * 1000);
    this.#pollTimer.unref();
  }

  /** Stops polling and waits for a change under way. */
  async stop(): Promise<void> {
    if (this.#pollTimer !== undefined) clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    await this.#chain;
  }
}
