/**
 * The inference image: (1) base, (2) runtime (`aiedge serve` and ONNX Runtime for the platform),
 * (3) model at /models/<name>/<version>/. Base and runtime layers do not depend on the model, so a
 * new model version adds exactly one new layer.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import { promisify } from 'node:util';
import { InputError, describeValue } from '@aiedge/protocol';
import { buildLayer, writeImage, writeIndex, type BuiltLayer } from './image.js';
import { indexMediaTypes } from './media-types.js';
import type { ContentStore } from './store.js';
import type { TarEntry } from './tar.js';
import type {
  ContainerConfig,
  Descriptor,
  ImageConfig,
  ImageIndex,
  ImageManifest,
  Platform,
} from './types.js';

/** One file of the serving runtime (the shape of @aiedge/runtime's bundle). */
export type RuntimeFile =
  | { readonly path: string; readonly mode: number; readonly content: Uint8Array }
  | { readonly path: string; readonly mode: number; readonly file: string; readonly size: number };

/** The serving runtime's files for one architecture. */
export interface RuntimeFiles {
  readonly version: string;
  readonly files: readonly RuntimeFile[];
}

/** Options of {@link buildInferenceImage}. */
export interface InferenceImageOptions {
  readonly store: ContentStore;
  /** A directory with exactly one .onnx file at its top level (plus any other files), or one .onnx file. */
  readonly modelPath: string;
  /** Model name, served as /v2/models/<name>. */
  readonly name: string;
  /** Model version: a positive integer, as the repository layout requires. */
  readonly version: string;
  /** Supplies the runtime's files for an architecture (amd64, arm64). */
  readonly runtime: (architecture: string) => Promise<RuntimeFiles>;
  /** A base image already in the store (its manifest or index), or undefined for the host base. */
  readonly base?: { readonly root: Descriptor; readonly name: string };
  /** Platforms to build; default: the host's (host base) or every linux platform of the base. */
  readonly platforms?: readonly Platform[];
  /** Extra labels (config) and annotations (manifest). */
  readonly labels?: Readonly<Record<string, string>>;
  /** Creation time written into the image; default SOURCE_DATE_EPOCH or 1970-01-01T00:00:00Z. */
  readonly created?: string;
}

/** A built inference image. */
export interface InferenceImage {
  /** The image index (several platforms) or the manifest (one platform). */
  readonly root: Descriptor;
  readonly manifests: ReadonlyArray<{
    readonly descriptor: Descriptor;
    readonly base: readonly Descriptor[];
    readonly runtime: Descriptor;
    readonly model: Descriptor;
  }>;
  /** sha256 (hex) of the .onnx file. */
  readonly modelSha256: string;
}

/** Where things live inside the image. */
export const ImagePaths = {
  node: '/usr/local/bin/node',
  runtime: '/opt/aiedge',
  models: '/models',
  home: '/home/aiedge',
} as const;

/** The non-root user; group 0 so that OpenShift's random UIDs (always in group 0) work too. */
export const IMAGE_USER = '1001:0';

const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const run = promisify(execFile);

/** The OCI platform of this machine. */
export function hostPlatform(): Platform {
  const architecture = process.arch === 'x64' ? 'amd64' : process.arch;
  return { os: 'linux', architecture };
}

