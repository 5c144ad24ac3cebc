// Helpers every model source shares: streaming a download to disk while hashing it, copying local
// trees, listing what a source wrote, bounded parallelism, and reading secrets from the environment.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InputError, describeValue } from '@aiedge/protocol';
import type { FetchedFile, ProgressEvent, StepContext } from '../types.js';

/** What {@link streamToFile} wrote. */
export interface WrittenFile {
  readonly bytes: number;
  /** hex SHA-256. */
  readonly sha256: string;
  /** hex MD5 (only when asked for: S3 single-part ETags). */
  readonly md5?: string;
}

/** Options of {@link streamToFile}. */
export interface StreamToFileOptions {
  readonly signal: AbortSignal;
  /** Also compute MD5. */
  readonly md5?: boolean;
  /** Progress callback: called with the bytes written so far, at most every {@link PROGRESS_STEP_BYTES}. */
  readonly onBytes?: (bytes: number) => void;
}

/** Progress is reported at most once per this many bytes (and at the end). */
export const PROGRESS_STEP_BYTES = 1024 * 1024;

/**
 * Streams `source` into `path` (through `<path>.partial`, renamed when complete), hashing it on the
 * way; the partial file is removed on failure or abort.
 */
export async function streamToFile(
  source: Readable | AsyncIterable<Uint8Array>,
  path: string,
  options: StreamToFileOptions,
): Promise<WrittenFile> {
  await mkdir(dirname(path), { recursive: true });
  const sha = createHash('sha256');
  const md5: Hash | undefined = options.md5 ? createHash('md5') : undefined;
  let bytes = 0;
  let reported = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sha.update(chunk);
      md5?.update(chunk);
      bytes += chunk.length;
      if (options.onBytes !== undefined && bytes - reported >= PROGRESS_STEP_BYTES) {
        reported = bytes;
        options.onBytes(bytes);
      }
      callback(null, chunk);
    },
  });
  const partial = `${path}.partial`;
  try {
    await pipeline(source, tap, createWriteStream(partial), { signal: options.signal });
    await rename(partial, path);
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
  if (options.onBytes !== undefined && reported !== bytes) options.onBytes(bytes);
  return {
    bytes,
    sha256: sha.digest('hex'),
    ...(md5 !== undefined ? { md5: md5.digest('hex') } : {}),
  };
}

/** Copies a local file to `dest` while hashing it. */
export function copyFileHashed(
  src: string,
  dest: string,
  context: Pick<StepContext, 'signal' | 'progress'>,
  item: string,
): Promise<WrittenFile> {
  return stat(src).then((s) =>
    streamToFile(createReadStream(src), dest, {
      signal: context.signal,
      onBytes: (bytes) => context.progress({ item, bytes, total: s.size }),
    }),
  );
}

/**
 * Copies `src` (a file or a directory tree) into `destDir`: a file keeps its name, a directory's
 * contents land directly in `destDir`. Symbolic links to files are followed (unless
 * `followSymlinks` is false: then every link is skipped), links to directories are skipped. Returns the files written, paths relative to `destDir`.
 */
export async function copyTree(
  src: string,
  destDir: string,
  context: Pick<StepContext, 'signal' | 'progress' | 'log'>,
  options: { readonly followSymlinks?: boolean } = {},
): Promise<FetchedFile[]> {
  const follow = options.followSymlinks ?? true;
  const top = await stat(src);
  if (top.isFile()) {
    const name = src.split(sep).pop() ?? 'model';
    const written = await copyFileHashed(src, join(destDir, name), context, src);
    return [{ path: name, bytes: written.bytes, sha256: written.sha256 }];
  }
  const out: FetchedFile[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const entry of entries) {
      context.signal.throwIfAborted();
      const from = join(dir, entry.name);
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`;
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = follow ? await stat(from).catch(() => undefined) : undefined;
        if (target === undefined || !target.isFile()) {
          context.log(
            `skipped ${relPath}: a symbolic link${follow ? ' to something other than a file' : ''}`,
          );
          continue;
        }
        isFile = true;
      }
      if (entry.isDirectory()) await walk(from, relPath);
      else if (isFile) {
        const written = await copyFileHashed(from, join(destDir, ...relPath.split('/')), context, relPath);
        out.push({ path: relPath, bytes: written.bytes, sha256: written.sha256 });
      }
    }
  };
  await walk(src, '');
  return out;
}

/** Files sorted by path (byte order), the order {@link FetchedModel.files} is in. */
export function sortFiles(files: readonly FetchedFile[]): FetchedFile[] {
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Checks a `/`-separated relative path coming from a remote (an S3 key, a Git path, a URL) and
 * returns it normalised (no leading slashes); throws for `..`, `.`, empty segments or absolute paths.
 */
export function safeRelativePath(path: string, what: string): string {
  const trimmed = path.replace(/^\/+/, '');
  const parts = trimmed.split('/');
  if (
    trimmed === '' ||
    trimmed.includes('\\') ||
    trimmed.includes('\0') ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new InputError(`${what} ${describeValue(path)} is not a safe relative path`);
  }
  return parts.join('/');
}

/** `path` joined under `root`, asserting the result stays inside it. */
export function inside(root: string, relPath: string): string {
  const full = resolve(root, ...relPath.split('/'));
  if (full !== root && !full.startsWith(root.endsWith(sep) ? root : root + sep)) {
    throw new InputError(`path ${describeValue(relPath)} leaves ${root}`);
  }
  return full;
}

/** Resolves a path of the spec against the pipeline's directory. */
export function resolveSpecPath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** Reads a secret named by a `…Env` field; throws naming the field (never the value) when unset or empty. */
export function secretFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  field: string,
): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new InputError(`${field} names environment variable ${name}, which is not set or empty`);
  }
  return value;
}

/** Runs `fn` over `items` with at most `limit` at once; the first failure aborts the rest. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal,
  fn: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(signal.reason);
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        controller.signal.throwIfAborted();
        results[index] = await fn(items[index] as T, controller.signal);
      } catch (error) {
        if (failure === undefined) failure = { error };
        controller.abort(error);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (failure !== undefined) throw failure.error;
  return results;
}

/** Reports a transfer's progress under a fixed item name. */
export function progressOf(
  context: Pick<StepContext, 'progress'>,
  item: string,
  total?: number,
): (bytes: number) => void {
  return (bytes) => {
    const event: ProgressEvent = total === undefined ? { item, bytes } : { item, bytes, total };
    context.progress(event);
  };
}

/** Whether `path` exists as a regular file (without following a final symlink). */
export async function isRegularFile(path: string): Promise<boolean> {
  const s = await lstat(path).catch(() => undefined);
  return s?.isFile() ?? false;
}

/** A URL for messages: no userinfo, no query (presigned URLs carry credentials there), no fragment. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    const hadQuery = u.search !== '';
    u.search = '';
    u.hash = '';
    return hadQuery ? `${u.toString()}?…` : u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//').replace(/\?.*$/, '?…');
  }
}
