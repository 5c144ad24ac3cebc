/**
 * `npm run bench:pipeline`: wall time per step of a whole ai-edge pipeline run for a ~100 MB model,
 * from the S3 source to the GitOps commit, side by side with the tools the original ODH AI Edge
 * pipeline used for the same steps, in the same run.
 *
 * Setup (not timed):
 *  - s3rver (in-process, 127.0.0.1) with bucket `models`; each model version is generated with
 *    `mlpModel({ sizes: [1024, 4096, 4096, 1024], seed: N })` (~100 MB) and uploaded as
 *    `bench/<N>/model.onnx` just before its round;
 *  - the expected output for an all-zeros input, computed once per version with onnxruntime-node in
 *    this process (the staging test compares the staged server's answer with it, atol = rtol = 1e-4);
 *  - Debian's docker-registry on 127.0.0.1 (shared with `bench:build`'s helper);
 *  - two bare `file://` GitOps repositories (ours, reference) and a sites file with one site.
 *
 * Ours: `runPipeline(spec)` in this process (fresh workspace and content store per run, as
 * `aiedge pipeline run` does), the default graph fetch → inspect → build → stage → push → gitops.
 * Each task's wall time comes from the runner's `running` → `succeeded` events.
 *
 * Reference (the original pipeline's tools, where this machine has them), as child processes:
 *  - fetch: `aws s3 cp` (the original's tool) when the AWS CLI works here, and always an AWS SDK
 *    `GetObject` streamed to a file (in-process; the fallback reference when there is no CLI);
 *  - build: `buildah bud` of `FROM <registry>/bench/base:1` + `COPY model.onnx …` (bench/base:1 is
 *    our first image without its model layer: the same base and runtime layers, as in bench:build);
 *  - push: `buildah push` to the same registry;
 *  - gitops: `git clone --depth 1`, the same rendered manifests written, `git add`, `git commit`,
 *    `git push` with the git CLI.
 *  - inspect and stage have no reference (the original's checks were a file test and a test run in
 *    the cluster).
 * buildah's storage (vfs) is kept across rounds, so from the second run on it has the base locally
 * (the reference gets the benefit of a warm cache; the original pipeline's pod started empty).
 *
 * A first run of version 1 (both sides) warms the registry (base and runtime layers) and buildah's
 * storage; it is reported but not part of the medians. Each measured round then runs version 2, 3,
 * … (a new seed: a new model layer, nothing cached but the base/runtime layers), alternating which
 * side goes first. Bytes: fetch = bytes written by the step; push = new blobs in the registry's
 * storage directory during the step (and what our client says it uploaded).
 *
 * Usage: npm run bench:pipeline -- [--rounds N] [--keep]
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  parseDeploymentSpec,
  parseSiteSpec,
  fileRemoteUrl,
  initBareRepository,
  renderRepository,
} from '@aiedge/gitops';
import {
  ContentStore,
  MediaTypes,
  RegistryClient,
  indexMediaTypes,
  parseReference,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '@aiedge/oci';
import { mlpModel } from '@aiedge/runtime';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { stringify as toYamlText } from 'yaml';
import { runTimed, type TimedRun } from '../../cli/bench/_process.js';
import { newBlobs, startDistribution, storedBlobs, type Distribution } from '../../cli/bench/_registry.js';
import { parsePipeline, runPipeline, type PipelineRunResult, type TaskTransition } from '../src/index.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MODEL_SIZES = [1024, 4096, 4096, 1024] as const;
const MODEL_NAME = 'bench';
const BUCKET = 'models';
const S3_KEY = 'S3RVER';
const S3_SECRET = 'S3RVER';
const SITE = { name: 'edge-1', labels: { site: 'edge-1' } };
const TOLERANCE = 1e-4;
const STEPS = ['fetch', 'inspect', 'build', 'stage', 'push', 'gitops'] as const;
type Step = (typeof STEPS)[number];
/** Steps both sides do; the "comparable total" sums these. */
const COMPARABLE: readonly Step[] = ['fetch', 'build', 'push', 'gitops'];

const HELP = `Usage: npm run bench:pipeline -- [options]

  --rounds N   measured rounds after the first (cold) run; a new model version each, sides
               alternating first (env BENCH_ROUNDS; default 3)
  --fresh-store
               give each of our runs an empty content store; default: one store for all runs,
               as \`aiedge pipeline run\` and the core keep one
  --keep       keep the temporary directory (models, S3 data, registry, repositories, buildah storage)
`;

