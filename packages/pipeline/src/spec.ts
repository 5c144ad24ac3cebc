/**
 * The pipeline document: `apiVersion: aiedge.io/v1alpha1`, `kind: Pipeline`. A TypeBox schema (types
 * inferred from it), `$(params.NAME)` substitution, the original ODH AI Edge parameter names, and
 * one parse function whose errors name the path.
 */
import { Type, type Static } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import { InputError, describeValue, validateWith } from '@aiedge/protocol';

const Str = Type.String({ minLength: 1 });
const Name = Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 });
const EnvName = Type.String({
  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
  description: 'name of an environment variable holding a secret',
});

/** Where the model comes from: exactly one kind. */
export const SourceSchema = Type.Union([
  Type.Object(
    {
      s3: Type.Object(
        {
          bucket: Str,
          key: Type.Optional(Str),
          prefix: Type.Optional(Type.String()),
          endpoint: Type.Optional(Type.String({ pattern: '^https?://' })),
          region: Type.Optional(Str),
          forcePathStyle: Type.Optional(Type.Boolean()),
          /** Path of the original system's `s3-storage-config` JSON (type, access_key_id, secret_access_key, endpoint_url, region, bucket). */
          storageConfig: Type.Optional(Str),
          accessKeyIdEnv: Type.Optional(EnvName),
          secretAccessKeyEnv: Type.Optional(EnvName),
          caFile: Type.Optional(Str),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      git: Type.Object(
        {
          url: Str,
          ref: Type.Optional(Str),
          commit: Type.Optional(Type.String({ pattern: '^[0-9a-f]{7,40}$' })),
          path: Type.Optional(Type.String()),
          tokenEnv: Type.Optional(EnvName),
          usernameEnv: Type.Optional(EnvName),
          passwordEnv: Type.Optional(EnvName),
          caFile: Type.Optional(Str),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      registry: Type.Object(
        {
          /** Base URL of a Kubeflow Model Registry API (the core, or any). */
          url: Type.String({ pattern: '^https?://' }),
          model: Str,
          version: Str,
          tokenEnv: Type.Optional(EnvName),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      http: Type.Object(
        {
          url: Type.String({ pattern: '^https?://' }),
          sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
          caFile: Type.Optional(Str),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    { oci: Type.Object({ ref: Str, path: Type.Optional(Type.String()) }, { additionalProperties: false }) },
    { additionalProperties: false },
  ),
  Type.Object(
    { local: Type.Object({ path: Str }, { additionalProperties: false }) },
    { additionalProperties: false },
  ),
]);
/** A model source. */
export type SourceSpec = Static<typeof SourceSchema>;

/** One expected output of a test request. */
const ExpectedOutput = Type.Object(
  {
    name: Str,
    datatype: Type.Optional(Str),
    shape: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }))),
    data: Type.Array(Type.Unknown()),
    atol: Type.Optional(Type.Number({ minimum: 0 })),
    rtol: Type.Optional(Type.Number({ minimum: 0 })),
  },
  { additionalProperties: false },
);

/** The staging test. */
export const TestSchema = Type.Object(
  {
    /** `process` (unpacked layers run as a process), `podman`, or `auto` (podman when present). Default `process`. */
    mode: Type.Optional(Type.Union([Type.Literal('process'), Type.Literal('podman'), Type.Literal('auto')])),
    /** OIP requests with expected outputs, inline. */
    requests: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Type.Optional(Str), request: Type.Unknown(), expected: Type.Array(ExpectedOutput) },
          { additionalProperties: false },
        ),
      ),
    ),
    /** A JSON file with the same list (relative to the pipeline file). */
    requestsFile: Type.Optional(Str),
    /** The original system's pair: an OIP request body and the expected response body. */
    dataJson: Type.Optional(Str),
    outputJson: Type.Optional(Str),
    atol: Type.Optional(Type.Number({ minimum: 0 })),
    rtol: Type.Optional(Type.Number({ minimum: 0 })),
    latency: Type.Optional(
      Type.Object(
        {
          p95Ms: Type.Number({ exclusiveMinimum: 0 }),
          requests: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
        },
        { additionalProperties: false },
      ),
    ),
    readyTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  },
  { additionalProperties: false },
);
/** The staging test. */
export type TestSpec = Static<typeof TestSchema>;

/** One task of a custom graph. */
export const TaskSchema = Type.Object(
  {
    name: Name,
    /** Which built-in task runs. */
    uses: Type.Union(['fetch', 'inspect', 'build', 'stage', 'push', 'gitops'].map((t) => Type.Literal(t))),
    runAfter: Type.Optional(Type.Array(Name)),
    retries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10 })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
  },
  { additionalProperties: false },
);

