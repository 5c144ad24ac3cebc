// Git read and write for the GitOps repository, on isomorphic-git.
// Transports: http(s) through isomorphic-git's Node client (custom CA via an https.Agent);
// file:// through a small stateless-RPC client over `git upload-pack`/`git receive-pack`;
// SSH through the system git CLI for fetch and push. Local operations always use isomorphic-git.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { join, dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import git, {
  type AuthCallback,
  type GitHttpRequest,
  type GitHttpResponse,
  type HttpClient,
} from 'isomorphic-git';
import nodeHttp from 'isomorphic-git/http/node';
import { ConflictError, InputError, NotFoundError, UnauthorizedError } from '@aiedge/protocol';

/** A Git remote: where the GitOps repository lives and how to reach it. */
export interface GitRemote {
  /** `https://`, `http://` (loopback only unless `allowInsecureHttp`), `file://`, `ssh://` or `git@host:path`. */
  readonly url: string;
  /** Branch to read and write; default `main`. */
  readonly branch?: string;
  /** Credentials for http(s): a token (sent as Basic `x-access-token:<token>`) or username/password. */
  readonly auth?: { readonly token: string } | { readonly username: string; readonly password: string };
  /** PEM CA bundle to trust for https. */
  readonly ca?: string | Buffer;
  /** Allow plain `http://` to a non-loopback host; default false. */
  readonly allowInsecureHttp?: boolean;
}

/** One file to write (`content` string) or delete (`content` null), relative to the repository root. */
export interface FileChange {
  readonly path: string;
  readonly content: string | null;
}

/** Options of {@link checkout}. */
export interface CheckoutOptions {
  /** Clone/fetch depth; default 1. */
  readonly depth?: number;
}

/** Options of {@link commitAndPush}. */
export interface CommitAndPushOptions {
  /** The changes, or a function computing them from the checked-out tree (re-run after a rejected push). */
  readonly changes: readonly FileChange[] | ((dir: string) => Promise<readonly FileChange[]>);
  /** Commit message. */
  readonly message: string;
  /** Commit author and committer. */
  readonly author: { readonly name: string; readonly email: string };
  /** Push to this new branch instead of the remote's branch (review mode). */
  readonly reviewBranch?: string;
  /** Attempts after a non-fast-forward rejection; default 5. */
  readonly maxRetries?: number;
}

/** Result of {@link commitAndPush}. */
export interface CommitAndPushResult {
  /** The pushed commit, or undefined when the tree did not change (nothing committed). */
  readonly commit: string | undefined;
  /** The branch pushed to (or that would have been). */
  readonly branch: string;
  /** Push attempts made (1 when the first push landed). */
  readonly attempts: number;
}

const REMOTE = 'origin';

/** File operations isomorphic-git may have in flight at once (it starts one per file of a tree). */
const MAX_OPEN_FILES = 64;

/**
 * `node:fs` for isomorphic-git with its promise operations queued beyond {@link MAX_OPEN_FILES}:
 * a commit or status of tens of thousands of files must not run the process out of descriptors
 * (a core holding thousands of agents' connections has few to spare).
 */
const gitFs = (() => {
  let active = 0;
  const waiting: (() => void)[] = [];
  const limited =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      if (active >= MAX_OPEN_FILES) await new Promise<void>((resolve) => waiting.push(resolve));
      active++;
      try {
        return await fn(...args);
      } finally {
        active--;
        waiting.shift()?.();
      }
    };
  const promises = new Proxy(fs.promises, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function'
        ? limited((...args: unknown[]) =>
            (value as (...a: unknown[]) => Promise<unknown>).apply(target, args),
          )
        : value;
    },
  });
  return { ...fs, promises };
})();
const FILE_HOST = 'http://aiedge-file-transport.invalid';

type Kind = 'http' | 'file' | 'ssh';