interface Settings {
  readonly rounds: number;
  readonly sharedStore: boolean;
  readonly keep: boolean;
}

function parseSettings(argv: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string' },
      keep: { type: 'boolean' },
      'shared-store': { type: 'boolean' },
      'fresh-store': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const text = values.rounds ?? process.env['BENCH_ROUNDS'] ?? '3';
  const rounds = Number(text);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new Error(`--rounds is '${text}', expected an integer from 1 to 20`);
  }
  return { rounds, sharedStore: values['fresh-store'] !== true, keep: values.keep === true };
}

function median(values: readonly number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const mb = (bytes: number | undefined): string =>
  bytes === undefined || !Number.isFinite(bytes) ? '—' : `${(bytes / 1e6).toFixed(1)} MB`;
const s = (seconds: number | undefined): string =>
  seconds === undefined || !Number.isFinite(seconds) ? '—' : seconds.toFixed(2);
const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0
    ? '—'
    : `${(a / b).toFixed(2)}×`;

function toolVersion(command: string, args: readonly string[]): string | undefined {
  const r = spawnSync(command, [...args], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) return undefined;
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0]!;
}

// ---------------------------------------------------------------------------------------------
// Setup pieces

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}

async function startS3(dir: string): Promise<{ endpoint: string; server: S3rverInstance }> {
  const require = createRequire(import.meta.url);
  const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverInstance;
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: [{ name: BUCKET }],
  });
  const address = await server.run();
  return { endpoint: `http://127.0.0.1:${address.port}`, server };
}

function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3_KEY, secretAccessKey: S3_SECRET },
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
}

/** A model version: uploaded to S3, with the request and answer of the staging test. */
interface Model {
  readonly version: number;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
  readonly expected: number[];
  readonly generateSeconds: number;
  readonly expectedSeconds: number;
  readonly uploadSeconds: number;
}

async function prepareModel(client: S3Client, version: number): Promise<Model> {
  let t = performance.now();
  const bytes = mlpModel({ sizes: MODEL_SIZES, seed: version });
  const generateSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const session = await InferenceSession.create(bytes);
  const width = MODEL_SIZES[0];
  const out = await session.run({ input: new Tensor('float32', new Float32Array(width), [1, width]) });
  const expected = Array.from(out['output']!.data as Float32Array);
  await session.release();
  const expectedSeconds = (performance.now() - t) / 1000;
  t = performance.now();
  const key = `${MODEL_NAME}/${version}/model.onnx`;
  await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: bytes }));
  const uploadSeconds = (performance.now() - t) / 1000;
  return {
    version,
    key,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    expected,
    generateSeconds,
    expectedSeconds,
    uploadSeconds,
  };
}

/** Everything both sides use. */
interface Context {
  readonly tmp: string;
  readonly s3Endpoint: string;
  readonly registry: Distribution;
  readonly oursRepo: string;
  readonly referenceRepo: string;
  readonly sitesFile: string;
  readonly buildahGlobal: readonly string[];
  readonly awsCli: string | undefined;
  readonly buildah: string | undefined;
  /** With --shared-store: the one store every run of ours uses. */
  readonly store: ContentStore | undefined;
}