function platformKey(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant !== undefined ? `/${p.variant}` : ''}`;
}

/** Parses `linux/amd64[/v8]`. */
export function parsePlatform(value: string): Platform {
  const [os, architecture, variant, extra] = value.split('/');
  if (
    os === undefined ||
    architecture === undefined ||
    os === '' ||
    architecture === '' ||
    extra !== undefined
  ) {
    throw new InputError(`platform ${describeValue(value)} is not OS/ARCH[/VARIANT], e.g. linux/amd64`);
  }
  return { os, architecture, ...(variant !== undefined && variant !== '' ? { variant } : {}) };
}

function dirEntry(path: string, mode = 0o755): TarEntry {
  return { path, type: 'dir', mode };
}

function textEntry(path: string, text: string, mode = 0o644): TarEntry {
  return { path, type: 'file', mode, content: new TextEncoder().encode(text) };
}

/** Shared libraries an ELF file needs, as `ldd` lists them (absolute paths). */
async function sharedLibraries(file: string): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('ldd', [file]));
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new InputError('ldd is not installed; the host base needs it (apt-get install libc-bin)');
    if (/not a dynamic executable/.test(`${e.stderr ?? ''}`)) return [];
    throw new InputError(`ldd ${file} failed: ${e.stderr ?? e.message}`);
  }
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (match?.[1] !== undefined) libs.push(match[1]);
  }
  return libs;
}

async function fileEntry(
  imagePath: string,
  hostPath: string,
  mode: number,
): Promise<{ entry: TarEntry; key: string }> {
  const real = await realpath(hostPath);
  const s = await stat(real);
  return {
    entry: { path: imagePath, type: 'file', mode, content: { file: real, size: s.size } },
    key: `${imagePath}=${real}:${s.size}:${s.mtimeMs}:${s.ino}`,
  };
}

/**
 * The host base: this machine's node binary, the shared libraries it and `nativeLibraries` need,
 * CA certificates, /etc/passwd and /etc/group with the non-root user, /tmp and a home directory.
 */
export async function hostBase(
  nativeLibraries: readonly string[],
): Promise<{ entries: TarEntry[]; cacheKey: string }> {
  const keys: string[] = ['aiedge-host-base/1'];
  const entries: TarEntry[] = [];
  const node = await fileEntry(ImagePaths.node.slice(1), process.execPath, 0o755);
  entries.push(node.entry);
  keys.push(node.key);
  const libs = new Set<string>();
  for (const elf of [process.execPath, ...nativeLibraries])
    for (const lib of await sharedLibraries(elf)) libs.add(lib);
  for (const lib of [...libs].sort()) {
    const f = await fileEntry(lib.slice(1), lib, 0o755);
    entries.push(f.entry);
    keys.push(f.key);
  }
  const caFile = '/etc/ssl/certs/ca-certificates.crt';
  try {
    const f = await fileEntry(caFile.slice(1), caFile, 0o644);
    entries.push(f.entry);
    keys.push(f.key);
  } catch {
    keys.push('no-ca-certificates');
  }
  const [uid] = IMAGE_USER.split(':');
  const generated = [
    textEntry(
      'etc/passwd',
      `root:x:0:0:root:/root:/sbin/nologin\naiedge:x:${uid}:0:ai-edge:${ImagePaths.home}:/sbin/nologin\n`,
    ),
    textEntry('etc/group', 'root:x:0:\n'),
    textEntry('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
    dirEntry('tmp', 0o1777),
    dirEntry('root', 0o700),
    // Group 0 may write its home: the image's user and OpenShift's random UIDs are both in group 0.
    dirEntry(ImagePaths.home.slice(1), 0o775),
  ];
  entries.push(...generated);
  for (const g of generated) {
    keys.push(
      `${g.path}:${g.mode}:${g.content instanceof Uint8Array ? Buffer.from(g.content).toString('base64') : ''}`,
    );
  }
  return { entries, cacheKey: keys.join('\n') };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The model layer's entries and the model's sha256. */
export async function modelLayer(
  modelPath: string,
  name: string,
  version: string,
): Promise<{ entries: TarEntry[]; sha256: string; onnxFile: string }> {
  if (!MODEL_NAME.test(name)) {
    throw new InputError(`model name ${describeValue(name)} must match ${MODEL_NAME.source}`);
  }
  if (!/^[1-9]\d{0,14}$/.test(version)) {
    throw new InputError(
      `model version ${describeValue(version)} must be a positive integer (the model repository layout serves numbered versions)`,
    );
  }
  let info;
  try {
    info = await stat(modelPath);
  } catch {
    throw new InputError(`model path ${modelPath} does not exist`);
  }
  const prefix = `${ImagePaths.models.slice(1)}/${name}/${version}`;
  const entries: TarEntry[] = [
    dirEntry(ImagePaths.models.slice(1)),
    dirEntry(`${ImagePaths.models.slice(1)}/${name}`),
    dirEntry(prefix),
  ];
  let onnxFile: string;
  if (info.isFile()) {
    if (!modelPath.endsWith('.onnx'))
      throw new InputError(`model path ${modelPath} is a file but not an .onnx model`);
    onnxFile = modelPath;
    entries.push({
      path: `${prefix}/${basename(modelPath)}`,
      type: 'file',
      mode: 0o644,
      content: { file: modelPath, size: info.size },
    });
  } else {
    const top = (await readdir(modelPath, { withFileTypes: true })).filter(
      (e) => e.isFile() && e.name.endsWith('.onnx'),
    );
    if (top.length !== 1) {
      throw new InputError(
        `model directory ${modelPath} must hold exactly one .onnx file at its top level; found ${top.length}${top.length > 0 ? ` (${top.map((e) => e.name).join(', ')})` : ''}`,
      );
    }
    onnxFile = join(modelPath, top[0]!.name);
    const walk = async (dir: string): Promise<void> => {
      for (const e of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
        a.name < b.name ? -1 : 1,
      )) {
        const full = join(dir, e.name);
        const rel = relative(modelPath, full).split(sep).join('/');
        if (e.isDirectory()) {
          entries.push(dirEntry(`${prefix}/${rel}`));
          await walk(full);
        } else if (e.isFile()) {
          entries.push({
            path: `${prefix}/${rel}`,
            type: 'file',
            mode: 0o644,
            content: { file: full, size: (await stat(full)).size },
          });
        } else {
          throw new InputError(
            `model directory entry ${full} is not a regular file or directory (symlinks are not packed)`,
          );
        }
      }
    };
    await walk(modelPath);
  }
  return { entries, sha256: await sha256File(onnxFile), onnxFile };
}

function runtimeEntries(files: RuntimeFiles): { entries: TarEntry[]; cacheKey: string } {
  const root = ImagePaths.runtime.slice(1);
  const entries: TarEntry[] = [dirEntry('opt'), dirEntry(root)];
  const keys = [`aiedge-runtime/${files.version}`];
  const dirs = new Set<string>();
  for (const f of files.files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${root}/${parts.slice(0, i).join('/')}`);
    if ('content' in f) {
      entries.push({ path: `${root}/${f.path}`, type: 'file', mode: f.mode, content: f.content });
      keys.push(`${f.path}:${f.mode}:${createHash('sha256').update(f.content).digest('hex')}`);
    } else {
      entries.push({
        path: `${root}/${f.path}`,
        type: 'file',
        mode: f.mode,
        content: { file: f.file, size: f.size },
      });
      keys.push(`${f.path}:${f.mode}:${f.file}:${f.size}`);
    }
  }
  for (const d of dirs) entries.push(dirEntry(d));
  return { entries, cacheKey: keys.join('\n') };
}

