/** Fleet: every site with its state, models, health and GitOps drift; filter by label; counts on top. */
import { useEffect, useState, type FormEvent } from 'react';
import type { Api } from '../api.js';
import {
  EmptyState,
  ErrorState,
  Labels,
  Link,
  LiveStatus,
  Loading,
  PageHeader,
  Stat,
  StateBadge,
} from '../components.js';
import {
  HEALTH_LABELS,
  fleetFigures,
  revisionStatus,
  selectorTerms,
  servedModels,
  siteHealth,
  toggleLabel,
} from '../fleet-state.js';
import { formatAgo, formatTime } from '../format.js';
import { usePolling, useNow } from '../hooks.js';
import { navigate, useLocation } from '../router.js';

/** The fleet page; the label filter lives in the URL (`?selector=tier%3Dedge`). */
export function Fleet(props: { api: Api }) {
  const { query } = useLocation();
  const selector = query.get('selector') ?? '';
  const [draft, setDraft] = useState(selector);
  useEffect(() => setDraft(selector), [selector]);
  const now = useNow();
  const sites = usePolling((signal) => props.api.sites(selector, signal), `sites:${selector}`, 4000);
  const setSelector = (next: string) => {
    const q = new URLSearchParams();
    if (next.trim() !== '') q.set('selector', next.trim());
    navigate(q.size === 0 ? '/' : `/?${q}`, true);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setSelector(draft);
  };
  const terms = new Set(selectorTerms(selector));
  const filterError = sites.error !== undefined && selector !== '' && /selector/.test(sites.error.message);

  return (
    <>
      <PageHeader
        title="Fleet"
        subtitle="Every enrolled site, what it serves, and whether it runs what GitOps says it should."
        actions={
          <LiveStatus updatedAt={sites.updatedAt} error={filterError ? undefined : sites.error} now={now} />
        }
      />
      <form className="filter" role="search" onSubmit={submit}>
        <label htmlFor="selector">Filter by label</label>
        <input
          id="selector"
          type="search"
          placeholder="tier=edge, region!=eu"
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          aria-describedby="selector-help"
        />
        <button type="submit">Apply</button>
        {selector !== '' && (
          <button type="button" className="link-button" onClick={() => setSelector('')}>
            Clear filter
          </button>
        )}
        <span id="selector-help" className="hint">
          Kubernetes-style selector: k=v, k!=v, k, !k joined by commas. Click a label below to add it.
        </span>
      </form>
      {filterError && (
        <p className="form-error" role="alert">
          {sites.error?.message}
        </p>
      )}
      {sites.loading && <Loading what="sites" rows={4} />}
      {!filterError && sites.error !== undefined && sites.data === undefined && (
        <ErrorState title="Cannot load the sites" error={sites.error} onRetry={sites.reload} />
      )}
      {sites.data !== undefined && (
        <FleetTable
          data={sites.data}
          now={now}
          selector={selector}
          onPick={(k, v) => setSelector(toggleLabel(selector, k, v))}
          active={(k, v) => terms.has(`${k}=${v}`)}
        />
      )}
    </>
  );
}

function FleetTable(props: {
  data: Awaited<ReturnType<Api['sites']>>;
  now: number;
  selector: string;
  onPick: (k: string, v: string) => void;
  active: (k: string, v: string) => boolean;
}) {
  const { items, counts } = props.data;
  const figures = fleetFigures(items);
  return (
    <>
      <section className="stats" aria-label="Fleet counts">
        <Stat label={props.selector === '' ? 'Sites' : 'Sites matching'} value={counts.total} />
        <Stat label="Online" value={counts.online} tone={counts.online > 0 ? 'ok' : undefined} />
        <Stat label="Offline" value={counts.offline} tone={counts.offline > 0 ? 'warn' : undefined} />
        <Stat
          label="Drifting"
          value={counts.drift}
          tone={counts.drift > 0 ? 'warn' : undefined}
          hint="Sites whose applied GitOps revision differs from the desired one"
        />
        <Stat label="Failing" value={figures.failing} tone={figures.failing > 0 ? 'bad' : undefined} />
        <Stat
          label="Model versions serving"
          value={figures.modelVersions}
          hint={`${figures.serving} deployments serving`}
        />
      </section>
      {items.length === 0 ? (
        props.selector === '' ? (
          <EmptyState title="No sites enrolled yet">
            <p>
              Create an enrollment token with <code>aiedge core token create --enrollment</code> and start an
              agent with <code>aiedge agent enroll</code> at the site. It appears here as soon as it enrolls.
            </p>
          </EmptyState>
        ) : (
          <EmptyState title="No site matches this filter">
            <p>
              No site has labels matching <code>{props.selector}</code>.
            </p>
          </EmptyState>
        )
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label="Sites">
            <thead>
              <tr>
                <th scope="col">Site</th>
                <th scope="col">Status</th>
                <th scope="col">Last seen</th>
                <th scope="col">Labels</th>
                <th scope="col">Models</th>
                <th scope="col">Health</th>
                <th scope="col">GitOps revision</th>
              </tr>
            </thead>
            <tbody>
              {items.map((site) => {
                const health = siteHealth(site);
                const revision = revisionStatus(site);
                return (
                  <tr key={site.name} data-site={site.name}>
                    <th scope="row">
                      <Link to={`/sites/${encodeURIComponent(site.name)}`}>{site.name}</Link>
                      <div className="muted small">
                        {site.kind} · agent {site.agentVersion || '—'}
                      </div>
                    </th>
                    <td>
                      {site.revoked ? (
                        <StateBadge state="revoked" label="Revoked" />
                      ) : site.online ? (
                        <StateBadge state="online" label="Online" />
                      ) : (
                        <StateBadge state="offline" label="Offline" />
                      )}
                    </td>
                    <td title={formatTime(site.lastSeen)}>{formatAgo(site.lastSeen, props.now)}</td>
                    <td>
                      <Labels labels={site.labels} onPick={props.onPick} active={props.active} />
                    </td>
                    <td>
                      {site.deployments.length === 0 ? (
                        <span className="muted">none</span>
                      ) : (
                        <ul className="plain">
                          {servedModels(site).map((d) => (
                            <li key={d.deployment}>
                              <span className="model-version">
                                {d.model} <span className="version">v{d.version}</span>
                              </span>{' '}
                              <StateBadge
                                state={d.state}
                                {...(d.reason !== undefined ? { title: d.reason } : {})}
                              />
                            </li>
                          ))}
                        </ul>
                      )}
                    </td>
                    <td>
                      <StateBadge state={health} label={HEALTH_LABELS[health]} />
                    </td>
                    <td>
                      <span className={`revision revision-${revision.kind}`}>
                        {revision.kind === 'drift' ? 'Drift: ' : revision.kind === 'in-sync' ? '✓ ' : ''}
                        {revision.text}
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