function pipelineDocument(ctx: Context, model: Model): unknown {
  const width = MODEL_SIZES[0];
  const out = MODEL_SIZES.at(-1)!;
  return {
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'bench-pipeline' },
    spec: {
      model: { name: MODEL_NAME, version: String(model.version), format: 'onnx' },
      source: {
        s3: {
          bucket: BUCKET,
          key: model.key,
          endpoint: ctx.s3Endpoint,
          region: 'us-east-1',
          accessKeyIdEnv: 'BENCH_S3_ACCESS_KEY_ID',
          secretAccessKeyEnv: 'BENCH_S3_SECRET_ACCESS_KEY',
        },
      },
      image: { repository: `${ctx.registry.host}/bench/pipeline`, insecure: true },
      test: {
        mode: 'process',
        requests: [
          {
            name: 'zeros',
            request: {
              inputs: [
                {
                  name: 'input',
                  datatype: 'FP32',
                  shape: [1, width],
                  data: new Array<number>(width).fill(0),
                },
              ],
            },
            expected: [{ name: 'output', datatype: 'FP32', shape: [1, out], data: model.expected }],
          },
        ],
        atol: TOLERANCE,
        rtol: TOLERANCE,
      },
      gitops: { repo: fileRemoteUrl(ctx.oursRepo), branch: 'main', sites: ctx.sitesFile },
      deployment: { name: MODEL_NAME, selector: { ...SITE.labels } },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Ours

interface OursRun {
  readonly version: number;
  readonly status: PipelineRunResult['status'];
  /** Seconds per task, from the runner's running → succeeded events. */
  readonly steps: Record<Step, number>;
  /** runPipeline from call to return. */
  readonly totalSeconds: number;
  readonly fetchBytes: number;
  /** New blobs in the registry's storage during the run (only push writes to it). */
  readonly pushRegistryBytes: number;
  readonly pushRegistryBlobs: number;
  /** What our client reported as uploaded (log line of the push task). */
  readonly pushClientBytes: number | undefined;
  readonly pushSkippedBlobs: number | undefined;
  readonly digest: string;
  readonly gitopsCommit: string;
  readonly lines: ReadonlyArray<{ t: number; task: string | null; line: string }>;
}

async function runOurs(
  ctx: Context,
  model: Model,
  keepWorkspace: (workspace: string) => Promise<void> = async () => {},
): Promise<OursRun> {
  const spec = parsePipeline(pipelineDocument(ctx, model));
  const workspace = await mkdtemp(join(ctx.tmp, `ours-v${model.version}-`));
  const started = new Map<string, number>();
  const ended = new Map<string, number>();
  const lines: Array<{ t: number; task: string | null; line: string }> = [];
  const before = await storedBlobs(ctx.registry.root);
  const t0 = performance.now();
  const result = await runPipeline(spec, {
    workspace,
    runId: `bench-v${model.version}`,
    ...(ctx.store !== undefined ? { store: ctx.store } : {}),
    env: {
      ...process.env,
      BENCH_S3_ACCESS_KEY_ID: S3_KEY,
      BENCH_S3_SECRET_ACCESS_KEY: S3_SECRET,
    },
    events: {
      task: (t: TaskTransition) => {
        const now = performance.now();
        if (t.state === 'running' && !started.has(t.task)) started.set(t.task, now);
        if (t.state !== 'running' && t.state !== 'pending') ended.set(t.task, now);
      },
      log: (task, _stream, line) => lines.push({ t: (performance.now() - t0) / 1000, task, line }),
    },
  });
  const totalSeconds = (performance.now() - t0) / 1000;
  const added = newBlobs(before, await storedBlobs(ctx.registry.root));
  if (result.status !== 'succeeded') {
    const tail = lines
      .slice(-20)
      .map((l) => `    ${l.task ?? 'run'}: ${l.line}`)
      .join('\n');
    throw new Error(`our pipeline for version ${model.version} ${result.status}: ${result.reason}\n${tail}`);
  }
  if (result.results['inspect.sha256'] !== undefined && result.results['inspect.sha256'] !== model.sha256) {
    throw new Error(`inspect saw sha256 ${result.results['inspect.sha256']}, the model is ${model.sha256}`);
  }
  const steps = Object.fromEntries(
    STEPS.map((step) => [step, ((ended.get(step) ?? NaN) - (started.get(step) ?? NaN)) / 1000]),
  ) as Record<Step, number>;
  const pushed = lines
    .map((l) => /^pushed \S+: (\d+) bytes uploaded, (\d+) blobs already there/.exec(l.line))
    .find((m) => m !== null);
  await keepWorkspace(workspace);
  await rm(workspace, { recursive: true, force: true });
  return {
    version: model.version,
    status: result.status,
    steps,
    totalSeconds,
    fetchBytes: Number(result.results['fetch.bytes'] ?? NaN),
    pushRegistryBytes: added.bytes,
    pushRegistryBlobs: added.blobs.length,
    pushClientBytes: pushed?.[1] !== undefined ? Number(pushed[1]) : undefined,
    pushSkippedBlobs: pushed?.[2] !== undefined ? Number(pushed[2]) : undefined,
    digest: result.results['push.digest'] ?? '',
    gitopsCommit: result.results['gitops.commit'] ?? '',
    lines,
  };
}

/**
 * bench/base:1: our first image without its model layer (same base and runtime layers, same
 * config with rootfs and history cut to them, no labels), pushed with mounts from bench/pipeline.
 */
async function pushBase(storeDir: string, digest: string, registry: string): Promise<number> {
  const store = await ContentStore.open(storeDir);
  let desc = digest as Descriptor['digest'];
  const root = await store.readJson<ImageManifest | ImageIndex>(desc);
  if (root.mediaType !== undefined && indexMediaTypes.includes(root.mediaType)) {
    desc = (root as ImageIndex).manifests[0]!.digest;
  }
  const manifest = await store.readJson<ImageManifest>(desc);
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  const keep = manifest.layers.length - 1;
  const baseConfig: ImageConfig = {
    ...config,
    config: { ...config.config, Labels: {} },
    rootfs: { type: 'layers', diff_ids: config.rootfs.diff_ids.slice(0, keep) },
    ...(config.history !== undefined ? { history: config.history.slice(0, keep) } : {}),
  };
  const configBlob = await store.put(JSON.stringify(baseConfig));
  const baseManifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: configBlob.digest, size: configBlob.size },
    layers: manifest.layers.slice(0, keep),
  };
  const manifestBlob = await store.put(JSON.stringify(baseManifest));
  const client = new RegistryClient({ insecure: true });
  try {
    await client.push(
      store,
      { mediaType: MediaTypes.ociManifest, digest: manifestBlob.digest, size: manifestBlob.size },
      parseReference(`${registry}/bench/base:1`),
      { mountFrom: 'bench/pipeline' },
    );
  } finally {
    await client.close();
  }
  return keep;
}

