/**
 * `npm run bench:build`: build + push of a new model version when the previous one is already in
 * the registry, `aiedge image build --push` side by side with `buildah bud` + `buildah push` of the
 * equivalent Containerfile (same base layers, same model file), in the same run.
 *
 * Setup (not timed as the comparison):
 *  - ~100 MB generated models `mlpModel({ sizes: [1024, 4096, 4096, 1024], seed: N })`, written to
 *    `<tmp>/models/v<N>/model.onnx` (N = 1 for version 1, then one new version per round);
 *  - one Debian docker-registry on 127.0.0.1, used by both tools;
 *  - our version 1: `aiedge image build … --push` into a fresh store (this warms our base/runtime
 *    layer cache, as on a CI runner or a developer machine), pushed to bench/ours:1;
 *  - bench/base:1, pushed with RegistryClient: exactly our base + runtime layers and our config
 *    (Env, User, Entrypoint, Cmd, …) without the model; buildah builds `FROM` it;
 *  - buildah's version 1: `buildah bud` + `buildah push` to bench/buildah:1 (buildah then has the
 *    base locally and knows which of its blobs the registry has, as ours does).
 * Each round then builds and pushes a new version (2, 3, …: new seed, so a new model layer for
 * both tools; neither gets a cache hit for it) with each tool as a child process, alternating
 * which tool goes first. Bytes uploaded per tool are the sizes of the blobs that appear in the
 * registry's storage directory during that tool's push. Each pushed image is read back with skopeo
 * and the model file checked inside its layer (see _verify.ts); any mismatch fails the benchmark.
 *
 * Usage: npm run bench:build -- [--rounds N] [--skip-profile] [--keep]
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ContentStore,
  MediaTypes,
  RegistryClient,
  parseReference,
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
} from '@aiedge/oci';
import { mlpModel } from '@aiedge/runtime';
import { profileBuild, type ProfileStep } from './_profile.js';
import { lineTime, runTimed, type TimedRun } from './_process.js';
import { newBlobs, startDistribution, storedBlobs, type Distribution } from './_registry.js';
import { verifyPushed } from './_verify.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MODEL_SIZES = [1024, 4096, 4096, 1024] as const;
const MODEL_NAME = 'bench';
/** Targets of the issue: ours ≥ 5× faster than buildah; bytes uploaded ≤ 1.05× the compressed model layer. */
const TARGET_SPEEDUP = 5;
const TARGET_BYTES_RATIO = 1.05;

const HELP = `Usage: npm run bench:build -- [options]

  --rounds N       measured rounds (new model version each round), tools alternating first
                   (env BENCH_ROUNDS; default 3)
  --skip-profile   skip the in-process breakdown of our build (start-up, bundle, hashing, gzip levels)
  --keep           keep the temporary directory (models, store, registry data, buildah storage)
`;

interface Settings {
  readonly rounds: number;
  readonly profile: boolean;
  readonly keep: boolean;
}

function parseSettings(argv: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      rounds: { type: 'string' },
      'skip-profile': { type: 'boolean' },
      keep: { type: 'boolean' },
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
  return { rounds, profile: values['skip-profile'] !== true, keep: values.keep === true };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

function s(seconds: number | undefined): string {
  return seconds === undefined ? 'n/a' : seconds.toFixed(2);
}

function toolVersion(command: string, args: readonly string[]): string {
  const r = spawnSync(command, [...args], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    const apt = command === 'docker-registry' ? 'docker-registry' : command;
    throw new Error(`${command} is needed (apt-get install ${apt}): ${r.error?.message ?? r.stderr}`);
  }
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0]!;
}

/** A model version on disk. */
interface Model {
  readonly version: number;
  readonly dir: string;
  readonly file: string;
  readonly size: number;
  readonly sha256: string;
}

async function writeModel(modelsDir: string, version: number): Promise<Model> {
  const bytes = mlpModel({ sizes: MODEL_SIZES, seed: version });
  const dir = join(modelsDir, `v${version}`);
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'model.onnx');
  await writeFile(file, bytes);
  return {
    version,
    dir,
    file,
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}

