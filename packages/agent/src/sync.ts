/**
 * Desired-state sync: long-polls the core for the site's directory of the GitOps repository; when
 * the core is unreachable (network error or 5xx) reads the repository directly (URL and branch of
 * the core's last answer), backing off exponentially up to a cap; when both are unreachable it
 * keeps what it has. The last desired state is persisted (`<data>/desired.json`) so a restart
 * without network still knows it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkout, readSiteState, subtreeIds, type SiteDeployment } from '@aiedge/gitops';
import { InputError, describeValue } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { CoreRequestOptions, CoreResponse } from './_core-client.js';
import { errorMessageOf } from './_core-client.js';
import { readJsonFile, writeJsonFile } from './state-file.js';
import { timerSleep, type Sleep } from './telemetry/forwarder.js';

/** File name of the persisted desired state in the data directory. */
export const DESIRED_FILE = 'desired.json';
/** Directory of the Git fallback's checkout in the data directory. */
export const GITOPS_CHECKOUT_DIR = 'gitops';

/** The site's desired state as received (and persisted): the files of `sites/<site>/` at a revision. */
export interface DesiredSnapshot {
  readonly site: string;
  /** Tree id of `sites/<site>` ('' when the repository has no directory for the site). */
  readonly revision: string;
  readonly commit: string;
  readonly repository: { readonly url: string; readonly branch: string; readonly path: string };
  /** Files of `sites/<site>/` by name. */
  readonly files: Readonly<Record<string, string>>;
  /** Where it came from. */
  readonly source: 'core' | 'git';
  /** When it was received (RFC 3339). */
  readonly receivedAt: string;
}

/** A new desired state, parsed. */
export interface DesiredUpdate {
  readonly snapshot: DesiredSnapshot;
  readonly deployments: SiteDeployment[];
}

/** What the sync needs of the core client. */
export interface CoreRequester {
  request(method: string, path: string, options?: CoreRequestOptions): Promise<CoreResponse>;
}

/** Reads the site's desired state from the GitOps repository directly. */
export type GitReader = (
  repository: DesiredSnapshot['repository'],
  site: string,
  signal: AbortSignal,
) => Promise<DesiredSnapshot>;

/** Options of {@link runDesiredStateSync}. */
export interface DesiredStateSyncOptions {
  readonly client: CoreRequester;
  readonly site: string;
  readonly dataDir: string;
  readonly logger: Logger;
  /** Called with every desired state whose revision differs from the previous one (first: the persisted one). */
  onDesired(update: DesiredUpdate): void;
  /** Called when the core becomes reachable (true) or unreachable (false). */
  onCoreReachable?(reachable: boolean): void;
  /** How long the core may hold a long-poll; default 60. */
  readonly waitSeconds?: number;
  /** First retry delay after a failure; doubles per failure; default 1 000. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay; default 60 000. */
  readonly maxBackoffMs?: number;
  /** Stops the sync. */
  readonly signal: AbortSignal;
  /** Injected for tests: the delay function. */
  readonly sleep?: Sleep;
  /** Injected for tests: the clock. */
  readonly now?: () => Date;
  /** Reads the repository when the core is unreachable; default {@link readDesiredFromGit} into `<data>/gitops`. */
  readonly readGit?: GitReader;
}

/** Delay before retry number `failures` (1-based): `initialMs · 2^(failures-1)`, at most `maxMs`. */
export function backoffDelayMs(failures: number, initialMs: number, maxMs: number): number {
  if (failures <= 0) return 0;
  return Math.min(maxMs, initialMs * 2 ** Math.min(failures - 1, 30));
}

/** Parses a snapshot's deployments (an empty site directory: none). */
export async function deploymentsOf(snapshot: DesiredSnapshot): Promise<SiteDeployment[]> {
  if (snapshot.files['kustomization.yaml'] === undefined) return [];
  const prefix = `sites/${snapshot.site}/`;
  const state = await readSiteState(
    (path) => (path.startsWith(prefix) ? snapshot.files[path.slice(prefix.length)] : undefined),
    snapshot.site,
  );
  return state.deployments;
}