// ---------------------------------------------------------------------------------------------
// Reference

interface ReferenceRun {
  readonly version: number;
  /** Seconds per step the reference has (`aws s3 cp` when present, else SDK GetObject, for fetch). */
  readonly steps: Partial<Record<Step, number>>;
  readonly fetchTool: 'aws s3 cp' | 'AWS SDK GetObject';
  /** `aws s3 cp` (when the CLI works) and the SDK GetObject, both timed. */
  readonly fetchAwsCliSeconds: number | undefined;
  readonly fetchSdkSeconds: number;
  readonly fetchBytes: number;
  readonly budSeconds: number;
  readonly pushSeconds: number;
  readonly gitops: { clone: number; write: number; commit: number; push: number; total: number };
  readonly totalSeconds: number;
  readonly pushRegistryBytes: number;
  readonly pushRegistryBlobs: number;
  readonly digest: string;
  readonly commands: readonly string[];
  readonly cpuSeconds: Partial<Record<string, number>>;
}

async function sdkGetObject(ctx: Context, model: Model, file: string): Promise<number> {
  const client = s3Client(ctx.s3Endpoint);
  try {
    const got = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: model.key }));
    const counter = { bytes: 0 };
    const body = got.Body as Readable;
    body.on('data', (chunk: Buffer) => (counter.bytes += chunk.length));
    await streamPipeline(body, createWriteStream(file));
    return counter.bytes;
  } finally {
    client.destroy();
  }
}

async function git(args: readonly string[], cwd?: string): Promise<TimedRun> {
  return runTimed('git', args, {
    ...(cwd !== undefined ? { cwd } : {}),
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'reference pipeline',
      GIT_AUTHOR_EMAIL: 'reference@aiedge.invalid',
      GIT_COMMITTER_NAME: 'reference pipeline',
      GIT_COMMITTER_EMAIL: 'reference@aiedge.invalid',
      GIT_TERMINAL_PROMPT: '0',
    },
  });
}

