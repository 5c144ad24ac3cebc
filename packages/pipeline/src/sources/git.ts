/**
 * The `git` model source: a file or directory (`path`) of a branch (`ref`) or pinned commit of a Git
 * repository. The clone is made with `@aiedge/gitops` (http(s) with CA and auth, `file://`, ssh);
 * files are read from the commit's tree with isomorphic-git. Git LFS pointer files are refused.
 */
import * as fs from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createHash } from 'node:crypto';
import git from 'isomorphic-git';
import { checkout, type GitRemote } from '@aiedge/gitops';
import { InputError, NotFoundError } from '@aiedge/protocol';
import type { FetchedFile, FetchedModel, ModelSource, StepContext } from '../types.js';
import { displayUrl, inside, resolveSpecPath, safeRelativePath, secretFromEnv, sortFiles } from './_files.js';

/** Settings of {@link GitSource} (the `spec.source.git` block). */
export interface GitSourceSpec {
  readonly url: string;
  /** Branch; default `main`. */
  readonly ref?: string;
  /** Commit to pin (7–40 hex digits), reachable from `ref`. */
  readonly commit?: string;
  /** File or directory inside the repository; default the whole tree. */
  readonly path?: string;
  readonly tokenEnv?: string;
  readonly usernameEnv?: string;
  readonly passwordEnv?: string;
  readonly caFile?: string;
}

/** First line of every Git LFS pointer file. */
export const LFS_POINTER_PREFIX = 'version https://git-lfs.github.com/spec/v1';

/** History depths tried, in order, to reach a pinned commit that is not the branch head. */
const DEEPEN_STEPS = [1, 50, 1000, 100_000] as const;

/** Fetches a model from a Git repository. */
export class GitSource implements ModelSource {
  readonly kind = 'git';
  readonly #spec: GitSourceSpec;
  readonly #field: string;

  constructor(spec: GitSourceSpec, field = 'spec.source.git') {
    if (spec.tokenEnv !== undefined && (spec.usernameEnv !== undefined || spec.passwordEnv !== undefined)) {
      throw new InputError(`${field}: set tokenEnv or usernameEnv/passwordEnv, not both`);
    }
    if ((spec.usernameEnv === undefined) !== (spec.passwordEnv === undefined)) {
      throw new InputError(`${field}: set both usernameEnv and passwordEnv, or neither`);
    }
    if (spec.commit !== undefined && !/^[0-9a-f]{7,40}$/.test(spec.commit)) {
      throw new InputError(`${field}.commit must be 7 to 40 lowercase hex digits`);
    }
    this.#spec = spec;
    this.#field = field;
  }