/** Phases of our CLI read from its stderr: "building …", "built in X s", "pushed …". */
interface OursPhases {
  /** Spawn → "building" (node + tsx start-up, module loading, store and client set-up). */
  readonly startup: number | undefined;
  /** "building" → "built in" (the build itself; the CLI's own "built in X s"). */
  readonly build: number | undefined;
  /** "built in" → "pushed" (the push: HEADs, model layer + config upload, manifest PUTs). */
  readonly push: number | undefined;
  /** "pushed" → exit. */
  readonly exit: number | undefined;
  /** What the CLI printed as "built in X s". */
  readonly builtInReported: number | undefined;
}

function oursPhases(run: TimedRun): OursPhases {
  const building = lineTime(run, /^building /);
  const built = lineTime(run, /^built in /);
  const pushed = lineTime(run, /^pushed /);
  const reported = /^built in ([\d.]+) s/.exec(run.lines.find((l) => /^built in /.test(l.text))?.text ?? '');
  return {
    startup: building,
    build: building !== undefined && built !== undefined ? built - building : undefined,
    push: built !== undefined && pushed !== undefined ? pushed - built : undefined,
    exit: pushed !== undefined ? run.seconds - pushed : undefined,
    builtInReported: reported?.[1] !== undefined ? Number(reported[1]) : undefined,
  };
}

/** Phases of `buildah bud` read from its output: FROM, COPY, COMMIT, "-->". */
interface BudPhases {
  /** Spawn → "STEP 2/2" (start-up, base image check against the registry, working container from the base). */
  readonly from: number | undefined;
  /** "STEP 2/2: COPY" → "COMMIT" (cache check: hashing the source; copying the model into the container). */
  readonly copy: number | undefined;
  /** "COMMIT" → "-->" (diffing the container, storing the new layer). */
  readonly commit: number | undefined;
  /** "-->" → exit (tagging, removing the working container). */
  readonly exit: number | undefined;
}

function budPhases(run: TimedRun): BudPhases {
  const copy = lineTime(run, /^STEP 2\/2: COPY/);
  const commit = lineTime(run, /^COMMIT /);
  const committed = lineTime(run, /^--> /);
  return {
    from: copy,
    copy: copy !== undefined && commit !== undefined ? commit - copy : undefined,
    commit: commit !== undefined && committed !== undefined ? committed - commit : undefined,
    exit: committed !== undefined ? run.seconds - committed : undefined,
  };
}

/** Sizes of the blobs our CLI reported as "uploaded" (its progress lines carry a short digest). */
function oursClientUploaded(
  run: TimedRun,
  manifest: ImageManifest,
): { exactBytes: number; blobs: number; summaryMB: number | undefined } {
  const shorts = run.lines
    .map((l) => /^\s+uploaded (sha256:[0-9a-f]{12}) /.exec(l.text)?.[1])
    .filter((x): x is string => x !== undefined);
  const descriptors = [manifest.config, ...manifest.layers];
  let exactBytes = 0;
  for (const short of shorts) {
    const d = descriptors.find((x) => x.digest.startsWith(short));
    if (d === undefined) throw new Error(`our CLI reported uploading ${short}, which is not in the image`);
    exactBytes += d.size;
  }
  const summary = /: ([\d.]+) (MB|kB|B) uploaded/.exec(
    run.lines.find((l) => /^pushed /.test(l.text))?.text ?? '',
  );
  const scale = summary?.[2] === 'MB' ? 1 : summary?.[2] === 'kB' ? 1e-3 : 1e-6;
  return {
    exactBytes,
    blobs: shorts.length,
    summaryMB: summary?.[1] !== undefined ? Number(summary[1]) * scale : undefined,
  };
}

interface OursResult {
  readonly seconds: number;
  /** CPU seconds the registry used during this run (receiving and hashing the blobs). */
  readonly registryCpuSeconds: number | undefined;
  readonly lines: TimedRun['lines'];
  readonly cpuSeconds: number | undefined;
  readonly maxRssMb: number | undefined;
  readonly phases: OursPhases;
  readonly digest: string;
  readonly modelLayerSize: number;
  readonly registryBytes: number;
  readonly registryBlobs: ReadonlyArray<{ digest: string; size: number }>;
  readonly clientUploaded: ReturnType<typeof oursClientUploaded>;
  readonly command: string;
}

