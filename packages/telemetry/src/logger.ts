import { InputError } from '@aiedge/protocol';
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

/** Severity threshold of a logger; `silent` writes nothing. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** Every log level, least to most severe, then `silent`. */
export const LogLevels: readonly LogLevel[] = Object.freeze([
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
]);

/** A structured logger tagged with the component that writes through it. */
export interface Logger {
  /** The lowest level this logger writes. */
  readonly level: LogLevel;
  /** Writes a debug line with optional structured fields. */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Writes an info line with optional structured fields. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Writes a warning line with optional structured fields. */
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** Writes an error line with optional structured fields; put an Error in `fields.err`. */
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line it writes. */
  child(fields: Record<string, unknown>): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Tag written as `component` on every line (e.g. `runtime`, `agent.sync`). */
  readonly component: string;
  /** Lowest level written; default `info`. */
  readonly level?: LogLevel;
  /** Stream or file descriptor the JSON lines go to; default 1 (stdout). */
  readonly destination?: NodeJS.WritableStream | number;
}

/** Field names whose values are replaced by {@link REDACTED} at the top level and one level down. */
const SECRET_KEYS = [
  'token',
  'authorization',
  'Authorization',
  'password',
  'secret',
  'apiKey',
  'accessKey',
  'secretAccessKey',
] as const;

/** What a redacted value is replaced with. */
const REDACTED = '[redacted]';

/** How deep `err.cause` chains are followed when serializing an error. */
const MAX_CAUSE_DEPTH = 5;

/** Creates a logger writing one JSON object per line: level label, ISO time, component, msg, fields. */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info';
  if (!LogLevels.includes(level)) {
    throw new InputError(`createLogger: level "${String(level)}" is not one of ${LogLevels.join(', ')}`);
  }
  const destination = options.destination ?? 1;
  const stream: DestinationStream =
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  const root = pino(
    {
      level,
      // The component is a binding (not pino's base), so a child's component replaces it.
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: serializeError },
      redact: {
        paths: [...SECRET_KEYS, ...SECRET_KEYS.map((key) => `*.${key}`)],
        censor: REDACTED,
      },
    },
    stream,
  );
  return new PinoBackedLogger(root, { component: options.component });
}

/** A logger that writes nothing; for tests and callers that do not care. */
export const silentLogger: Logger = Object.freeze({
  level: 'silent' as const,
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
});

/** Parses a log level name (case-insensitive); returns `fallback` for undefined or blank input. */
export function parseLogLevel(value: string | undefined, fallback: LogLevel): LogLevel {
  if (value === undefined || value.trim() === '') return fallback;
  const normalized = value.trim().toLowerCase();
  const match = LogLevels.find((level) => level === normalized);
  if (match === undefined) {
    throw new InputError(`log level "${value}" is not one of ${LogLevels.join(', ')}`);
  }
  return match;
}

/** Adapts a pino logger to {@link Logger}. */
class PinoBackedLogger implements Logger {
  readonly #root: PinoLogger;
  readonly #bindings: Record<string, unknown>;
  readonly #pino: PinoLogger;

  constructor(root: PinoLogger, bindings: Record<string, unknown> = {}) {
    this.#root = root;
    this.#bindings = bindings;
    this.#pino = Object.keys(bindings).length === 0 ? root : root.child(bindings);
  }

  get level(): LogLevel {
    return this.#pino.level as LogLevel;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    if (fields === undefined) this.#pino.debug(msg);
    else this.#pino.debug(fields, msg);
  }

  info(msg: string, fields?: Record<string, unknown>): void {
    if (fields === undefined) this.#pino.info(msg);
    else this.#pino.info(fields, msg);
  }

  warn(msg: string, fields?: Record<string, unknown>): void {
    if (fields === undefined) this.#pino.warn(msg);
    else this.#pino.warn(fields, msg);
  }

  error(msg: string, fields?: Record<string, unknown>): void {
    if (fields === undefined) this.#pino.error(msg);
    else this.#pino.error(fields, msg);
  }

  /** A child whose fields replace same-named ones of its parent (a nested `component` is written once). */
  child(fields: Record<string, unknown>): Logger {
    return new PinoBackedLogger(this.#root, { ...this.#bindings, ...fields });
  }
}

/** Turns an Error into a plain object with name, message, code, stack and (bounded) cause. */
function serializeError(value: unknown, depth = 0): unknown {
  if (!(value instanceof Error)) return value;
  const out: Record<string, unknown> = { name: value.name, message: value.message };
  const code: unknown = (value as { code?: unknown }).code;
  if (code !== undefined) out['code'] = code;
  if (value.stack !== undefined) out['stack'] = value.stack;
  if (value.cause !== undefined && depth < MAX_CAUSE_DEPTH) {
    out['cause'] = serializeError(value.cause, depth + 1);
  }
  return out;
}