  /** Clones (shallow, deepened as needed for a pinned commit) and writes the selected files into `dir`. */
  async fetch(context: StepContext, dir: string): Promise<FetchedModel> {
    const spec = this.#spec;
    const shown = displayUrl(spec.url);
    const remote = await this.#remote(context);
    const work = join(context.workspace, '.fetch', 'git');
    let commit: string | undefined;
    for (const depth of DEEPEN_STEPS) {
      context.signal.throwIfAborted();
      const { head } = await checkout(remote, work, { depth });
      if (head === '') {
        throw new NotFoundError(`${this.#field}: ${shown} has no branch ${remote.branch ?? 'main'}`);
      }
      if (spec.commit === undefined) {
        commit = head;
        break;
      }
      commit = await expand(work, spec.commit);
      if (commit !== undefined) break;
    }
    if (commit === undefined) {
      throw new NotFoundError(
        `${this.#field}.commit ${spec.commit ?? ''} is not in the history of ${shown} branch ${remote.branch ?? 'main'}`,
      );
    }
    const selected = spec.path === undefined || spec.path.replace(/^\/+|\/+$/g, '') === '' ? '' : spec.path;
    const base = selected === '' ? '' : safeRelativePath(selected.replace(/\/+$/, ''), `${this.#field}.path`);
    const all = await git.listFiles({ fs, dir: work, ref: commit });
    let picked: { path: string; rel: string }[];
    if (base !== '' && all.includes(base)) {
      picked = [{ path: base, rel: base.split('/').pop() ?? base }];
    } else {
      picked = all
        .filter((f) => base === '' || f.startsWith(`${base}/`))
        .map((f) => ({ path: f, rel: base === '' ? f : f.slice(base.length + 1) }));
    }
    if (picked.length === 0) {
      throw new NotFoundError(
        `${this.#field}.path ${JSON.stringify(base)} does not exist in ${shown} at commit ${commit}`,
      );
    }
    const files: FetchedFile[] = [];
    for (const file of picked) {
      context.signal.throwIfAborted();
      const { blob } = await git.readBlob({ fs, dir: work, oid: commit, filepath: file.path });
      const bytes = Buffer.from(blob);
      const lfs = lfsPointer(bytes);
      if (lfs !== undefined) {
        throw new InputError(
          `${shown} ${file.path} at commit ${commit.slice(0, 12)} is a Git LFS pointer, not the model: ${lfs}; ` +
            'ai-edge does not fetch LFS objects: commit the file itself, or publish it to S3, a model registry or an OCI registry',
        );
      }
      const target = inside(dir, safeRelativePath(file.rel, `${shown} file`));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, bytes);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      files.push({ path: file.rel, bytes: bytes.length, sha256 });
      context.progress({ item: file.path, bytes: bytes.length, total: bytes.length });
    }
    context.log(`${shown}@${commit}: ${files.length} file(s)${base === '' ? '' : ` from ${base}`}`);
    return {
      dir,
      files: sortFiles(files),
      origin: `git+${shown}@${commit}${base === '' ? '' : `#${base}`}`,
    };
  }

  async #remote(context: StepContext): Promise<GitRemote> {
    const spec = this.#spec;
    let auth: GitRemote['auth'];
    if (spec.tokenEnv !== undefined) {
      auth = { token: secretFromEnv(context.env, spec.tokenEnv, `${this.#field}.tokenEnv`) };
    } else if (spec.usernameEnv !== undefined && spec.passwordEnv !== undefined) {
      auth = {
        username: secretFromEnv(context.env, spec.usernameEnv, `${this.#field}.usernameEnv`),
        password: secretFromEnv(context.env, spec.passwordEnv, `${this.#field}.passwordEnv`),
      };
    }
    const ca =
      spec.caFile === undefined ? undefined : await readFile(resolveSpecPath(context.baseDir, spec.caFile));
    return {
      url: spec.url,
      ...(spec.ref !== undefined ? { branch: spec.ref } : {}),
      ...(auth !== undefined ? { auth } : {}),
      ...(ca !== undefined ? { ca } : {}),
    };
  }
}

/** The full id of a (possibly abbreviated) commit in the clone, or undefined when it is not there. */
async function expand(dir: string, commit: string): Promise<string | undefined> {
  try {
    const oid = commit.length === 40 ? commit : await git.expandOid({ fs, dir, oid: commit });
    await git.readCommit({ fs, dir, oid });
    return oid;
  } catch {
    return undefined;
  }
}

/** A description of the LFS object when `bytes` is a Git LFS pointer file, else undefined. */
export function lfsPointer(bytes: Uint8Array): string | undefined {
  if (bytes.length > 1024) return undefined;
  const text = Buffer.from(bytes).toString('utf8');
  if (!text.startsWith(LFS_POINTER_PREFIX)) return undefined;
  const oid = /^oid (\S+)$/m.exec(text)?.[1];
  const size = /^size (\d+)$/m.exec(text)?.[1];
  const parts = [
    oid !== undefined ? `oid ${oid}` : undefined,
    size !== undefined ? `size ${size} bytes` : undefined,
  ];
  const described = parts.filter((x) => x !== undefined).join(', ');
  return described === '' ? 'a pointer without oid or size' : described;
}