/** The container configuration of an inference image. */
export function inferenceContainerConfig(labels: Readonly<Record<string, string>>): ContainerConfig {
  return {
    User: IMAGE_USER,
    Env: [
      'PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin',
      `HOME=${ImagePaths.home}`,
      'NODE_ENV=production',
      'SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt',
      `AIEDGE_SERVE_MODEL_REPOSITORY=${ImagePaths.models}`,
    ],
    Entrypoint: ['node', `${ImagePaths.runtime}/aiedge.js`],
    Cmd: ['serve'],
    WorkingDir: ImagePaths.runtime,
    ExposedPorts: { '8080/tcp': {} },
    StopSignal: 'SIGTERM',
    Labels: { ...labels },
  };
}

/** Creation time for reproducible builds: SOURCE_DATE_EPOCH when set, else the Unix epoch. */
export function defaultCreated(env: Record<string, string | undefined> = process.env): string {
  const epoch = env['SOURCE_DATE_EPOCH'];
  const seconds = epoch !== undefined && /^\d+$/.test(epoch) ? Number(epoch) : 0;
  return new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
}

async function baseFor(
  store: ContentStore,
  root: Descriptor,
  platform: Platform,
): Promise<{ layers: Descriptor[]; config: ImageConfig }> {
  let manifestDescriptor = root;
  if (indexMediaTypes.includes(root.mediaType)) {
    const index = await store.readJson<ImageIndex>(root.digest);
    const match = index.manifests.find(
      (m) =>
        m.platform?.os === platform.os &&
        m.platform.architecture === platform.architecture &&
        (platform.variant === undefined || m.platform.variant === platform.variant),
    );
    if (match === undefined) {
      const have = index.manifests.filter((m) => m.platform).map((m) => platformKey(m.platform!));
      throw new InputError(
        `the base image has no ${platformKey(platform)} manifest; it has ${have.join(', ') || 'none'}`,
      );
    }
    manifestDescriptor = match;
  }
  const manifest = await store.readJson<ImageManifest>(manifestDescriptor.digest);
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  return { layers: [...manifest.layers], config };
}

async function basePlatforms(store: ContentStore, root: Descriptor): Promise<Platform[]> {
  if (indexMediaTypes.includes(root.mediaType)) {
    const index = await store.readJson<ImageIndex>(root.digest);
    return index.manifests
      .map((m) => m.platform)
      .filter(
        (p): p is Platform =>
          p !== undefined && p.os === 'linux' && (p.architecture === 'amd64' || p.architecture === 'arm64'),
      );
  }
  const manifest = await store.readJson<ImageManifest>(root.digest);
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  return [
    {
      os: config.os,
      architecture: config.architecture,
      ...(config.variant !== undefined ? { variant: config.variant } : {}),
    },
  ];
}

