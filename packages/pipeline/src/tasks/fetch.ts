/** The `fetch` task: brings the model from `spec.source` into `<workspace>/model`. */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createSource } from '../sources/index.js';
import type { FetchedModel, TaskImplementation } from '../types.js';

/** Directory of the fetched model inside the workspace. */
export const MODEL_DIR = 'model';

/** Scratch directory the sources use inside the workspace (removed after a successful fetch). */
export const SCRATCH_DIR = '.fetch';

/**
 * One digest for a fetched model: the single file's SHA-256, or for several files the SHA-256 of
 * their `sha256sum`-style listing (`<hex>  <path>\n` per file, sorted by path).
 */
export function fetchedDigest(model: Pick<FetchedModel, 'files'>): string {
  const only = model.files.length === 1 ? model.files[0] : undefined;
  if (only !== undefined) return only.sha256;
  const lines = [...model.files]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.path}\n`)
    .join('');
  return createHash('sha256').update(lines).digest('hex');
}

/** Empties `<workspace>/model`, fetches the source into it and records `state.fetched`. */
export const fetchTask: TaskImplementation = async (context) => {
  const dir = join(context.workspace, MODEL_DIR);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const source = createSource(context.spec.spec.source);
  const fetched = await source.fetch(context, dir);
  context.state.fetched = fetched;
  // Scratch of the sources (clones, pulled layers): kept after a failure so a retry can resume.
  await rm(join(context.workspace, SCRATCH_DIR), { recursive: true, force: true });
  const bytes = fetched.files.reduce((sum, f) => sum + f.bytes, 0);
  return {
    origin: fetched.origin,
    dir: fetched.dir,
    files: String(fetched.files.length),
    bytes: String(bytes),
    sha256: fetchedDigest(fetched),
  };
};
