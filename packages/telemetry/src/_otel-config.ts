// Reads the OpenTelemetry SDK environment variables (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/)
// from a given record into one frozen, validated configuration. Nothing here touches process.env or the network.
import { InputError } from '@aiedge/protocol';

/** OTLP/HTTP encodings this package can export with. */
export const OtlpProtocols = ['http/protobuf', 'http/json'] as const;
/** One of {@link OtlpProtocols}. */
export type OtlpProtocol = (typeof OtlpProtocols)[number];

/** Metric temporality preferences of `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`. */
export const TemporalityPreferences = ['cumulative', 'delta', 'lowmemory'] as const;
/** One of {@link TemporalityPreferences}. */
export type TemporalityPreference = (typeof TemporalityPreferences)[number];

/** Exporter names accepted in `OTEL_{METRICS,TRACES}_EXPORTER`. */
const EXPORTER_NAMES = ['otlp', 'none'] as const;
/** Compression values accepted in `OTEL_EXPORTER_OTLP[_SIGNAL]_COMPRESSION`. */
const COMPRESSIONS = ['none', 'gzip'] as const;

/** Defaults from the OTel specification. */
const DEFAULT_OTLP_TIMEOUT_MS = 10_000;
const DEFAULT_METRIC_EXPORT_INTERVAL_MS = 60_000;
const DEFAULT_METRIC_EXPORT_TIMEOUT_MS = 30_000;
const DEFAULT_BSP_SCHEDULE_DELAY_MS = 5_000;
const DEFAULT_BSP_EXPORT_TIMEOUT_MS = 30_000;
const DEFAULT_BSP_MAX_QUEUE_SIZE = 2_048;
const DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE = 512;

/** The two signals this package exports. */
export type Signal = 'metrics' | 'traces';

/** Resolved OTLP exporter settings of one signal. */
export interface OtlpExportConfig {
  /** Full URL the signal is POSTed to. */
  readonly url: string;
  /** Which encoding to send. */
  readonly protocol: OtlpProtocol;
  /** Extra request headers (values are secrets: never log them). */
  readonly headers: Readonly<Record<string, string>>;
  /** Per-request timeout, including retries. */
  readonly timeoutMs: number;
  /** Request body compression. */
  readonly compression: 'none' | 'gzip';
}

/** Resolved metrics settings; `export` is undefined when metrics are not exported. */
export interface MetricsConfig {
  readonly export: OtlpExportConfig | undefined;
  readonly exportIntervalMs: number;
  readonly exportTimeoutMs: number;
  readonly temporality: TemporalityPreference;
}

/** Resolved trace settings; `export` is undefined when traces are not exported. */
export interface TracesConfig {
  readonly export: OtlpExportConfig | undefined;
  readonly scheduleDelayMs: number;
  readonly exportTimeoutMs: number;
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
}