/** Reads the persisted desired state; undefined when there is none. */
export async function loadDesiredSnapshot(
  dataDir: string,
  site: string,
): Promise<DesiredSnapshot | undefined> {
  const path = join(dataDir, DESIRED_FILE);
  const value = (await readJsonFile(path)) as Partial<DesiredSnapshot> | undefined;
  if (value === undefined) return undefined;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof value.revision !== 'string' ||
    typeof value.files !== 'object' ||
    value.files === null ||
    typeof value.repository !== 'object'
  ) {
    throw new InputError(`${path}: not a desired state (revision, files, repository)`);
  }
  if (value.site !== site) {
    throw new InputError(`${path} is for site ${describeValue(value.site)}, not ${site}`);
  }
  return value as DesiredSnapshot;
}

/**
 * The default Git fallback: a shallow checkout of the repository's branch into `checkoutDir`;
 * the revision is the tree id of `sites/<site>`, as the core computes it.
 */
export function gitReader(checkoutDir: string, now: () => Date = () => new Date()): GitReader {
  return async (repository, site) => {
    const { head } = await checkout({ url: repository.url, branch: repository.branch }, checkoutDir);
    const revision = head === '' ? '' : ((await subtreeIds(checkoutDir, head, 'sites')).get(site) ?? '');
    const files: Record<string, string> = {};
    if (revision !== '') {
      const dir = join(checkoutDir, 'sites', site);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (entry.isFile()) files[entry.name] = await readFile(join(dir, entry.name), 'utf8');
      }
    }
    return {
      site,
      revision,
      commit: head,
      repository: { url: repository.url, branch: repository.branch, path: `sites/${site}` },
      files,
      source: 'git',
      receivedAt: now().toISOString(),
    };
  };
}

function parseDesiredAnswer(body: string, site: string, now: Date): DesiredSnapshot {
  const value = JSON.parse(body) as Record<string, unknown>;
  const repository = value['repository'] as Record<string, unknown> | undefined;
  const files = value['files'];
  if (
    typeof value['revision'] !== 'string' ||
    typeof value['commit'] !== 'string' ||
    typeof repository !== 'object' ||
    typeof repository['url'] !== 'string' ||
    typeof repository['branch'] !== 'string' ||
    typeof files !== 'object' ||
    files === null
  ) {
    throw new InputError('desired state answer: missing revision, commit, repository or files');
  }
  for (const [name, content] of Object.entries(files)) {
    if (typeof content !== 'string' || name.includes('/') || name.startsWith('.')) {
      throw new InputError(`desired state answer: files[${describeValue(name)}] is not a plain file`);
    }
  }
  return {
    site,
    revision: value['revision'],
    commit: value['commit'],
    repository: {
      url: repository['url'],
      branch: repository['branch'],
      path: typeof repository['path'] === 'string' ? repository['path'] : `sites/${site}`,
    },
    files: files as Record<string, string>,
    source: 'core',
    receivedAt: now.toISOString(),
  };
}

type PollOutcome =
  | { kind: 'state'; snapshot: DesiredSnapshot }
  | { kind: 'unchanged' }
  | { kind: 'unreachable'; reason: string }
  | { kind: 'refused'; reason: string };

