/**
 * Publishing a rendered repository: render, compare with the checked-out tree, and commit and
 * push only what changed, with a message naming the deployments, their image digests and the
 * pipeline run. A push that loses a race re-renders on the new head and retries.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { commitFiles, type FileChange, type GitRemote } from './git.js';
import { renderRepository, type RenderInput } from './render.js';

/** Options of {@link publishRepository}. */
export interface PublishOptions {
  readonly remote: GitRemote;
  /** Working directory for the checkout (reused across calls). */
  readonly workDir: string;
  readonly input: RenderInput;
  readonly author: { readonly name: string; readonly email: string };
  /** Pipeline run that caused this change, named in the commit message. */
  readonly runId?: string;
  /** Push to `aiedge/<deployment>/<short-digest>` instead of the branch, for teams that merge through pull requests. */
  readonly review?: boolean;
}

/** What {@link publishRepository} did. */
export interface PublishResult {
  /** The new commit, or undefined when nothing changed (no commit). */
  readonly commit: string | undefined;
  readonly branch: string;
  /** The branch's head after the call: the new commit, or the unchanged head ('' for an empty repository). */
  readonly head: string;
  /** Files written or deleted. */
  readonly changed: readonly string[];
}

/** Directories the renderer owns; a file there that is no longer rendered is deleted. */
const OWNED = ['deployments', 'sites', 'argocd'];

async function ownedFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const path = join(d, e.name);
      if (e.isDirectory()) await walk(path);
      else if (e.isFile()) out.push(relative(dir, path).split(sep).join('/'));
    }
  };
  for (const top of OWNED) await walk(join(dir, top));
  return out;
}

/** The changes that make the tree in `dir` equal to `rendered` (within the renderer's directories). */
export async function diffRendered(
  dir: string,
  rendered: ReadonlyMap<string, string>,
): Promise<FileChange[]> {
  const changes: FileChange[] = [];
  for (const [path, content] of rendered) {
    const current = await readFile(join(dir, path), 'utf8').catch(() => undefined);
    if (current !== content) changes.push({ path, content });
  }
  for (const path of await ownedFiles(dir)) if (!rendered.has(path)) changes.push({ path, content: null });
  return changes.sort((a, b) => (a.path < b.path ? -1 : 1));
}

function shortDigest(image: string): string {
  const at = image.indexOf('@sha256:');
  return at < 0 ? image : image.slice(at + '@sha256:'.length, at + '@sha256:'.length + 12);
}

/** A commit message that says what changed: deployments, models, digests, sites, run. */
export function commitMessage(input: RenderInput, changes: readonly FileChange[], runId?: string): string {
  const touched = new Set(
    changes
      .map((c) => /^(?:deployments\/([^/]+)\.yaml|sites\/[^/]+\/([^/]+)\.yaml)$/.exec(c.path))
      .flatMap((m) => (m ? [m[1] ?? m[2]] : [])),
  );
  const deployments = input.deployments.filter((d) => touched.has(d.name));
  const removed = [...touched].filter(
    (name) => name !== 'kustomization' && !input.deployments.some((d) => d.name === name),
  );
  const subject =
    deployments.length === 0 && removed.length === 0
      ? 'aiedge: update site configuration'
      : `aiedge: deploy ${[
          ...deployments.map(
            (d) => `${d.name} (${d.model.name} v${d.model.version}, ${shortDigest(d.image)})`,
          ),
          ...removed.map((name) => `remove ${name}`),
        ].join(', ')}`;
  const body = [
    ...deployments.map((d) => `${d.name}: ${d.image}`),
    ...(runId !== undefined ? [`Pipeline-Run: ${runId}`] : []),
    '',
    ...changes.map((c) => `${c.content === null ? 'deleted' : 'updated'} ${c.path}`),
  ];
  return `${subject}\n\n${body.join('\n')}\n`;
}

/** Renders `input` and commits and pushes what changed; nothing changed → no commit. */
export async function publishRepository(options: PublishOptions): Promise<PublishResult> {
  const rendered = renderRepository(options.input);
  const single = options.input.deployments.length === 1 ? options.input.deployments[0] : undefined;
  const reviewBranch =
    options.review === true
      ? `aiedge/${single?.name ?? 'deployments'}/${single !== undefined ? shortDigest(single.image).slice(0, 8) : Date.now().toString(36)}`
      : undefined;
  const result = await commitFiles(options.remote, options.workDir, {
    files: rendered,
    owned: OWNED,
    message: (changes) => commitMessage(options.input, changes, options.runId),
    author: options.author,
    ...(reviewBranch !== undefined ? { reviewBranch } : {}),
  });
  return { commit: result.commit, branch: result.branch, head: result.head, changed: [...result.changed] };
}