interface BuildahResult {
  readonly seconds: number;
  readonly registryCpuSeconds: number | undefined;
  readonly bud: {
    seconds: number;
    cpuSeconds: number | undefined;
    maxRssMb: number | undefined;
    phases: BudPhases;
    lines: TimedRun['lines'];
  };
  readonly push: {
    seconds: number;
    cpuSeconds: number | undefined;
    maxRssMb: number | undefined;
    lines: TimedRun['lines'];
  };
  readonly digest: string;
  readonly modelLayerSize: number;
  readonly registryBytes: number;
  readonly registryBlobs: ReadonlyArray<{ digest: string; size: number }>;
  readonly commands: readonly string[];
}

interface Round {
  readonly round: number;
  readonly version: number;
  readonly first: 'ours' | 'buildah';
  ours?: OursResult;
  buildah?: BuildahResult;
}

/** Everything one benchmark run needs to drive both tools. */
interface Context {
  readonly tmp: string;
  readonly modelsDir: string;
  readonly storeDir: string;
  readonly registry: Distribution;
  readonly buildahGlobal: readonly string[];
  readonly baseDiffIds: readonly string[];
}

function oursArgs(ctx: Context, model: Model): string[] {
  return [
    // The installed command, as users run it (compiled; built before the benchmark starts).
    'packages/cli/bin/aiedge.js',
    'image',
    'build',
    '--model',
    model.dir,
    '--name',
    MODEL_NAME,
    '--version',
    String(model.version),
    '--tag',
    `${ctx.registry.host}/bench/ours:${model.version}`,
    '--push',
    '--store',
    ctx.storeDir,
  ];
}

async function runOurs(
  ctx: Context,
  model: Model,
): Promise<{ run: TimedRun; digest: string; manifest: ImageManifest }> {
  const run = await runTimed(process.execPath, oursArgs(ctx, model), { cwd: REPO_ROOT });
  const digest = run.stdout.trim().split('\n').at(-1) ?? '';
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new Error(`our CLI printed no digest: ${run.stdout}`);
  const store = await ContentStore.open(ctx.storeDir);
  const manifest = await store.readJson<ImageManifest>(digest as Descriptor['digest']);
  return { run, digest, manifest };
}

async function measureOurs(ctx: Context, model: Model): Promise<OursResult> {
  const before = await storedBlobs(ctx.registry.root);
  const cpuBefore = await ctx.registry.cpuSeconds();
  const { run, digest, manifest } = await runOurs(ctx, model);
  const cpuAfter = await ctx.registry.cpuSeconds();
  const added = newBlobs(before, await storedBlobs(ctx.registry.root));
  const modelLayer = manifest.layers.at(-1)!;
  await verifyPushed({
    registry: ctx.registry.host,
    repository: 'bench/ours',
    tag: String(model.version),
    digest,
    baseDiffIds: ctx.baseDiffIds,
    modelPath: `models/${MODEL_NAME}/${model.version}/model.onnx`,
    modelSha256: model.sha256,
    modelSize: model.size,
  });
  return {
    seconds: run.seconds,
    registryCpuSeconds: cpuAfter !== undefined && cpuBefore !== undefined ? cpuAfter - cpuBefore : undefined,
    lines: run.lines,
    cpuSeconds: run.cpuSeconds,
    maxRssMb: run.maxRssMb,
    phases: oursPhases(run),
    digest,
    modelLayerSize: modelLayer.size,
    registryBytes: added.bytes,
    registryBlobs: added.blobs,
    clientUploaded: oursClientUploaded(run, manifest),
    command: `node ${oursArgs(ctx, model).join(' ')}`,
  };
}

async function containerfile(ctx: Context, model: Model): Promise<string> {
  const file = join(ctx.tmp, `Containerfile.v${model.version}`);
  await writeFile(
    file,
    `FROM ${ctx.registry.host}/bench/base:1\nCOPY v${model.version}/model.onnx /models/${MODEL_NAME}/${model.version}/model.onnx\n`,
  );
  return file;
}

