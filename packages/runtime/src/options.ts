/** Options of `aiedge serve`: typed input with defaults → validated, frozen resolved options. */
import { availableParallelism } from 'node:os';
import { Type, type Static } from '@sinclair/typebox';
import { InputError, validateWith } from '@aiedge/protocol';
import type { LogLevel } from '@aiedge/telemetry';
import type { ExplicitModel } from './repository.js';

const Port = Type.Integer({ minimum: 0, maximum: 65535 });

/** Schema of the serve options as given by a caller (CLI flags, env, code). */
export const ServeOptionsSchema = Type.Object(
  {
    modelRepository: Type.Optional(Type.String({ minLength: 1 })),
    models: Type.Optional(
      Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), path: Type.String({ minLength: 1 }) })),
    ),
    host: Type.Optional(Type.String({ minLength: 1 })),
    port: Type.Optional(Port),
    workers: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    intraOpThreads: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
    maxBodyBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 2 ** 31 })),
    maxQueue: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    repositoryPollSeconds: Type.Optional(Type.Number({ minimum: 0, maximum: 86_400 })),
    logLevel: Type.Optional(
      Type.Union(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].map((l) => Type.Literal(l))),
    ),
  },
  { additionalProperties: false },
);

/** Serve options as a caller gives them; every field has a documented default. */
export type ServeOptionsInput = Static<typeof ServeOptionsSchema>;

/** Serve options after validation and defaults. */
export interface ServeOptions {
  /** Model repository directory (`DIR/<model>/<version>/*.onnx`). */
  readonly modelRepository: string | undefined;
  /** Models given one by one as NAME:PATH. */
  readonly models: readonly ExplicitModel[];
  /** Address to listen on. Default 0.0.0.0. */
  readonly host: string;
  /** Port to listen on (0 picks a free one). Default 8080. */
  readonly port: number;
  /** Inference worker threads. Default: one per CPU, at most 4. */
  readonly workers: number;
  /** ONNX Runtime intra-op threads per session. Default: CPUs / workers (at least 1). */
  readonly intraOpThreads: number;
  /** Largest request body accepted. Default 64 MiB. */
  readonly maxBodyBytes: number;
  /** Requests that may wait for a worker before 503. Default 64 per worker. */
  readonly maxQueue: number;
  /** Re-scan the repository this often; 0 disables polling. Default 0. */
  readonly repositoryPollSeconds: number;
  /** Log level. Default info. */
  readonly logLevel: LogLevel;
}

/** Validates serve options and fills in defaults; throws InputError naming the bad key. */
export function resolveServeOptions(input: ServeOptionsInput): ServeOptions {
  const valid = validateWith(ServeOptionsSchema, input, 'serve options');
  const models = valid.models ?? [];
  if (valid.modelRepository === undefined && models.length === 0) {
    throw new InputError('serve options: give --model-repository DIR or at least one --model NAME:PATH');
  }
  const names = new Set<string>();
  for (const [i, m] of models.entries()) {
    if (names.has(m.name)) throw new InputError(`serve options models[${i}].name '${m.name}' is given twice`);
    names.add(m.name);
  }
  const cpus = availableParallelism();
  // One worker per core, up to 4: independent sessions use small machines' cores better than one
  // session's intra-op threads, and 4 bounds the memory (each worker holds its own copy of a model).
  const workers = valid.workers ?? Math.max(1, Math.min(cpus, 4));
  return Object.freeze({
    modelRepository: valid.modelRepository,
    models: Object.freeze(models.map((m) => Object.freeze({ ...m }))),
    host: valid.host ?? '0.0.0.0',
    port: valid.port ?? 8080,
    workers,
    intraOpThreads: valid.intraOpThreads ?? Math.max(1, Math.floor(cpus / workers)),
    maxBodyBytes: valid.maxBodyBytes ?? 64 * 1024 * 1024,
    maxQueue: valid.maxQueue ?? 64 * workers,
    repositoryPollSeconds: valid.repositoryPollSeconds ?? 0,
    logLevel: (valid.logLevel ?? 'info') as LogLevel,
  });
}

/** Parses a `--model NAME:PATH` value. */
export function parseModelFlag(value: string): ExplicitModel {
  const at = value.indexOf(':');
  const name = at > 0 ? value.slice(0, at) : '';
  const path = at > 0 ? value.slice(at + 1) : '';
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(name) || path === '') {
    throw new InputError(`--model is '${value}', expected NAME:PATH (e.g. mnist:./models/mnist)`);
  }
  return { name, path };
}