interface Resolved {
  readonly kind: Kind;
  readonly url: string; // URL handed to isomorphic-git (file:// mapped to FILE_HOST), or the ssh URL
  readonly display: string; // URL without credentials, for messages
  readonly branch: string;
  readonly http: HttpClient;
  readonly onAuth: AuthCallback | undefined;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//');
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

function resolveRemote(remote: GitRemote): Resolved {
  const branch = remote.branch ?? 'main';
  if (!/^[\w./-]+$/.test(branch) || branch.includes('..')) {
    throw new InputError(`remote.branch ${JSON.stringify(branch)} is not a valid branch name`);
  }
  const raw = remote.url;
  const display = redact(raw);
  const onAuth = authCallback(remote);
  if (/^git@[^:]+:/.test(raw) || raw.startsWith('ssh://')) {
    return { kind: 'ssh', url: raw, display, branch, http: nodeHttp, onAuth: undefined };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InputError(`remote.url ${JSON.stringify(display)} is not a URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new InputError(`remote.url ${display} must not embed credentials; use remote.auth`);
  }
  switch (url.protocol) {
    case 'file:':
      return {
        kind: 'file',
        url: FILE_HOST + url.pathname,
        display,
        branch,
        http: fileTransport(),
        onAuth: undefined,
      };
    case 'http:':
      if (!remote.allowInsecureHttp && !isLoopback(url.hostname)) {
        throw new InputError(
          `remote.url ${display} uses plain http to a non-loopback host; use https or set allowInsecureHttp`,
        );
      }
      return { kind: 'http', url: raw, display, branch, http: nodeHttp, onAuth };
    case 'https:': {
      const agent = remote.ca === undefined ? undefined : new HttpsAgent({ ca: remote.ca });
      const http: HttpClient =
        agent === undefined
          ? nodeHttp
          : { request: (req: GitHttpRequest) => nodeHttp.request({ ...req, agent }) };
      return { kind: 'http', url: raw, display, branch, http, onAuth };
    }
    default:
      throw new InputError(
        `remote.url ${display} has unsupported scheme ${url.protocol} (use https, http, file or ssh)`,
      );
  }
}

function authCallback(remote: GitRemote): AuthCallback | undefined {
  const auth = remote.auth;
  if (auth === undefined) return undefined;
  if ('token' in auth) return () => ({ username: 'x-access-token', password: auth.token });
  return () => ({ username: auth.username, password: auth.password });
}

// ---------------------------------------------------------------------------------------------
// Process helpers

interface RunResult {
  readonly code: number;
  readonly stdout: Buffer;
  readonly stderr: string;
}

function runGit(
  args: readonly string[],
  input?: Uint8Array,
  env?: Record<string, string>,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(env ? { env: { ...process.env, ...env } } : {}),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new InputError('this remote needs the git CLI, which is not installed'));
      } else reject(e);
    });
    child.on('close', (code) =>
      resolve({
        code: code ?? 1,
        stdout: Buffer.concat(out),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(input === undefined ? undefined : Buffer.from(input));
  });
}

async function collect(body: AsyncIterableIterator<Uint8Array> | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  if (body !== undefined) for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

async function* once(value: Uint8Array): AsyncIterableIterator<Uint8Array> {
  yield value;
}

function pktLine(text: string): string {
  return (text.length + 4).toString(16).padStart(4, '0') + text;
}

/** An isomorphic-git HttpClient that serves smart-HTTP from a local bare repository via stateless RPC. */
function fileTransport(): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const url = new URL(req.url);
      const service = url.searchParams.get('service');
      let path = decodeURIComponent(url.pathname);
      const advertise = path.endsWith('/info/refs');
      let name: string | null = service;
      if (advertise) path = path.slice(0, -'/info/refs'.length);
      else {
        const m = /\/(git-upload-pack|git-receive-pack)$/.exec(path);
        name = m?.[1] ?? null;
        if (m) path = path.slice(0, -m[0].length);
      }
      if (name !== 'git-upload-pack' && name !== 'git-receive-pack') {
        return { url: req.url, statusCode: 404, statusMessage: 'Not Found', headers: {} };
      }
      if (!fs.existsSync(path)) {
        return { url: req.url, statusCode: 404, statusMessage: 'Not Found', headers: {} };
      }
      const input = advertise ? undefined : await collect(req.body);
      const args = [name.slice(4), '--stateless-rpc', ...(advertise ? ['--advertise-refs'] : []), path];
      const headers = Object.fromEntries(
        Object.entries(req.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]),
      );
      const protocol = headers['git-protocol'];
      const result = await runGit(args, input, protocol ? { GIT_PROTOCOL: protocol } : undefined);
      if (result.code !== 0) {
        return { url: req.url, statusCode: 500, statusMessage: 'git failed', headers: {} };
      }
      const payload = advertise
        ? Buffer.concat([Buffer.from(pktLine(`# service=${name}\n`) + '0000'), result.stdout])
        : result.stdout;
      const type = advertise ? `application/x-${name}-advertisement` : `application/x-${name}-result`;
      return {
        url: req.url,
        method: req.method ?? 'GET',
        statusCode: 200,
        statusMessage: 'OK',
        headers: { 'content-type': type },
        body: once(payload),
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Error mapping

function errCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String((error as { code: unknown }).code)
    : undefined;
}

function mapError(error: unknown, action: string, r: Resolved): Error {
  const code = errCode(error);
  if (code === 'HttpError') {
    const status = (error as { data?: { statusCode?: number } }).data?.statusCode;
    if (status === 401) {
      return new UnauthorizedError(`${action} ${r.display} was rejected: authentication required`);
    }
    if (status === 403) {
      return new UnauthorizedError(`${action} ${r.display} was rejected: access denied (HTTP 403)`);
    }
    if (status === 404) return new NotFoundError(`${action} ${r.display} failed: repository not found`);
    return new Error(`${action} ${r.display} failed: HTTP ${String(status)}`, { cause: error });
  }
  if (code === 'UserCanceledError') {
    return new UnauthorizedError(`${action} ${r.display} was rejected: authentication failed`);
  }
  if (error instanceof Error && /AiEdgeError|InputError/.test(error.name)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new Error(`${action} ${r.display} failed: ${message}`, { cause: error });
}

// ---------------------------------------------------------------------------------------------
// Network operations

/** Fetches the remote branch into refs/remotes/origin/<branch>; undefined when the remote has no such branch. */
async function fetchBranch(
  r: Resolved,
  dir: string,
  branch: string,
  depth: number,
): Promise<string | undefined> {
  if (r.kind === 'ssh') {
    const res = await runGit([
      '-C',
      dir,
      'fetch',
      '--quiet',
      `--depth=${depth}`,
      r.url,
      `+refs/heads/${branch}:refs/remotes/${REMOTE}/${branch}`,
    ]);
    if (res.code !== 0) {
      if (/couldn't find remote ref/i.test(res.stderr)) return undefined;
      throw new Error(`fetch from ${r.display} failed: ${res.stderr.trim()}`);
    }
    return git.resolveRef({ fs: gitFs, dir, ref: `refs/remotes/${REMOTE}/${branch}` });
  }
  let refs: { ref: string; oid: string }[];
  try {
    await git.addRemote({ fs: gitFs, dir, remote: REMOTE, url: r.url, force: true });
    refs = await git.listServerRefs({
      http: r.http,
      url: r.url,
      prefix: `refs/heads/${branch}`,
      ...(r.onAuth ? { onAuth: r.onAuth, onAuthFailure: () => ({ cancel: true }) } : {}),
    });
  } catch (error) {
    throw mapError(error, 'fetch from', r);
  }
  if (!refs.some((x) => x.ref === `refs/heads/${branch}`)) return undefined;
  try {
    const result = await git.fetch({
      fs: gitFs,
      http: r.http,
      dir,
      url: r.url,
      remote: REMOTE,
      ref: branch,
      remoteRef: branch,
      singleBranch: true,
      depth,
      tags: false,
      ...(r.onAuth ? { onAuth: r.onAuth, onAuthFailure: () => ({ cancel: true }) } : {}),
    });
    const oid = result.fetchHead ?? undefined;
    if (oid !== undefined) {
      await git.writeRef({
        fs: gitFs,
        dir,
        ref: `refs/remotes/${REMOTE}/${branch}`,
        value: oid,
        force: true,
      });
    }
    return oid;
  } catch (error) {
    throw mapError(error, 'fetch from', r);
  }
}

/** Pushes HEAD to refs/heads/<branch>; false on a non-fast-forward rejection. */
async function pushHead(r: Resolved, dir: string, branch: string): Promise<boolean> {
  if (r.kind === 'ssh') {
    const res = await runGit(['-C', dir, 'push', '--quiet', r.url, `HEAD:refs/heads/${branch}`]);
    if (res.code === 0) return true;
    if (/non-fast-forward|fetch first|\[rejected\]|stale info/i.test(res.stderr)) return false;
    throw new Error(`push to ${r.display} failed: ${res.stderr.trim()}`);
  }
  try {
    const local = await git.currentBranch({ fs: gitFs, dir, fullname: false });
    const result = await git.push({
      fs: gitFs,
      http: r.http,
      dir,
      url: r.url,
      ref: local ?? 'HEAD',
      remoteRef: `refs/heads/${branch}`,
      ...(r.onAuth ? { onAuth: r.onAuth, onAuthFailure: () => ({ cancel: true }) } : {}),
    });
    if (result.ok) return true;
    const detail = Object.values(result.refs)
      .map((x) => x.error ?? '')
      .join('; ');
    if (/non-fast-forward|fetch first|failed to lock|failed to update ref|stale/i.test(detail)) return false;
    throw new ConflictError(`push to ${r.display} was rejected: ${detail}`);
  } catch (error) {
    const code = errCode(error);
    if (code === 'PushRejectedError') return false;
    if (code === 'GitPushError') {
      const detail = error instanceof Error ? error.message : '';
      if (/non-fast-forward|fetch first|failed to lock|failed to update ref|stale|cannot lock/i.test(detail))
        return false;
      return Promise.reject(new ConflictError(`push to ${r.display} was rejected: ${detail}`));
    }
    if (error instanceof ConflictError) throw error;
    throw mapError(error, 'push to', r);
  }
}

// ---------------------------------------------------------------------------------------------
// Local operations

async function isRepo(dir: string): Promise<boolean> {
  try {
    await fs.promises.stat(join(dir, '.git'));
    return true;
  } catch {
    return false;
  }
}

async function listTracked(dir: string): Promise<string[]> {
  try {
    return await git.listFiles({ fs: gitFs, dir });
  } catch {
    return [];
  }
}

/** Marker (in `.git`) naming the commit the working tree and index are known to match exactly. */
const CLEAN_MARKER = 'aiedge-clean';

async function markClean(dir: string, oid: string): Promise<void> {
  await fs.promises.writeFile(join(dir, '.git', CLEAN_MARKER), oid);
}

async function markDirty(dir: string): Promise<void> {
  await fs.promises.rm(join(dir, '.git', CLEAN_MARKER), { force: true });
}

/**
 * Points the local branch at `oid` and makes index and working tree match it (like `git reset
 * --hard`). Skipped when the tree is marked clean at `oid`; otherwise linear in the number of files
 * (the index is rebuilt once, not edited per file).
 */
async function hardReset(dir: string, branch: string, oid: string): Promise<void> {
  const marker = await fs.promises.readFile(join(dir, '.git', CLEAN_MARKER), 'utf8').catch(() => '');
  const head = await git.resolveRef({ fs: gitFs, dir, ref: 'HEAD' }).catch(() => '');
  const current = await git.currentBranch({ fs: gitFs, dir, fullname: false }).catch(() => undefined);
  if (marker === oid && head === oid && current === branch) return;
  await markDirty(dir);
  const before = await listTracked(dir);
  await git.writeRef({ fs: gitFs, dir, ref: `refs/heads/${branch}`, value: oid, force: true });
  await git.writeRef({
    fs: gitFs,
    dir,
    ref: 'HEAD',
    value: `refs/heads/${branch}`,
    symbolic: true,
    force: true,
  });
  // Drop every previously tracked file and the index, so the checkout rebuilds both from `oid`.
  for (const path of before) await fs.promises.rm(join(dir, path), { force: true });
  await fs.promises.rm(join(dir, '.git', 'index'), { force: true });
  await git.checkout({ fs: gitFs, dir, ref: branch, force: true });
  await markClean(dir, oid);
}

function safePath(dir: string, path: string): string {
  const parts = path.split('/');
  if (
    path === '' ||
    path.startsWith('/') ||
    parts.some((p) => p === '' || p === '.' || p === '..') ||
    parts[0] === '.git'
  ) {
    throw new InputError(
      `changes path ${JSON.stringify(path)} must be a relative path inside the repository`,
    );
  }
  return join(dir, ...parts);
}

/** Files staged per isomorphic-git `add` call. */
const ADD_CHUNK = 256;

async function applyChanges(dir: string, changes: readonly FileChange[]): Promise<void> {
  await markDirty(dir);
  const added: string[] = [];
  for (const change of changes) {
    const file = safePath(dir, change.path);
    if (change.content === null) {
      await fs.promises.rm(file, { force: true });
      try {
        await git.remove({ fs: gitFs, dir, filepath: change.path });
      } catch {
        // not tracked: nothing to stage
      }
    } else {
      await fs.promises.mkdir(dirname(file), { recursive: true });
      await fs.promises.writeFile(file, change.content);
      added.push(change.path);
    }
  }
  // A few index updates for all added files (per-file adds rewrite the whole index each time), in
  // chunks because isomorphic-git reads a chunk's files all at once (file descriptors are finite).
  for (let i = 0; i < added.length; i += ADD_CHUNK) {
    await git.add({ fs: gitFs, dir, filepath: added.slice(i, i + ADD_CHUNK) });
  }
}

/** True when the index differs from HEAD's tree for one of `paths` (or HEAD is unborn and the index is non-empty). */
async function indexChanged(dir: string, paths: readonly string[]): Promise<boolean> {
  if (paths.length === 0) return false;
  const matrix = await git.statusMatrix({ fs: gitFs, dir, filepaths: [...paths] });
  // [filepath, HEAD, WORKDIR, STAGE]: unchanged when HEAD === STAGE and both 1, or both absent.
  return matrix.some(([, head, , stage]) => !(head === 1 && stage === 1) && !(head === 0 && stage === 0));
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Makes `dir` a shallow single-branch clone of the remote branch (fetch and hard reset when it is
 * already one); an empty remote yields an empty repository on the branch. Returns the head commit
 * (`''` for an empty remote).
 */
export async function checkout(
  remote: GitRemote,
  dir: string,
  options: CheckoutOptions = {},
): Promise<{ dir: string; head: string }> {
  const r = resolveRemote(remote);
  const depth = options.depth ?? 1;
  if (!Number.isInteger(depth) || depth < 1) {
    throw new InputError(`options.depth ${String(depth)} must be a positive integer`);
  }
  await fs.promises.mkdir(dir, { recursive: true });
  if (!(await isRepo(dir))) {
    await git.init({ fs: gitFs, dir, defaultBranch: r.branch });
  }
  const oid = await fetchBranch(r, dir, r.branch, depth);
  if (oid === undefined) {
    await git.writeRef({
      fs: gitFs,
      dir,
      ref: 'HEAD',
      value: `refs/heads/${r.branch}`,
      symbolic: true,
      force: true,
    });
    return { dir, head: '' };
  }
  await hardReset(dir, r.branch, oid);
  return { dir, head: oid };
}

/**
 * Writes and stages `changes` in a checkout of the remote, commits when the tree changed and pushes,
 * re-applying the changes on the new remote head after a non-fast-forward rejection.
 */
export async function commitAndPush(
  remote: GitRemote,
  dir: string,
  options: CommitAndPushOptions,
): Promise<CommitAndPushResult> {
  const r = resolveRemote(remote);
  const target = options.reviewBranch ?? r.branch;
  if (!/^[\w./-]+$/.test(target) || target.includes('..')) {
    throw new InputError(`options.reviewBranch ${JSON.stringify(target)} is not a valid branch name`);
  }
  const maxRetries = options.maxRetries ?? 5;
  if (!(await isRepo(dir))) await checkout(remote, dir);
  for (let attempt = 1; ; attempt++) {
    const changes = typeof options.changes === 'function' ? await options.changes(dir) : options.changes;
    await applyChanges(dir, changes);
    if (
      !(await indexChanged(
        dir,
        changes.map((c) => c.path),
      ))
    ) {
      const head = await git.resolveRef({ fs: gitFs, dir, ref: 'HEAD' }).catch(() => undefined);
      if (head !== undefined) await markClean(dir, head);
      return { commit: undefined, branch: target, attempts: attempt - 1 };
    }
    const now = Math.floor(Date.now() / 1000);
    const person = { ...options.author, timestamp: now, timezoneOffset: 0 };
    const commit = await git.commit({
      fs: gitFs,
      dir,
      message: options.message,
      author: person,
      committer: person,
    });
    if (await pushHead(r, dir, target)) {
      await markClean(dir, commit);
      return { commit, branch: target, attempts: attempt };
    }
    if (attempt > maxRetries) {
      throw new ConflictError(
        `push to ${r.display} branch ${target} was rejected ${attempt} times: the branch keeps moving`,
      );
    }
    await sleep(20 + Math.floor(Math.random() * 80 * attempt));
    const oid = await fetchBranch(r, dir, target, 1);
    if (oid === undefined) {
      throw new ConflictError(
        `push to ${r.display} branch ${target} was rejected, but the branch does not exist`,
      );
    }
    await hardReset(dir, await localBranch(dir, r.branch), oid);
  }
}

async function localBranch(dir: string, fallback: string): Promise<string> {
  return (await git.currentBranch({ fs: gitFs, dir, fullname: false })) ?? fallback;
}

async function resolveRevision(dir: string, revision: string): Promise<string> {
  if (/^[0-9a-f]{40}$/i.test(revision)) return revision.toLowerCase();
  for (const ref of [revision, `refs/remotes/${REMOTE}/${revision}`]) {
    try {
      return await git.resolveRef({ fs: gitFs, dir, ref });
    } catch {
      // try the next candidate
    }
  }
  if (/^[0-9a-f]{4,39}$/i.test(revision)) {
    try {
      return await git.expandOid({ fs: gitFs, dir, oid: revision });
    } catch {
      // fall through
    }
  }
  throw new NotFoundError(`revision ${JSON.stringify(revision)} is not in the checkout at ${dir}`);
}

/**
 * Reads `path` at `revision` (commit sha, branch or ref) from a checkout made by {@link checkout};
 * undefined when the file does not exist at that revision.
 */
export async function readFileAt(
  remote: GitRemote,
  dir: string,
  revision: string,
  path: string,
): Promise<string | undefined> {
  resolveRemote(remote);
  const oid = await resolveRevision(dir, revision);
  try {
    const { blob } = await git.readBlob({ fs: gitFs, dir, oid, filepath: path });
    return Buffer.from(blob).toString('utf8');
  } catch (error) {
    if (errCode(error) === 'NotFoundError') {
      if (!(await objectExists(dir, oid))) {
        throw new NotFoundError(`revision ${oid} is not in the checkout at ${dir} (shallow clone?)`);
      }
      return undefined;
    }
    throw error;
  }
}

async function objectExists(dir: string, oid: string): Promise<boolean> {
  try {
    await git.readCommit({ fs: gitFs, dir, oid });
    return true;
  } catch {
    return false;
  }
}

/** Lists the file paths under `prefix` (a directory, `''` for all) at `revision`, sorted. */
export async function listFilesAt(
  remote: GitRemote,
  dir: string,
  revision: string,
  prefix = '',
): Promise<string[]> {
  resolveRemote(remote);
  const oid = await resolveRevision(dir, revision);
  const files = await git.listFiles({ fs: gitFs, dir, ref: oid });
  const base = prefix.replace(/\/+$/, '');
  return files.filter((f) => base === '' || f.startsWith(`${base}/`)).sort();
}

/** Converts a local bare-repository path to a `file://` remote URL. */
export function fileRemoteUrl(path: string): string {
  return pathToFileURL(path).toString();
}

/**
 * The tree id of every directory directly under `dir` (e.g. `sites`) at `revision` of a checkout:
 * a content-addressed revision per site that changes exactly when that site's files change.
 * Empty when the directory does not exist at that revision.
 */
export async function subtreeIds(
  checkoutDir: string,
  revision: string,
  dir: string,
): Promise<Map<string, string>> {
  const oid = await resolveRevision(checkoutDir, revision);
  const out = new Map<string, string>();
  try {
    const { tree } = await git.readTree({ fs: gitFs, dir: checkoutDir, oid, filepath: dir });
    for (const entry of tree) if (entry.type === 'tree') out.set(entry.path, entry.oid);
  } catch (error) {
    if (errCode(error) !== 'NotFoundError') throw error;
  }
  return out;
}

/** Creates a bare repository at `path` whose HEAD is `branch` (no-op when one exists). */
export async function initBareRepository(path: string, branch = 'main'): Promise<void> {
  if (fs.existsSync(join(path, 'HEAD'))) return;
  await fs.promises.mkdir(path, { recursive: true });
  await git.init({ fs: gitFs, dir: path, bare: true, defaultBranch: branch });
}

/** Options of {@link commitFiles}. */
export interface CommitFilesOptions {
  /** Every file the commit must contain under `owned` (path from the repository root → content). */
  readonly files: ReadonlyMap<string, string>;
  /** Top directories the caller owns: a file there that is not in `files` is deleted; others are kept. */
  readonly owned: readonly string[];
  /** Commit message, or a function of the changes (computed again after a rejected push). */
  readonly message: string | ((changes: readonly FileChange[]) => string);
  readonly author: { readonly name: string; readonly email: string };
  /** Push to this new branch instead of the remote's branch (review mode). */
  readonly reviewBranch?: string;
  /** Attempts after a non-fast-forward rejection; default 5. */
  readonly maxRetries?: number;
}

/** Result of {@link commitFiles}. */
export interface CommitFilesResult {
  /** The pushed commit, or undefined when nothing changed. */
  readonly commit: string | undefined;
  /** The branch head after the call ('' for an empty repository with nothing to commit). */
  readonly head: string;
  readonly branch: string;
  /** Paths written or deleted, sorted. */
  readonly changed: readonly string[];
}

/** Git's tree order: names compared as bytes, a directory as if its name ended with '/'. */
function treeOrder(a: { path: string; type: string }, b: { path: string; type: string }): number {
  const ka = a.type === 'tree' ? `${a.path}/` : a.path;
  const kb = b.type === 'tree' ? `${b.path}/` : b.path;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Every file of a commit as path → blob id; identical subtrees are read once. */
async function treeFiles(dir: string, commit: string): Promise<Map<string, string>> {
  const memo = new Map<string, [string, string][]>();
  const walk = async (treeOid: string): Promise<[string, string][]> => {
    const known = memo.get(treeOid);
    if (known !== undefined) return known;
    const { tree } = await git.readTree({ fs: gitFs, dir, oid: treeOid });
    const out: [string, string][] = [];
    for (const entry of tree) {
      if (entry.type === 'tree')
        for (const [p, o] of await walk(entry.oid)) out.push([`${entry.path}/${p}`, o]);
      else if (entry.type === 'blob') out.push([entry.path, entry.oid]);
    }
    memo.set(treeOid, out);
    return out;
  };
  const { commit: c } = await git.readCommit({ fs: gitFs, dir, oid: commit });
  return new Map(await walk(c.tree));
}

/** Writes the trees of `files` (path → blob id) bottom-up; identical trees are written once. */
async function writeTrees(dir: string, files: ReadonlyMap<string, string>): Promise<string> {
  interface Node {
    readonly blobs: Map<string, string>;
    readonly dirs: Map<string, Node>;
  }
  const rootNode: Node = { blobs: new Map(), dirs: new Map() };
  for (const [path, oid] of files) {
    const parts = path.split('/');
    let node = rootNode;
    for (const part of parts.slice(0, -1)) {
      let next = node.dirs.get(part);
      if (next === undefined) node.dirs.set(part, (next = { blobs: new Map(), dirs: new Map() }));
      node = next;
    }
    node.blobs.set(parts[parts.length - 1]!, oid);
  }
  const written = new Map<string, string>();
  const write = async (node: Node): Promise<string> => {
    const entries: { mode: string; path: string; oid: string; type: 'blob' | 'tree' }[] = [];
    for (const [name, child] of node.dirs)
      entries.push({ mode: '040000', path: name, oid: await write(child), type: 'tree' });
    for (const [name, oid] of node.blobs) entries.push({ mode: '100644', path: name, oid, type: 'blob' });
    entries.sort(treeOrder);
    const key = entries.map((e) => `${e.mode} ${e.path} ${e.oid}`).join('\n');
    let oid = written.get(key);
    if (oid === undefined) {
      oid = await git.writeTree({ fs: gitFs, dir, tree: entries });
      written.set(key, oid);
    }
    return oid;
  };
  return write(rootNode);
}

/**
 * Commits exactly `files` (within the `owned` directories) on top of the remote branch and pushes,
 * writing Git objects directly: no working tree, no index, and identical files and directories
 * (the same manifest for thousands of sites) are hashed and stored once. Re-applied on the new
 * head after a non-fast-forward rejection.
 */
export async function commitFiles(
  remote: GitRemote,
  dir: string,
  options: CommitFilesOptions,
): Promise<CommitFilesResult> {
  const r = resolveRemote(remote);
  const target = options.reviewBranch ?? r.branch;
  if (!/^[\w./-]+$/.test(target) || target.includes('..')) {
    throw new InputError(`options.reviewBranch ${JSON.stringify(target)} is not a valid branch name`);
  }
  for (const path of options.files.keys()) safePath(dir, path);
  const owned = (path: string) => options.owned.some((top) => path === top || path.startsWith(`${top}/`));
  await fs.promises.mkdir(dir, { recursive: true });
  if (!(await isRepo(dir))) await git.init({ fs: gitFs, dir, defaultBranch: r.branch });
  // Blob ids by content, computed once per distinct content.
  const blobOf = new Map<string, string>();
  const contentOf = new Map<string, string>();
  for (const content of new Set(options.files.values())) {
    const { oid } = await git.hashBlob({ object: content });
    blobOf.set(content, oid);
    contentOf.set(oid, content);
  }
  const maxRetries = options.maxRetries ?? 5;
  for (let attempt = 1; ; attempt++) {
    const parent = await fetchBranch(r, dir, r.branch, 1);
    const current = parent === undefined ? new Map<string, string>() : await treeFiles(dir, parent);
    const desired = new Map<string, string>();
    for (const [path, oid] of current) if (!owned(path)) desired.set(path, oid);
    for (const [path, content] of options.files) desired.set(path, blobOf.get(content)!);
    const changed = [...new Set([...current.keys(), ...desired.keys()])]
      .filter((p) => current.get(p) !== desired.get(p))
      .sort();
    if (changed.length === 0) {
      return { commit: undefined, head: parent ?? '', branch: target, changed: [] };
    }
    const stored = new Set<string>();
    for (const path of changed) {
      const oid = desired.get(path);
      if (oid === undefined || stored.has(oid)) continue;
      await git.writeBlob({ fs: gitFs, dir, blob: Buffer.from(contentOf.get(oid)!) });
      stored.add(oid);
    }
    const tree = await writeTrees(dir, desired);
    const changes: FileChange[] = changed.map((path) => ({ path, content: options.files.get(path) ?? null }));
    const message = typeof options.message === 'function' ? options.message(changes) : options.message;
    const now = Math.floor(Date.now() / 1000);
    const person = { ...options.author, timestamp: now, timezoneOffset: 0 };
    const commit = await git.writeCommit({
      fs: gitFs,
      dir,
      commit: {
        message,
        tree,
        parent: parent === undefined ? [] : [parent],
        author: person,
        committer: person,
      },
    });
    await git.writeRef({ fs: gitFs, dir, ref: `refs/heads/${r.branch}`, value: commit, force: true });
    await git.writeRef({
      fs: gitFs,
      dir,
      ref: 'HEAD',
      value: `refs/heads/${r.branch}`,
      symbolic: true,
      force: true,
    });
    // The working tree (if any) no longer matches HEAD: a later checkout() rebuilds it.
    await markDirty(dir);
    if (await pushHead(r, dir, target)) return { commit, head: commit, branch: target, changed };
    if (attempt > maxRetries) {
      throw new ConflictError(
        `push to ${r.display} branch ${target} was rejected ${attempt} times: the branch keeps moving`,
      );
    }
    await sleep(20 + Math.floor(Math.random() * 80 * attempt));
  }
}
