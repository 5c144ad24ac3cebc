/**
 * The core's side of GitOps: renders the deployments and sites of the store into the GitOps
 * repository (package gitops), one publish at a time with requests coalesced, keeps each site's
 * desired revision (the tree id of `sites/<site>`) and wakes the agents waiting on it.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  initBareRepository,
  parseDeploymentSpec,
  publishRepository,
  renderRepository,
  subtreeIds,
  type GitRemote,
  type RenderInput,
} from '@aiedge/gitops';
import { UnavailableError, type DesiredState } from '@aiedge/protocol';
import type { CoreContext } from './context.js';

/** What one publish did. */
export interface PublishOutcome {
  /** The new commit; undefined when nothing changed. */
  readonly commit: string | undefined;
  /** HEAD after the publish. */
  readonly head: string;
  /** Sites whose desired revision changed. */
  readonly sitesChanged: readonly string[];
  readonly changedFiles: readonly string[];
}

interface Waiter {
  readonly known: string;
  readonly resolve: (revision: string | undefined) => void;
}

/** How often a replica checks whether another replica moved the GitOps head. */
const FOLLOW_INTERVAL_MS = 2000;
const AUTHOR = { name: 'ai-edge core', email: 'core@aiedge.invalid' };

/** Publishes the store's deployments and sites to the GitOps repository and serves desired states. */
export class GitOpsPublisher {
  readonly #context: CoreContext;
  readonly remote: GitRemote;
  readonly #workDir: string;
  #head = '';
  #revisions = new Map<string, string>();
  /** Rendered files of every site at HEAD: site → (file name → content). */
  #files = new Map<string, Record<string, string>>();
  readonly #waiters = new Map<string, Set<Waiter>>();
  #running: Promise<PublishOutcome> | undefined;
  #queued: Promise<PublishOutcome> | undefined;
  #follow: NodeJS.Timeout | undefined;
  #listeners = new Set<(sites: readonly string[]) => void>();

  constructor(context: CoreContext) {
    this.#context = context;
    const { config } = context;
    const url = config.gitopsRepo ?? pathToFileURL(join(config.data, 'gitops.git')).toString();
    this.remote = {
      url,
      branch: config.gitopsBranch,
      ...(config.gitopsToken !== undefined ? { auth: { token: config.gitopsToken } } : {}),
      ...(config.gitopsCa !== undefined ? { ca: readFileSync(config.gitopsCa) } : {}),
    };
    this.#workDir = join(config.data, 'gitops-work');
  }

  /** Creates the local repository when none is configured, publishes once (reconciling a crash between store and Git) and follows the head. */
  async start(): Promise<void> {
    if (this.#context.config.gitopsRepo === undefined) {
      await initBareRepository(
        join(this.#context.config.data, 'gitops.git'),
        this.#context.config.gitopsBranch,
      );
    }
    try {
      await this.publish();
    } catch (error) {
      // A remote that is down must not keep the core from starting; the next publish retries.
      this.#context.logger.warn(
        'initial GitOps publish failed; desired state unavailable until a publish succeeds',
        {
          remote: this.remote.url.replace(/\/\/[^@/]*@/, '//'),
          err: error,
        },
      );
    }
    this.#follow = setInterval(() => void this.#followHead(), FOLLOW_INTERVAL_MS);
    this.#follow.unref();
  }

  /** The repository URL as agents and Argo CD are told. */
  get repositoryUrl(): string {
    return this.remote.url;
  }

  /** Current HEAD commit ('' before the first publish). */
  get head(): string {
    return this.#head;
  }

  /** Desired revision of `site` ('' when the repository has no directory for it yet). */
  revisionOf(site: string): string {
    return this.#revisions.get(site) ?? '';
  }

