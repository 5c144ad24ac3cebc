/**
 * An OCI distribution-spec (v1.1) registry over the ContentStore: a fastify plugin
 * ({@link registryRoutes}), its garbage collector ({@link registryGc}) and a standalone server
 * ({@link startRegistry}).
 *
 * Repository state lives in the store's refs. A repository name maps onto nested segments
 * (`repositories/library/nginx/…`); its own entries sit under reserved segments that end in `_`,
 * which no repository path component can (components match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`):
 *
 *   repositories/<name>/tags_/<tag>                      → manifest digest (tags that start with
 *                                                          `_` are stored as `x:<tag>`: ref
 *                                                          segments must start alphanumeric)
 *   repositories/<name>/revisions_/<hex>                 → every manifest pushed to the repository
 *   repositories/<name>/blobs_/<hex>                     → blobs uploaded or mounted into it
 *   repositories/<name>/referrers_/<subject hex>/<hex>   → manifests whose `subject` is that digest
 *
 * Uploads in progress are `<store>/ingest/uploads/<uuid>/{data,meta.json}`; the running sha256 of
 * each is kept in memory and recomputed from `data` after a restart.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import {
  AiEdgeError,
  ErrorCodes,
  ForbiddenError,
  InputError,
  UnauthorizedError,
  describeValue,
  isAiEdgeError,
  type ErrorCode,
} from '@aiedge/protocol';
import { hexOf, isDigest, type Digest } from './digest.js';
import { MediaTypes, allManifestMediaTypes, indexMediaTypes } from './media-types.js';
import { ContentStore, DigestMismatchError, writeFileAtomic, type GcResult } from './store.js';

// ---------------------------------------------------------------------------------------------
// Public types

/** What a client asks to do: `pull` (GET/HEAD, also `GET /v2/` with no repository), `push`, `delete`, `catalog`. */
export type RegistryAction = 'pull' | 'push' | 'delete' | 'catalog';

/** One access decision the registry asks its authorizer for. */
export interface RegistryAccessRequest {
  readonly method: string;
  /** The repository, or undefined for `GET /v2/` and `GET /v2/_catalog`. */
  readonly repository: string | undefined;
  readonly action: RegistryAction;
  readonly headers: Record<string, string | string[] | undefined>;
}

/**
 * Decides whether a request may proceed: returns to allow, throws UnauthorizedError (401, sent with
 * `WWW-Authenticate`) or ForbiddenError (403) to refuse.
 */
export interface RegistryAuthorizer {
  (request: RegistryAccessRequest): Promise<void> | void;
}

/** The structured logger the registry writes to (a subset of @aiedge/telemetry's Logger). */
export interface RegistryLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of {@link registryRoutes}. */
export interface RegistryRoutesOptions {
  /** Where blobs, manifests and repository refs live. */
  readonly store: ContentStore;
  /** Access control; default: allow everything. */
  readonly authorize?: RegistryAuthorizer;
  /** `WWW-Authenticate` value sent with every 401; default `Basic realm="aiedge"`. */
  readonly wwwAuthenticate?: string;
  /** Largest manifest accepted by PUT; default 4 MiB. */
  readonly maxManifestBytes?: number;
  /** Where unexpected (5xx) failures are logged; default: nowhere. */
  readonly logger?: RegistryLogger;
}

/** Error codes of the distribution spec (plus docker's RANGE_INVALID, PAGINATION_NUMBER_INVALID, UNKNOWN). */
export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'TAG_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'RANGE_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNKNOWN';

const DEFAULT_STATUS: Record<RegistryErrorCode, number> = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 400,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  SIZE_INVALID: 400,
  TAG_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  RANGE_INVALID: 416,
  PAGINATION_NUMBER_INVALID: 400,
  UNKNOWN: 500,
};

function aiEdgeCodeOf(status: number): ErrorCode {
  if (status === 401) return ErrorCodes.UNAUTHORIZED;
  if (status === 403) return ErrorCodes.FORBIDDEN;
  if (status === 404) return ErrorCodes.NOT_FOUND;
  if (status === 413) return ErrorCodes.PAYLOAD_TOO_LARGE;
  return status < 500 ? ErrorCodes.INVALID_INPUT : ErrorCodes.INTERNAL;
}