async function runReference(ctx: Context, model: Model): Promise<ReferenceRun> {
  const dir = join(ctx.tmp, 'reference', `v${model.version}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'context'), { recursive: true });
  const modelFile = join(dir, 'context', 'model.onnx');
  const commands: string[] = [];
  const cpuSeconds: Partial<Record<string, number>> = {};
  // fetch: the AWS CLI (the original's `aws s3 cp`), then the SDK GetObject to a second file.
  let fetchAwsCliSeconds: number | undefined;
  if (ctx.awsCli !== undefined) {
    const cp = await runTimed(
      'aws',
      [
        's3',
        'cp',
        '--only-show-errors',
        '--endpoint-url',
        ctx.s3Endpoint,
        `s3://${BUCKET}/${model.key}`,
        modelFile,
      ],
      {
        env: {
          ...process.env,
          AWS_ACCESS_KEY_ID: S3_KEY,
          AWS_SECRET_ACCESS_KEY: S3_SECRET,
          AWS_DEFAULT_REGION: 'us-east-1',
          AWS_CONFIG_FILE: '/dev/null',
          AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        },
      },
    );
    fetchAwsCliSeconds = cp.seconds;
    cpuSeconds['fetch'] = cp.cpuSeconds;
    commands.push(cp.command);
  }
  const tSdk = performance.now();
  const sdkFile = ctx.awsCli !== undefined ? join(dir, 'sdk-model.onnx') : modelFile;
  const fetchBytes = await sdkGetObject(ctx, model, sdkFile);
  const fetchSdkSeconds = (performance.now() - tSdk) / 1000;
  const fetched = createHash('sha256')
    .update(await readFile(modelFile))
    .digest('hex');
  if (fetched !== model.sha256)
    throw new Error(`reference fetch of version ${model.version}: sha256 mismatch`);
  if (sdkFile !== modelFile) await rm(sdkFile, { force: true });

  // build + push: buildah, as the original's build and push tasks.
  const tag = `${ctx.registry.host}/bench/reference:${model.version}`;
  const containerfile = join(dir, 'Containerfile');
  await writeFile(
    containerfile,
    `FROM ${ctx.registry.host}/bench/base:1\nCOPY model.onnx /models/${MODEL_NAME}/${model.version}/model.onnx\n`,
  );
  const bud = await runTimed('buildah', [
    ...ctx.buildahGlobal,
    'bud',
    '--layers',
    '--tls-verify=false',
    '-f',
    containerfile,
    '-t',
    tag,
    join(dir, 'context'),
  ]);
  commands.push(bud.command);
  cpuSeconds['build'] = bud.cpuSeconds;
  const before = await storedBlobs(ctx.registry.root);
  const digestFile = join(dir, 'digest');
  const push = await runTimed('buildah', [
    ...ctx.buildahGlobal,
    'push',
    '--tls-verify=false',
    '--digestfile',
    digestFile,
    tag,
    `docker://${tag}`,
  ]);
  commands.push(push.command);
  cpuSeconds['push'] = push.cpuSeconds;
  const added = newBlobs(before, await storedBlobs(ctx.registry.root));
  const digest = (await readFile(digestFile, 'utf8')).trim();

  // gitops: the same manifests rendered for the reference image (untimed), then clone, write, commit, push.
  const rendered = renderRepository({
    deployments: [
      parseDeploymentSpec({
        name: MODEL_NAME,
        image: `${ctx.registry.host}/bench/reference@${digest}`,
        model: { name: MODEL_NAME, version: String(model.version), sha256: model.sha256 },
        selector: { ...SITE.labels },
        pipelineRun: `reference-v${model.version}`,
      }),
    ],
    sites: [parseSiteSpec(SITE)],
    repoUrl: fileRemoteUrl(ctx.referenceRepo),
  });
  const work = join(dir, 'gitops');
  const tClone = performance.now();
  const clone = await git(['clone', '--quiet', '--depth', '1', fileRemoteUrl(ctx.referenceRepo), work]);
  const tWrite = performance.now();
  for (const [path, content] of rendered) {
    await mkdir(dirname(join(work, path)), { recursive: true });
    await writeFile(join(work, path), content);
  }
  const tCommit = performance.now();
  await git(['add', '-A'], work);
  const commit = await git(
    ['commit', '--quiet', '-m', `Deploy ${MODEL_NAME} version ${model.version}`],
    work,
  );
  const tPush = performance.now();
  const gitPush = await git(['push', '--quiet', 'origin', 'HEAD:refs/heads/main'], work);
  const tEnd = performance.now();
  commands.push(clone.command, 'git add -A', commit.command, gitPush.command);
  const gitops = {
    clone: (tWrite - tClone) / 1000,
    write: (tCommit - tWrite) / 1000,
    commit: (tPush - tCommit) / 1000,
    push: (tEnd - tPush) / 1000,
    total: (tEnd - tClone) / 1000,
  };
  const fetchSeconds = fetchAwsCliSeconds ?? fetchSdkSeconds;
  const totalSeconds = fetchSeconds + bud.seconds + push.seconds + gitops.total;
  await rm(modelFile, { force: true });
  return {
    version: model.version,
    steps: { fetch: fetchSeconds, build: bud.seconds, push: push.seconds, gitops: gitops.total },
    fetchTool: fetchAwsCliSeconds !== undefined ? 'aws s3 cp' : 'AWS SDK GetObject',
    fetchAwsCliSeconds,
    fetchSdkSeconds,
    fetchBytes,
    budSeconds: bud.seconds,
    pushSeconds: push.seconds,
    gitops,
    totalSeconds,
    pushRegistryBytes: added.bytes,
    pushRegistryBlobs: added.blobs.length,
    digest,
    commands,
    cpuSeconds,
  };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Round {
  readonly round: number;
  readonly version: number;
  readonly first: 'ours' | 'reference';
  ours?: OursRun;
  reference?: ReferenceRun;
}