async function runBuildah(
  ctx: Context,
  model: Model,
): Promise<{ bud: TimedRun; push: TimedRun; digest: string; tag: string }> {
  const tag = `${ctx.registry.host}/bench/buildah:${model.version}`;
  const file = await containerfile(ctx, model);
  const digestFile = join(ctx.tmp, `buildah-v${model.version}.digest`);
  const bud = await runTimed('buildah', [
    ...ctx.buildahGlobal,
    'bud',
    '--layers',
    '--tls-verify=false',
    '-f',
    file,
    '-t',
    tag,
    ctx.modelsDir,
  ]);
  const push = await runTimed('buildah', [
    ...ctx.buildahGlobal,
    'push',
    '--tls-verify=false',
    '--digestfile',
    digestFile,
    tag,
    `docker://${tag}`,
  ]);
  const digest = (await readFile(digestFile, 'utf8')).trim();
  return { bud, push, digest, tag };
}

async function measureBuildah(ctx: Context, model: Model): Promise<BuildahResult> {
  const before = await storedBlobs(ctx.registry.root);
  const cpuBefore = await ctx.registry.cpuSeconds();
  const { bud, push, digest } = await runBuildah(ctx, model);
  const cpuAfter = await ctx.registry.cpuSeconds();
  const added = newBlobs(before, await storedBlobs(ctx.registry.root));
  const verified = await verifyPushed({
    registry: ctx.registry.host,
    repository: 'bench/buildah',
    tag: String(model.version),
    digest,
    baseDiffIds: ctx.baseDiffIds,
    modelPath: `models/${MODEL_NAME}/${model.version}/model.onnx`,
    modelSha256: model.sha256,
    modelSize: model.size,
  });
  return {
    seconds: bud.seconds + push.seconds,
    registryCpuSeconds: cpuAfter !== undefined && cpuBefore !== undefined ? cpuAfter - cpuBefore : undefined,
    bud: {
      seconds: bud.seconds,
      cpuSeconds: bud.cpuSeconds,
      maxRssMb: bud.maxRssMb,
      phases: budPhases(bud),
      lines: bud.lines,
    },
    push: { seconds: push.seconds, cpuSeconds: push.cpuSeconds, maxRssMb: push.maxRssMb, lines: push.lines },
    digest,
    modelLayerSize: verified.layers.at(-1)!.size,
    registryBytes: added.bytes,
    registryBlobs: added.blobs,
    commands: [bud.command, push.command],
  };
}

/**
 * bench/base:1: our version 1 image without its model layer. Same base and runtime layers, same
 * config (Env, User, Entrypoint, Cmd, WorkingDir, …) with rootfs and history cut to those two
 * layers and no model labels. Pushed with mounts from bench/ours (nothing is uploaded twice).
 */
async function pushBase(storeDir: string, v1: string, registry: string): Promise<string[]> {
  const store = await ContentStore.open(storeDir);
  const manifest = await store.readJson<ImageManifest>(v1 as Descriptor['digest']);
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  if (manifest.layers.length !== 3)
    throw new Error(`our v1 image has ${manifest.layers.length} layers, expected 3`);
  const baseConfig: ImageConfig = {
    ...config,
    config: { ...config.config, Labels: {} },
    rootfs: { type: 'layers', diff_ids: config.rootfs.diff_ids.slice(0, 2) },
    ...(config.history !== undefined ? { history: config.history.slice(0, 2) } : {}),
  };
  const configBlob = await store.put(JSON.stringify(baseConfig));
  const baseManifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: configBlob.digest, size: configBlob.size },
    layers: manifest.layers.slice(0, 2),
  };
  const manifestBlob = await store.put(JSON.stringify(baseManifest));
  const client = new RegistryClient();
  try {
    await client.push(
      store,
      { mediaType: MediaTypes.ociManifest, digest: manifestBlob.digest, size: manifestBlob.size },
      parseReference(`${registry}/bench/base:1`),
      { mountFrom: 'bench/ours' },
    );
  } finally {
    await client.close();
  }
  return baseConfig.rootfs.diff_ids;
}