/** A registry failure with its distribution-spec code, HTTP status and optional `detail`. */
export class RegistryError extends AiEdgeError {
  override readonly status: number;
  /** The distribution-spec error code sent in the response body. */
  readonly registryCode: RegistryErrorCode;
  /** The spec's `detail` field. */
  readonly detail: unknown;
  /** Extra response headers (e.g. `Range` and `Location` with a 416). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    registryCode: RegistryErrorCode,
    message: string,
    options: { status?: number; detail?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    const status = options.status ?? DEFAULT_STATUS[registryCode];
    super(message, { code: aiEdgeCodeOf(status), cause: options.cause });
    this.status = status;
    this.registryCode = registryCode;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

// ---------------------------------------------------------------------------------------------
// Names and ref keys

const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`);
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Anything shaped like `algorithm:encoded` (a digest, maybe of an algorithm we do not support). */
const DIGEST_LIKE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_NAME_LENGTH = 255;
const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const UPLOAD_IDLE_MS = 3_600_000;
const UPLOAD_SWEEP_MS = 600_000;
const MAX_PAGE = 10_000;

const REPOS = 'repositories';
const TAGS = 'tags_';
const REVISIONS = 'revisions_';
const BLOBS = 'blobs_';
const REFERRERS = 'referrers_';
const RESERVED = new Set([TAGS, REVISIONS, BLOBS, REFERRERS]);

function checkName(name: string): string {
  if (name.length > MAX_NAME_LENGTH || !NAME.test(name)) {
    throw new RegistryError(
      'NAME_INVALID',
      `repository name ${describeValue(name, 90)} is invalid: expected lowercase path components such as library/nginx, at most ${MAX_NAME_LENGTH} characters`,
      { detail: { name: name.slice(0, MAX_NAME_LENGTH) } },
    );
  }
  return name;
}

function checkDigestParam(value: string, what = 'digest'): Digest {
  if (isDigest(value)) return value;
  const unsupported = DIGEST_LIKE.test(value) && !value.startsWith('sha256:');
  throw new RegistryError(
    'DIGEST_INVALID',
    `${what} ${describeValue(value, 90)} is ${unsupported ? 'of an unsupported algorithm' : 'invalid'}: expected sha256:<64 lowercase hex digits>`,
    { detail: { digest: value.slice(0, 200) } },
  );
}

/** A manifest reference: a digest (anything with `:`) or a tag. */
function parseReference(reference: string): { digest: Digest } | { tag: string } {
  if (reference.includes(':')) return { digest: checkDigestParam(reference, 'reference') };
  if (!TAG.test(reference)) {
    throw new RegistryError(
      'TAG_INVALID',
      `tag ${describeValue(reference, 90)} is invalid: expected [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`,
      { detail: { tag: reference.slice(0, 200) } },
    );
  }
  return { tag: reference };
}

function tagSegment(tag: string): string {
  return /^[A-Za-z0-9]/.test(tag) ? tag : `x:${tag}`;
}

function tagOfSegment(segment: string): string {
  return segment.startsWith('x:') ? segment.slice(2) : segment;
}

const keys = {
  repo: (name: string) => `${REPOS}/${name}`,
  tags: (name: string) => `${REPOS}/${name}/${TAGS}`,
  tag: (name: string, tag: string) => `${REPOS}/${name}/${TAGS}/${tagSegment(tag)}`,
  revisions: (name: string) => `${REPOS}/${name}/${REVISIONS}`,
  revision: (name: string, digest: Digest) => `${REPOS}/${name}/${REVISIONS}/${hexOf(digest)}`,
  blobs: (name: string) => `${REPOS}/${name}/${BLOBS}`,
  blob: (name: string, digest: Digest) => `${REPOS}/${name}/${BLOBS}/${hexOf(digest)}`,
  referrersOf: (name: string, subject: Digest) => `${REPOS}/${name}/${REFERRERS}/${hexOf(subject)}`,
  referrer: (name: string, subject: Digest, digest: Digest) =>
    `${REPOS}/${name}/${REFERRERS}/${hexOf(subject)}/${hexOf(digest)}`,
};

function digestOfHex(hex: string): Digest | undefined {
  const digest = `sha256:${hex}`;
  return isDigest(digest) ? digest : undefined;
}

async function hasRefs(store: ContentStore, prefix: string): Promise<boolean> {
  return (await store.listRefs(prefix)).length > 0;
}

async function repositoryExists(store: ContentStore, name: string): Promise<boolean> {
  return (
    (await hasRefs(store, keys.revisions(name))) ||
    (await hasRefs(store, keys.blobs(name))) ||
    (await hasRefs(store, keys.tags(name)))
  );
}

/** Every repository that has any content, sorted. */
async function listRepositories(store: ContentStore): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    for (const child of await store.listRefPrefixes(path === '' ? REPOS : keys.repo(path))) {
      if (RESERVED.has(child)) continue;
      const name = path === '' ? child : `${path}/${child}`;
      if (!NAME.test(name)) continue;
      if (await repositoryExists(store, name)) found.push(name);
      await walk(name);
    }
  };
  await walk('');
  return found.sort(compareStrings);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Uploads

interface UploadMeta {
  readonly repository: string;
  readonly startedAt: string;
}

interface UploadState {
  hash: Hash | undefined;
  size: number;
  tail: Promise<unknown>;
  active: number;
}

interface ChunkRange {
  readonly start: number;
  readonly end: number;
}

/** Resumable uploads on disk with running hashes in memory. */
class Uploads {
  readonly #store: ContentStore;
  readonly #states = new Map<string, UploadState>();

  constructor(store: ContentStore) {
    this.#store = store;
  }

  get root(): string {
    return join(this.#store.ingestDir, 'uploads');
  }

  #dir(id: string): string {
    return join(this.root, id);
  }

  #data(id: string): string {
    return join(this.#dir(id), 'data');
  }

