/**
 * Configuration of `aiedge core`: a typed input (config file, `AIEDGE_CORE_*` environment, flags,
 * in that order of precedence from low to high) → one validation that names the bad key → a frozen
 * resolved object.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import { InputError, describeValue, validateWith } from '@aiedge/protocol';
import type { LogLevel } from '@aiedge/telemetry';

/** Schema of the core configuration as given (every key optional; defaults documented on {@link CoreConfig}). */
export const CoreConfigSchema = Type.Object(
  {
    data: Type.Optional(Type.String({ minLength: 1 })),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
    tlsCert: Type.Optional(Type.String({ minLength: 1 })),
    tlsKey: Type.Optional(Type.String({ minLength: 1 })),
    publicUrl: Type.Optional(Type.String({ pattern: '^https?://' })),
    gitopsRepo: Type.Optional(Type.String({ minLength: 1 })),
    gitopsBranch: Type.Optional(Type.String({ minLength: 1 })),
    gitopsToken: Type.Optional(Type.String({ minLength: 1 })),
    gitopsCa: Type.Optional(Type.String({ minLength: 1 })),
    siteOfflineAfterSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 86_400 })),
    maxWaitSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    enrollmentTokenTtlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 31_536_000 })),
    runConcurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    telemetryRetentionHours: Type.Optional(Type.Number({ minimum: 1, maximum: 87_600 })),
    telemetryRawRetentionHours: Type.Optional(Type.Number({ minimum: 0.1, maximum: 8760 })),
    telemetryRollupSeconds: Type.Optional(Type.Integer({ minimum: 10, maximum: 86_400 })),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 2 ** 31 })),
    dashboardDir: Type.Optional(Type.String({ minLength: 1 })),
    logLevel: Type.Optional(
      Type.Union([
        Type.Literal('trace'),
        Type.Literal('debug'),
        Type.Literal('info'),
        Type.Literal('warn'),
        Type.Literal('error'),
        Type.Literal('fatal'),
        Type.Literal('silent'),
      ]),
    ),
  },
  { additionalProperties: false },
);

/** Core configuration as given. */
export type CoreConfigInput = Static<typeof CoreConfigSchema>;

/** Resolved, frozen core configuration. */
export interface CoreConfig {
  /** Data directory: database, registry blobs, GitOps repository, run workspaces. Default `.aiedge/core`. */
  readonly data: string;
  /** Listen address. Default `0.0.0.0`. */
  readonly host: string;
  /** Listen port (0 = any free port). Default 8080. */
  readonly port: number;
  /** PEM certificate and key files; both or neither. */
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
  /** URL agents and Argo CD reach this core at. Default `http(s)://<host>:<port>` as listened. */
  readonly publicUrl: string | undefined;
  /** GitOps repository URL; default a bare repository under `<data>/gitops.git`. */
  readonly gitopsRepo: string | undefined;
  /** GitOps branch. Default `main`. */
  readonly gitopsBranch: string;
  /** Token for an https GitOps remote (never logged). */
  readonly gitopsToken: string | undefined;
  /** PEM CA file for an https GitOps remote. */
  readonly gitopsCa: string | undefined;
  /** A site with no heartbeat for this long is offline. Default 90. */
  readonly siteOfflineAfterSeconds: number;
  /** Longest a desired-state long-poll is held. Default 300. */
  readonly maxWaitSeconds: number;
  /** Lifetime of enrollment tokens created without an explicit one. Default 86400 (24 h). */
  readonly enrollmentTokenTtlSeconds: number;
  /** Pipeline runs executed at once. Default 2. */
  readonly runConcurrency: number;
  /** Telemetry kept (downsampled) for this long. Default 720 (30 days). */
  readonly telemetryRetentionHours: number;
  /** Telemetry kept at full resolution for this long. Default 24. */
  readonly telemetryRawRetentionHours: number;
  /** Bucket of downsampled telemetry. Default 300 (5 min). */
  readonly telemetryRollupSeconds: number;
  /** Largest JSON request body. Default 16 MiB. */
  readonly maxBodyBytes: number;
  /** Directory of the built dashboard (`index.html`, `assets/`). Default: `dist` of the installed package `@aiedge/web`. */
  readonly dashboardDir: string | undefined;
  /** Default `info`. */
  readonly logLevel: LogLevel;
}

