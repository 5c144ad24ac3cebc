/**
 * A client of the OCI distribution API (`/v2/…`): fetch manifests, pull images into a
 * {@link ContentStore} and push them back out.
 *
 * Pulls verify every blob while it streams and resume interrupted downloads with `Range` from a
 * partial file in the store's ingest directory (`<hex>.partial`, kept across runs). Pushes skip blobs
 * the registry has, mount blobs from another repository when asked, and upload monolithically or in
 * chunks. Authentication (Basic, Bearer tokens) is answered from {@link RegistryAuth}.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';
import { Agent, request, type Dispatcher } from 'undici';
import {
  AiEdgeError,
  ConflictError,
  ForbiddenError,
  InputError,
  NotFoundError,
  PayloadTooLargeError,
  UnauthorizedError,
  UnavailableError,
  describeValue,
} from '@aiedge/protocol';
import {
  RegistryAuth,
  findCredentials,
  isLoopbackHost,
  repositoryScope,
  type FoundCredentials,
  type RegistryCredentials,
} from './auth.js';
import { Digester, digestOf, hexOf, isDigest, type Digest } from './digest.js';
import { MANIFEST_ACCEPT, MediaTypes, allManifestMediaTypes, indexMediaTypes } from './media-types.js';
import { formatReference, referenceTarget, type ImageReference } from './reference.js';
import { DigestMismatchError, type ContentStore } from './store.js';
import type { Descriptor, Platform } from './types.js';

/** One step of a pull or push, for progress displays. */
export interface RegistryProgressEvent {
  /**
   * `download`/`upload`: bytes moved so far of `total`; `exists`: the store already had the blob
   * (pull); `skip`: the registry already had it (push); `mount`: mounted from another repository.
   */
  readonly action: 'upload' | 'mount' | 'skip' | 'download' | 'exists';
  readonly digest: Digest;
  readonly bytes: number;
  readonly total: number;
}

/** Options of {@link RegistryClient}; every field is optional. */
export interface RegistryClientOptions {
  /** Use TLS. Default: false for loopback registries (localhost, 127.0.0.0/8, ::1), true otherwise. */
  readonly https?: boolean;
  /** Allow plain http to registries that are not on this machine (then the default for them). Default false. */
  readonly insecure?: boolean;
  /** Extra trusted CA certificates (PEM), added to Node's roots. */
  readonly ca?: string | Buffer;
  /** Credentials for every registry this client talks to; otherwise they come from the auth files. */
  readonly credentials?: RegistryCredentials;
  /** Environment for finding auth files (see findCredentials). Default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Upload blobs in PATCH chunks of this many bytes. Default: one monolithic PUT per blob. */
  readonly chunkSize?: number;
  /** Called as blobs move; must not throw. */
  readonly onProgress?: (event: RegistryProgressEvent) => void;
  /** `User-Agent` header. Default `aiedge-oci/0.1`. */
  readonly userAgent?: string;
  /** Blobs moved at once during a pull or push. Default 4. */
  readonly concurrency?: number;
  /** Retries after a network error, 429 or 5xx (each blob download resets it on progress). Default 4. */
  readonly maxRetries?: number;
  /** First retry delay; doubled each retry (with jitter). Default 250 ms. */
  readonly retryBaseDelayMs?: number;
  /** Longest retry delay. Default 8000 ms. */
  readonly retryMaxDelayMs?: number;
}

/** Options of {@link RegistryClient.pull}. */
export interface PullOptions {
  /** Only these platforms' manifests of an index (matched on os, architecture and variant when given). Default all. */
  readonly platforms?: readonly Platform[];
  /** Cancels the pull. */
  readonly signal?: AbortSignal | undefined;
}

/** What {@link RegistryClient.pull} did. */
export interface PullResult {
  /** The manifest or index the reference resolved to. */
  readonly root: Descriptor;
  /** Bytes received from the registry (manifests and blobs). */
  readonly downloadedBytes: number;
  /** Blobs and child manifests not downloaded because the store had them. */
  readonly skippedBlobs: number;
}

/** Options of {@link RegistryClient.push}. */
export interface PushOptions {
  /** A repository on the same registry to mount blobs from before uploading them. */
  readonly mountFrom?: string;
  /** Cancels the push. */
  readonly signal?: AbortSignal | undefined;
}

/** What {@link RegistryClient.push} did. */
export interface PushResult {
  /** Digest of the pushed root manifest or index. */
  readonly digest: Digest;
  /** Blob bytes uploaded (manifests not counted). */
  readonly uploadedBytes: number;
  /** Blobs mounted from `mountFrom`. */
  readonly mountedBlobs: number;
  /** Blobs the registry already had. */
  readonly skippedBlobs: number;
}

/** Options taking only a cancellation signal. */
export interface SignalOptions {
  readonly signal?: AbortSignal | undefined;
}

interface ResolvedOptions {
  readonly https: boolean | undefined;
  readonly insecure: boolean;
  readonly ca: string | Buffer | undefined;
  readonly credentials: RegistryCredentials | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly chunkSize: number | undefined;
  readonly onProgress: ((event: RegistryProgressEvent) => void) | undefined;
  readonly userAgent: string;
  readonly concurrency: number;
  readonly maxRetries: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
}

const OPTION_KEYS: ReadonlySet<string> = new Set([
  'https',
  'insecure',
  'ca',
  'credentials',
  'env',
  'chunkSize',
  'onProgress',
  'userAgent',
  'concurrency',
  'maxRetries',
  'retryBaseDelayMs',
  'retryMaxDelayMs',
]);

function optionError(key: string, value: unknown, expected: string): InputError {
  return new InputError(`registry client option ${key} is ${describeValue(value)}, expected ${expected}`);
}