  #state(id: string): UploadState {
    let state = this.#states.get(id);
    if (state === undefined) {
      state = { hash: undefined, size: 0, tail: Promise.resolve(), active: 0 };
      this.#states.set(id, state);
    }
    return state;
  }

  /** Runs `fn` with the upload locked (one operation per upload at a time). */
  async #exclusive<T>(id: string, fn: (state: UploadState) => Promise<T>): Promise<T> {
    const state = this.#state(id);
    state.active++;
    const run = state.tail.then(
      () => fn(state),
      () => fn(state),
    );
    state.tail = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      state.active--;
    }
  }

  static location(prefix: string, name: string, id: string): string {
    return `${prefix}/v2/${name}/blobs/uploads/${id}`;
  }

  /** Starts an upload session for `name`; resolves to its id. */
  async create(name: string): Promise<string> {
    const id = randomUUID();
    await mkdir(this.#dir(id), { recursive: true });
    const meta: UploadMeta = { repository: name, startedAt: new Date().toISOString() };
    await writeFileAtomic(join(this.#dir(id), 'meta.json'), JSON.stringify(meta));
    const handle = await open(this.#data(id), 'w', 0o644);
    await handle.close();
    this.#state(id).hash = createHash('sha256');
    return id;
  }

  #unknown(id: string): RegistryError {
    return new RegistryError(
      'BLOB_UPLOAD_UNKNOWN',
      `upload ${describeValue(id, 60)} is unknown or has expired`,
      {
        detail: { uuid: id.slice(0, 100) },
      },
    );
  }

  /** Checks that upload `id` exists and belongs to repository `name`. */
  async check(name: string, id: string): Promise<void> {
    if (!UPLOAD_ID.test(id)) throw this.#unknown(id);
    let meta: UploadMeta;
    try {
      meta = JSON.parse(await readFile(join(this.#dir(id), 'meta.json'), 'utf8')) as UploadMeta;
    } catch {
      throw this.#unknown(id);
    }
    if (meta.repository !== name) throw this.#unknown(id);
  }

  /** Bytes received so far. */
  async size(id: string): Promise<number> {
    try {
      return (await stat(this.#data(id))).size;
    } catch {
      throw this.#unknown(id);
    }
  }

  /** The running hash at `size` bytes (recomputed from the data file when not in memory). */
  async #hashAt(id: string, state: UploadState, size: number): Promise<Hash> {
    if (state.hash !== undefined && state.size === size) return state.hash;
    const hash = createHash('sha256');
    let read = 0;
    for await (const chunk of createReadStream(this.#data(id)) as AsyncIterable<Buffer>) {
      hash.update(chunk);
      read += chunk.length;
    }
    state.hash = hash;
    state.size = read;
    return hash;
  }

  /**
   * Appends a chunk, all or nothing: when the body fails or does not match `range`, the data is
   * truncated back to where it was. Resolves to the new size.
   */
  async append(
    id: string,
    body: AsyncIterable<Uint8Array>,
    range: ChunkRange | undefined,
    location: string,
  ): Promise<number> {
    return this.#exclusive(id, (state) => this.#appendLocked(id, state, body, range, location));
  }

  async #appendLocked(
    id: string,
    state: UploadState,
    body: AsyncIterable<Uint8Array>,
    range: ChunkRange | undefined,
    location: string,
  ): Promise<number> {
    const start = await this.size(id);
    if (range !== undefined && range.start !== start) {
      throw new RegistryError(
        'RANGE_INVALID',
        `chunk starts at byte ${range.start} but the upload has ${start} bytes; send the chunk that starts at ${start}`,
        { headers: { ...progressHeaders(location, id, start) } },
      );
    }
    const hash = await this.#hashAt(id, state, start);
    const before = hash.copy();
    const limit = range === undefined ? undefined : range.end - range.start + 1;
    const handle = await open(this.#data(id), 'a');
    let written = 0;
    try {
      for await (const chunk of body) {
        if (limit !== undefined && written + chunk.length > limit) {
          throw new RegistryError(
            'BLOB_UPLOAD_INVALID',
            `chunk is longer than the ${limit} bytes its Content-Range ${range!.start}-${range!.end} announces`,
          );
        }
        let at = 0;
        while (at < chunk.length) at += (await handle.write(chunk, at, chunk.length - at)).bytesWritten;
        hash.update(chunk);
        written += chunk.length;
      }
      if (limit !== undefined && written !== limit) {
        throw new RegistryError(
          'BLOB_UPLOAD_INVALID',
          `chunk is ${written} bytes but its Content-Range ${range!.start}-${range!.end} announces ${limit}`,
        );
      }
      state.size = start + written;
      return state.size;
    } catch (error) {
      try {
        await handle.truncate(start);
        state.hash = before;
        state.size = start;
      } catch {
        state.hash = undefined;
      }
      throw error;
    } finally {
      await handle.close();
    }
  }

  /**
   * Appends the final chunk (if any), checks the digest and moves the data into the store.
   * On a digest mismatch the upload is dropped and nothing is stored.
   */
  async finish(
    id: string,
    expected: Digest,
    body: AsyncIterable<Uint8Array> | undefined,
    range: ChunkRange | undefined,
    location: string,
  ): Promise<{ digest: Digest; size: number }> {
    return this.#exclusive(id, async (state) => {
      const size =
        body === undefined ? await this.size(id) : await this.#appendLocked(id, state, body, range, location);
      const hash = await this.#hashAt(id, state, size);
      const digest: Digest = `sha256:${hash.copy().digest('hex')}`;
      if (digest !== expected) {
        await this.#remove(id);
        throw new RegistryError(
          'DIGEST_INVALID',
          `uploaded content has digest ${digest}, not the ${expected} given; the upload is discarded`,
          { detail: { digest: expected } },
        );
      }
      const data = this.#data(id);
      if (!(await this.#store.has(digest))) {
        const handle = await open(data, 'r+');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        const target = this.#store.blobPath(digest);
        await mkdir(dirname(target), { recursive: true });
        // Fresh mtime: the blob is protected by the gc grace period until a manifest references it.
        const now = new Date();
        await utimes(data, now, now);
        await rename(data, target);
        await syncDir(dirname(target));
      }
      await this.#remove(id);
      return { digest, size };
    });
  }

  /** Cancels an upload. */
  async cancel(id: string): Promise<void> {
    await this.#exclusive(id, () => this.#remove(id));
  }

  async #remove(id: string): Promise<void> {
    this.#states.delete(id);
    await rm(this.#dir(id), { recursive: true, force: true });
  }

  /** Removes uploads untouched for `idleMs` (and not in use). */
  async sweep(idleMs = UPLOAD_IDLE_MS): Promise<number> {
    let removed = 0;
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return 0;
    }
    const cutoff = Date.now() - idleMs;
    for (const id of names) {
      if ((this.#states.get(id)?.active ?? 0) > 0) continue;
      let last = 0;
      for (const file of ['meta.json', 'data']) {
        try {
          last = Math.max(last, (await stat(join(this.root, id, file))).mtimeMs);
        } catch {
          // missing file: counts as idle
        }
      }
      if (last <= cutoff) {
        await this.#remove(id);
        removed++;
      }
    }
    return removed;
  }
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

function progressHeaders(location: string, id: string, size: number): Record<string, string> {
  return {
    location,
    range: `0-${size > 0 ? size - 1 : 0}`,
    'docker-upload-uuid': id,
    'blob-upload-session-id': id,
  };
}

// ---------------------------------------------------------------------------------------------
// Request helpers

type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'referrers'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string };

const ROUTES: ReadonlyArray<[RegExp, (m: RegExpExecArray) => Route]> = [
  [/^_catalog\/?$/, () => ({ kind: 'catalog' })],
  [/^(.+)\/tags\/list\/?$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
  [/^(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: 'uploads', name: m[1]! })],
  [/^(.+)\/blobs\/uploads\/([^/:]+)$/, (m) => ({ kind: 'upload', name: m[1]!, id: m[2]! })],
  [/^(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
];

function parseRoute(path: string): Route | undefined {
  if (path === '' || path === '/') return { kind: 'base' };
  if (path.length > 2048) return undefined;
  for (const [pattern, build] of ROUTES) {
    const match = pattern.exec(path);
    if (match !== null) return build(match);
  }
  return undefined;
}

function queryParam(request: FastifyRequest, key: string): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.[key];
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && typeof value[0] === 'string') return value[0];
  return undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

/** The request body as a stream, or undefined when there is none. */
function bodyOf(request: FastifyRequest): AsyncIterable<Uint8Array> | undefined {
  return isAsyncIterable(request.body) ? request.body : undefined;
}

async function readLimited(
  body: AsyncIterable<Uint8Array> | undefined,
  limit: number,
  what: string,
): Promise<Buffer> {
  if (body === undefined) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > limit) {
      throw new RegistryError('SIZE_INVALID', `${what} is larger than the limit of ${limit} bytes`, {
        status: 413,
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseContentRange(value: string | undefined, location: string, id: string, size: number) {
  if (value === undefined) return undefined;
  const match = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/.exec(value.trim());
  const start = match === null ? NaN : Number(match[1]);
  const end = match === null ? NaN : Number(match[2]);
  if (match === null || end < start) {
    throw new RegistryError(
      'RANGE_INVALID',
      `Content-Range ${describeValue(value, 60)} is invalid: expected <start>-<end> with end >= start`,
      { headers: progressHeaders(location, id, size) },
    );
  }
  return { start, end };
}

function parsePageSize(request: FastifyRequest): number | undefined {
  const n = queryParam(request, 'n');
  if (n === undefined || n === '') return undefined;
  if (!/^\d{1,9}$/.test(n)) {
    throw new RegistryError(
      'PAGINATION_NUMBER_INVALID',
      `n is ${describeValue(n)}, expected a non-negative integer`,
    );
  }
  return Math.min(Number(n), MAX_PAGE);
}

/** One page of a sorted list: entries after `last`, at most `n`, and whether more follow. */
function paginate(all: string[], n: number | undefined, last: string | undefined) {
  const rest = last === undefined ? all : all.filter((entry) => entry > last);
  if (n === undefined) return { page: rest, more: false };
  return { page: rest.slice(0, n), more: n > 0 && rest.length > n };
}

interface ParsedManifest {
  readonly mediaType: string;
  readonly isIndex: boolean;
  readonly references: ReadonlyArray<{ digest: Digest; path: string; external: boolean }>;
  readonly subject: Digest | undefined;
  readonly artifactType: string | undefined;
  readonly annotations: Record<string, string> | undefined;
}

function manifestInvalid(message: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message);
}

function checkDescriptor(value: unknown, path: string): { digest: Digest; external: boolean } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw manifestInvalid(`${path} is ${describeValue(value)}, expected a descriptor object`);
  }
  const d = value as Record<string, unknown>;
  if (typeof d['mediaType'] !== 'string' || d['mediaType'] === '') {
    throw manifestInvalid(`${path}.mediaType is ${describeValue(d['mediaType'])}, expected a media type`);
  }
  if (!isDigest(d['digest'])) {
    throw manifestInvalid(
      `${path}.digest is ${describeValue(d['digest'], 90)}, expected sha256:<64 lowercase hex digits>`,
    );
  }
  const size = d['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw manifestInvalid(`${path}.size is ${describeValue(size)}, expected a non-negative integer`);
  }
  // Non-distributable layers live elsewhere (their `urls`); the registry need not hold them.
  const urls = d['urls'];
  return { digest: d['digest'], external: Array.isArray(urls) && urls.length > 0 };
}

/** Parses and checks a pushed manifest; `contentType` is the request's Content-Type. */
function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw manifestInvalid(`manifest is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw manifestInvalid(`manifest is ${describeValue(doc)}, expected a JSON object`);
  }
  const m = doc as Record<string, unknown>;
  if (m['schemaVersion'] !== 2) {
    throw manifestInvalid(`schemaVersion is ${describeValue(m['schemaVersion'])}, expected 2`);
  }
  const bodyType = m['mediaType'];
  if (bodyType !== undefined && typeof bodyType !== 'string') {
    throw manifestInvalid(`mediaType is ${describeValue(bodyType)}, expected a string`);
  }
  const headerType = contentType?.split(';')[0]?.trim().toLowerCase();
  const knownHeader = headerType !== undefined && allManifestMediaTypes.includes(headerType);
  if (knownHeader && bodyType !== undefined && bodyType !== headerType) {
    throw manifestInvalid(`Content-Type ${headerType} does not match the manifest's mediaType ${bodyType}`);
  }
  const hasManifests = m['manifests'] !== undefined;
  const inferred = bodyType ?? (hasManifests ? MediaTypes.ociIndex : MediaTypes.ociManifest);
  if (!allManifestMediaTypes.includes(inferred)) {
    throw manifestInvalid(
      `manifest media type ${describeValue(inferred, 90)} is not one of ${allManifestMediaTypes.join(', ')}`,
    );
  }
  if (knownHeader && bodyType === undefined && headerType !== inferred) {
    throw manifestInvalid(`Content-Type ${headerType} does not match a manifest of type ${inferred}`);
  }
  const isIndex = indexMediaTypes.includes(inferred);
  const references: Array<{ digest: Digest; path: string; external: boolean }> = [];
  if (isIndex) {
    const list = m['manifests'];
    if (!Array.isArray(list)) throw manifestInvalid(`manifests is ${describeValue(list)}, expected an array`);
    list.forEach((item, i) =>
      references.push({ ...checkDescriptor(item, `manifests[${i}]`), path: `manifests[${i}]` }),
    );
  } else {
    references.push({ ...checkDescriptor(m['config'], 'config'), path: 'config' });
    const layers = m['layers'];
    if (!Array.isArray(layers))
      throw manifestInvalid(`layers is ${describeValue(layers)}, expected an array`);
    layers.forEach((item, i) =>
      references.push({ ...checkDescriptor(item, `layers[${i}]`), path: `layers[${i}]` }),
    );
  }
  let subject: Digest | undefined;
  if (m['subject'] !== undefined) subject = checkDescriptor(m['subject'], 'subject').digest;
  const artifactType =
    typeof m['artifactType'] === 'string'
      ? m['artifactType']
      : !isIndex
        ? ((m['config'] as { mediaType?: string }).mediaType ?? undefined)
        : undefined;
  const annotations =
    typeof m['annotations'] === 'object' && m['annotations'] !== null && !Array.isArray(m['annotations'])
      ? (m['annotations'] as Record<string, string>)
      : undefined;
  return { mediaType: inferred, isIndex, references, subject, artifactType, annotations };
}

/** The media type of a stored manifest (its `mediaType`, or inferred from its shape). */
function storedMediaType(bytes: Buffer): { mediaType: string; doc: Record<string, unknown> | undefined } {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as unknown;
    if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) {
      const d = doc as Record<string, unknown>;
      const mediaType =
        typeof d['mediaType'] === 'string'
          ? d['mediaType']
          : d['manifests'] !== undefined
            ? MediaTypes.ociIndex
            : MediaTypes.ociManifest;
      return { mediaType, doc: d };
    }
  } catch {
    // fall through
  }
  return { mediaType: MediaTypes.ociManifest, doc: undefined };
}

function parseByteRange(value: string | undefined, size: number): { start: number; end: number } | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (!/^bytes=/i.test(text)) return undefined; // other units are ignored (RFC 9110)
  const spec = text.slice(6).trim();
  if (spec.includes(',')) return undefined; // multiple ranges: serve the whole blob
  const match = /^(\d{0,15})-(\d{0,15})$/.exec(spec);
  const unsatisfiable = (): RegistryError =>
    new RegistryError(
      'RANGE_INVALID',
      `Range ${describeValue(value, 60)} cannot be satisfied for a ${size}-byte blob`,
      {
        headers: { 'content-range': `bytes */${size}` },
      },
    );
  if (match === null || (match[1] === '' && match[2] === '')) throw unsatisfiable();
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  if (start >= size || (match[2] !== '' && Number(match[2]) < start)) throw unsatisfiable();
  return { start, end: match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1) };
}

// ---------------------------------------------------------------------------------------------
// The plugin

function sendErrors(
  reply: FastifyReply,
  status: number,
  code: RegistryErrorCode,
  message: string,
  detail?: unknown,
): FastifyReply {
  const error: Record<string, unknown> = { code, message };
  if (detail !== undefined) error['detail'] = detail;
  return reply
    .code(status)
    .type('application/json')
    .send(JSON.stringify({ errors: [error] }));
}

/**
 * The distribution-spec endpoints under `/v2/` as a fastify plugin:
 * `app.register(registryRoutes, { store })`. Parsers, hooks and the error handler stay inside the
 * plugin's context, so a parent app keeps its own.
 */
export async function registryRoutes(app: FastifyInstance, options: RegistryRoutesOptions): Promise<void> {
  const { store } = options;
  if (typeof (store as Partial<ContentStore> | undefined)?.getRef !== 'function') {
    throw new InputError('registryRoutes: options.store must be a ContentStore');
  }
  const maxManifestBytes = options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES;
  if (!Number.isSafeInteger(maxManifestBytes) || maxManifestBytes <= 0) {
    throw new InputError(
      `registryRoutes: maxManifestBytes is ${describeValue(maxManifestBytes)}, expected a positive integer`,
    );
  }
  const wwwAuthenticate = options.wwwAuthenticate ?? 'Basic realm="aiedge"';
  const logger = options.logger;
  const prefix = app.prefix;
  const uploads = new Uploads(store);

  const sweep = setInterval(() => {
    uploads.sweep().catch((error: unknown) => logger?.warn('upload sweep failed', { err: error }));
  }, UPLOAD_SWEEP_MS);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));

  // Bodies are streamed to the handlers (blobs can be gigabytes); only this context is affected.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.addHook('onRequest', async (_request, reply) => {
    void reply.header('docker-distribution-api-version', 'registry/2.0');
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof RegistryError) {
      if (error.status >= 500)
        logger?.error('registry request failed', { method: request.method, url: request.url, err: error });
      for (const [name, value] of Object.entries(error.headers)) void reply.header(name, value);
      if (error.status === 401) void reply.header('www-authenticate', wwwAuthenticate);
      return sendErrors(reply, error.status, error.registryCode, error.message, error.detail);
    }
    if (error instanceof UnauthorizedError || (isAiEdgeError(error) && error.status === 401)) {
      void reply.header('www-authenticate', wwwAuthenticate);
      return sendErrors(reply, 401, 'UNAUTHORIZED', error.message);
    }
    if (error instanceof ForbiddenError || (isAiEdgeError(error) && error.status === 403)) {
      return sendErrors(reply, 403, 'DENIED', error.message);
    }
    if (error instanceof DigestMismatchError) return sendErrors(reply, 400, 'DIGEST_INVALID', error.message);
    if (isAiEdgeError(error) && error.status < 500) {
      const code: RegistryErrorCode =
        error.status === 404 ? 'NAME_UNKNOWN' : error.status === 413 ? 'SIZE_INVALID' : 'UNSUPPORTED';
      return sendErrors(reply, error.status, code, error.message);
    }
    const status = isAiEdgeError(error) ? error.status : (error.statusCode ?? 500);
    if (status < 500) {
      const code: RegistryErrorCode = status === 413 ? 'SIZE_INVALID' : 'UNSUPPORTED';
      return sendErrors(reply, status, code, error.message);
    }
    // A client that went away mid-request is not a server failure worth a stack trace.
    if (!request.raw.destroyed)
      logger?.error('registry request failed', { method: request.method, url: request.url, err: error });
    return sendErrors(reply, 500, 'UNKNOWN', 'internal server error');
  });

  const authorize = async (
    request: FastifyRequest,
    repository: string | undefined,
    action: RegistryAction,
  ) => {
    if (options.authorize === undefined) return;
    await options.authorize({ method: request.method, repository, action, headers: request.headers });
  };

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const path = (request.params as Record<string, string | undefined>)['*'] ?? '';
    const route = parseRoute(path);
    const method = request.method;
    if (route === undefined) {
      throw new RegistryError(
        'UNSUPPORTED',
        `no registry endpoint for ${method} /v2/${describeValue(path, 120).slice(1, -1)}`,
        {
          status: 404,
        },
      );
    }
    const unsupported = (): never => {
      throw new RegistryError('UNSUPPORTED', `${method} is not supported on this endpoint`);
    };
    switch (route.kind) {
      case 'base':
        if (method !== 'GET' && method !== 'HEAD') return unsupported();
        await authorize(request, undefined, 'pull');
        return reply.type('application/json').send('{}');
      case 'catalog':
        if (method !== 'GET' && method !== 'HEAD') return unsupported();
        await authorize(request, undefined, 'catalog');
        return catalog(request, reply);
      case 'tags':
        checkName(route.name);
        if (method !== 'GET' && method !== 'HEAD') return unsupported();
        await authorize(request, route.name, 'pull');
        return tagsList(request, reply, route.name);
      case 'manifest': {
        checkName(route.name);
        const action =
          method === 'GET' || method === 'HEAD'
            ? 'pull'
            : method === 'PUT'
              ? 'push'
              : method === 'DELETE'
                ? 'delete'
                : unsupported();
        const reference = parseReference(route.reference);
        await authorize(request, route.name, action);
        if (method === 'PUT') return putManifest(request, reply, route.name, reference);
        if (method === 'DELETE') return deleteManifest(reply, route.name, reference);
        return getManifest(request, reply, route.name, reference);
      }
      case 'referrers': {
        checkName(route.name);
        if (method !== 'GET' && method !== 'HEAD') return unsupported();
        const digest = checkDigestParam(route.digest);
        await authorize(request, route.name, 'pull');
        return referrers(request, reply, route.name, digest);
      }
      case 'uploads':
        checkName(route.name);
        if (method !== 'POST') return unsupported();
        await authorize(request, route.name, 'push');
        return startUpload(request, reply, route.name);
      case 'upload': {
        checkName(route.name);
        if (!['GET', 'PATCH', 'PUT', 'DELETE'].includes(method)) return unsupported();
        await authorize(request, route.name, 'push');
        await uploads.check(route.name, route.id);
        if (method === 'GET') return uploadStatus(reply, route.name, route.id);
        if (method === 'PATCH') return patchUpload(request, reply, route.name, route.id);
        if (method === 'PUT') return putUpload(request, reply, route.name, route.id);
        await uploads.cancel(route.id);
        return reply.code(204).send();
      }
      case 'blob': {
        checkName(route.name);
        const action =
          method === 'GET' || method === 'HEAD' ? 'pull' : method === 'DELETE' ? 'delete' : unsupported();
        const digest = checkDigestParam(route.digest);
        await authorize(request, route.name, action);
        if (method === 'DELETE') return deleteBlob(reply, route.name, digest);
        return getBlob(request, reply, route.name, digest);
      }
    }
  };

  // `/v2/` itself (the API version check) and everything below it; names contain slashes, so the
  // path is parsed by hand.
  app.route({ method: ['GET', 'HEAD'], url: '/v2/', exposeHeadRoute: false, handler });
  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2/*',
    exposeHeadRoute: false,
    handler,
  });

  // --- blobs -------------------------------------------------------------------------------

  async function linkedBlob(name: string, digest: Digest) {
    const linked = await store.getRef(keys.blob(name, digest));
    const info = linked === undefined ? undefined : await store.stat(digest);
    if (info === undefined) {
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${name}`, {
        detail: { digest },
      });
    }
    return info;
  }

  async function getBlob(request: FastifyRequest, reply: FastifyReply, name: string, digest: Digest) {
    const info = await linkedBlob(name, digest);
    const range = parseByteRange(header(request, 'range'), info.size);
    void reply
      .header('docker-content-digest', digest)
      .header('etag', `"${digest}"`)
      .header('accept-ranges', 'bytes')
      .header('cache-control', 'max-age=31536000')
      .type('application/octet-stream');
    if (range !== undefined) {
      void reply
        .code(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${info.size}`)
        .header('content-length', String(range.end - range.start + 1));
    } else {
      void reply.header('content-length', String(info.size));
    }
    if (request.method === 'HEAD') return reply.send();
    try {
      return reply.send(await store.read(digest, range));
    } catch (error) {
      if (isAiEdgeError(error) && error.status === 404) {
        throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${name}`, {
          detail: { digest },
        });
      }
      throw error;
    }
  }

  async function deleteBlob(reply: FastifyReply, name: string, digest: Digest) {
    if ((await store.getRef(keys.blob(name, digest))) === undefined) {
      throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in repository ${name}`, {
        detail: { digest },
      });
    }
    await store.deleteRef(keys.blob(name, digest));
    return reply.code(202).send();
  }

  async function blobCreated(reply: FastifyReply, name: string, digest: Digest) {
    await store.setRef(keys.blob(name, digest), digest);
    return reply
      .code(201)
      .header('location', `${prefix}/v2/${name}/blobs/${digest}`)
      .header('docker-content-digest', digest)
      .send();
  }

  async function startUpload(request: FastifyRequest, reply: FastifyReply, name: string) {
    const mount = queryParam(request, 'mount');
    const from = queryParam(request, 'from');
    if (mount !== undefined) {
      const digest = checkDigestParam(mount, 'mount');
      if (from !== undefined && from !== '' && (await mayMount(request, checkName(from), digest))) {
        return blobCreated(reply, name, digest);
      }
    } else {
      const digestParam = queryParam(request, 'digest');
      if (digestParam !== undefined) {
        const digest = checkDigestParam(digestParam);
        const length = header(request, 'content-length');
        await store.putStream(bodyOf(request) ?? emptyBody(), {
          digest,
          ...(length !== undefined && /^\d{1,15}$/.test(length) ? { size: Number(length) } : {}),
        });
        return blobCreated(reply, name, digest);
      }
    }
    const id = await uploads.create(name);
    const location = Uploads.location(prefix, name, id);
    return reply
      .code(202)
      .headers(progressHeaders(location, id, 0))
      .send();
  }

  async function mayMount(request: FastifyRequest, from: string, digest: Digest): Promise<boolean> {
    if ((await store.getRef(keys.blob(from, digest))) === undefined || !(await store.has(digest)))
      return false;
    try {
      await authorize(request, from, 'pull');
      return true;
    } catch (error) {
      if (isAiEdgeError(error) && (error.status === 401 || error.status === 403)) return false;
      throw error;
    }
  }

  async function uploadStatus(reply: FastifyReply, name: string, id: string) {
    const size = await uploads.size(id);
    return reply
      .code(204)
      .headers(progressHeaders(Uploads.location(prefix, name, id), id, size))
      .send();
  }

  async function patchUpload(request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
    const location = Uploads.location(prefix, name, id);
    const range = parseContentRange(header(request, 'content-range'), location, id, await uploads.size(id));
    checkChunkLength(request, range);
    const size = await uploads.append(id, bodyOf(request) ?? emptyBody(), range, location);
    return reply
      .code(202)
      .headers(progressHeaders(location, id, size))
      .send();
  }

  async function putUpload(request: FastifyRequest, reply: FastifyReply, name: string, id: string) {
    const location = Uploads.location(prefix, name, id);
    const digestParam = queryParam(request, 'digest');
    if (digestParam === undefined) {
      throw new RegistryError('DIGEST_INVALID', 'completing an upload needs ?digest=sha256:<hex>');
    }
    const digest = checkDigestParam(digestParam);
    const range = parseContentRange(header(request, 'content-range'), location, id, await uploads.size(id));
    checkChunkLength(request, range);
    const body = bodyOf(request);
    const stored = await uploads.finish(id, digest, body, body === undefined ? undefined : range, location);
    return blobCreated(reply, name, stored.digest);
  }

  function checkChunkLength(request: FastifyRequest, range: ChunkRange | undefined): void {
    const length = header(request, 'content-length');
    if (range === undefined || length === undefined) return;
    if (Number(length) !== range.end - range.start + 1) {
      throw new RegistryError(
        'BLOB_UPLOAD_INVALID',
        `Content-Length ${length} does not match Content-Range ${range.start}-${range.end}`,
      );
    }
  }

  // --- manifests ---------------------------------------------------------------------------

  async function resolve(name: string, reference: { digest: Digest } | { tag: string }): Promise<Digest> {
    if ('tag' in reference) {
      const digest = await store.getRef(keys.tag(name, reference.tag));
      if (digest === undefined) {
        throw new RegistryError('MANIFEST_UNKNOWN', `tag ${reference.tag} is not in repository ${name}`, {
          detail: { tag: reference.tag },
        });
      }
      return digest;
    }
    if ((await store.getRef(keys.revision(name, reference.digest))) === undefined) {
      throw new RegistryError(
        'MANIFEST_UNKNOWN',
        `manifest ${reference.digest} is not in repository ${name}`,
        {
          detail: { digest: reference.digest },
        },
      );
    }
    return reference.digest;
  }

  async function getManifest(
    request: FastifyRequest,
    reply: FastifyReply,
    name: string,
    reference: { digest: Digest } | { tag: string },
  ) {
    const digest = await resolve(name, reference);
    let bytes: Buffer;
    try {
      bytes = await store.readBytes(digest);
    } catch {
      throw new RegistryError(
        'MANIFEST_UNKNOWN',
        `manifest ${digest} of repository ${name} is missing from the store`,
        {
          detail: { digest },
        },
      );
    }
    void reply
      .type(storedMediaType(bytes).mediaType)
      .header('docker-content-digest', digest)
      .header('etag', `"${digest}"`)
      .header('content-length', String(bytes.length));
    return reply.send(request.method === 'HEAD' ? undefined : bytes);
  }

  async function putManifest(
    request: FastifyRequest,
    reply: FastifyReply,
    name: string,
    reference: { digest: Digest } | { tag: string },
  ) {
    const bytes = await readLimited(bodyOf(request), maxManifestBytes, 'manifest');
    const manifest = parseManifest(bytes, header(request, 'content-type'));
    const digest: Digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if ('digest' in reference && reference.digest !== digest) {
      throw new RegistryError(
        'DIGEST_INVALID',
        `manifest has digest ${digest}, not the ${reference.digest} in the URL`,
        {
          detail: { digest: reference.digest },
        },
      );
    }
    const missing: Array<{ path: string; digest: Digest }> = [];
    for (const ref of manifest.references) {
      if (ref.external) continue;
      const key = manifest.isIndex ? keys.revision(name, ref.digest) : keys.blob(name, ref.digest);
      if ((await store.getRef(key)) === undefined || !(await store.has(ref.digest))) {
        missing.push({ path: ref.path, digest: ref.digest });
      }
    }
    if (missing.length > 0) {
      const first = missing[0]!;
      throw new RegistryError(
        'MANIFEST_BLOB_UNKNOWN',
        `${first.path} ${first.digest} is not in repository ${name}${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''}; push it first`,
        { detail: { digest: first.digest } },
      );
    }
    await store.put(bytes, { digest });
    await store.setRef(keys.revision(name, digest), digest);
    await store.setRef(keys.blob(name, digest), digest);
    if (manifest.subject !== undefined) {
      await store.setRef(keys.referrer(name, manifest.subject, digest), digest);
      void reply.header('oci-subject', manifest.subject);
    }
    if ('tag' in reference) await store.setRef(keys.tag(name, reference.tag), digest);
    return reply
      .code(201)
      .header('location', `${prefix}/v2/${name}/manifests/${digest}`)
      .header('docker-content-digest', digest)
      .send();
  }

  async function deleteManifest(
    reply: FastifyReply,
    name: string,
    reference: { digest: Digest } | { tag: string },
  ) {
    if ('tag' in reference) {
      await resolve(name, reference);
      await store.deleteRef(keys.tag(name, reference.tag));
      return reply.code(202).send();
    }
    const digest = await resolve(name, reference);
    for (const segment of await store.listRefs(keys.tags(name))) {
      const key = `${keys.tags(name)}/${segment}`;
      if ((await store.getRef(key)) === digest) await store.deleteRef(key);
    }
    try {
      const subject = storedMediaType(await store.readBytes(digest)).doc?.['subject'] as
        { digest?: unknown } | undefined;
      if (isDigest(subject?.digest)) await store.deleteRef(keys.referrer(name, subject.digest, digest));
    } catch {
      // the manifest blob is gone already; nothing to unlink
    }
    await store.deleteRef(keys.revision(name, digest));
    await store.deleteRef(keys.blob(name, digest));
    return reply.code(202).send();
  }

  // --- listings ------------------------------------------------------------------------------

  async function tagsList(request: FastifyRequest, reply: FastifyReply, name: string) {
    const n = parsePageSize(request);
    const last = queryParam(request, 'last');
    if (!(await repositoryExists(store, name))) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known to this registry`, {
        detail: { name },
      });
    }
    const all = (await store.listRefs(keys.tags(name))).map(tagOfSegment).sort(compareStrings);
    const { page, more } = paginate(all, n, last);
    if (more) {
      const next = new URLSearchParams({ n: String(n), last: page[page.length - 1]! });
      void reply.header('link', `<${prefix}/v2/${name}/tags/list?${next.toString()}>; rel="next"`);
    }
    return reply.type('application/json').send(JSON.stringify({ name, tags: page }));
  }

  async function catalog(request: FastifyRequest, reply: FastifyReply) {
    const n = parsePageSize(request);
    const last = queryParam(request, 'last');
    const { page, more } = paginate(await listRepositories(store), n, last);
    if (more) {
      const next = new URLSearchParams({ n: String(n), last: page[page.length - 1]! });
      void reply.header('link', `<${prefix}/v2/_catalog?${next.toString()}>; rel="next"`);
    }
    return reply.type('application/json').send(JSON.stringify({ repositories: page }));
  }

  async function referrers(request: FastifyRequest, reply: FastifyReply, name: string, subject: Digest) {
    const artifactType = queryParam(request, 'artifactType');
    const descriptors: Record<string, unknown>[] = [];
    for (const hex of await store.listRefs(keys.referrersOf(name, subject))) {
      const digest = digestOfHex(hex);
      if (digest === undefined || (await store.getRef(keys.revision(name, digest))) === undefined) continue;
      let bytes: Buffer;
      try {
        bytes = await store.readBytes(digest);
      } catch {
        continue;
      }
      let parsed: ParsedManifest;
      try {
        parsed = parseManifest(bytes, undefined);
      } catch {
        continue;
      }
      if (artifactType !== undefined && parsed.artifactType !== artifactType) continue;
      descriptors.push({
        mediaType: parsed.mediaType,
        digest,
        size: bytes.length,
        ...(parsed.artifactType !== undefined ? { artifactType: parsed.artifactType } : {}),
        ...(parsed.annotations !== undefined ? { annotations: parsed.annotations } : {}),
      });
    }
    descriptors.sort((a, b) => compareStrings(String(a['digest']), String(b['digest'])));
    if (artifactType !== undefined) void reply.header('oci-filters-applied', 'artifactType');
    return reply
      .type(MediaTypes.ociIndex)
      .send(
        Buffer.from(
          JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: descriptors }),
        ),
      );
  }
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {
  // no chunks
}

// ---------------------------------------------------------------------------------------------
// Garbage collection

/** Options of {@link registryGc}. */
export interface RegistryGcOptions {
  /** Unreferenced blobs younger than this are kept (uploads between blob and manifest push). Default 1 h. */
  readonly graceMs?: number;
}

