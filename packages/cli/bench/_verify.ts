/**
 * Checks a pushed image from the outside, with tools that are not ours: skopeo reads the manifest,
 * its digest and the config back from the registry, and the model layer is fetched over plain HTTP,
 * hashed, gunzipped and given to GNU tar, which must find the model file with the right sha256.
 * A fast but wrong build fails the benchmark here.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';

const run = promisify(execFile);

/** What the registry holds for one pushed image. */
export interface VerifiedImage {
  readonly digest: string;
  readonly manifestSize: number;
  readonly configSize: number;
  readonly layers: ReadonlyArray<{ readonly digest: string; readonly size: number }>;
  readonly diffIds: readonly string[];
}

/** What the pushed image must be. */
export interface Expected {
  /** `127.0.0.1:port`. */
  readonly registry: string;
  readonly repository: string;
  readonly tag: string;
  /** The manifest digest the tool reported (our CLI's stdout, buildah's --digestfile). */
  readonly digest: string;
  /** Layers: the base's two diffIDs followed by the model layer. */
  readonly baseDiffIds: readonly string[];
  /** Path of the model file inside the image, without the leading slash. */
  readonly modelPath: string;
  readonly modelSha256: string;
  readonly modelSize: number;
}

async function skopeo(args: readonly string[]): Promise<string> {
  const { stdout } = await run('skopeo', [...args], { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 });
  return stdout;
}

function sha256(bytes: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Throws unless the registry has the expected image, with the model file in its last layer. */
export async function verifyPushed(expected: Expected): Promise<VerifiedImage> {
  const ref = `docker://${expected.registry}/${expected.repository}:${expected.tag}`;
  const where = `${expected.repository}:${expected.tag}`;
  const inspected = JSON.parse(await skopeo(['inspect', '--tls-verify=false', ref])) as { Digest: string };
  if (inspected.Digest !== expected.digest) {
    throw new Error(
      `${where}: skopeo inspect shows digest ${inspected.Digest}, the tool reported ${expected.digest}`,
    );
  }
  const raw = await skopeo(['inspect', '--tls-verify=false', '--raw', ref]);
  if (sha256(raw) !== expected.digest)
    throw new Error(`${where}: the raw manifest does not hash to its digest`);
  const manifest = JSON.parse(raw) as {
    config: { digest: string; size: number };
    layers: Array<{ digest: string; size: number; mediaType: string }>;
  };
  const config = JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--config', ref])) as {
    rootfs: { diff_ids: string[] };
  };
  const diffIds = config.rootfs.diff_ids;
  const wantLayers = expected.baseDiffIds.length + 1;
  if (manifest.layers.length !== wantLayers || diffIds.length !== wantLayers) {
    throw new Error(
      `${where}: ${manifest.layers.length} layers and ${diffIds.length} diff_ids, expected ${wantLayers} (base + model)`,
    );
  }
  expected.baseDiffIds.forEach((d, i) => {
    if (diffIds[i] !== d) throw new Error(`${where}: diff_ids[${i}] is ${diffIds[i]}, the base has ${d}`);
  });

  // The model layer: fetched without any client of ours, checked against manifest and config.
  const layer = manifest.layers[wantLayers - 1]!;
  if (!/gzip/.test(layer.mediaType))
    throw new Error(`${where}: the model layer is ${layer.mediaType}, not gzip`);
  const res = await fetch(`http://${expected.registry}/v2/${expected.repository}/blobs/${layer.digest}`);
  if (res.status !== 200 || res.body === null)
    throw new Error(`${where}: GET model layer: HTTP ${res.status}`);
  const compressed = createHash('sha256');
  const uncompressed = createHash('sha256');
  const model = createHash('sha256');
  let compressedSize = 0;
  let modelSize = 0;
  const tar = spawn('tar', ['-xO', '--wildcards', '-f', '-', `*${expected.modelPath}`], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let tarErr = '';
  tar.stderr.on('data', (c: Buffer) => (tarErr += c.toString('utf8')));
  tar.stdout.on('data', (c: Buffer) => {
    model.update(c);
    modelSize += c.length;
  });
  const tarExit = new Promise<number | null>((resolve, reject) => {
    tar.once('error', reject);
    tar.once('close', (code) => resolve(code));
  });
  await pipeline(
    Readable.fromWeb(res.body as WebReadableStream<Uint8Array>),
    async function* hashCompressed(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        compressed.update(chunk);
        compressedSize += chunk.length;
        yield chunk;
      }
    },
    createGunzip(),
    async function* hashTar(source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        uncompressed.update(chunk);
        yield chunk;
      }
    },
    tar.stdin,
  );
  const code = await tarExit;
  if (code !== 0)
    throw new Error(
      `${where}: tar could not read ${expected.modelPath} from the model layer: ${tarErr.trim()}`,
    );
  if (`sha256:${compressed.digest('hex')}` !== layer.digest || compressedSize !== layer.size) {
    throw new Error(`${where}: the model layer blob does not match its descriptor`);
  }
  if (`sha256:${uncompressed.digest('hex')}` !== diffIds[wantLayers - 1]) {
    throw new Error(`${where}: the model layer's uncompressed digest is not its diff_id`);
  }
  if (modelSize !== expected.modelSize || model.digest('hex') !== expected.modelSha256) {
    throw new Error(
      `${where}: /${expected.modelPath} in the image is ${modelSize} bytes with another sha256 than the model (${expected.modelSize} bytes)`,
    );
  }
  return {
    digest: inspected.Digest,
    manifestSize: Buffer.byteLength(raw),
    configSize: manifest.config.size,
    layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })),
    diffIds,
  };
}