/** The whole document. */
export const PipelineSchema = Type.Object(
  {
    apiVersion: Type.Literal('aiedge.io/v1alpha1'),
    kind: Type.Literal('Pipeline'),
    metadata: Type.Object(
      { name: Name, labels: Type.Optional(Type.Record(Str, Type.String())) },
      { additionalProperties: false },
    ),
    spec: Type.Object(
      {
        params: Type.Optional(
          Type.Array(
            Type.Object(
              {
                name: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]*$' }),
                default: Type.Optional(Type.String()),
                description: Type.Optional(Type.String()),
              },
              { additionalProperties: false },
            ),
          ),
        ),
        model: Type.Object(
          {
            name: Str,
            version: Str,
            format: Type.Optional(Type.Literal('onnx')),
          },
          { additionalProperties: false },
        ),
        source: SourceSchema,
        image: Type.Object(
          {
            /** Repository to push to, e.g. `127.0.0.1:8080/models/classifier` (tags below). */
            repository: Str,
            tags: Type.Optional(Type.Array(Str, { minItems: 1 })),
            /** A base image reference; default: the host base (see `aiedge image build`). */
            base: Type.Optional(Str),
            platforms: Type.Optional(Type.Array(Str, { minItems: 1 })),
            labels: Type.Optional(Type.Record(Str, Type.String())),
            /** Registry credentials: the password (or token) from this environment variable. */
            usernameEnv: Type.Optional(EnvName),
            passwordEnv: Type.Optional(EnvName),
            insecure: Type.Optional(Type.Boolean()),
          },
          { additionalProperties: false },
        ),
        test: Type.Optional(TestSchema),
        /** Where the deployment is published: a GitOps repository, or a core (which commits and wakes its agents). */
        gitops: Type.Optional(
          Type.Object(
            {
              repo: Type.Optional(Str),
              branch: Type.Optional(Str),
              review: Type.Optional(Type.Boolean()),
              tokenEnv: Type.Optional(EnvName),
              /** Sites file (YAML list of {name, labels}) for a plain repository. */
              sites: Type.Optional(Str),
              core: Type.Optional(
                Type.Object(
                  { url: Type.String({ pattern: '^https?://' }), tokenEnv: EnvName },
                  { additionalProperties: false },
                ),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        deployment: Type.Optional(
          Type.Object(
            {
              name: Name,
              selector: Type.Record(Str, Type.String()),
              port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
              replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
              env: Type.Optional(Type.Record(Str, Type.String())),
            },
            { additionalProperties: false },
          ),
        ),
        /** Register the pushed image as a model artifact here (a Kubeflow Model Registry API). */
        registry: Type.Optional(
          Type.Object(
            { url: Type.String({ pattern: '^https?://' }), tokenEnv: Type.Optional(EnvName) },
            { additionalProperties: false },
          ),
        ),
        /** A custom task graph; default fetch → inspect → build → stage → push → gitops. */
        tasks: Type.Optional(Type.Array(TaskSchema, { minItems: 1 })),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, $id: 'Pipeline' },
);
/** A pipeline document after validation and parameter substitution. */
export type PipelineSpec = Static<typeof PipelineSchema>;

/**
 * The original ODH AI Edge PipelineRun parameters, accepted under their own names: each maps to the
 * ai-edge param of the same meaning (a pipeline refers to it as `$(params.<ai-edge name>)`).
 */
export const ORIGINAL_PARAMS: Readonly<Record<string, string>> = {
  'model-name': 'modelName',
  'model-version': 'modelVersion',
  's3-bucket-name': 's3Bucket',
  'git-model-repo': 'gitRepo',
  'git-model-revision': 'gitRevision',
  'model-relative-path': 'modelPath',
  'model-dir': 'modelDir',
};

const PARAM_REF = /\$\(params\.([A-Za-z][A-Za-z0-9_-]*)\)/g;

function substitute(value: unknown, params: ReadonlyMap<string, string>, path: string): unknown {
  if (typeof value === 'string') {
    return value.replace(PARAM_REF, (_, name: string) => {
      const v = params.get(name);
      if (v === undefined)
        throw new InputError(`${path} refers to $(params.${name}), which is not declared and not given`);
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substitute(v, params, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substitute(v, params, `${path}.${k}`)]),
    );
  }
  return value;
}

/** Options of {@link parsePipeline}. */
export interface ParsePipelineOptions {
  /** How errors name the document (default `pipeline`). */
  readonly what?: string;
  /** How errors name the params (default `params`). */
  readonly paramsWhat?: string;
}

/**
 * Parses and validates a pipeline (an object, or YAML/JSON text) with run params (`--param k=v`):
 * declared defaults apply, original parameter names are mapped, `$(params.x)` is substituted
 * everywhere, and errors name the path (`pipeline.spec.source.s3.bucket …`).
 */
export function parsePipeline(
  document: unknown,
  params: Readonly<Record<string, string>> = {},
  options: ParsePipelineOptions = {},
): PipelineSpec {
  const what = options.what ?? 'pipeline';
  const paramsWhat = options.paramsWhat ?? 'params';
  let value = document;
  if (typeof value === 'string') {
    try {
      value = parseYaml(value);
    } catch (error) {
      throw new InputError(`${what} is not valid YAML or JSON: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InputError(`${what} is ${describeValue(value)}: expected a Pipeline document`);
  }
  const declared = ((value as { spec?: { params?: unknown } }).spec?.params ?? []) as {
    name?: unknown;
    default?: unknown;
  }[];
  const merged = new Map<string, string>();
  if (Array.isArray(declared)) {
    for (const p of declared)
      if (typeof p?.name === 'string' && typeof p.default === 'string') merged.set(p.name, p.default);
  }
  for (const [name, v] of Object.entries(params)) {
    const mapped = ORIGINAL_PARAMS[name] ?? name;
    const isDeclared =
      Array.isArray(declared) && declared.some((p) => p?.name === mapped || p?.name === name);
    if (!isDeclared) {
      throw new InputError(`${paramsWhat}.${name}: the pipeline declares no such parameter`);
    }
    merged.set(declared.some((p) => p?.name === name) ? name : mapped, v);
  }
  const spec = (value as { spec?: unknown }).spec;
  const substituted = {
    ...(value as object),
    ...(spec !== undefined ? { spec: substitute(spec, merged, `${what}.spec`) } : {}),
  };
  const parsed = validateWith(PipelineSchema, substituted, what, 'field');
  const tasks = parsed.spec.tasks;
  if (tasks !== undefined) {
    const names = new Set<string>();
    tasks.forEach((t, i) => {
      if (names.has(t.name)) throw new InputError(`${what}.spec.tasks[${i}].name "${t.name}" is used twice`);
      names.add(t.name);
    });
    tasks.forEach((t, i) =>
      (t.runAfter ?? []).forEach((after, j) => {
        if (!names.has(after))
          throw new InputError(`${what}.spec.tasks[${i}].runAfter[${j}] "${after}" is not a task`);
      }),
    );
  }
  return parsed;
}

/** The default task graph. */
export const DEFAULT_TASKS = [
  { name: 'fetch', uses: 'fetch' },
  { name: 'inspect', uses: 'inspect', runAfter: ['fetch'] },
  { name: 'build', uses: 'build', runAfter: ['inspect'] },
  { name: 'stage', uses: 'stage', runAfter: ['build'] },
  { name: 'push', uses: 'push', runAfter: ['stage'] },
  { name: 'gitops', uses: 'gitops', runAfter: ['push'] },
] as const;
