/** Deployments: each deployment's model, image, selector, the GitOps commit that carries it, and per-site progress. */
import type { Deployment } from '@aiedge/protocol';
import type { Api } from '../api.js';
import {
  EmptyState,
  ErrorState,
  Link,
  LiveStatus,
  Loading,
  Mono,
  PageHeader,
  Stat,
  StateBadge,
} from '../components.js';
import { digestOfReference, formatAgo, formatTime, shortDigest, shortId } from '../format.js';
import { usePolling, useNow } from '../hooks.js';

/** The deployments page. */
export function Deployments(props: { api: Api }) {
  const now = useNow();
  const list = usePolling((signal) => props.api.deployments(signal), 'deployments', 4000);
  const items = list.data?.items;
  return (
    <>
      <PageHeader
        title="Deployments"
        subtitle="What the GitOps repository tells sites to run, and how far each site has got."
        actions={<LiveStatus updatedAt={list.updatedAt} error={list.error} now={now} />}
      />
      {list.loading && <Loading what="deployments" rows={3} />}
      {list.error !== undefined && items === undefined && (
        <ErrorState title="Cannot load the deployments" error={list.error} onRetry={list.reload} />
      )}
      {items !== undefined && (
        <>
          <section className="stats" aria-label="Deployment counts">
            <Stat label="Deployments" value={items.length} />
            <Stat
              label="Site rollouts serving"
              value={`${items.reduce((n, d) => n + d.summary.serving, 0)} / ${items.reduce((n, d) => n + d.summary.sites, 0)}`}
            />
            <Stat
              label="Failed at a site"
              value={items.reduce((n, d) => n + d.summary.failed, 0)}
              tone={items.some((d) => d.summary.failed > 0) ? 'bad' : undefined}
            />
          </section>
          {items.length === 0 ? (
            <EmptyState title="No deployments yet">
              <p>
                A pipeline&apos;s GitOps step creates one, or <code>POST /api/v1/deployments</code> with an
                image pinned by digest and a site selector.
              </p>
            </EmptyState>
          ) : (
            items.map((d) => <DeploymentCard key={d.name} deployment={d} now={now} />)
          )}
        </>
      )}
    </>
  );
}

function DeploymentCard(props: { deployment: Deployment; now: number }) {
  const d = props.deployment;
  const digest = digestOfReference(d.spec.image);
  const { summary } = d;
  const ratio = summary.sites === 0 ? 0 : summary.serving / summary.sites;
  return (
    <article className="card" aria-label={`Deployment ${d.name}`} data-deployment={d.name}>
      <header className="card-header">
        <h2>{d.name}</h2>
        <span className="muted small" title={formatTime(d.updatedAt)}>
          updated {formatAgo(d.updatedAt, props.now)}
        </span>
      </header>
      <dl className="facts facts-wide">
        <dt>Model</dt>
        <dd>
          {d.spec.model.name} <span className="version">v{d.spec.model.version}</span>
        </dd>
        <dt>Image</dt>
        <dd>
          <code className="wrap small">{d.spec.image.slice(0, d.spec.image.lastIndexOf('@'))}</code>{' '}
          {digest !== undefined && <Mono value={digest} short={shortDigest(digest)} />}
        </dd>
        <dt>Sites</dt>
        <dd>
          {Object.keys(d.spec.selector).length === 0
            ? 'every site'
            : Object.entries(d.spec.selector)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')}
        </dd>
        <dt>GitOps commit</dt>
        <dd data-commit={d.commit ?? ''}>
          {d.commit === null ? (
            <span className="muted">not committed yet</span>
          ) : (
            <Mono value={d.commit} short={shortId(d.commit, 12)} />
          )}
        </dd>
        {d.spec.pipelineRun !== undefined && (
          <>
            <dt>From run</dt>
            <dd>
              <Link to={`/pipelines/runs/${encodeURIComponent(d.spec.pipelineRun)}`}>
                <code>{d.spec.pipelineRun}</code>
              </Link>
            </dd>
          </>
        )}
      </dl>
      <div className="progress-row">
        <span
          className="progress"
          role="progressbar"
          aria-label={`Sites serving ${d.name}`}
          aria-valuemin={0}
          aria-valuemax={summary.sites}
          aria-valuenow={summary.serving}
        >
          <span className="progress-fill" style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
          {summary.failed > 0 && (
            <span
              className="progress-fail"
              style={{ width: `${((summary.failed / Math.max(1, summary.sites)) * 100).toFixed(1)}%` }}
            />
          )}
        </span>
        <span className="progress-text">
          {summary.serving} of {summary.sites} sites serving
          {summary.pending > 0 ? `, ${summary.pending} on the way` : ''}
          {summary.failed > 0 ? `, ${summary.failed} failed` : ''}
        </span>
      </div>
      {d.sites.length === 0 ? (
        <p className="muted">No enrolled site matches the selector.</p>
      ) : (
        <div className="table-wrap">
          <table className="table" aria-label={`Sites of ${d.name}`}>
            <thead>
              <tr>
                <th scope="col">Site</th>
                <th scope="col">State</th>
                <th scope="col">Version</th>
                <th scope="col">Image</th>
                <th scope="col">Since</th>
              </tr>
            </thead>
            <tbody>
              {d.sites.map((s) => (
                <tr key={s.site} data-site={s.site}>
                  <th scope="row">
                    <Link to={`/sites/${encodeURIComponent(s.site)}`}>{s.site}</Link>
                    {!s.online && <span className="muted small"> (offline)</span>}
                  </th>
                  <td>
                    <StateBadge state={s.state} {...(s.reason !== null ? { title: s.reason } : {})} />
                    {s.upToDate && <span className="visually-hidden"> up to date</span>}
                    {s.reason !== null && <div className="reason small">{s.reason}</div>}
                  </td>
                  <td>{s.version ?? '—'}</td>
                  <td>
                    {s.imageDigest === null ? (
                      '—'
                    ) : (
                      <>
                        <Mono value={s.imageDigest} short={shortDigest(s.imageDigest)} />
                        {digest !== undefined && s.imageDigest !== digest && (
                          <span className="muted small"> (older image)</span>
                        )}
                      </>
                    )}
                  </td>
                  <td title={formatTime(s.since)}>
                    {s.since === null ? '—' : formatAgo(s.since, props.now)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </article>
  );
}
