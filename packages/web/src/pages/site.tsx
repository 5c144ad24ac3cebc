/** Site: its state, resources, deployments with their state history, and telemetry charts per model. */
import { useState } from 'react';
import type { DeployedModel, Site as SiteResource, TelemetrySeriesMetric } from '@aiedge/protocol';
import type { Api, SiteEvent } from '../api.js';
import { LineChart, type ChartLine } from '../chart.js';
import {
  Badge,
  EmptyState,
  ErrorState,
  Labels,
  Link,
  LiveStatus,
  Loading,
  Mono,
  PageHeader,
  Stat,
  StateBadge,
} from '../components.js';
import { HEALTH_LABELS, revisionStatus, servedModels, siteHealth } from '../fleet-state.js';
import {
  formatAgo,
  formatBytes,
  formatCount,
  formatLatency,
  formatPercent,
  formatRate,
  formatTime,
  shortDigest,
} from '../format.js';
import { usePolling, useNow } from '../hooks.js';

const RANGES = [
  { label: '15 min', seconds: 900 },
  { label: '1 h', seconds: 3600 },
  { label: '6 h', seconds: 21_600 },
  { label: '24 h', seconds: 86_400 },
] as const;

/** The site page. */
export function SitePage(props: { api: Api; name: string }) {
  const now = useNow();
  const site = usePolling((signal) => props.api.site(props.name, signal), `site:${props.name}`, 4000);
  const events = usePolling(
    (signal) => props.api.siteEvents(props.name, signal),
    `events:${props.name}`,
    4000,
  );
  if (site.loading) return <Loading what={`site ${props.name}`} rows={6} />;
  if (site.data === undefined) {
    return (
      <>
        <PageHeader title={props.name} subtitle={<Link to="/">← Fleet</Link>} />
        <ErrorState
          title={`Cannot load site ${props.name}`}
          error={site.error ?? new Error('unknown error')}
          onRetry={site.reload}
        />
      </>
    );
  }
  const s = site.data;
  const health = siteHealth(s);
  const revision = revisionStatus(s);
  return (
    <>
      <PageHeader
        title={
          <>
            {s.name}{' '}
            {s.revoked ? (
              <StateBadge state="revoked" label="Revoked" />
            ) : (
              <StateBadge state={s.online ? 'online' : 'offline'} label={s.online ? 'Online' : 'Offline'} />
            )}
          </>
        }
        subtitle={
          <>
            <Link to="/">← Fleet</Link> · {s.kind} · agent {s.agentVersion || 'unknown'} · enrolled{' '}
            {formatAgo(s.createdAt, now)}
          </>
        }
        actions={<LiveStatus updatedAt={site.updatedAt} error={site.error} now={now} />}
      />
      <section className="stats" aria-label="Site state">
        <Stat label="Health" value={<StateBadge state={health} label={HEALTH_LABELS[health]} />} />
        <Stat label="Last seen" value={formatAgo(s.lastSeen, now)} hint={formatTime(s.lastSeen)} />
        <Stat label="Deployments" value={s.deployments.length} />
        <Stat
          label="GitOps revision"
          value={<span className={`revision revision-${revision.kind}`}>{revision.text}</span>}
          tone={revision.kind === 'drift' ? 'warn' : undefined}
        />
      </section>
      <div className="grid-2">
        <section className="card" aria-labelledby="labels-title">
          <h2 id="labels-title">Labels</h2>
          <Labels labels={s.labels} />
          <dl className="facts">
            <dt>Agent version</dt>
            <dd>{s.agentVersion || '—'}</dd>
            <dt>Status reported</dt>
            <dd>{formatTime(s.statusUpdatedAt)}</dd>
            <dt>Desired revision</dt>
            <dd>
              {s.desiredRevision === '' ? (
                '—'
              ) : (
                <Mono value={s.desiredRevision} short={s.desiredRevision.slice(0, 12)} />
              )}
            </dd>
            <dt>Applied revision</dt>
            <dd>
              {s.appliedRevision === null ? (
                '—'
              ) : (
                <Mono value={s.appliedRevision} short={s.appliedRevision.slice(0, 12)} />
              )}
            </dd>
          </dl>
        </section>
        <Resources site={s} />
      </div>
      <section aria-labelledby="deployments-title">
        <h2 id="deployments-title">Deployments</h2>
        <Deployments site={s} events={events.data?.items} eventsError={events.error} now={now} />
      </section>
      <Telemetry api={props.api} site={s} />
    </>
  );
}

