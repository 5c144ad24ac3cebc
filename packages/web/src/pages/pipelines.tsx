/** Pipelines: runs with status and duration (live), and a form to start a run from a pipeline spec. */
import { useEffect, useState, type FormEvent } from 'react';
import type { RunStatus } from '@aiedge/protocol';
import { ApiError, type Api } from '../api.js';
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
import { formatAgo, formatDuration, formatTime, shortDigest } from '../format.js';
import { usePolling, useNow } from '../hooks.js';
import { navigate, useLocation } from '../router.js';
import { elapsedMs, formatParams, parseParams, runCounts } from '../run-state.js';

const STATUSES: readonly RunStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];

/** The runs list. */
export function Pipelines(props: { api: Api }) {
  const { query } = useLocation();
  const status = query.get('status') ?? '';
  const now = useNow();
  const runs = usePolling((signal) => props.api.runs(status, signal), `runs:${status}`, 3000);
  const counts = runs.data !== undefined ? runCounts(runs.data.items) : undefined;
  return (
    <>
      <PageHeader
        title="Pipelines"
        subtitle="Runs of model delivery pipelines: fetch, inspect, build, staging test, push, GitOps."
        actions={
          <>
            <LiveStatus updatedAt={runs.updatedAt} error={runs.error} now={now} />
            <Link to="/pipelines/new" className="button primary">
              Start a run
            </Link>
          </>
        }
      />
      {counts !== undefined && (
        <section className="stats" aria-label="Run counts">
          <Stat
            label={status === '' ? 'Recent runs' : `Runs ${status}`}
            value={runs.data?.items.length ?? 0}
          />
          <Stat
            label="Running"
            value={counts.running + counts.queued}
            tone={counts.running > 0 ? 'info' : undefined}
          />
          <Stat label="Succeeded" value={counts.succeeded} tone={counts.succeeded > 0 ? 'ok' : undefined} />
          <Stat label="Failed" value={counts.failed} tone={counts.failed > 0 ? 'bad' : undefined} />
        </section>
      )}
      <div className="filter">
        <label htmlFor="status">Status</label>
        <select
          id="status"
          value={status}
          onChange={(e) =>
            navigate(e.target.value === '' ? '/pipelines' : `/pipelines?status=${e.target.value}`, true)
          }
        >
          <option value="">all</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      {runs.loading && <Loading what="runs" rows={4} />}
      {runs.error !== undefined && runs.data === undefined && (
        <ErrorState title="Cannot load the runs" error={runs.error} onRetry={runs.reload} />
      )}
      {runs.data !== undefined &&
        (runs.data.items.length === 0 ? (
          <EmptyState title={status === '' ? 'No pipeline runs yet' : `No ${status} runs`}>
            <p>
              Start one here from a pipeline spec (see <code>examples/</code>), or with{' '}
              <code>aiedge pipeline run --core URL spec.yaml</code>.
            </p>
          </EmptyState>
        ) : (
          <div className="table-wrap">
            <table className="table" aria-label="Pipeline runs">
              <thead>
                <tr>
                  <th scope="col">Run</th>
                  <th scope="col">Pipeline</th>
                  <th scope="col">Status</th>
                  <th scope="col">Started</th>
                  <th scope="col" className="num">
                    Duration
                  </th>
                  <th scope="col">Image</th>
                </tr>
              </thead>
              <tbody>
                {runs.data.items.map((run) => (
                  <tr key={run.id} data-run={run.id}>
                    <th scope="row">
                      <Link to={`/pipelines/runs/${encodeURIComponent(run.id)}`}>
                        <code>{run.id}</code>
                      </Link>
                    </th>
                    <td>{run.pipeline}</td>
                    <td>
                      <StateBadge
                        state={run.status}
                        {...(run.reason !== null ? { title: run.reason } : {})}
                      />
                    </td>
                    <td title={formatTime(run.startedAt ?? run.createdAt)}>
                      {formatAgo(run.startedAt ?? run.createdAt, now)}
                    </td>
                    <td className="num">{formatDuration(elapsedMs(run, now))}</td>
                    <td>
                      {run.results['build.digest'] !== undefined ? (
                        <Mono
                          value={run.results['build.digest']}
                          short={shortDigest(run.results['build.digest'])}
                        />
                      ) : (
                        <span className="muted">—</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ))}
    </>
  );
}

/** The form that starts a run; `?from=<run>` fills it with that run's spec and params. */
export function StartRun(props: { api: Api }) {
  const { query } = useLocation();
  const from = query.get('from');
  const [spec, setSpec] = useState('');
  const [params, setParams] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const [prefill, setPrefill] = useState<string | undefined>();
  useEffect(() => {
    if (from === null) return;
    const abort = new AbortController();
    props.api
      .run(from, abort.signal)
      .then((run) => {
        setSpec(JSON.stringify(run.spec, null, 2));
        setParams(formatParams(run.params));
        setPrefill(`Filled in from run ${run.id} (${run.pipeline}).`);
      })
      .catch((e: unknown) => {
        if (!abort.signal.aborted) setError(`Cannot load run ${from}: ${(e as Error).message}`);
      });
    return () => abort.abort();
  }, [from, props.api]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const parsed = parseParams(params);
    if (parsed.errors.length > 0) {
      setError(`Parameters: ${parsed.errors.join('; ')}`);
      return;
    }
    if (spec.trim() === '') {
      setError('Paste a pipeline spec (YAML or JSON) first.');
      return;
    }
    setBusy(true);
    try {
      const run = await props.api.startRun(spec, parsed.params);
      navigate(`/pipelines/runs/${encodeURIComponent(run.id)}`);
    } catch (err) {
      setError(err instanceof ApiError ? `The core refused the run: ${err.message}` : (err as Error).message);
      setBusy(false);
    }
  };

  return (
    <>
      <PageHeader title="Start a run" subtitle={<Link to="/pipelines">← Pipelines</Link>} />
      <form className="card form" onSubmit={(e) => void submit(e)}>
        {prefill !== undefined && (
          <p className="notice" role="status">
            {prefill}
          </p>
        )}
        <label htmlFor="spec">Pipeline spec (YAML or JSON)</label>
        <textarea
          id="spec"
          rows={18}
          spellCheck={false}
          className="code"
          placeholder={'apiVersion: aiedge.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: …'}
          value={spec}
          onChange={(e) => setSpec(e.target.value)}
          aria-describedby="spec-help"
        />
        <p id="spec-help" className="hint">
          An <code>aiedge.io/v1alpha1</code> Pipeline, such as <code>examples/registry-pipeline.yaml</code>.
          The core checks it before queueing the run and names the field when something is wrong.
        </p>
        <label htmlFor="params">Parameters (one name=value per line)</label>
        <textarea
          id="params"
          rows={5}
          spellCheck={false}
          className="code"
          placeholder="modelVersion=2"
          value={params}
          onChange={(e) => setParams(e.target.value)}
        />
        {error !== undefined && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <div className="form-actions">
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Starting…' : 'Start run'}
          </button>
        </div>
      </form>
    </>
  );
}