function table(rounds: readonly Round[]): string {
  const rows = [
    '| round | version | first | ours s (startup / build / push) | buildah s (bud / push) | buildah ÷ ours | ours uploaded | buildah uploaded | our model layer |',
    '| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rounds) {
    const o = r.ours!;
    const b = r.buildah!;
    rows.push(
      `| ${r.round} | ${r.version} | ${r.first} | ${s(o.seconds)} (${s(o.phases.startup)} / ${s(o.phases.build)} / ${s(o.phases.push)}) | ` +
        `${s(b.seconds)} (${s(b.bud.seconds)} / ${s(b.push.seconds)}) | ${(b.seconds / o.seconds).toFixed(2)}× | ` +
        `${mb(o.registryBytes)} | ${mb(b.registryBytes)} | ${mb(o.modelLayerSize)} |`,
    );
  }
  return rows.join('\n');
}

async function run(settings: Settings): Promise<void> {
  const machine = {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown CPU',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    buildah: toolVersion('buildah', ['--version']),
    skopeo: toolVersion('skopeo', ['--version']),
    registry: toolVersion('docker-registry', ['--version']),
    tar: toolVersion('tar', ['--version']),
  };
  console.log(
    `aiedge image build benchmark: ${machine.cpus} CPUs (${machine.cpuModel}), Node ${machine.node}, ${machine.buildah}, ${machine.registry}`,
  );
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) {
    console.log(
      `WARNING: load average ${loadBefore.toFixed(2)} before the run; other processes skew results`,
    );
  }

  const tmp = await mkdtemp(join(tmpdir(), 'aiedge-bench-build-'));
  let registry: Distribution | undefined;
  const log = (line: string): void => console.log(line);
  try {
    registry = await startDistribution(join(tmp, 'registry'));
    log(`registry: docker-registry on ${registry.host} (pid ${registry.pid}), storage ${registry.root}`);
    const modelsDir = join(tmp, 'models');
    const models: Model[] = [];
    const generated = performance.now();
    for (let v = 1; v <= settings.rounds + 1; v++) models.push(await writeModel(modelsDir, v));
    log(
      `models: mlpModel sizes [${MODEL_SIZES.join(', ')}], seeds 1–${settings.rounds + 1}, ${mb(models[0]!.size)} each ` +
        `(generated in ${((performance.now() - generated) / 1000).toFixed(1)} s) in ${modelsDir}`,
    );
    const buildahGlobal = [
      '--root',
      join(tmp, 'containers', 'root'),
      '--runroot',
      join(tmp, 'containers', 'runroot'),
      '--storage-driver',
      'vfs',
    ];
    const storeDir = join(tmp, 'store');

    // Setup: version 1 from both tools (ours also warms the store's base/runtime layer cache).
    log('\nsetup: version 1 (not part of the comparison)');
    const pre: Omit<Context, 'baseDiffIds'> = { tmp, modelsDir, storeDir, registry, buildahGlobal };
    const oursV1 = await runOurs({ ...pre, baseDiffIds: [] }, models[0]!);
    log(`  ours    v1 build + push into an empty store: ${s(oursV1.run.seconds)} s  ${oursV1.digest}`);
    const baseDiffIds = await pushBase(storeDir, oursV1.digest, registry.host);
    log(`  bench/base:1 pushed: our base + runtime layers and config (${baseDiffIds.length} layers)`);
    const ctx: Context = { ...pre, baseDiffIds };
    const buildahV1 = await runBuildah(ctx, models[0]!);
    log(
      `  buildah v1 bud (pulls the base) ${s(buildahV1.bud.seconds)} s + push ${s(buildahV1.push.seconds)} s  ${buildahV1.digest}`,
    );
    for (const [repository, digest] of [
      ['bench/ours', oursV1.digest],
      ['bench/buildah', buildahV1.digest],
    ] as const) {
      await verifyPushed({
        registry: registry.host,
        repository,
        tag: '1',
        digest,
        baseDiffIds,
        modelPath: `models/${MODEL_NAME}/1/model.onnx`,
        modelSha256: models[0]!.sha256,
        modelSize: models[0]!.size,
      });
    }
    log('  both v1 images verified in the registry');

    // Measured rounds: a new version each, tools alternating which goes first.
    log(`\n${settings.rounds} measured rounds (each: a new model version built and pushed by both tools)`);
    const rounds: Round[] = [];
    for (let i = 0; i < settings.rounds; i++) {
      const model = models[i + 1]!;
      const round: Round = { round: i + 1, version: model.version, first: i % 2 === 0 ? 'ours' : 'buildah' };
      const order = round.first === 'ours' ? (['ours', 'buildah'] as const) : (['buildah', 'ours'] as const);
      for (const tool of order) {
        if (tool === 'ours') {
          const o = await measureOurs(ctx, model);
          round.ours = o;
          log(
            `  [${round.round}/${settings.rounds}] ours    v${model.version}: ${s(o.seconds)} s (startup ${s(o.phases.startup)}, build ${s(o.phases.build)}, push ${s(o.phases.push)}, exit ${s(o.phases.exit)}; CPU ${s(o.cpuSeconds)} s, registry CPU ${s(o.registryCpuSeconds)} s)  ` +
              `registry +${mb(o.registryBytes)} in ${o.registryBlobs.length} blobs, client says ${mb(o.clientUploaded.exactBytes)}; verified`,
          );
        } else {
          const b = await measureBuildah(ctx, model);
          round.buildah = b;
          log(
            `  [${round.round}/${settings.rounds}] buildah v${model.version}: ${s(b.seconds)} s (bud ${s(b.bud.seconds)}: from ${s(b.bud.phases.from)}, copy ${s(b.bud.phases.copy)}, commit ${s(b.bud.phases.commit)}; push ${s(b.push.seconds)}; CPU ${s(b.bud.cpuSeconds)} + ${s(b.push.cpuSeconds)} s, registry CPU ${s(b.registryCpuSeconds)} s)  ` +
              `registry +${mb(b.registryBytes)} in ${b.registryBlobs.length} blobs, its model layer ${mb(b.modelLayerSize)}; verified`,
          );
        }
      }
      rounds.push(round);
    }

    const ours = rounds.map((r) => r.ours!);
    const buildah = rounds.map((r) => r.buildah!);
    const summary = {
      oursMedianSeconds: median(ours.map((o) => o.seconds)),
      buildahMedianSeconds: median(buildah.map((b) => b.seconds)),
      oursMedianPhases: {
        startup: median(ours.map((o) => o.phases.startup ?? NaN)),
        build: median(ours.map((o) => o.phases.build ?? NaN)),
        push: median(ours.map((o) => o.phases.push ?? NaN)),
        exit: median(ours.map((o) => o.phases.exit ?? NaN)),
      },
      buildahMedianPhases: {
        bud: median(buildah.map((b) => b.bud.seconds)),
        budFrom: median(buildah.map((b) => b.bud.phases.from ?? NaN)),
        budCopy: median(buildah.map((b) => b.bud.phases.copy ?? NaN)),
        budCommit: median(buildah.map((b) => b.bud.phases.commit ?? NaN)),
        push: median(buildah.map((b) => b.push.seconds)),
      },
      oursMedianRegistryBytes: median(ours.map((o) => o.registryBytes)),
      buildahMedianRegistryBytes: median(buildah.map((b) => b.registryBytes)),
      oursMedianClientUploadedBytes: median(ours.map((o) => o.clientUploaded.exactBytes)),
      ourModelLayerMedianBytes: median(ours.map((o) => o.modelLayerSize)),
      buildahModelLayerMedianBytes: median(buildah.map((b) => b.modelLayerSize)),
      oursBytesRatio: Math.max(...ours.map((o) => o.registryBytes / o.modelLayerSize)),
      buildahBytesRatio: Math.max(...rounds.map((r) => r.buildah!.registryBytes / r.ours!.modelLayerSize)),
      perRoundSpeedups: rounds.map((r) => r.buildah!.seconds / r.ours!.seconds),
      speedup: 0,
    };
    summary.speedup = summary.buildahMedianSeconds / summary.oursMedianSeconds;
    const targets = [
      {
        description: `aiedge image build --push ≥ ${TARGET_SPEEDUP}× faster than buildah bud + push (median wall clock)`,
        measured: summary.speedup,
        met: summary.speedup >= TARGET_SPEEDUP,
      },
      {
        description: `bytes uploaded by aiedge ≤ ${TARGET_BYTES_RATIO}× its compressed model layer (worst round, registry storage)`,
        measured: summary.oursBytesRatio,
        met: summary.oursBytesRatio <= TARGET_BYTES_RATIO,
      },
    ];

    console.log(
      `\n### Results (${settings.rounds} rounds; times in seconds, wall clock of the child processes)\n`,
    );
    console.log(table(rounds));
    console.log(
      `\nmedian: ours ${s(summary.oursMedianSeconds)} s (startup ${s(summary.oursMedianPhases.startup)}, build ${s(summary.oursMedianPhases.build)}, push ${s(summary.oursMedianPhases.push)}, exit ${s(summary.oursMedianPhases.exit)})` +
        `; buildah ${s(summary.buildahMedianSeconds)} s (bud ${s(summary.buildahMedianPhases.bud)} = from ${s(summary.buildahMedianPhases.budFrom)} + copy ${s(summary.buildahMedianPhases.budCopy)} + commit ${s(summary.buildahMedianPhases.budCommit)} + rest; push ${s(summary.buildahMedianPhases.push)})`,
    );
    console.log(
      `time ratio buildah ÷ ours: ${summary.speedup.toFixed(2)}× (per round: ${summary.perRoundSpeedups.map((x) => x.toFixed(2)).join(', ')})`,
    );
    console.log(
      `bytes uploaded (new blobs in the registry's storage): ours ${mb(summary.oursMedianRegistryBytes)} = ${summary.oursBytesRatio.toFixed(4)}× our model layer; ` +
        `buildah ${mb(summary.buildahMedianRegistryBytes)} = ${summary.buildahBytesRatio.toFixed(4)}× our model layer (its own model layer: ${mb(summary.buildahModelLayerMedianBytes)})`,
    );
    console.log(
      `our client's own uploadedBytes: ${mb(summary.oursMedianClientUploadedBytes)} (model layer + config; the manifest is not counted)`,
    );
    console.log('\nTargets:');
    for (const t of targets)
      console.log(
        `  ${(t.met ? 'MET' : 'NOT MET').padEnd(8)} ${t.description} (measured ${t.measured.toFixed(t.measured < 2 ? 4 : 2)}×)`,
      );

    let profile: ProfileStep[] | undefined;
    if (settings.profile) {
      log('\nWhere our time goes (in-process, same model; not part of the comparison):');
      profile = await profileBuild({ repoRoot: REPO_ROOT, modelDir: models.at(-1)!.dir, scratch: tmp, log });
    }

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = join(REPO_ROOT, 'bench-results', `build-${stamp}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      `${JSON.stringify(
        {
          benchmark: 'build',
          time: new Date().toISOString(),
          command: ['npm run bench:build --', ...process.argv.slice(2)].join(' '),
          machine,
          loadAverageBefore: loadBefore,
          settings,
          model: { sizes: MODEL_SIZES, bytes: models[0]!.size },
          setup: {
            oursV1: { seconds: oursV1.run.seconds, digest: oursV1.digest },
            buildahV1: {
              budSeconds: buildahV1.bud.seconds,
              pushSeconds: buildahV1.push.seconds,
              digest: buildahV1.digest,
            },
            baseDiffIds,
          },
          rounds,
          summary,
          targets,
          profile,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${out}`);
  } finally {
    await registry?.stop();
    if (settings.keep) console.log(`kept ${tmp}`);
    else {
      // buildah's vfs storage holds read-only directories; rm as root removes them.
      await rm(tmp, { recursive: true, force: true }).catch(() => execFileSync('rm', ['-rf', tmp]));
    }
  }
}

try {
  const settings = parseSettings(process.argv.slice(2));
  if (settings === undefined) console.log(HELP);
  else {
    // Time the compiled command users run: make sure dist/ is current (incremental, quick when it is).
    console.log('compiling (tsc -b) so that ours runs as installed ...');
    execFileSync(
      process.execPath,
      [join(REPO_ROOT, 'node_modules/typescript/bin/tsc'), '-b', 'tsconfig.build.json'],
      {
        cwd: REPO_ROOT,
        stdio: 'inherit',
      },
    );
    await run(settings);
  }
} catch (error) {
  console.error(`\nbench:build FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