/**
 * Removes blobs no tag or revision of any repository reaches (after the grace period), then
 * drops blob and referrer links whose blob is gone and uploads idle for more than an hour.
 */
export async function registryGc(store: ContentStore, options: RegistryGcOptions = {}): Promise<GcResult> {
  const repositories = await listRepositories(store);
  const roots: Digest[] = [];
  for (const name of repositories) {
    for (const prefix of [keys.tags(name), keys.revisions(name)]) {
      for (const entry of await store.listRefs(prefix)) {
        const digest = await store.getRef(`${prefix}/${entry}`);
        if (digest !== undefined) roots.push(digest);
      }
    }
  }
  const result = await store.gc({
    roots,
    ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
  });
  for (const name of repositories) {
    for (const hex of await store.listRefs(keys.blobs(name))) {
      const digest = digestOfHex(hex);
      if (digest === undefined || !(await store.has(digest)))
        await store.deleteRef(`${keys.blobs(name)}/${hex}`);
    }
    const referrersRoot = `${keys.repo(name)}/${REFERRERS}`;
    for (const subjectHex of await store.listRefPrefixes(referrersRoot)) {
      for (const hex of await store.listRefs(`${referrersRoot}/${subjectHex}`)) {
        const digest = digestOfHex(hex);
        if (digest === undefined || !(await store.has(digest))) {
          await store.deleteRef(`${referrersRoot}/${subjectHex}/${hex}`);
        }
      }
    }
  }
  await new Uploads(store).sweep();
  return result;
}