/** Everything {@link resolveOtelConfig} reads from the environment. */
export interface OtelConfig {
  /** `OTEL_SERVICE_NAME`, when set. */
  readonly serviceName: string | undefined;
  /** Parsed `OTEL_RESOURCE_ATTRIBUTES`. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly metrics: MetricsConfig;
  readonly traces: TracesConfig;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Validates the OTel environment variables of `env` and returns the frozen result. */
export function resolveOtelConfig(env: Env): OtelConfig {
  const disabled = readBoolean(env, 'OTEL_SDK_DISABLED');
  const exportIntervalMs = readPositive(
    env,
    'OTEL_METRIC_EXPORT_INTERVAL',
    DEFAULT_METRIC_EXPORT_INTERVAL_MS,
  );
  const exportTimeoutMs = Math.min(
    readPositive(env, 'OTEL_METRIC_EXPORT_TIMEOUT', DEFAULT_METRIC_EXPORT_TIMEOUT_MS),
    exportIntervalMs,
  );
  const maxQueueSize = readPositive(env, 'OTEL_BSP_MAX_QUEUE_SIZE', DEFAULT_BSP_MAX_QUEUE_SIZE, true);
  const config: OtelConfig = {
    serviceName: read(env, 'OTEL_SERVICE_NAME'),
    resourceAttributes: Object.freeze(parseKeyValueList(env, 'OTEL_RESOURCE_ATTRIBUTES', true)),
    metrics: Object.freeze({
      export: disabled ? undefined : resolveExport(env, 'metrics'),
      exportIntervalMs,
      exportTimeoutMs,
      temporality: readChoice(
        env,
        'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE',
        TemporalityPreferences,
        'cumulative',
      ),
    }),
    traces: Object.freeze({
      export: disabled ? undefined : resolveExport(env, 'traces'),
      scheduleDelayMs: readPositive(env, 'OTEL_BSP_SCHEDULE_DELAY', DEFAULT_BSP_SCHEDULE_DELAY_MS),
      exportTimeoutMs: readPositive(env, 'OTEL_BSP_EXPORT_TIMEOUT', DEFAULT_BSP_EXPORT_TIMEOUT_MS),
      maxQueueSize,
      maxExportBatchSize: Math.min(
        readPositive(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE', DEFAULT_BSP_MAX_EXPORT_BATCH_SIZE, true),
        maxQueueSize,
      ),
    }),
  };
  return Object.freeze(config);
}

/** Parses a `k=v,k2=v2` list with URL-encoded keys and values (used for headers and resource attributes). */
function parseKeyValueList(env: Env, name: string, valuesArePublic: boolean): Record<string, string> {
  const raw = read(env, name);
  const out: Record<string, string> = {};
  if (raw === undefined) return out;
  raw.split(',').forEach((entry, index) => {
    if (entry.trim() === '') return;
    const eq = entry.indexOf('=');
    const where = `${name} entry ${index + 1}`;
    const shown = valuesArePublic ? ` ("${entry.trim()}")` : '';
    if (eq <= 0 || entry.slice(0, eq).trim() === '') {
      throw new InputError(`${where}${shown} is not of the form key=value`);
    }
    const key = decode(entry.slice(0, eq).trim(), `${where} key`);
    out[key] = decode(entry.slice(eq + 1).trim(), `${where} (${key}) value${valuesArePublic ? shown : ''}`);
  });
  return out;
}

/** Works out whether and where one signal is exported; undefined when it is not. */
function resolveExport(env: Env, signal: Signal): OtlpExportConfig | undefined {
  const SIGNAL = signal.toUpperCase();
  const exporterVar = `OTEL_${SIGNAL}_EXPORTER`;
  const exporters = (read(env, exporterVar) ?? 'otlp')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
  for (const name of exporters) {
    if (!(EXPORTER_NAMES as readonly string[]).includes(name)) {
      throw new InputError(
        `${exporterVar}="${read(env, exporterVar) ?? ''}": exporter "${name}" is not supported; use ${EXPORTER_NAMES.join(' or ')}`,
      );
    }
  }
  if (exporters.includes('none') || !exporters.includes('otlp')) return undefined;

  const url = resolveUrl(env, signal);
  if (url === undefined) return undefined;

  return Object.freeze({
    url,
    protocol: readSignalChoice(env, SIGNAL, 'PROTOCOL', OtlpProtocols, 'http/protobuf'),
    headers: Object.freeze({
      ...parseKeyValueList(env, 'OTEL_EXPORTER_OTLP_HEADERS', false),
      ...parseKeyValueList(env, `OTEL_EXPORTER_OTLP_${SIGNAL}_HEADERS`, false),
    }),
    timeoutMs:
      readPositiveOptional(env, `OTEL_EXPORTER_OTLP_${SIGNAL}_TIMEOUT`) ??
      readPositive(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', DEFAULT_OTLP_TIMEOUT_MS),
    compression: readSignalChoice(env, SIGNAL, 'COMPRESSION', COMPRESSIONS, 'none'),
  });
}

/** The signal-specific endpoint as-is, else the base endpoint plus `/v1/<signal>`, else undefined. */
function resolveUrl(env: Env, signal: Signal): string | undefined {
  const specificVar = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}_ENDPOINT`;
  const specific = read(env, specificVar);
  if (specific !== undefined) return checkUrl(specificVar, specific).href;
  const base = read(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  if (base === undefined) return undefined;
  const url = checkUrl('OTEL_EXPORTER_OTLP_ENDPOINT', base);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v1/${signal}`;
  return url.href;
}

/** Parses an http(s) URL or throws naming the variable. */
function checkUrl(name: string, value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InputError(`${name}="${value}" is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputError(`${name}="${value}" must be an http:// or https:// URL`);
  }
  return url;
}

/** Reads `OTEL_EXPORTER_OTLP_<SIGNAL>_<key>`, falling back to `OTEL_EXPORTER_OTLP_<key>`, and checks the choice. */
function readSignalChoice<const T extends string>(
  env: Env,
  SIGNAL: string,
  key: string,
  allowed: readonly T[],
  fallback: T,
): T {
  const specificVar = `OTEL_EXPORTER_OTLP_${SIGNAL}_${key}`;
  const name = read(env, specificVar) !== undefined ? specificVar : `OTEL_EXPORTER_OTLP_${key}`;
  return readChoice(env, name, allowed, fallback);
}

/** Reads a variable that must be one of `allowed` (case-insensitive). */
function readChoice<const T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const match = allowed.find((choice) => choice === raw.toLowerCase());
  if (match === undefined) {
    throw new InputError(`${name}="${raw}" is not supported; supported values: ${allowed.join(', ')}`);
  }
  return match;
}

/** `true` only for the (case-insensitive) string "true", as the OTel spec says. */
function readBoolean(env: Env, name: string): boolean {
  return read(env, name)?.toLowerCase() === 'true';
}

/** Reads a positive number (an integer when `integer`), or returns `fallback` when unset. */
function readPositive(env: Env, name: string, fallback: number, integer = false): number {
  return readPositiveOptional(env, name, integer) ?? fallback;
}

function readPositiveOptional(env: Env, name: string, integer = false): number | undefined {
  const raw = read(env, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new InputError(`${name}="${raw}" is not a positive ${integer ? 'integer' : 'number'}`);
  }
  return value;
}

/** A trimmed variable; empty counts as unset (OTel spec). */
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function decode(value: string, what: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    throw new InputError(`${what} is not valid URL encoding`);
  }
}
