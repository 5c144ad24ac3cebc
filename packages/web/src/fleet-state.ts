/** What the dashboard derives from sites and deployments: health, revision drift, label filters. Pure. */
import type { DeployedModel, DeploymentState, Site } from '@aiedge/protocol';

/** A site's health, worst first. */
export type SiteHealth = 'revoked' | 'offline' | 'failing' | 'progressing' | 'healthy' | 'idle';

const FAILED: readonly DeploymentState[] = ['Failed', 'RolledBack'];
const PROGRESSING: readonly DeploymentState[] = ['Pending', 'Pulling', 'Starting'];

/**
 * Health of a site: revoked; offline (no heartbeat lately); failing (a deployment failed or was
 * rolled back); progressing (a deployment is on its way); healthy (everything serves); idle (runs nothing).
 */
export function siteHealth(site: Pick<Site, 'revoked' | 'online' | 'deployments'>): SiteHealth {
  if (site.revoked) return 'revoked';
  if (!site.online) return 'offline';
  if (site.deployments.some((d) => FAILED.includes(d.state))) return 'failing';
  if (site.deployments.some((d) => PROGRESSING.includes(d.state))) return 'progressing';
  return site.deployments.length === 0 ? 'idle' : 'healthy';
}

/** Words for each health. */
export const HEALTH_LABELS: Readonly<Record<SiteHealth, string>> = {
  revoked: 'Revoked',
  offline: 'Offline',
  failing: 'Failing',
  progressing: 'Progressing',
  healthy: 'Healthy',
  idle: 'No models',
};

/** Where a site stands against its desired GitOps revision. */
export interface RevisionStatus {
  readonly kind: 'in-sync' | 'drift' | 'not-published' | 'never-applied' | 'revoked';
  readonly desired: string;
  readonly applied: string | null;
  /** One line for people. */
  readonly text: string;
}

/** Compares the desired and applied GitOps revisions of a site (revisions are Git tree ids). */
export function revisionStatus(
  site: Pick<Site, 'revoked' | 'desiredRevision' | 'appliedRevision'>,
): RevisionStatus {
  const desired = site.desiredRevision;
  const applied = site.appliedRevision;
  const short = (id: string) => id.slice(0, 8);
  if (site.revoked) return { kind: 'revoked', desired, applied, text: 'revoked: gets no desired state' };
  if (desired === '')
    return { kind: 'not-published', desired, applied, text: 'nothing published for it yet' };
  if (applied === null || applied === '')
    return { kind: 'never-applied', desired, applied, text: `never applied; desired ${short(desired)}` };
  if (applied === desired) return { kind: 'in-sync', desired, applied, text: `in sync at ${short(desired)}` };
  return { kind: 'drift', desired, applied, text: `applied ${short(applied)}, desired ${short(desired)}` };
}

/** The models a site serves or is getting, one per deployment, by deployment name. */
export function servedModels(site: Pick<Site, 'deployments'>): readonly DeployedModel[] {
  return [...site.deployments].sort((a, b) => a.deployment.localeCompare(b.deployment));
}

/** Figures over a list of sites, beyond the API's counts. */
export interface FleetFigures {
  readonly failing: number;
  readonly progressing: number;
  /** Distinct `model:version` served somewhere. */
  readonly modelVersions: number;
  /** Deployments in state Serving, over all sites. */
  readonly serving: number;
}

/** Failing and progressing sites, distinct model versions and serving deployments. */
export function fleetFigures(sites: readonly Site[]): FleetFigures {
  const versions = new Set<string>();
  let serving = 0;
  let failing = 0;
  let progressing = 0;
  for (const site of sites) {
    const health = siteHealth(site);
    if (health === 'failing') failing++;
    if (health === 'progressing') progressing++;
    for (const d of site.deployments) {
      if (d.state === 'Serving') {
        serving++;
        versions.add(`${d.model}:${d.version}`);
      }
    }
  }
  return { failing, progressing, modelVersions: versions.size, serving };
}

/** The `key=value` terms of a label selector text (`tier=edge, region=eu`), trimmed, without empties. */
export function selectorTerms(selector: string): string[] {
  return selector
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

/** The key and value of an equality term (`k=v`, `k==v`), else undefined. */
function equalityTerm(term: string): { key: string; value: string } | undefined {
  const m = /^([^=!\s]+)\s*==?\s*([^=!\s]*)$/.exec(term);
  return m === null ? undefined : { key: m[1] ?? '', value: m[2] ?? '' };
}

/**
 * Adds `key=value` to a selector, or removes it when present (clicking a label chip); another
 * value of the same key is replaced, since a site has one value per key.
 */
export function toggleLabel(selector: string, key: string, value: string): string {
  const terms = selectorTerms(selector);
  const present = terms.some((t) => {
    const eq = equalityTerm(t);
    return eq?.key === key && eq.value === value;
  });
  const others = terms.filter((t) => equalityTerm(t)?.key !== key);
  return (present ? others : [...others, `${key}=${value}`]).join(', ');
}

/** Labels as sorted `[key, value]` pairs. */
export function labelPairs(labels: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
}