function Resources(props: { site: SiteResource }) {
  const r = props.site.resources;
  return (
    <section className="card" aria-labelledby="resources-title">
      <h2 id="resources-title">Resources</h2>
      {r === null ? (
        <p className="muted">The agent has not reported resources yet.</p>
      ) : (
        <dl className="facts">
          <dt>CPU</dt>
          <dd>
            {r.cpuCores ?? '—'} cores
            {r.cpuLoad1m !== undefined ? `, load ${r.cpuLoad1m.toFixed(2)} (1 min)` : ''}
          </dd>
          <dt>Memory</dt>
          <dd>
            {r.memoryTotalBytes !== undefined && r.memoryAvailableBytes !== undefined ? (
              <Meter
                label="Memory used"
                used={r.memoryTotalBytes - r.memoryAvailableBytes}
                total={r.memoryTotalBytes}
              />
            ) : (
              formatBytes(r.memoryTotalBytes)
            )}
          </dd>
          <dt>Image store</dt>
          <dd>{formatBytes(r.diskStoreBytes)}</dd>
          <dt>Disk free</dt>
          <dd>{formatBytes(r.diskFreeBytes)}</dd>
        </dl>
      )}
    </section>
  );
}

function Meter(props: { label: string; used: number; total: number }) {
  const ratio = props.total > 0 ? Math.min(1, Math.max(0, props.used / props.total)) : 0;
  return (
    <span className="meter-wrap">
      <span
        className="meter"
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={props.total}
        aria-valuenow={props.used}
        aria-valuetext={`${formatBytes(props.used)} of ${formatBytes(props.total)}`}
      >
        <span className="meter-fill" style={{ width: `${(ratio * 100).toFixed(1)}%` }} />
      </span>
      {formatBytes(props.used)} of {formatBytes(props.total)} ({formatPercent(ratio)})
    </span>
  );
}

interface StateStep {
  readonly state: string;
  readonly at: string;
  readonly reason: string | null;
  readonly version: string;
}

/** State changes per deployment, oldest first, from the site's events. */
function historyOf(events: readonly SiteEvent[] | undefined): Map<string, StateStep[]> {
  const out = new Map<string, StateStep[]>();
  for (const e of [...(events ?? [])].reverse()) {
    if (e.type !== 'deployment.state') continue;
    const d = e.detail as {
      deployment?: string;
      to?: string;
      reason?: string | null;
      since?: string;
      version?: string;
    };
    if (d.deployment === undefined || d.to === undefined) continue;
    const steps = out.get(d.deployment) ?? [];
    steps.push({ state: d.to, at: d.since ?? e.at, reason: d.reason ?? null, version: d.version ?? '' });
    out.set(d.deployment, steps);
  }
  return out;
}

function Deployments(props: {
  site: SiteResource;
  events: readonly SiteEvent[] | undefined;
  eventsError: Error | undefined;
  now: number;
}) {
  const history = historyOf(props.events);
  const models = servedModels(props.site);
  if (models.length === 0) {
    return (
      <EmptyState title="Nothing deployed here">
        <p>
          A deployment reaches this site when its selector matches the site&apos;s labels. Run a pipeline or
          create a deployment, and the agent reports its progress here.
        </p>
      </EmptyState>
    );
  }
  return (
    <div className="deployment-cards">
      {models.map((d: DeployedModel) => {
        const steps = history.get(d.deployment) ?? [];
        return (
          <article key={d.deployment} className="card" aria-label={`Deployment ${d.deployment}`}>
            <header className="card-header">
              <h3>{d.deployment}</h3>
              <StateBadge state={d.state} />
            </header>
            <dl className="facts">
              <dt>Model</dt>
              <dd>
                {d.model} <span className="version">v{d.version}</span>
              </dd>
              <dt>Image</dt>
              <dd>
                {d.imageDigest === undefined ? (
                  '—'
                ) : (
                  <Mono value={d.imageDigest} short={shortDigest(d.imageDigest)} />
                )}
              </dd>
              <dt>Since</dt>
              <dd title={formatTime(d.since)}>{formatAgo(d.since, props.now)}</dd>
              {d.reason !== undefined && (
                <>
                  <dt>Reason</dt>
                  <dd className="reason">{d.reason}</dd>
                </>
              )}
            </dl>
            <h4>State history</h4>
            {props.eventsError !== undefined && props.events === undefined ? (
              <p className="form-error">Cannot load the history: {props.eventsError.message}</p>
            ) : steps.length === 0 ? (
              <p className="muted">No state changes recorded yet.</p>
            ) : (
              <ol className="timeline" aria-label={`State history of ${d.deployment}`}>
                {steps.map((step, i) => (
                  <li key={i} className={`step step-${step.state}`}>
                    <StateBadge state={step.state} />
                    <span className="muted small" title={formatTime(step.at)}>
                      {' '}
                      v{step.version} · {formatTime(step.at)}
                    </span>
                    {step.reason !== null && <div className="reason">{step.reason}</div>}
                  </li>
                ))}
              </ol>
            )}
          </article>
        );
      })}
    </div>
  );
}

type Range = (typeof RANGES)[number];