  /** Calls `listener` with the sites whose desired revision changed after each publish. */
  onChange(listener: (sites: readonly string[]) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The desired state of `site` at HEAD; throws UnavailableError before the first successful publish. */
  desiredState(site: string): DesiredState {
    if (this.#head === '') {
      throw new UnavailableError('the GitOps repository has not been published yet', {
        retryAfterSeconds: 5,
      });
    }
    return {
      site,
      revision: this.revisionOf(site),
      commit: this.#head,
      repository: { url: this.remote.url, branch: this.#context.config.gitopsBranch, path: `sites/${site}` },
      files: this.#files.get(site) ?? {},
    };
  }

  /**
   * Waits until `site`'s revision differs from `known` (resolves with it) or `timeoutMs` passes
   * or `signal` aborts (resolves undefined). Costs one small object per waiter; no polling.
   */
  waitForChange(
    site: string,
    known: string,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    const current = this.revisionOf(site);
    if (current !== known) return Promise.resolve(current);
    return new Promise((resolve) => {
      let set = this.#waiters.get(site);
      if (set === undefined) this.#waiters.set(site, (set = new Set()));
      const done = (revision: string | undefined) => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        set.delete(waiter);
        if (set.size === 0 && this.#waiters.get(site) === set) this.#waiters.delete(site);
        resolve(revision);
      };
      const waiter: Waiter = { known, resolve: done };
      const onAbort = () => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      set.add(waiter);
    });
  }

  /** Agents currently waiting (for metrics). */
  get waiting(): number {
    let n = 0;
    for (const set of this.#waiters.values()) n += set.size;
    return n;
  }

  /**
   * Publishes the store's current deployments and sites. Calls made while a publish runs share
   * the next one, so a burst of changes costs at most two publishes.
   */
  publish(runId?: string): Promise<PublishOutcome> {
    if (this.#running === undefined) {
      this.#running = this.#publishNow(runId).finally(() => (this.#running = undefined));
      return this.#running;
    }
    this.#queued ??= this.#running
      .catch(() => undefined)
      .then(() => {
        this.#queued = undefined;
        return this.publish(runId);
      });
    return this.#queued;
  }

  async #renderInput(): Promise<RenderInput> {
    const { db } = this.#context.store;
    const deployments = await db.selectFrom('deployments').select(['name', 'spec']).orderBy('name').execute();
    const sites = await db
      .selectFrom('sites')
      .select(['name', 'labels'])
      .where('revoked_at', 'is', null)
      .orderBy('name')
      .execute();
    return {
      deployments: deployments.map((d) => parseDeploymentSpec(JSON.parse(d.spec), `deployments.${d.name}`)),
      sites: sites.map((s) => ({ name: s.name, labels: JSON.parse(s.labels) as Record<string, string> })),
      repoUrl: this.remote.url,
      revision: this.#context.config.gitopsBranch,
    };
  }

  async #publishNow(runId?: string): Promise<PublishOutcome> {
    const input = await this.#renderInput();
    const result = await publishRepository({
      remote: this.remote,
      workDir: this.#workDir,
      input,
      author: AUTHOR,
      ...(runId !== undefined ? { runId } : {}),
    });
    const head = result.head;
    const changedSites = this.#apply(
      head,
      renderRepository(input),
      await subtreeIds(this.#workDir, head, 'sites'),
    );
    if (result.commit !== undefined) {
      const touched = result.changed
        .map((p) => /^deployments\/([^/]+)\.yaml$/.exec(p)?.[1])
        .filter((n): n is string => n !== undefined);
      await this.#context.store.transaction(async (tx) => {
        if (touched.length > 0)
          await tx
            .updateTable('deployments')
            .set({ commit: result.commit ?? null })
            .where('name', 'in', touched)
            .execute();
        await tx
          .insertInto('core_state')
          .values({ key: 'gitops_head', value: head })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value: head }))
          .execute();
      });
      this.#context.logger.info('GitOps repository published', {
        commit: result.commit,
        files: result.changed.length,
        sites: changedSites.length,
      });
    }
    return { commit: result.commit, head, sitesChanged: changedSites, changedFiles: result.changed };
  }

  /** Installs a new HEAD's revisions and files; wakes waiters of changed sites. */
  #apply(head: string, rendered: ReadonlyMap<string, string>, trees: Map<string, string>): string[] {
    const files = new Map<string, Record<string, string>>();
    for (const [path, content] of rendered) {
      const m = /^sites\/([^/]+)\/(.+)$/.exec(path);
      if (m === null) continue;
      const [, site, name] = m as unknown as [string, string, string];
      let entry = files.get(site);
      if (entry === undefined) files.set(site, (entry = {}));
      entry[name] = content;
    }
    const changed: string[] = [];
    for (const site of new Set([...trees.keys(), ...this.#revisions.keys()])) {
      if (trees.get(site) !== this.#revisions.get(site)) changed.push(site);
    }
    this.#head = head;
    this.#revisions = trees;
    this.#files = files;
    for (const site of changed) {
      const set = this.#waiters.get(site);
      if (set === undefined) continue;
      const revision = this.revisionOf(site);
      for (const waiter of [...set]) if (waiter.known !== revision) waiter.resolve(revision);
    }
    if (changed.length > 0) for (const listener of this.#listeners) listener(changed);
    return changed;
  }

  /** Another replica published: re-render from the (shared) store so this replica's view matches. */
  async #followHead(): Promise<void> {
    if (this.#running !== undefined) return;
    try {
      const row = await this.#context.store.db
        .selectFrom('core_state')
        .select('value')
        .where('key', '=', 'gitops_head')
        .executeTakeFirst();
      if (row !== undefined && row.value !== this.#head) await this.publish();
    } catch (error) {
      this.#context.logger.warn('following the GitOps head failed', { err: error });
    }
  }

  /** Stops following and answers every waiter (they see no change and return 304). */
  async close(): Promise<void> {
    if (this.#follow !== undefined) clearInterval(this.#follow);
    await this.#running?.catch(() => undefined);
    for (const set of this.#waiters.values()) for (const w of [...set]) w.resolve(undefined);
  }
}
