/**
 * Test helpers of the registry client tests: images built straight into a store (a real gzip tar
 * layer, a config, a manifest, indexes), free ports, and a real Debian `docker-registry`
 * (CNCF distribution) started per suite on 127.0.0.1 with its own temp directory.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { digestOf, type Digest } from './digest.js';
import { MediaTypes } from './media-types.js';
import type { ContentStore } from './store.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from './types.js';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

/** Debian packages of the programs the tests use. */
const PACKAGES: Readonly<Record<string, string>> = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  openssl: 'openssl',
  htpasswd: 'apache2-utils',
};

/** Why tests needing these programs cannot run (undefined when all are there); throws in CI. */
export function missingTools(...tools: string[]): string | undefined {
  const missing = tools.filter((tool) =>
    tool.startsWith('/') ? !existsSync(tool) : spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  if (missing.length === 0) return undefined;
  const packages = missing.map((tool) => PACKAGES[tool.replace(/^.*\//, '')] ?? tool);
  const reason = `${missing.join(', ')} not installed: apt-get install ${packages.join(' ')}`;
  if (process.env['CI'] === 'true') throw new Error(reason);
  return reason;
}

/** A new temp directory (the caller removes it). */
export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `aiedge-${prefix}-`));
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A gzip tar layer of some files, with its diff_id (digest of the uncompressed tar). */
export async function tarGzLayer(
  files: Record<string, Buffer | string>,
): Promise<{ gz: Buffer; diffId: Digest }> {
  const dir = await tempDir('layer');
  try {
    for (const [name, content] of Object.entries(files)) {
      await mkdir(dirname(join(dir, name)), { recursive: true });
      await writeFile(join(dir, name), content);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of createTar({ cwd: dir, portable: true, noMtime: true }, Object.keys(files))) {
      chunks.push(Buffer.from(chunk as Uint8Array));
    }
    const tar = Buffer.concat(chunks);
    return { gz: gzipSync(tar), diffId: digestOf(tar) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Builds a one-layer image in a store; returns its manifest descriptor (with the platform). */
export async function buildImage(
  store: ContentStore,
  options: { platform?: Platform; files: Record<string, Buffer | string> },
): Promise<Descriptor> {
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const layer = await tarGzLayer(options.files);
  const layerBlob = await store.put(layer.gz);
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined ? { variant: platform.variant } : {}),
    config: { Cmd: ['/model.bin'] },
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
  };
  const configBlob = await store.put(JSON.stringify(config));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    config: { mediaType: MediaTypes.ociConfig, digest: configBlob.digest, size: configBlob.size },
    layers: [{ mediaType: MediaTypes.ociLayerGzip, digest: layerBlob.digest, size: layerBlob.size }],
  };
  const stored = await store.put(JSON.stringify(manifest));
  return { mediaType: MediaTypes.ociManifest, digest: stored.digest, size: stored.size, platform };
}

/** Stores an index over some manifests; returns its descriptor. */
export async function buildIndex(store: ContentStore, manifests: readonly Descriptor[]): Promise<Descriptor> {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests };
  const stored = await store.put(JSON.stringify(index));
  return { mediaType: MediaTypes.ociIndex, digest: stored.digest, size: stored.size };
}

/** Every digest an image reaches (root, manifests, configs, layers), sorted. */
export async function imageDigests(store: ContentStore, root: Digest): Promise<Digest[]> {
  return [...(await store.reachable([root]))].sort();
}

/** Random bytes (incompressible, so layers are as large as their content). */
export function randomBytes(size: number, seed = 1): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A running docker-registry. */
export interface Distribution {
  /** `127.0.0.1:<port>`. */
  readonly registry: string;
  readonly port: number;
  /** What the registry printed (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** Options of {@link startDistribution}: YAML fragments for `auth:` and TLS files. */
export interface DistributionOptions {
  /** The `auth:` section, indented by two spaces per level below `auth:`. */
  readonly auth?: string;
  readonly tls?: { readonly certificate: string; readonly key: string };
}

/** Starts `docker-registry serve` on a free 127.0.0.1 port and waits until GET /v2/ answers. */
export async function startDistribution(options: DistributionOptions = {}): Promise<Distribution> {
  const dir = await tempDir('distribution');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '  secret: aiedge-test-secret',
  ];
  if (options.tls !== undefined) {
    lines.push('  tls:', `    certificate: ${options.tls.certificate}`, `    key: ${options.tls.key}`);
  }
  if (options.auth !== undefined) lines.push('auth:', options.auth);
  const config = join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);

  let output = '';
  const child: ChildProcess = spawn(DOCKER_REGISTRY, ['serve', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`docker-registry exited with ${child.exitCode}:\n${output}`);
    }
    const status = await new Promise<number | undefined>((resolve) => {
      const req = (options.tls !== undefined ? httpsRequest : httpRequest)(
        { host: '127.0.0.1', port, path: '/v2/', method: 'GET', rejectUnauthorized: false, timeout: 1000 },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', () => resolve(undefined));
      req.on('timeout', () => req.destroy());
      req.end();
    });
    if (status !== undefined) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not answer on port ${port}:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { registry: `127.0.0.1:${port}`, port, output: () => output, stop };
}

/** Runs a program and returns its stdout; throws with its stderr when it fails. */
export async function run(
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined> = process.env,
): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr}`);
  return stdout;
}