/** Environment variable of each key: `AIEDGE_CORE_` + the key in upper snake case. */
export function envNameOf(key: string): string {
  return `AIEDGE_CORE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

const KEYS = Object.keys(CoreConfigSchema.properties) as (keyof CoreConfigInput)[];

function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const known = new Set(KEYS.map(envNameOf));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('AIEDGE_CORE_') || value === undefined) continue;
    if (!known.has(name)) {
      throw new InputError(
        `environment ${name}: unknown core setting (known: ${[...known].sort().join(', ')})`,
      );
    }
    const key = KEYS.find((k) => envNameOf(k) === name) as keyof CoreConfigInput;
    const kind = (CoreConfigSchema.properties[key] as { type?: string; anyOf?: unknown }).type;
    if (kind === 'integer' || kind === 'number') {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n)) {
        throw new InputError(`environment ${name} is ${describeValue(value)}: expected a number`);
      }
      out[key] = n;
    } else out[key] = value;
  }
  return out;
}

function fromFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new InputError(`config file ${path}: ${(error as Error).message}`, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new InputError(`config file ${path} is not valid YAML/JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new InputError(`config file ${path} is ${describeValue(parsed)}: expected a mapping of settings`);
  }
  return parsed as Record<string, unknown>;
}

/** Where each layer of configuration comes from. */
export interface ConfigSources {
  /** YAML or JSON file. */
  readonly file?: string;
  /** Environment (only `AIEDGE_CORE_*` is read). Default: none. */
  readonly env?: NodeJS.ProcessEnv;
  /** Values from flags or code: highest precedence. */
  readonly values?: CoreConfigInput;
}

/** Merges file < env < values, validates (naming the key and where it came from) and applies defaults. */
export function resolveCoreConfig(sources: ConfigSources = {}): CoreConfig {
  const file = sources.file !== undefined ? fromFile(sources.file) : {};
  validateWith(CoreConfigSchema, file, `config file ${sources.file ?? ''}`.trim());
  const env = sources.env !== undefined ? fromEnv(sources.env) : {};
  validateWith(CoreConfigSchema, env, 'environment');
  const values = Object.fromEntries(Object.entries(sources.values ?? {}).filter(([, v]) => v !== undefined));
  const merged = validateWith(CoreConfigSchema, { ...file, ...env, ...values }, 'core config');
  if ((merged.tlsCert === undefined) !== (merged.tlsKey === undefined)) {
    throw new InputError('core config: tlsCert and tlsKey must be given together');
  }
  const raw = merged.telemetryRawRetentionHours ?? 24;
  const kept = merged.telemetryRetentionHours ?? 720;
  if (raw > kept) {
    throw new InputError(
      `core config telemetryRawRetentionHours is ${raw}: must not exceed telemetryRetentionHours (${kept})`,
    );
  }
  return Object.freeze({
    data: resolve(merged.data ?? '.aiedge/core'),
    host: merged.host ?? '0.0.0.0',
    port: merged.port ?? 8080,
    tlsCert: merged.tlsCert,
    tlsKey: merged.tlsKey,
    publicUrl: merged.publicUrl?.replace(/\/+$/, ''),
    gitopsRepo: merged.gitopsRepo,
    gitopsBranch: merged.gitopsBranch ?? 'main',
    gitopsToken: merged.gitopsToken,
    gitopsCa: merged.gitopsCa,
    siteOfflineAfterSeconds: merged.siteOfflineAfterSeconds ?? 90,
    maxWaitSeconds: merged.maxWaitSeconds ?? 300,
    enrollmentTokenTtlSeconds: merged.enrollmentTokenTtlSeconds ?? 86_400,
    runConcurrency: merged.runConcurrency ?? 2,
    telemetryRetentionHours: kept,
    telemetryRawRetentionHours: raw,
    telemetryRollupSeconds: merged.telemetryRollupSeconds ?? 300,
    maxBodyBytes: merged.maxBodyBytes ?? 16 * 1024 * 1024,
    dashboardDir: merged.dashboardDir !== undefined ? resolve(merged.dashboardDir) : undefined,
    logLevel: merged.logLevel ?? 'info',
  });
}