/** Builds an inference image into the store. */
export async function buildInferenceImage(options: InferenceImageOptions): Promise<InferenceImage> {
  const { store } = options;
  const created = options.created ?? defaultCreated();
  const host = hostPlatform();
  let platforms: readonly Platform[];
  if (options.base === undefined) {
    platforms = options.platforms ?? [host];
    const other = platforms.find((p) => platformKey(p) !== platformKey(host));
    if (other !== undefined) {
      throw new InputError(
        `--base host builds only for this machine's platform ${platformKey(host)}, not ${platformKey(other)}; use --base IMAGE-REF with a multi-arch base`,
      );
    }
  } else {
    platforms = options.platforms ?? (await basePlatforms(store, options.base.root));
  }
  if (platforms.length === 0) throw new InputError('no platform to build for');

  const model = await modelLayer(options.modelPath, options.name, options.version);
  const modelBuilt = await buildLayer(store, {
    entries: model.entries,
    // Weights are high-entropy: Huffman coding alone gets the same size as full deflate, faster.
    gzipStrategy: 'huffman-only',
    createdBy: `aiedge image build: model ${options.name} version ${options.version}`,
  });
  const labels: Record<string, string> = {
    'org.opencontainers.image.title': options.name,
    'org.opencontainers.image.version': options.version,
    'org.opencontainers.image.created': created,
    'org.opencontainers.image.description': `ai-edge inference image: model ${options.name} version ${options.version}, served by aiedge serve (Open Inference Protocol)`,
    ...(options.base !== undefined
      ? {
          'org.opencontainers.image.base.name': options.base.name,
          'org.opencontainers.image.base.digest': options.base.root.digest,
        }
      : {}),
    'io.aiedge.model.name': options.name,
    'io.aiedge.model.version': options.version,
    'io.aiedge.model.sha256': model.sha256,
    'io.aiedge.model.format': 'onnx',
  };

  const manifests: Array<InferenceImage['manifests'][number]> = [];
  for (const platform of platforms) {
    const runtime = await options.runtime(platform.architecture);
    labels['io.aiedge.runtime.version'] = runtime.version;
    const runtimePart = runtimeEntries(runtime);
    const runtimeBuilt = await buildLayer(store, {
      entries: runtimePart.entries,
      cacheKey: `${platformKey(platform)}\n${runtimePart.cacheKey}`,
      createdBy: `aiedge image build: runtime aiedge serve ${runtime.version} (${platformKey(platform)})`,
    });
    let base: { layers: Descriptor[]; config: ImageConfig } | undefined;
    const layers: BuiltLayer[] = [];
    if (options.base === undefined) {
      const natives = runtime.files
        .filter(
          (f): f is Extract<RuntimeFile, { file: string }> =>
            'file' in f && /\.(node|so(\.\d+)*)$/.test(f.path),
        )
        .map((f) => f.file);
      const hb = await hostBase(natives);
      layers.push(
        await buildLayer(store, {
          entries: hb.entries,
          cacheKey: hb.cacheKey,
          createdBy: `aiedge image build: host base (node ${process.version}, ${platformKey(platform)})`,
        }),
      );
    } else {
      base = await baseFor(store, options.base.root, platform);
    }
    layers.push(runtimeBuilt, modelBuilt);
    const descriptor = await writeImage(store, {
      platform,
      ...(base !== undefined ? { base } : {}),
      layers,
      config: inferenceContainerConfig({ ...labels, ...(options.labels ?? {}) }),
      created,
      annotations: {
        'org.opencontainers.image.title': options.name,
        'org.opencontainers.image.version': options.version,
        'org.opencontainers.image.created': created,
        ...(options.labels ?? {}),
      },
    });
    manifests.push({
      descriptor,
      base: base?.layers ?? [layers[0]!.descriptor],
      runtime: runtimeBuilt.descriptor,
      model: modelBuilt.descriptor,
    });
  }
  const root =
    manifests.length === 1 &&
    (options.base === undefined || !indexMediaTypes.includes(options.base.root.mediaType))
      ? manifests[0]!.descriptor
      : await writeIndex(
          store,
          manifests.map((m) => m.descriptor),
          {
            'org.opencontainers.image.title': options.name,
            'org.opencontainers.image.version': options.version,
            'org.opencontainers.image.created': created,
          },
        );
  return { root, manifests, modelSha256: model.sha256 };
}