function Telemetry(props: { api: Api; site: SiteResource }) {
  const [range, setRange] = useState<Range>(RANGES[1]);
  const summary = usePolling(
    (signal) => props.api.summary({ site: props.site.name }, range.seconds, signal),
    `summary:${props.site.name}:${range.seconds}`,
    10_000,
  );
  const models = [
    ...new Set([
      ...props.site.deployments.map((d) => d.model),
      ...(summary.data?.models.map((m) => m.model) ?? []),
    ]),
  ].sort();
  return (
    <section aria-labelledby="telemetry-title">
      <div className="section-header">
        <h2 id="telemetry-title">Inference telemetry</h2>
        <div className="segmented" role="group" aria-label="Time range">
          {RANGES.map((r) => (
            <button
              key={r.seconds}
              type="button"
              aria-pressed={r.seconds === range.seconds}
              onClick={() => setRange(r)}
            >
              {r.label}
            </button>
          ))}
        </div>
      </div>
      {summary.loading && <Loading what="telemetry" />}
      {summary.error !== undefined && summary.data === undefined && (
        <ErrorState title="Cannot load telemetry" error={summary.error} onRetry={summary.reload} />
      )}
      {summary.data !== undefined && (
        <>
          {summary.data.models.length === 0 ? (
            <EmptyState title={`No inference requests in the last ${range.label}`}>
              <p>
                The agent forwards the serving runtime&apos;s metrics to the core; figures appear once
                requests are served.
              </p>
            </EmptyState>
          ) : (
            <div className="table-wrap">
              <table className="table" aria-label={`Inference over the last ${range.label}`}>
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Version</th>
                    <th scope="col" className="num">
                      Requests
                    </th>
                    <th scope="col" className="num">
                      Rate
                    </th>
                    <th scope="col" className="num">
                      Errors
                    </th>
                    <th scope="col" className="num">
                      p50
                    </th>
                    <th scope="col" className="num">
                      p95
                    </th>
                    <th scope="col" className="num">
                      p99
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {summary.data.models.map((m) => (
                    <tr key={`${m.model}:${m.version}`} data-model={m.model}>
                      <th scope="row">{m.model}</th>
                      <td>{m.version}</td>
                      <td className="num" data-metric="requests">
                        {formatCount(m.requests)}
                      </td>
                      <td className="num">{formatRate(m.requestRate)}</td>
                      <td className="num">
                        {formatCount(m.errors)}{' '}
                        {m.errors > 0 && <Badge tone="bad">{formatPercent(m.errorRatio)}</Badge>}
                      </td>
                      <td className="num">{formatLatency(m.latencyP50Seconds)}</td>
                      <td className="num">{formatLatency(m.latencyP95Seconds)}</td>
                      <td className="num">{formatLatency(m.latencyP99Seconds)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {models.map((model) => (
            <ModelCharts
              key={`${model}:${range.seconds}`}
              api={props.api}
              site={props.site.name}
              model={model}
              range={range}
            />
          ))}
        </>
      )}
    </section>
  );
}

const CHART_METRICS: TelemetrySeriesMetric[] = [
  'rate',
  'latency_p50',
  'latency_p95',
  'latency_p99',
  'errors',
];

function ModelCharts(props: { api: Api; site: string; model: string; range: Range }) {
  const series = usePolling(
    async (signal) => {
      const toMs = Date.now();
      const fromMs = toMs - props.range.seconds * 1000;
      const stepSeconds = Math.max(10, Math.round(props.range.seconds / 60));
      const all = await Promise.all(
        CHART_METRICS.map((metric) =>
          props.api.series(
            { site: props.site, model: props.model },
            metric,
            { fromMs, toMs, stepSeconds },
            signal,
          ),
        ),
      );
      return { fromMs, toMs, byMetric: new Map(all.map((s) => [s.metric, s])) };
    },
    `series:${props.site}:${props.model}:${props.range.seconds}`,
    15_000,
  );
  const line = (metric: TelemetrySeriesMetric, name: string, color: ChartLine['color']): ChartLine => ({
    name,
    color,
    points: (series.data?.byMetric.get(metric)?.points ?? []).map((p) => ({
      t: Date.parse(p.time),
      v: p.value,
    })),
  });
  return (
    <article className="card model-charts" aria-label={`Charts of ${props.model}`}>
      <h3>{props.model}</h3>
      {series.loading && <Loading what={`charts of ${props.model}`} rows={2} />}
      {series.error !== undefined && series.data === undefined && (
        <ErrorState
          title={`Cannot load the series of ${props.model}`}
          error={series.error}
          onRetry={series.reload}
        />
      )}
      {series.data !== undefined && (
        <div className="charts">
          <LineChart
            title="Request rate"
            lines={[line('rate', 'requests/s', 'c1')]}
            format={formatRate}
            fromMs={series.data.fromMs}
            toMs={series.data.toMs}
          />
          <LineChart
            title="Latency"
            lines={[
              line('latency_p50', 'p50', 'c1'),
              line('latency_p95', 'p95', 'c2'),
              line('latency_p99', 'p99', 'c3'),
            ]}
            format={formatLatency}
            fromMs={series.data.fromMs}
            toMs={series.data.toMs}
          />
          <LineChart
            title="Errors"
            lines={[line('errors', 'errors per step', 'c4')]}
            format={(v) => (Number.isInteger(v) ? formatCount(v) : v.toFixed(1))}
            fromMs={series.data.fromMs}
            toMs={series.data.toMs}
          />
        </div>
      )}
    </article>
  );
}