// ---------------------------------------------------------------------------------------------
// Standalone server

/** Options of {@link startRegistry}. */
export interface RegistryServerOptions {
  /** Directory of the content store (created if needed). */
  readonly data: string;
  /** Address to listen on; default 0.0.0.0. */
  readonly host?: string;
  /** Port to listen on; default 5000; 0 picks a free one. */
  readonly port?: number;
  /** Where lifecycle lines and unexpected failures go; default: nowhere. */
  readonly logger?: RegistryLogger;
  /** Access control; default: allow everything. */
  readonly authorize?: RegistryAuthorizer;
  /** `WWW-Authenticate` value sent with every 401. */
  readonly wwwAuthenticate?: string;
  /** Largest manifest accepted; default 4 MiB. */
  readonly maxManifestBytes?: number;
}

/** A running registry. */
export interface RunningRegistry {
  /** Base URL, e.g. http://127.0.0.1:5000. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, finishes in-flight requests and closes the server. */
  close(): Promise<void>;
}

const SERVER_KEYS = new Set([
  'data',
  'host',
  'port',
  'logger',
  'authorize',
  'wwwAuthenticate',
  'maxManifestBytes',
]);

function resolveServerOptions(options: RegistryServerOptions) {
  for (const key of Object.keys(options)) {
    if (!SERVER_KEYS.has(key)) throw new InputError(`startRegistry: unknown option ${describeValue(key)}`);
  }
  if (typeof options.data !== 'string' || options.data === '') {
    throw new InputError(`startRegistry: data is ${describeValue(options.data)}, expected a directory path`);
  }
  const host = options.host ?? '0.0.0.0';
  if (typeof host !== 'string' || host === '') {
    throw new InputError(`startRegistry: host is ${describeValue(host)}, expected an address`);
  }
  const port = options.port ?? 5000;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InputError(`startRegistry: port is ${describeValue(port)}, expected an integer 0-65535`);
  }
  return Object.freeze({ ...options, host, port });
}