/** Runs the sync until `signal` aborts (see the module comment). Never rejects on network failures. */
export async function runDesiredStateSync(options: DesiredStateSyncOptions): Promise<void> {
  const { client, site, dataDir, signal } = options;
  const logger = options.logger.child({ component: 'agent.sync' });
  const sleep = options.sleep ?? timerSleep;
  const now = options.now ?? (() => new Date());
  const waitSeconds = options.waitSeconds ?? 60;
  const initialBackoffMs = options.initialBackoffMs ?? 1_000;
  const maxBackoffMs = options.maxBackoffMs ?? 60_000;
  const readGit = options.readGit ?? gitReader(join(dataDir, GITOPS_CHECKOUT_DIR), now);

  let current: DesiredSnapshot | undefined;
  try {
    current = await loadDesiredSnapshot(dataDir, site);
  } catch (error) {
    logger.warn('ignoring the persisted desired state', { err: error });
  }
  if (current !== undefined) await deliver(current, false);

  let failures = 0;
  let coreReachable: boolean | undefined;
  let gitFailing = false;
  const setReachable = (reachable: boolean) => {
    if (coreReachable === reachable) return;
    coreReachable = reachable;
    options.onCoreReachable?.(reachable);
  };

  async function deliver(snapshot: DesiredSnapshot, persist: boolean): Promise<void> {
    let deployments: SiteDeployment[];
    try {
      deployments = await deploymentsOf(snapshot);
    } catch (error) {
      // A desired state this agent cannot read is not applied; the revision is remembered so it
      // is not fetched again until it changes.
      logger.error('desired state is invalid; keeping the current one', {
        revision: snapshot.revision,
        err: error,
      });
      current = snapshot;
      return;
    }
    current = snapshot;
    if (persist) await writeJsonFile(join(dataDir, DESIRED_FILE), snapshot);
    logger.info('new desired state', {
      revision: snapshot.revision,
      commit: snapshot.commit,
      source: snapshot.source,
      deployments: deployments.length,
    });
    options.onDesired({ snapshot, deployments });
  }

  async function pollCore(): Promise<PollOutcome> {
    const query = new URLSearchParams({ waitSeconds: String(waitSeconds) });
    if (current !== undefined) query.set('known', current.revision);
    let response: CoreResponse;
    try {
      response = await client.request('GET', `/api/v1/sites/${site}/desired?${query.toString()}`, {
        signal,
        timeoutMs: waitSeconds * 1000 + 30_000,
      });
    } catch (error) {
      return { kind: 'unreachable', reason: (error as Error).message };
    }
    if (response.status === 304) return { kind: 'unchanged' };
    if (response.status === 200) {
      try {
        return { kind: 'state', snapshot: parseDesiredAnswer(response.body, site, now()) };
      } catch (error) {
        return { kind: 'refused', reason: (error as Error).message };
      }
    }
    if (response.status >= 500 || response.status === 429 || response.status === 408) {
      return { kind: 'unreachable', reason: errorMessageOf(response) };
    }
    return { kind: 'refused', reason: errorMessageOf(response) };
  }

  while (!signal.aborted) {
    const outcome = await pollCore();
    if (signal.aborted) break;
    if (outcome.kind === 'state' || outcome.kind === 'unchanged') {
      if (failures > 0 || coreReachable !== true) logger.info('core reachable');
      failures = 0;
      gitFailing = false;
      setReachable(true);
      if (outcome.kind === 'state' && outcome.snapshot.revision !== current?.revision) {
        await deliver(outcome.snapshot, true);
      } else if (outcome.kind === 'state' && current?.source === 'git') {
        // Same revision as read from Git: persist the core's answer (newer repository URL).
        current = outcome.snapshot;
        await writeJsonFile(join(dataDir, DESIRED_FILE), outcome.snapshot);
      }
      continue;
    }
    failures++;
    if (outcome.kind === 'refused') {
      // 4xx: revoked, deleted or misconfigured; Git is not consulted (a revoked site gets nothing new).
      logger.error('core refused the desired-state request', { reason: outcome.reason, failures });
    } else {
      if (coreReachable !== false) {
        logger.warn('core unreachable; reading the GitOps repository directly', { reason: outcome.reason });
      }
      setReachable(false);
      if (current !== undefined && current.repository.url !== '') {
        try {
          const snapshot = await readGit(current.repository, site, signal);
          if (gitFailing) logger.info('GitOps repository reachable', { revision: snapshot.revision });
          gitFailing = false;
          if (snapshot.revision !== current.revision) await deliver(snapshot, true);
        } catch (error) {
          if (!gitFailing) {
            logger.warn('GitOps repository unreachable too; keeping the current desired state', {
              err: error,
            });
          }
          gitFailing = true;
        }
      }
    }
    await sleep(backoffDelayMs(failures, initialBackoffMs, maxBackoffMs), signal);
  }
}