function oursLine(label: string, o: OursRun): string {
  return (
    `  ${label} ours      v${o.version}: total ${s(o.totalSeconds)} s = ` +
    STEPS.map((st) => `${st} ${s(o.steps[st])}`).join(', ') +
    `; fetched ${mb(o.fetchBytes)}, pushed ${mb(o.pushRegistryBytes)} (${o.pushRegistryBlobs} new blobs; client ${mb(o.pushClientBytes)}, ${o.pushSkippedBlobs ?? '?'} blobs already there)`
  );
}

function referenceLine(label: string, r: ReferenceRun): string {
  return (
    `  ${label} reference v${r.version}: total ${s(r.totalSeconds)} s = fetch ${s(r.steps.fetch)} (${r.fetchTool}; SDK GetObject ${s(r.fetchSdkSeconds)}), ` +
    `build ${s(r.budSeconds)}, push ${s(r.pushSeconds)}, gitops ${s(r.gitops.total)} (clone ${s(r.gitops.clone)}, commit ${s(r.gitops.commit)}, push ${s(r.gitops.push)}); ` +
    `pushed ${mb(r.pushRegistryBytes)} (${r.pushRegistryBlobs} new blobs)`
  );
}

interface SummaryRow {
  readonly step: string;
  readonly ours: number;
  readonly reference: number | undefined;
  readonly referenceTool: string;
  readonly oursBytes?: number;
  readonly referenceBytes?: number;
}

function summarize(rounds: readonly Round[], hasReference: boolean): SummaryRow[] {
  const ours = rounds.map((r) => r.ours!);
  const refs = hasReference ? rounds.map((r) => r.reference!) : [];
  const refMedian = (f: (r: ReferenceRun) => number | undefined): number | undefined =>
    hasReference ? median(refs.map((r) => f(r) ?? NaN)) : undefined;
  const fetchTool = refs[0]?.fetchTool ?? 'AWS SDK GetObject';
  const rows: SummaryRow[] = [
    {
      step: 'fetch',
      ours: median(ours.map((o) => o.steps.fetch)),
      reference: refMedian((r) => r.steps.fetch),
      referenceTool: fetchTool,
      oursBytes: median(ours.map((o) => o.fetchBytes)),
      ...(hasReference ? { referenceBytes: median(refs.map((r) => r.fetchBytes)) } : {}),
    },
  ];
  if (fetchTool === 'aws s3 cp') {
    rows.push({
      step: 'fetch (alt. reference)',
      ours: median(ours.map((o) => o.steps.fetch)),
      reference: refMedian((r) => r.fetchSdkSeconds),
      referenceTool: 'AWS SDK GetObject → file',
    });
  }
  rows.push(
    {
      step: 'inspect',
      ours: median(ours.map((o) => o.steps.inspect)),
      reference: undefined,
      referenceTool: '—',
    },
    {
      step: 'build',
      ours: median(ours.map((o) => o.steps.build)),
      reference: refMedian((r) => r.budSeconds),
      referenceTool: 'buildah bud',
    },
    {
      step: 'stage',
      ours: median(ours.map((o) => o.steps.stage)),
      reference: undefined,
      referenceTool: '— (test run in the cluster)',
    },
    {
      step: 'push',
      ours: median(ours.map((o) => o.steps.push)),
      reference: refMedian((r) => r.pushSeconds),
      referenceTool: 'buildah push',
      oursBytes: median(ours.map((o) => o.pushRegistryBytes)),
      ...(hasReference ? { referenceBytes: median(refs.map((r) => r.pushRegistryBytes)) } : {}),
    },
    {
      step: 'gitops',
      ours: median(ours.map((o) => o.steps.gitops)),
      reference: refMedian((r) => r.gitops.total),
      referenceTool: 'git clone + commit + push',
    },
    {
      step: 'total, comparable steps (fetch + build + push + gitops)',
      ours: median(ours.map((o) => COMPARABLE.reduce((sum, st) => sum + o.steps[st], 0))),
      reference: refMedian((r) => r.totalSeconds),
      referenceTool: 'the four above',
    },
    {
      step: 'total, whole run (runPipeline, all six steps)',
      ours: median(ours.map((o) => o.totalSeconds)),
      reference: refMedian((r) => r.totalSeconds),
      referenceTool: 'the four above (no inspect, no stage)',
    },
  );
  return rows;
}