function intOption(
  options: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  fallback: number | undefined,
): number | undefined {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(key, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

/** Validates client options (unknown keys rejected, errors name the key) into a frozen object. */
function resolveOptions(input: RegistryClientOptions): ResolvedOptions {
  const options = input as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new InputError(
        `unknown registry client option ${JSON.stringify(key)}; known: ${[...OPTION_KEYS].join(', ')}`,
      );
    }
  }
  for (const key of ['https', 'insecure']) {
    const v = options[key];
    if (v !== undefined && typeof v !== 'boolean') throw optionError(key, v, 'true or false');
  }
  const ca = options['ca'];
  if (ca !== undefined && typeof ca !== 'string' && !Buffer.isBuffer(ca))
    throw optionError('ca', ca, 'PEM text');
  const credentials = options['credentials'] as RegistryCredentials | undefined;
  if (credentials !== undefined) {
    const ok =
      typeof credentials === 'object' &&
      credentials !== null &&
      (typeof credentials.identityToken === 'string' ||
        (typeof credentials.username === 'string' && typeof credentials.password === 'string'));
    // Never describe the value: it holds a password.
    if (!ok)
      throw new InputError(
        'registry client option credentials needs username and password, or identityToken',
      );
  }
  const env = options['env'];
  if (env !== undefined && (typeof env !== 'object' || env === null))
    throw optionError('env', env, 'an object');
  const onProgress = options['onProgress'];
  if (onProgress !== undefined && typeof onProgress !== 'function')
    throw optionError('onProgress', onProgress, 'a function');
  const userAgent = options['userAgent'];
  if (userAgent !== undefined && (typeof userAgent !== 'string' || userAgent === '')) {
    throw optionError('userAgent', userAgent, 'a non-empty string');
  }
  return Object.freeze({
    https: input.https,
    insecure: input.insecure ?? false,
    ca: input.ca,
    credentials,
    env: input.env ?? process.env,
    chunkSize: intOption(options, 'chunkSize', 1, 2 ** 31, undefined),
    onProgress: input.onProgress,
    userAgent: input.userAgent ?? 'aiedge-oci/0.1',
    concurrency: intOption(options, 'concurrency', 1, 64, 4) ?? 4,
    maxRetries: intOption(options, 'maxRetries', 0, 100, 4) ?? 4,
    retryBaseDelayMs: intOption(options, 'retryBaseDelayMs', 0, 600_000, 250) ?? 250,
    retryMaxDelayMs: intOption(options, 'retryMaxDelayMs', 0, 3_600_000, 8000) ?? 8000,
  });
}

/** Manifests larger than this are refused (distribution's own limit). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);
/** Node's codes for TLS certificates it does not trust (not worth a retry). */
const TLS_TRUST_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
type Body = string | Buffer | Readable;

interface Call {
  readonly method: Method;
  readonly url: URL;
  readonly registry: string;
  readonly scopes: readonly string[];
  /** What the request does, for messages (`GET manifest team/app:1.0`). */
  readonly what: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Makes the body afresh for every attempt (a retry after 401 needs a new stream). */
  readonly body?: () => Body | Promise<Body>;
  readonly signal?: AbortSignal | undefined;
  /** Follow redirects (GET/HEAD of blobs, which registries send to storage). */
  readonly followRedirects?: boolean;
}

type Response = Dispatcher.ResponseData;

function headerOf(res: Response, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function contentTypeOf(res: Response): string | undefined {
  return headerOf(res, 'content-type')?.split(';')[0]?.trim().toLowerCase();
}

async function readLimited(body: Response['body'], limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    size += buf.length;
    if (size > limit) {
      body.destroy();
      throw new PayloadTooLargeError(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks);
}

/** Path of a URL without its query (upload URLs carry state tokens, storage URLs signatures). */
function safePath(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

/** The host part of `host[:port]` or `[v6][:port]`. */
function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(0, registry.indexOf(']') + 1);
  const colon = registry.lastIndexOf(':');
  return colon >= 0 ? registry.slice(0, colon) : registry;
}

function platformMatches(wanted: readonly Platform[], platform: Platform | undefined): boolean {
  if (platform === undefined) return false;
  return wanted.some(
    (p) =>
      p.os === platform.os &&
      p.architecture === platform.architecture &&
      (p.variant === undefined || p.variant === platform.variant),
  );
}

function isIndex(mediaType: string, doc: unknown): boolean {
  if (indexMediaTypes.includes(mediaType)) return true;
  if (allManifestMediaTypes.includes(mediaType)) return false;
  return Array.isArray((doc as { manifests?: unknown } | null)?.manifests);
}

interface ParsedManifest {
  readonly children: Descriptor[];
  readonly index: boolean;
}

/** The descriptors a manifest or index points at (config and layers, or manifests). */
function parseManifest(bytes: Buffer, desc: Descriptor, where: string): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ConflictError(`${where}: manifest ${desc.digest} is not valid JSON`);
  }
  if (typeof doc !== 'object' || doc === null)
    throw new ConflictError(`${where}: manifest ${desc.digest} is not an object`);
  const d = doc as { schemaVersion?: unknown; config?: unknown; layers?: unknown; manifests?: unknown };
  if (d.schemaVersion !== 2) {
    throw new ConflictError(
      `${where}: manifest ${desc.digest} has schemaVersion ${describeValue(d.schemaVersion)}; only 2 is supported`,
    );
  }
  const index = isIndex(desc.mediaType, doc);
  const list = index ? d.manifests : [d.config, ...(Array.isArray(d.layers) ? (d.layers as unknown[]) : [])];
  if (!Array.isArray(list))
    throw new ConflictError(
      `${where}: manifest ${desc.digest} has no ${index ? 'manifests' : 'layers'} list`,
    );
  const children: Descriptor[] = [];
  list.forEach((item: unknown, i: number) => {
    const c = item as Partial<Descriptor> | null;
    const field = index ? `manifests[${i}]` : i === 0 ? 'config' : `layers[${i - 1}]`;
    if (
      typeof c !== 'object' ||
      c === null ||
      !isDigest(c.digest) ||
      typeof c.size !== 'number' ||
      c.size < 0
    ) {
      throw new ConflictError(
        `${where}: manifest ${desc.digest} ${field} is not a descriptor with digest and size`,
      );
    }
    children.push({
      ...c,
      mediaType: typeof c.mediaType === 'string' ? c.mediaType : '',
      digest: c.digest,
      size: c.size,
    });
  });
  return { children, index };
}