/** Starts a standalone registry on a content store directory. */
export async function startRegistry(options: RegistryServerOptions): Promise<RunningRegistry> {
  const resolved = resolveServerOptions(options);
  const logger = resolved.logger;
  const store = await ContentStore.open(resolved.data);
  const app = Fastify({
    logger: false,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 2048 },
    frameworkErrors: (error, request, reply) => {
      const message =
        error.code === 'FST_ERR_BAD_URL'
          ? `the URL ${describeValue(request.url, 120)} is not validly percent-encoded`
          : error.message;
      void sendErrors(reply, error.statusCode ?? 400, 'UNSUPPORTED', message);
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  await app.register(registryRoutes, {
    store,
    ...(resolved.authorize !== undefined ? { authorize: resolved.authorize } : {}),
    ...(resolved.wwwAuthenticate !== undefined ? { wwwAuthenticate: resolved.wwwAuthenticate } : {}),
    ...(resolved.maxManifestBytes !== undefined ? { maxManifestBytes: resolved.maxManifestBytes } : {}),
    ...(logger !== undefined ? { logger } : {}),
  });
  app.setNotFoundHandler((request, reply) =>
    sendErrors(
      reply,
      404,
      'UNSUPPORTED',
      `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`,
    ),
  );

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      logger?.info('registry shutting down');
      await app.close();
      logger?.info('registry stopped');
    })());

  try {
    await app.listen({ host: resolved.host, port: resolved.port });
  } catch (error) {
    await app.close().catch(() => undefined);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : resolved.port;
  const host = resolved.host.includes(':') ? `[${resolved.host}]` : resolved.host;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${port}`;
  logger?.info('registry listening', { url, data: resolved.data });
  return { url, port, close };
}