function summaryTable(rows: readonly SummaryRow[]): string {
  const out = [
    '| step | ours s | reference s | reference tool | ours ÷ reference | ours bytes | reference bytes |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    out.push(
      `| ${r.step} | ${s(r.ours)} | ${s(r.reference)} | ${r.referenceTool} | ${ratio(r.ours, r.reference)} | ${mb(r.oursBytes)} | ${mb(r.referenceBytes)} |`,
    );
  }
  return out.join('\n');
}

function roundsTable(rounds: readonly Round[]): string {
  const out = [
    `| round | version | first | ours: ${STEPS.join(' / ')} | ours total | reference: fetch / build / push / gitops | reference total |`,
    '| ---: | ---: | --- | --- | ---: | --- | ---: |',
  ];
  for (const r of rounds) {
    const o = r.ours!;
    const ref = r.reference;
    out.push(
      `| ${r.round} | ${r.version} | ${r.first} | ${STEPS.map((st) => s(o.steps[st])).join(' / ')} | ${s(o.totalSeconds)} | ` +
        `${ref === undefined ? '—' : [ref.steps.fetch, ref.budSeconds, ref.pushSeconds, ref.gitops.total].map(s).join(' / ')} | ${s(ref?.totalSeconds)} |`,
    );
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function run(settings: Settings): Promise<void> {
  const buildah = toolVersion('buildah', ['--version']);
  const awsCli = toolVersion('aws', ['--version']);
  const registryVersion = toolVersion('docker-registry', ['--version']);
  if (registryVersion === undefined) {
    throw new Error('docker-registry is needed (apt-get install docker-registry)');
  }
  const machine = {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown CPU',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    buildah: buildah ?? null,
    awsCli: awsCli ?? null,
    git: toolVersion('git', ['--version']) ?? null,
    registry: registryVersion,
  };
  console.log(
    `aiedge pipeline benchmark: ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, ${machine.registry}`,
  );
  const hasReference = buildah !== undefined;
  if (!hasReference) {
    console.log('reference SKIPPED: buildah is not on PATH (apt-get install buildah); only ours is measured');
  } else {
    console.log(
      `reference: ${buildah}, ${machine.git ?? 'no git'}, ${awsCli ?? 'no AWS CLI (fetch by SDK GetObject)'}`,
    );
  }
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) {
    console.log(
      `WARNING: load average ${loadBefore.toFixed(2)} before the run; other processes skew results`,
    );
  }

  const tmp = await mkdtemp(join(tmpdir(), 'aiedge-bench-pipeline-'));
  let registry: Distribution | undefined;
  let s3: S3rverInstance | undefined;
  const log = (line: string): void => console.log(line);
  try {
    const started = await startS3(join(tmp, 's3'));
    s3 = started.server;
    registry = await startDistribution(join(tmp, 'registry'));
    const oursRepo = join(tmp, 'gitops-ours.git');
    const referenceRepo = join(tmp, 'gitops-reference.git');
    await initBareRepository(oursRepo, 'main');
    execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', referenceRepo]);
    const sitesFile = join(tmp, 'sites.yaml');
    await writeFile(sitesFile, toYamlText([SITE]));
    log(`s3: s3rver ${started.endpoint} (in-process), bucket ${BUCKET}`);
    log(`registry: docker-registry on ${registry.host} (pid ${registry.pid})`);
    log(
      `gitops: ${fileRemoteUrl(oursRepo)} (ours), ${fileRemoteUrl(referenceRepo)} (reference); site ${SITE.name}`,
    );
    const ctx: Context = {
      tmp,
      s3Endpoint: started.endpoint,
      registry,
      oursRepo,
      referenceRepo,
      sitesFile,
      buildahGlobal: [
        '--root',
        join(tmp, 'containers', 'root'),
        '--runroot',
        join(tmp, 'containers', 'runroot'),
        '--storage-driver',
        'vfs',
      ],
      awsCli,
      buildah,
      store: settings.sharedStore ? await ContentStore.open(join(tmp, 'shared-store')) : undefined,
    };
    log(
      `our store: ${settings.sharedStore ? `one store for every run (${join(tmp, 'shared-store')}), as aiedge pipeline run and the core keep one` : "a fresh one per run, in the run's workspace (--fresh-store)"}`,
    );
    const client = s3Client(started.endpoint);
    const models: Model[] = [];
    const prepare = async (version: number): Promise<Model> => {
      const m = await prepareModel(client, version);
      models.push(m);
      log(
        `  model v${version}: ${mb(m.size)} (generated ${s(m.generateSeconds)} s, expected output by onnxruntime-node ${s(m.expectedSeconds)} s, uploaded to S3 ${s(m.uploadSeconds)} s)`,
      );
      return m;
    };

    // First run (cold): warms the registry (base/runtime layers) and buildah's storage.
    log(`\nfirst run: version 1 (cold; not part of the medians), mlpModel sizes [${MODEL_SIZES.join(', ')}]`);
    const v1 = await prepare(1);
    let baseLayers = 0;
    const firstOurs = await runOurs(ctx, v1, async (workspace) => {
      if (hasReference)
        baseLayers = await pushBase(
          ctx.store?.root ?? join(workspace, 'store'),
          (await readDigest(workspace))!,
          ctx.registry.host,
        );
    });
    log(oursLine('[first]', firstOurs));
    let firstReference: ReferenceRun | undefined;
    if (hasReference) {
      log(`  bench/base:1 pushed: our first image without its model layer (${baseLayers} layers)`);
      firstReference = await runReference(ctx, v1);
      log(referenceLine('[first]', firstReference));
    }

    log(`\n${settings.rounds} measured rounds (each a new model version, sides alternating first)`);
    const rounds: Round[] = [];
    for (let i = 0; i < settings.rounds; i++) {
      const model = await prepare(i + 2);
      const round: Round = {
        round: i + 1,
        version: model.version,
        first: i % 2 === 0 || !hasReference ? 'ours' : 'reference',
      };
      const order =
        round.first === 'ours' ? (['ours', 'reference'] as const) : (['reference', 'ours'] as const);
      for (const side of order) {
        const label = `[${round.round}/${settings.rounds}]`;
        if (side === 'ours') {
          round.ours = await runOurs(ctx, model);
          log(oursLine(label, round.ours));
        } else if (hasReference) {
          round.reference = await runReference(ctx, model);
          log(referenceLine(label, round.reference));
        }
      }
      rounds.push(round);
    }
    client.destroy();

    const rows = summarize(rounds, hasReference);
    console.log(`\n### Per round (seconds)\n`);
    console.log(roundsTable(rounds));
    console.log(
      `\n### Medians over ${settings.rounds} rounds (seconds; ours ÷ reference < 1: ours is faster)\n`,
    );
    console.log(summaryTable(rows));
    if (!hasReference) console.log('\n(reference skipped: buildah is not on PATH)');

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = join(REPO_ROOT, 'bench-results', `pipeline-${stamp}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      `${JSON.stringify(
        {
          benchmark: 'pipeline',
          time: new Date().toISOString(),
          command: ['npm run bench:pipeline --', ...process.argv.slice(2)].join(' '),
          machine,
          loadAverageBefore: loadBefore,
          settings,
          model: { sizes: MODEL_SIZES, bytes: v1.size, tolerance: TOLERANCE },
          models: models.map(({ expected: _, ...m }) => m),
          first: { ours: firstOurs, reference: firstReference },
          rounds,
          summary: rows.map((r) => ({
            ...r,
            ratioOursToReference: r.reference !== undefined ? r.ours / r.reference : undefined,
          })),
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${out}`);
  } finally {
    await registry?.stop();
    await s3?.close();
    if (settings.keep) console.log(`kept ${tmp}`);
    else {
      // buildah's vfs storage holds read-only directories; rm as root removes them.
      await rm(tmp, { recursive: true, force: true }).catch(() => execFileSync('rm', ['-rf', tmp]));
    }
  }
}

/** The built image's digest from the run state a workspace holds. */
async function readDigest(workspace: string): Promise<string | undefined> {
  const state = JSON.parse(await readFile(join(workspace, 'state.json'), 'utf8')) as {
    built?: { digest?: string };
  };
  return state.built?.digest;
}

try {
  const settings = parseSettings(process.argv.slice(2));
  if (settings === undefined) console.log(HELP);
  else await run(settings);
} catch (error) {
  console.error(`\nbench:pipeline FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