/** Runs `fn` over `items` with at most `limit` at once; the first failure stops new work and is thrown. */
async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle.close();
  }
}

async function writeAll(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let at = 0;
  while (at < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, at, chunk.length - at);
    at += bytesWritten;
  }
}

/** Mutable counters of one pull. */
interface PullStats {
  downloadedBytes: number;
  skippedBlobs: number;
}

/** Mutable counters of one push. */
interface PushStats {
  uploadedBytes: number;
  mountedBlobs: number;
  skippedBlobs: number;
}

/** A client of OCI distribution registries; one instance may talk to several registries. Call close() when done. */
export class RegistryClient {
  readonly #options: ResolvedOptions;
  readonly #agent: Agent;
  readonly #auth: RegistryAuth;
  readonly #credentials = new Map<string, Promise<FoundCredentials | undefined>>();
  /** Downloads in progress, by destination path, so one process never writes the same partial twice. */
  readonly #downloads = new Map<string, Promise<void>>();

  constructor(options: RegistryClientOptions = {}) {
    this.#options = resolveOptions(options);
    const ca = this.#options.ca;
    this.#agent = new Agent({
      connect: ca === undefined ? {} : { ca: [...rootCertificates, ca.toString()] },
    });
    this.#auth = new RegistryAuth({
      dispatcher: this.#agent,
      credentials: (registry) => this.#credentialsFor(registry),
      userAgent: this.#options.userAgent,
      allowPlainHttp: (url) => this.#options.insecure || isLoopbackHost(url.hostname),
    });
  }

  /** Closes the client's connections. */
  async close(): Promise<void> {
    await this.#agent.close();
  }

  /** Fetches a manifest or index, verifying its digest (the reference's, and `Docker-Content-Digest`). */
  async getManifest(
    ref: ImageReference,
    options: SignalOptions = {},
  ): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    return this.#fetchManifest(ref, referenceTarget(ref), options.signal);
  }

  /** The descriptor a reference resolves to (a HEAD request), or undefined when the registry has no such manifest. */
  async resolve(ref: ImageReference, options: SignalOptions = {}): Promise<Descriptor | undefined> {
    const target = referenceTarget(ref);
    const what = `HEAD manifest ${ref.repository}:${target}`;
    const found = await this.#retrying(options.signal, async (): Promise<Descriptor | 'absent' | 'fetch'> => {
      const res = await this.#call({
        method: 'HEAD',
        url: this.#url(ref.registry, ref.repository, `manifests/${target}`),
        registry: ref.registry,
        scopes: [repositoryScope(ref.repository, ['pull'])],
        what,
        headers: { accept: MANIFEST_ACCEPT },
        signal: options.signal,
      });
      if (res.statusCode === 404) {
        await res.body.dump();
        return 'absent';
      }
      if (res.statusCode !== 200) return this.#fail(res, ref.registry, what);
      await res.body.dump();
      const digest = headerOf(res, 'docker-content-digest');
      const size = Number(headerOf(res, 'content-length'));
      const mediaType = contentTypeOf(res);
      if (
        isDigest(digest) &&
        Number.isInteger(size) &&
        mediaType !== undefined &&
        allManifestMediaTypes.includes(mediaType)
      ) {
        if (ref.digest !== undefined && digest !== ref.digest) {
          throw new DigestMismatchError(
            `registry ${ref.registry}: ${what} answered digest ${digest}, expected ${ref.digest}`,
          );
        }
        return { mediaType, digest, size };
      }
      return 'fetch';
    });
    if (found === 'absent') return undefined;
    // Not enough in the headers: fetch the manifest itself.
    if (found === 'fetch') return (await this.#fetchManifest(ref, target, options.signal)).descriptor;
    return found;
  }

  /** Whether the registry has a blob in a repository. */
  async blobExists(ref: ImageReference, digest: Digest, options: SignalOptions = {}): Promise<boolean> {
    return this.#blobExists(
      ref.registry,
      ref.repository,
      digest,
      [repositoryScope(ref.repository, ['pull'])],
      options.signal,
    );
  }

  /** Every tag of a repository (following `Link` pagination); the reference's tag and digest are ignored. */
  async listTags(ref: ImageReference, options: SignalOptions = {}): Promise<string[]> {
    const tags: string[] = [];
    let url: URL | undefined = this.#url(ref.registry, ref.repository, 'tags/list');
    const what = `list tags of ${ref.repository}`;
    for (let page = 0; url !== undefined; page++) {
      if (page > 10_000) throw new ConflictError(`registry ${ref.registry}: ${what}: too many pages`);
      const pageUrl: URL = url;
      const { body, next } = await this.#retrying(options.signal, async () => {
        const res = await this.#call({
          method: 'GET',
          url: pageUrl,
          registry: ref.registry,
          scopes: [repositoryScope(ref.repository, ['pull'])],
          what,
          headers: { accept: 'application/json' },
          signal: options.signal,
        });
        if (res.statusCode !== 200) return this.#fail(res, ref.registry, what);
        const link = headerOf(res, 'link');
        const m = link === undefined ? null : /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
        return {
          body: await readLimited(res.body, MAX_MANIFEST_BYTES, `${what} response`),
          next: m?.[1] === undefined ? undefined : new URL(m[1], pageUrl),
        };
      });
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new ConflictError(`registry ${ref.registry}: ${what}: the answer is not JSON`);
      }
      if (Array.isArray(doc.tags)) for (const t of doc.tags) if (typeof t === 'string') tags.push(t);
      url = next;
    }
    return tags;
  }

  /** Deletes a manifest (by the reference's digest, else by resolving its tag); the registry must allow deletes. */
  async deleteManifest(ref: ImageReference, options: SignalOptions = {}): Promise<Digest> {
    const digest = ref.digest ?? (await this.resolve(ref, options))?.digest;
    if (digest === undefined)
      throw new NotFoundError(`registry ${ref.registry}: no manifest ${formatReference(ref)} to delete`);
    const what = `DELETE manifest ${ref.repository}@${digest}`;
    return this.#retrying(options.signal, async () => {
      const res = await this.#call({
        method: 'DELETE',
        url: this.#url(ref.registry, ref.repository, `manifests/${digest}`),
        registry: ref.registry,
        scopes: [repositoryScope(ref.repository, ['pull', 'delete'])],
        what,
        signal: options.signal,
      });
      if (res.statusCode !== 202 && res.statusCode !== 200) return this.#fail(res, ref.registry, what);
      await res.body.dump();
      return digest;
    });
  }

  /**
   * Pulls an image (or index) into a store: every blob is verified while it streams and nothing
   * unverified is kept; blobs already stored are skipped; manifests are stored after their content,
   * the root last, so a stored manifest always has its blobs.
   */
  async pull(ref: ImageReference, store: ContentStore, options: PullOptions = {}): Promise<PullResult> {
    const { signal, platforms } = options;
    const stats: PullStats = { downloadedBytes: 0, skippedBlobs: 0 };
    const root = await this.#fetchManifest(ref, referenceTarget(ref), signal);
    stats.downloadedBytes += root.bytes.length;

    // Walk the manifests first (small), then move the blobs in parallel, then store the manifests.
    const manifests: Array<{ descriptor: Descriptor; bytes: Buffer }> = [];
    const blobs = new Map<Digest, Descriptor>();
    const where = `registry ${ref.registry}: ${formatReference(ref)}`;
    const visit = async (node: { descriptor: Descriptor; bytes: Buffer }, depth: number): Promise<void> => {
      if (depth > 8) throw new ConflictError(`${where}: indexes nest deeper than 8`);
      const parsed = parseManifest(node.bytes, node.descriptor, where);
      if (parsed.index) {
        for (const child of parsed.children) {
          const childIsIndex = indexMediaTypes.includes(child.mediaType);
          if (platforms !== undefined && !childIsIndex && !platformMatches(platforms, child.platform))
            continue;
          let bytes: Buffer;
          if (await store.has(child.digest)) {
            bytes = await store.readBytes(child.digest);
            stats.skippedBlobs++;
            this.#progress('exists', child.digest, child.size, child.size);
          } else {
            bytes = (await this.#fetchManifest(ref, child.digest, signal)).bytes;
            stats.downloadedBytes += bytes.length;
          }
          if (child.size !== bytes.length) {
            throw new DigestMismatchError(
              `${where}: manifest ${child.digest} is ${bytes.length} bytes, its index says ${child.size}`,
            );
          }
          const mediaType = child.mediaType !== '' ? child.mediaType : MediaTypes.ociManifest;
          await visit({ descriptor: { ...child, mediaType }, bytes }, depth + 1);
        }
      } else {
        for (const child of parsed.children) if (!blobs.has(child.digest)) blobs.set(child.digest, child);
      }
      manifests.push(node);
    };
    await visit(root, 0);

    await mapLimit([...blobs.values()], this.#options.concurrency, async (blob) => {
      if (await store.has(blob.digest)) {
        stats.skippedBlobs++;
        this.#progress('exists', blob.digest, blob.size, blob.size);
        return;
      }
      await this.#download(ref, blob, store, stats, signal);
    });
    for (const m of manifests) {
      await store.put(m.bytes, { digest: m.descriptor.digest, size: m.descriptor.size });
    }
    return {
      root: root.descriptor,
      downloadedBytes: stats.downloadedBytes,
      skippedBlobs: stats.skippedBlobs,
    };
  }

  /**
   * Pushes an image (or index, children first) from a store: each blob is checked with HEAD,
   * mounted from `mountFrom` when given, else uploaded; then each manifest is put by digest and the
   * root by the destination's tag too.
   */
  async push(
    store: ContentStore,
    root: Descriptor,
    dst: ImageReference,
    options: PushOptions = {},
  ): Promise<PushResult> {
    if (dst.digest !== undefined && dst.digest !== root.digest) {
      throw new InputError(
        `push of ${root.digest} to ${formatReference(dst)}: the destination names another digest`,
      );
    }
    const mountFrom = options.mountFrom === dst.repository ? undefined : options.mountFrom;
    const scopes = [repositoryScope(dst.repository, ['pull', 'push'])];
    if (mountFrom !== undefined) scopes.push(repositoryScope(mountFrom, ['pull']));
    const stats: PushStats = { uploadedBytes: 0, mountedBlobs: 0, skippedBlobs: 0 };
    await this.#pushManifest(store, root, dst, { scopes, mountFrom, signal: options.signal, stats }, 0);
    return { digest: root.digest, ...stats };
  }

  // ---------------------------------------------------------------------------------------------

  async #pushManifest(
    store: ContentStore,
    desc: Descriptor,
    dst: ImageReference,
    ctx: {
      scopes: string[];
      mountFrom: string | undefined;
      signal: AbortSignal | undefined;
      stats: PushStats;
    },
    depth: number,
  ): Promise<void> {
    const where = `push to ${formatReference(dst)}`;
    if (depth > 8) throw new ConflictError(`${where}: indexes nest deeper than 8`);
    const bytes = await store.readBytes(desc.digest);
    const parsed = parseManifest(bytes, desc, where);
    if (parsed.index) {
      for (const child of parsed.children) {
        const childDesc = {
          ...child,
          mediaType: child.mediaType !== '' ? child.mediaType : MediaTypes.ociManifest,
        };
        if (!(await store.has(child.digest))) {
          // Pulled with a platform filter: fine when the destination has it already.
          if ((await this.#manifestExists(dst, child.digest, ctx.scopes, ctx.signal)) === true) continue;
          throw new NotFoundError(
            `${where}: index ${desc.digest} lists manifest ${child.digest} which is neither in the store nor in the destination`,
          );
        }
        await this.#pushManifest(store, childDesc, dst, ctx, depth + 1);
      }
    } else {
      const unique = [...new Map(parsed.children.map((c) => [c.digest, c])).values()];
      await mapLimit(unique, this.#options.concurrency, (blob) =>
        this.#retrying(ctx.signal, () => this.#pushBlob(store, blob, dst, ctx)),
      );
    }
    const isRoot = depth === 0;
    if (!isRoot && (await this.#manifestExists(dst, desc.digest, ctx.scopes, ctx.signal))) return;
    await this.#putManifest(dst, desc, bytes, desc.digest, ctx);
    if (isRoot && dst.tag !== undefined) await this.#putManifest(dst, desc, bytes, dst.tag, ctx);
  }

  async #putManifest(
    dst: ImageReference,
    desc: Descriptor,
    bytes: Buffer,
    target: string,
    ctx: { scopes: string[]; signal: AbortSignal | undefined },
  ): Promise<void> {
    const what = `PUT manifest ${dst.repository}:${target}`;
    await this.#retrying(ctx.signal, async () => {
      const res = await this.#call({
        method: 'PUT',
        url: this.#url(dst.registry, dst.repository, `manifests/${target}`),
        registry: dst.registry,
        scopes: ctx.scopes,
        what,
        headers: { 'content-type': desc.mediaType, 'content-length': String(bytes.length) },
        body: () => bytes,
        signal: ctx.signal,
      });
      if (res.statusCode !== 201 && res.statusCode !== 200) return this.#fail(res, dst.registry, what);
      await res.body.dump();
      const echoed = headerOf(res, 'docker-content-digest');
      if (isDigest(echoed) && echoed !== desc.digest) {
        throw new DigestMismatchError(
          `registry ${dst.registry}: ${what} stored digest ${echoed}, expected ${desc.digest}`,
        );
      }
    });
  }

  async #manifestExists(
    dst: ImageReference,
    digest: Digest,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const what = `HEAD manifest ${dst.repository}@${digest}`;
    return this.#retrying(signal, async () => {
      const res = await this.#call({
        method: 'HEAD',
        url: this.#url(dst.registry, dst.repository, `manifests/${digest}`),
        registry: dst.registry,
        scopes,
        what,
        headers: { accept: MANIFEST_ACCEPT },
        signal,
      });
      await res.body.dump();
      if (res.statusCode === 200) return true;
      if (res.statusCode === 404) return false;
      return this.#fail(res, dst.registry, what);
    });
  }

  async #blobExists(
    registry: string,
    repository: string,
    digest: Digest,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    const what = `HEAD blob ${repository}@${digest}`;
    return this.#retrying(signal, async () => {
      const res = await this.#call({
        method: 'HEAD',
        url: this.#url(registry, repository, `blobs/${digest}`),
        registry,
        scopes,
        what,
        signal,
        followRedirects: true,
      });
      await res.body.dump();
      if (res.statusCode === 200) return true;
      if (res.statusCode === 404) return false;
      return this.#fail(res, registry, what);
    });
  }

  /** One blob: HEAD, then mount or upload. The caller retries the whole sequence on transient errors. */
  async #pushBlob(
    store: ContentStore,
    blob: Descriptor,
    dst: ImageReference,
    ctx: {
      scopes: string[];
      mountFrom: string | undefined;
      signal: AbortSignal | undefined;
      stats: PushStats;
    },
  ): Promise<void> {
    const { registry, repository } = dst;
    const { signal, stats, scopes } = ctx;
    const digest = blob.digest;
    const stored = await store.stat(digest);
    if (stored === undefined)
      throw new NotFoundError(`push to ${formatReference(dst)}: blob ${digest} is not in the store`);
    if (stored.size !== blob.size) {
      throw new DigestMismatchError(
        `push to ${formatReference(dst)}: blob ${digest} is ${stored.size} bytes, its descriptor says ${blob.size}`,
      );
    }
    const size = stored.size;
    if (await this.#blobExists(registry, repository, digest, scopes, signal)) {
      stats.skippedBlobs++;
      this.#progress('skip', digest, size, size);
      return;
    }

    const uploads = this.#url(registry, repository, 'blobs/uploads/');
    if (ctx.mountFrom !== undefined) {
      uploads.searchParams.set('mount', digest);
      uploads.searchParams.set('from', ctx.mountFrom);
    }
    const startWhat =
      ctx.mountFrom !== undefined
        ? `mount blob ${digest} from ${ctx.mountFrom} into ${repository}`
        : `start upload of blob ${digest} to ${repository}`;
    const started = await this.#call({
      method: 'POST',
      url: uploads,
      registry,
      scopes,
      what: startWhat,
      headers: { 'content-length': '0' },
      signal,
    });
    if (started.statusCode === 201 && ctx.mountFrom !== undefined) {
      await started.body.dump();
      stats.mountedBlobs++;
      this.#progress('mount', digest, size, size);
      return;
    }
    if (started.statusCode !== 202) return this.#fail(started, registry, startWhat);
    await started.body.dump();
    let location = this.#location(started, uploads, registry, startWhat);
    const minChunk = Number(headerOf(started, 'oci-chunk-min-length'));

    const what = `upload of blob ${digest} to ${repository}`;
    const chunkSize =
      this.#options.chunkSize === undefined
        ? undefined
        : Math.max(this.#options.chunkSize, Number.isInteger(minChunk) && minChunk > 0 ? minChunk : 1);
    let finalBody: (() => Body | Promise<Body>) | undefined;
    let finalLength = size;
    if (chunkSize === undefined) {
      finalBody = async () => this.#countingStream(await store.read(digest), digest, 0, size);
    } else {
      for (let start = 0; start < size; start += chunkSize) {
        const end = Math.min(start + chunkSize, size) - 1;
        const res = await this.#call({
          method: 'PATCH',
          url: location,
          registry,
          scopes,
          what: `${what} (bytes ${start}-${end})`,
          headers: {
            'content-type': 'application/octet-stream',
            'content-length': String(end - start + 1),
            'content-range': `${start}-${end}`,
          },
          body: async () =>
            this.#countingStream(await store.read(digest, { start, end }), digest, start, size),
          signal,
        });
        if (res.statusCode !== 202) return this.#fail(res, registry, `${what} (bytes ${start}-${end})`);
        await res.body.dump();
        location = this.#location(res, location, registry, what);
      }
      finalLength = 0;
    }
    const put = new URL(location);
    put.searchParams.set('digest', digest);
    const done = await this.#call({
      method: 'PUT',
      url: put,
      registry,
      scopes,
      what,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(finalLength) },
      body: finalBody ?? (() => Buffer.alloc(0)),
      signal,
    });
    if (done.statusCode !== 201) return this.#fail(done, registry, what);
    await done.body.dump();
    const echoed = headerOf(done, 'docker-content-digest');
    if (isDigest(echoed) && echoed !== digest) {
      throw new DigestMismatchError(`registry ${registry}: ${what} stored digest ${echoed}`);
    }
    stats.uploadedBytes += size;
    this.#progress('upload', digest, size, size);
  }

  /** A store stream that reports upload progress as it is read. */
  #countingStream(source: Readable, digest: Digest, offset: number, total: number): Readable {
    const onProgress = this.#options.onProgress;
    if (onProgress === undefined) return source;
    let sent = offset;
    return Readable.from(
      (async function* counted() {
        for await (const chunk of source) {
          sent += (chunk as Buffer).length;
          if (sent < total) onProgress({ action: 'upload', digest, bytes: sent, total });
          yield chunk as Buffer;
        }
      })(),
      { objectMode: false },
    );
  }

  #location(res: Response, base: URL, registry: string, what: string): URL {
    const location = headerOf(res, 'location');
    if (location === undefined || location === '') {
      throw new ConflictError(`registry ${registry}: ${what}: the answer has no Location header`);
    }
    try {
      return new URL(location, base);
    } catch {
      throw new ConflictError(`registry ${registry}: ${what}: the Location header is not a URL`);
    }
  }

  async #fetchManifest(
    ref: ImageReference,
    target: string,
    signal: AbortSignal | undefined,
  ): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
    const what = `GET manifest ${ref.repository}${isDigest(target) ? '@' : ':'}${target}`;
    return this.#retrying(signal, async () => {
      const res = await this.#call({
        method: 'GET',
        url: this.#url(ref.registry, ref.repository, `manifests/${target}`),
        registry: ref.registry,
        scopes: [repositoryScope(ref.repository, ['pull'])],
        what,
        headers: { accept: MANIFEST_ACCEPT },
        signal,
        followRedirects: true,
      });
      if (res.statusCode !== 200) return this.#fail(res, ref.registry, what);
      const bytes = await readLimited(
        res.body,
        MAX_MANIFEST_BYTES,
        `registry ${ref.registry}: ${what}: manifest`,
      );
      const digest = digestOf(bytes);
      const expected = isDigest(target) ? target : undefined;
      if (expected !== undefined && digest !== expected) {
        throw new DigestMismatchError(`registry ${ref.registry}: ${what}: content digest is ${digest}`);
      }
      const echoed = headerOf(res, 'docker-content-digest');
      if (echoed?.startsWith('sha256:') === true && echoed !== digest) {
        throw new DigestMismatchError(
          `registry ${ref.registry}: ${what}: content digest is ${digest}, Docker-Content-Digest says ${echoed}`,
        );
      }
      let mediaType = contentTypeOf(res);
      if (mediaType === undefined || !allManifestMediaTypes.includes(mediaType)) {
        let doc: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown } = {};
        try {
          doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
        } catch {
          throw new ConflictError(`registry ${ref.registry}: ${what}: the manifest is not JSON`);
        }
        if (doc.schemaVersion === 1) {
          throw new ConflictError(
            `registry ${ref.registry}: ${what}: Docker schema 1 manifests are not supported`,
          );
        }
        mediaType =
          typeof doc.mediaType === 'string' && doc.mediaType !== ''
            ? doc.mediaType
            : Array.isArray(doc.manifests)
              ? MediaTypes.ociIndex
              : MediaTypes.ociManifest;
      }
      return { descriptor: { mediaType, digest, size: bytes.length }, bytes };
    });
  }

  /** Downloads one blob into the store (deduplicated per destination within this client). */
  #download(
    ref: ImageReference,
    blob: Descriptor,
    store: ContentStore,
    stats: PullStats,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const key = store.blobPath(blob.digest);
    let pending = this.#downloads.get(key);
    if (pending === undefined) {
      pending = this.#downloadOnce(ref, blob, store, stats, signal);
      this.#downloads.set(key, pending);
      const cleanup = (): void => {
        this.#downloads.delete(key);
      };
      pending.then(cleanup, cleanup);
    }
    return pending;
  }

  /**
   * Streams a blob into `<ingest>/<hex>.partial`, hashing as it goes; after a network failure asks
   * for the rest with `Range` (or starts over when the server ignores ranges), with backoff. The
   * verified file is renamed into the store; on a digest or size mismatch it is deleted.
   */
  async #downloadOnce(
    ref: ImageReference,
    blob: Descriptor,
    store: ContentStore,
    stats: PullStats,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { digest, size } = blob;
    const { registry, repository } = ref;
    const what = `GET blob ${repository}@${digest}`;
    const url = this.#url(registry, repository, `blobs/${digest}`);
    const partial = join(store.ingestDir, `${hexOf(digest)}.partial`);
    const mismatch = async (message: string): Promise<never> => {
      await rm(partial, { force: true });
      throw new DigestMismatchError(`registry ${registry}: ${what}: ${message}`);
    };

    let digester = new Digester();
    let offset = 0;
    let resumedFromDisk = false;
    const previous = await stat(partial).catch(() => undefined);
    if (previous !== undefined && previous.size <= size) {
      // Resume a download an earlier run left: hash what is there.
      for await (const chunk of createReadStream(partial)) digester.update(chunk as Buffer);
      offset = digester.size;
      resumedFromDisk = offset > 0;
    } else if (previous !== undefined) {
      await rm(partial, { force: true });
    }

    const handle = await open(partial, 'a');
    let closed = false;
    try {
      let failures = 0;
      const retryOrThrow = async (error: unknown): Promise<void> => {
        if (
          signal?.aborted === true ||
          !(error instanceof UnavailableError) ||
          failures >= this.#options.maxRetries
        ) {
          throw error;
        }
        await this.#backoff(failures++, error.retryAfterSeconds, signal);
      };
      const restart = async (): Promise<void> => {
        await handle.truncate(0);
        digester = new Digester();
        offset = 0;
      };

      for (;;) {
        while (offset < size) {
          const rangeStart = offset;
          let res: Response;
          try {
            res = await this.#call({
              method: 'GET',
              url,
              registry,
              scopes: [repositoryScope(repository, ['pull'])],
              what,
              headers: rangeStart > 0 ? { range: `bytes=${rangeStart}-` } : {},
              signal,
              followRedirects: true,
            });
          } catch (error) {
            await retryOrThrow(error);
            continue;
          }
          if (rangeStart > 0 && res.statusCode === 416) {
            await res.body.dump();
            await restart();
            continue;
          }
          if (res.statusCode !== 200 && res.statusCode !== 206) {
            try {
              await this.#fail(res, registry, what);
            } catch (error) {
              await retryOrThrow(error);
              continue;
            }
          }
          if (res.statusCode === 206) {
            const range = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(headerOf(res, 'content-range') ?? '');
            if (range === null || Number(range[1]) !== rangeStart) {
              // Not the range asked for: start over without one.
              await res.body.dump();
              await restart();
              continue;
            }
          } else if (rangeStart > 0) {
            // The server ignored the Range header: this body is the whole blob.
            await restart();
          }

          const before = offset;
          try {
            for await (const chunk of res.body) {
              const buf = chunk as Buffer;
              if (offset + buf.length > size) {
                res.body.destroy();
                await mismatch(`the blob is longer than the ${size} bytes its descriptor announces`);
              }
              await writeAll(handle, buf);
              digester.update(buf);
              offset += buf.length;
              stats.downloadedBytes += buf.length;
              this.#progress('download', digest, offset, size);
            }
          } catch (error) {
            if (!(error instanceof UnavailableError) && error instanceof AiEdgeError) throw error;
            if (offset > before) failures = 0;
            await retryOrThrow(
              error instanceof UnavailableError
                ? error
                : new UnavailableError(
                    `registry ${registry}: ${what}: connection lost after ${offset} of ${size} bytes`,
                    { cause: error },
                  ),
            );
            continue;
          }
          if (offset < size) {
            if (offset > before) failures = 0;
            await retryOrThrow(
              new UnavailableError(
                `registry ${registry}: ${what}: the body ended after ${offset} of ${size} bytes`,
              ),
            );
          }
        }
        const actual = digester.digest();
        if (actual === digest) break;
        if (resumedFromDisk) {
          // What an earlier run left was bad (another writer, a disk fault): download it all once more.
          resumedFromDisk = false;
          await restart();
          continue;
        }
        await mismatch(`content digest is ${actual}`);
      }

      await handle.sync();
      await handle.close();
      closed = true;
      const target = store.blobPath(digest);
      if (await store.has(digest)) {
        await rm(partial, { force: true });
        return;
      }
      await mkdir(dirname(target), { recursive: true });
      await rename(partial, target);
      await syncDir(dirname(target));
    } finally {
      if (!closed) await handle.close().catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------------------------------------

  #progress(action: RegistryProgressEvent['action'], digest: Digest, bytes: number, total: number): void {
    this.#options.onProgress?.({ action, digest, bytes, total });
  }

  #credentialsFor(registry: string): Promise<FoundCredentials | undefined> {
    let found = this.#credentials.get(registry);
    if (found === undefined) {
      const explicit = this.#options.credentials;
      found = findCredentials(registry, {
        env: this.#options.env,
        ...(explicit !== undefined ? { credentials: explicit } : {}),
      });
      this.#credentials.set(registry, found);
    }
    return found;
  }

  /** `scheme://host` of a registry's API (Docker Hub's is registry-1.docker.io). */
  #origin(registry: string): string {
    const host = registry === 'docker.io' ? 'registry-1.docker.io' : registry;
    const loopback = isLoopbackHost(hostOf(registry));
    const https = this.#options.https ?? !(loopback || this.#options.insecure);
    if (!https && !loopback && !this.#options.insecure) {
      throw new InputError(
        `registry ${registry}: plain http to a registry off this machine needs the insecure option`,
      );
    }
    return `${https ? 'https' : 'http'}://${host}`;
  }

  #url(registry: string, repository: string, path: string): URL {
    return new URL(`${this.#origin(registry)}/v2/${repository}/${path}`);
  }

  async #backoff(
    attempt: number,
    retryAfterSeconds: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { retryBaseDelayMs, retryMaxDelayMs } = this.#options;
    const exponential = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** attempt);
    const jittered = exponential / 2 + (Math.random() * exponential) / 2;
    const ms = Math.min(retryMaxDelayMs, Math.max(jittered, (retryAfterSeconds ?? 0) * 1000));
    await delay(ms, undefined, signal === undefined ? {} : { signal });
  }

  /** Runs `fn`, retrying after transient failures (UnavailableError) with backoff. */
  async #retrying<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (
          signal?.aborted === true ||
          !(error instanceof UnavailableError) ||
          attempt >= this.#options.maxRetries
        ) {
          throw error;
        }
        await this.#backoff(attempt, error.retryAfterSeconds, signal);
      }
    }
  }

  /** Sends a request with authorization (answering one 401 challenge) and, when asked, following redirects. */
  async #call(call: Call): Promise<Response> {
    let url = call.url;
    for (let hop = 0; ; hop++) {
      const res = await this.#authorized({ ...call, url });
      if (call.followRedirects !== true || !REDIRECT_STATUSES.has(res.statusCode)) return res;
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) {
        throw new ConflictError(
          `registry ${call.registry}: ${call.what}: more than ${MAX_REDIRECTS} redirects`,
        );
      }
      url = this.#location(res, url, call.registry, call.what);
    }
  }

  async #authorized(call: Call): Promise<Response> {
    // Credentials and tokens go to the registry's own origin only, never to storage it redirects to.
    const own = call.url.origin === this.#origin(call.registry);
    let authorization = own
      ? await this.#auth.authorization(call.registry, call.scopes, call.signal)
      : undefined;
    for (let attempt = 0; ; attempt++) {
      const res = await this.#send(call, authorization);
      if (res.statusCode !== 401 || !own || attempt > 0) return res;
      await res.body.dump();
      authorization = await this.#auth.challenge(
        call.registry,
        call.scopes,
        headerOf(res, 'www-authenticate'),
        authorization,
        call.signal,
      );
    }
  }

  async #send(call: Call, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, ...call.headers };
    if (authorization !== undefined) headers['authorization'] = authorization;
    const body = call.body === undefined ? undefined : await call.body();
    let res: Response;
    try {
      res = await request(call.url, {
        method: call.method,
        headers,
        body: body ?? null,
        dispatcher: this.#agent,
        signal: call.signal ?? null,
      });
    } catch (error) {
      if (body instanceof Readable) body.destroy();
      if (call.signal?.aborted === true) throw error;
      const where = `registry ${call.registry}: ${call.what} (${call.method} ${safePath(call.url)})`;
      const code = (error as { code?: unknown }).code;
      if (typeof code === 'string' && TLS_TRUST_CODES.has(code)) {
        // Not transient: retrying cannot make the certificate trusted.
        throw new InputError(
          `${where}: the server's TLS certificate is not trusted (${code}); pass its CA with the ca option`,
          {
            cause: error,
          },
        );
      }
      throw new UnavailableError(`${where} failed: ${(error as Error).message}`, { cause: error });
    }
    // A server may answer before reading the whole body (a 401, an error): release the file.
    if (body instanceof Readable && !body.readableEnded) body.destroy();
    return res;
  }

  /** Reads a registry error answer and throws the matching ai-edge error with the registry's codes. */
  async #fail(res: Response, registry: string, what: string): Promise<never> {
    let text = '';
    try {
      text = (await readLimited(res.body, MAX_ERROR_BODY_BYTES, 'error body')).toString('utf8');
    } catch {
      // The status alone has to do.
    }
    const codes: string[] = [];
    const parts: string[] = [];
    try {
      const doc = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
      for (const e of Array.isArray(doc.errors) ? doc.errors : []) {
        const code = typeof e.code === 'string' ? e.code : 'UNKNOWN';
        codes.push(code);
        const message = typeof e.message === 'string' ? e.message.slice(0, 300) : '';
        parts.push(message === '' ? code : `${code}: ${message}`);
      }
    } catch {
      // Not a distribution error body.
    }
    const status = res.statusCode;
    const detail = parts.length > 0 ? parts.join('; ') : `HTTP ${status}`;
    let message = `registry ${registry}: ${what} failed: ${detail}`;
    if (status === 401) {
      const found = await this.#credentialsFor(registry).catch(() => undefined);
      message += found === undefined ? ' (no credentials found)' : ` (credentials from ${found.source})`;
      throw new UnauthorizedError(message);
    }
    if (status === 403 || codes.includes('DENIED')) throw new ForbiddenError(message);
    if (status === 404 || codes.some((c) => c.endsWith('_UNKNOWN'))) throw new NotFoundError(message);
    if (codes.includes('DIGEST_INVALID') || codes.includes('SIZE_INVALID'))
      throw new DigestMismatchError(message);
    if (status === 413) throw new PayloadTooLargeError(message);
    if (status === 429 || status >= 500) {
      const retryAfter = Number(headerOf(res, 'retry-after'));
      throw new UnavailableError(
        message,
        Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterSeconds: retryAfter } : {},
      );
    }
    if (status === 405 || codes.includes('UNSUPPORTED')) {
      throw new ForbiddenError(`${message} (the registry does not allow this operation)`);
    }
    if (status === 409) throw new ConflictError(message);
    if (status >= 400 && status < 500) throw new InputError(message);
    throw new ConflictError(`${message} (unexpected HTTP ${status})`);
  }
}
