/** One pipeline run: its task graph with each task's state and time, live logs (SSE), results, staging diff. */
import { useEffect, useMemo, useRef, useState } from 'react';
import type { PipelineRun, PipelineRunSummary, RunLogLine, RunTask } from '@aiedge/protocol';
import type { Api, RunTaskView } from '../api.js';
import { Badge, ErrorState, Link, Loading, Mono, PageHeader, Stat, StateBadge } from '../components.js';
import { formatDuration, formatTime, shortDigest, shortId } from '../format.js';
import { useNow } from '../hooks.js';
import { navigate } from '../router.js';
import {
  elapsedMs,
  graphColumns,
  graphEdges,
  isFinished,
  mergeTask,
  parseStageFailure,
} from '../run-state.js';
import { followEvents } from '../sse.js';

/** Lines kept in the browser; older ones are dropped (the full log stays at the core). */
const MAX_LINES = 5000;

type RunView = Omit<PipelineRun, 'tasks'> & { tasks: RunTaskView[] };
type StreamState = 'connecting' | 'open' | 'closed' | 'retrying';

/** The run page: loads the run, then follows its event stream until the run ends. */
export function RunPage(props: { api: Api; id: string }) {
  const now = useNow(500);
  const [run, setRun] = useState<RunView | undefined>();
  const [error, setError] = useState<Error | undefined>();
  const [lines, setLines] = useState<RunLogLine[]>([]);
  const [stream, setStream] = useState<{ state: StreamState; detail?: string | undefined }>({
    state: 'connecting',
  });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    setRun(undefined);
    setError(undefined);
    setLines([]);
    let pending: RunLogLine[] = [];
    let flush: ReturnType<typeof setTimeout> | undefined;
    const addLine = (line: RunLogLine) => {
      pending.push(line);
      flush ??= setTimeout(() => {
        flush = undefined;
        const batch = pending;
        pending = [];
        setLines((old) => {
          const next = old.concat(batch);
          return next.length > MAX_LINES ? next.slice(next.length - MAX_LINES) : next;
        });
      }, 100);
    };
    const summary = (data: PipelineRunSummary) =>
      setRun((old) => (old === undefined ? old : { ...old, ...data }));
    void (async () => {
      try {
        const loaded = await props.api.run(props.id, abort.signal);
        setRun(loaded);
        await followEvents({
          url: `/api/v1/pipelines/runs/${encodeURIComponent(props.id)}/logs`,
          token: props.api.token,
          signal: abort.signal,
          finalEvent: 'end',
          onState: (state, detail) => setStream({ state, detail }),
          onEvent: (event) => {
            const data = JSON.parse(event.data) as unknown;
            if (event.event === 'log') addLine(data as RunLogLine);
            else if (event.event === 'task')
              setRun((old) =>
                old === undefined ? old : { ...old, tasks: mergeTask(old.tasks, data as RunTask) },
              );
            else if (event.event === 'status' || event.event === 'end') summary(data as PipelineRunSummary);
          },
        });
        // The final state of every task (durations, results) once the run is over.
        if (!abort.signal.aborted) setRun(await props.api.run(props.id, abort.signal));
      } catch (e) {
        if (!abort.signal.aborted) setError(e as Error);
      }
    })();
    return () => {
      abort.abort();
      clearTimeout(flush);
    };
  }, [props.api, props.id, attempt]);

  if (error !== undefined && run === undefined) {
    return (
      <>
        <PageHeader title={`Run ${props.id}`} subtitle={<Link to="/pipelines">← Pipelines</Link>} />
        <ErrorState
          title={`Cannot load run ${props.id}`}
          error={error}
          onRetry={() => setAttempt((a) => a + 1)}
        />
      </>
    );
  }
  if (run === undefined) return <Loading what={`run ${props.id}`} rows={6} />;
  const finished = isFinished(run.status);
  return (
    <>
      <PageHeader
        title={
          <>
            {run.pipeline} <StateBadge state={run.status} />
          </>
        }
        subtitle={
          <>
            <Link to="/pipelines">← Pipelines</Link> · run <code>{run.id}</code> · created{' '}
            {formatTime(run.createdAt)}
          </>
        }
        actions={
          <>
            <span className={`live${stream.state === 'retrying' ? ' live-stale' : ''}`} role="status">
              {finished
                ? 'Finished'
                : stream.state === 'open'
                  ? '● Live'
                  : stream.state === 'retrying'
                    ? `Reconnecting${stream.detail !== undefined ? ` (${stream.detail})` : ''}…`
                    : 'Connecting…'}
            </span>
            {!finished && (
              <button
                type="button"
                className="danger"
                onClick={() => void props.api.cancelRun(run.id).catch((e: unknown) => setError(e as Error))}
              >
                Cancel run
              </button>
            )}
            <button
              type="button"
              onClick={() => navigate(`/pipelines/new?from=${encodeURIComponent(run.id)}`)}
            >
              Run again
            </button>
          </>
        }
      />
      {error !== undefined && (
        <p className="form-error" role="alert">
          {error.message}
        </p>
      )}
      <section className="stats" aria-label="Run timing">
        <Stat
          label="Status"
          value={run.status}
          tone={run.status === 'succeeded' ? 'ok' : run.status === 'failed' ? 'bad' : undefined}
        />
        <Stat label="Duration" value={formatDuration(elapsedMs(run, now))} />
        <Stat label="Queued for" value={formatDuration(run.queuedMs)} />
        <Stat
          label="Tasks done"
          value={`${run.tasks.filter((t) => t.state === 'succeeded').length} / ${run.tasks.length}`}
        />
      </section>
      {run.reason !== null && (
        <p className={`banner ${run.status === 'failed' ? 'banner-bad' : 'banner-warn'}`} role="alert">
          {run.reason}
        </p>
      )}
      <TaskGraph tasks={run.tasks} now={now} />
      <StageDiff run={run} />
      <Results run={run} />
      <Logs lines={lines} tasks={run.tasks.map((t) => t.name)} live={!finished} />
    </>
  );
}

const NODE_W = 150;
const NODE_H = 64;
const GAP_X = 40;
const GAP_Y = 16;

function TaskGraph(props: { tasks: readonly RunTaskView[]; now: number }) {
  const columns = useMemo(() => graphColumns(props.tasks), [props.tasks]);
  const edges = useMemo(() => graphEdges(props.tasks), [props.tasks]);
  const position = new Map<string, { x: number; y: number }>();
  columns.forEach((col, c) =>
    col.forEach((name, r) => position.set(name, { x: c * (NODE_W + GAP_X), y: r * (NODE_H + GAP_Y) })),
  );
  const width = Math.max(1, columns.length) * (NODE_W + GAP_X) - GAP_X;
  const height = Math.max(1, ...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  const byName = new Map(props.tasks.map((t) => [t.name, t]));
  return (
    <section aria-labelledby="graph-title">
      <h2 id="graph-title">Tasks</h2>
      <div className="graph-scroll">
        <div className="graph" style={{ width, height }}>
          <svg className="graph-edges" width={width} height={height} aria-hidden="true">
            {edges.map(([from, to]) => {
              const a = position.get(from);
              const b = position.get(to);
              if (a === undefined || b === undefined) return null;
              const x1 = a.x + NODE_W;
              const y1 = a.y + NODE_H / 2;
              const x2 = b.x;
              const y2 = b.y + NODE_H / 2;
              const mid = (x1 + x2) / 2;
              const done = byName.get(from)?.state === 'succeeded';
              return (
                <path
                  key={`${from}->${to}`}
                  className={`edge${done ? ' edge-done' : ''}`}
                  d={`M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2 - 4},${y2}`}
                  markerEnd="url(#arrow)"
                />
              );
            })}
            <defs>
              <marker
                id="arrow"
                viewBox="0 0 8 8"
                refX="6"
                refY="4"
                markerWidth="8"
                markerHeight="8"
                orient="auto"
              >
                <path d="M0,0 L8,4 L0,8 z" className="arrow" />
              </marker>
            </defs>
          </svg>
          <ol className="graph-nodes" aria-label="Task graph">
            {props.tasks.map((task) => {
              const p = position.get(task.name) ?? { x: 0, y: 0 };
              const time = elapsedMs(task, props.now);
              const after = task.runAfter ?? [];
              return (
                <li
                  key={task.name}
                  className={`node node-${task.state}`}
                  style={{ left: p.x, top: p.y, width: NODE_W, height: NODE_H }}
                  data-task={task.name}
                  data-state={task.state}
                  aria-label={`${task.name}: ${task.state}${time !== null ? `, ${formatDuration(time)}` : ''}${after.length > 0 ? `, after ${after.join(', ')}` : ''}`}
                  title={task.reason ?? undefined}
                >
                  <span className="node-name">{task.name}</span>
                  <span className="node-meta">
                    <StateBadge state={task.state} />
                    <span className="node-time">{time === null ? '' : formatDuration(time)}</span>
                  </span>
                  {task.attempt > 1 && <span className="node-attempt">attempt {task.attempt}</span>}
                </li>
              );
            })}
          </ol>
        </div>
      </div>
      {props.tasks.some((t) => t.reason !== null && t.state !== 'succeeded') && (
        <ul className="plain task-reasons">
          {props.tasks
            .filter((t) => t.reason !== null && t.state !== 'succeeded')
            .map((t) => (
              <li key={t.name}>
                <strong>{t.name}</strong> {t.state}:{' '}
                <span className="reason">{t.reason?.split('\n')[0]}</span>
              </li>
            ))}
        </ul>
      )}
    </section>
  );
}

function StageDiff(props: { run: RunView }) {
  const source =
    props.run.tasks.find((t) => parseStageFailure(t.reason) !== undefined)?.reason ?? props.run.reason;
  const failure = parseStageFailure(source);
  if (failure === undefined) return null;
  return (
    <section className="card card-bad" aria-labelledby="diff-title">
      <h2 id="diff-title">Staging test: expected vs. actual</h2>
      <p>{failure.summary}</p>
      {failure.cases.map((c) => (
        <div key={c.name} className="diff-case">
          <h3>
            {c.name} <span className="muted small">{c.problem}</span>
          </h3>
          {c.differences.length > 0 && (
            <div className="table-wrap">
              <table className="table diff" aria-label={`Differences of ${c.name}`}>
                <thead>
                  <tr>
                    <th scope="col">Output</th>
                    <th scope="col">Expected</th>
                    <th scope="col">Got</th>
                    <th scope="col">Tolerance</th>
                  </tr>
                </thead>
                <tbody>
                  {c.differences.map((d, i) => (
                    <tr key={i}>
                      <th scope="row">
                        <code>{d.where}</code>
                      </th>
                      <td className="diff-expected">
                        <code>{d.expected}</code>
                      </td>
                      <td className="diff-got">
                        <code>{d.got}</code>
                      </td>
                      <td className="muted small">{d.note}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {c.other.map((o, i) => (
            <p key={i} className="muted">
              {o}
            </p>
          ))}
        </div>
      ))}
    </section>
  );
}

function Results(props: { run: RunView }) {
  const entries = Object.entries(props.run.results).sort(([a], [b]) => a.localeCompare(b));
  const digest = props.run.results['build.digest'] ?? props.run.results['push.digest'];
  const commit = props.run.results['gitops.commit'];
  const reference = props.run.results['push.reference'];
  return (
    <section aria-labelledby="results-title">
      <h2 id="results-title">Results</h2>
      {entries.length === 0 ? (
        <p className="muted">
          {isFinished(props.run.status)
            ? 'This run produced no results.'
            : 'Results appear when the run succeeds.'}
        </p>
      ) : (
        <>
          <div className="result-highlights">
            {digest !== undefined && (
              <Stat label="Image digest" value={<Mono value={digest} short={shortDigest(digest)} />} />
            )}
            {reference !== undefined && (
              <Stat label="Image" value={<code className="wrap">{reference}</code>} />
            )}
            {commit !== undefined && (
              <Stat label="GitOps commit" value={<Mono value={commit} short={shortId(commit, 12)} />} />
            )}
          </div>
          <div className="table-wrap">
            <table className="table" aria-label="Run results">
              <thead>
                <tr>
                  <th scope="col">Result</th>
                  <th scope="col">Value</th>
                </tr>
              </thead>
              <tbody>
                {entries.map(([k, v]) => (
                  <tr key={k} data-result={k}>
                    <th scope="row">
                      <code>{k}</code>
                    </th>
                    <td>
                      <code className="wrap">{v}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </section>
  );
}

function Logs(props: { lines: readonly RunLogLine[]; tasks: readonly string[]; live: boolean }) {
  const [task, setTask] = useState('');
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLPreElement>(null);
  const shown = task === '' ? props.lines : props.lines.filter((l) => (l.task ?? '') === task);
  useEffect(() => {
    if (follow && box.current !== null) box.current.scrollTop = box.current.scrollHeight;
  }, [shown.length, follow]);
  return (
    <section aria-labelledby="logs-title">
      <div className="section-header">
        <h2 id="logs-title">Logs {props.live && <Badge tone="info">live</Badge>}</h2>
        <div className="filter">
          <label htmlFor="log-task">Task</label>
          <select id="log-task" value={task} onChange={(e) => setTask(e.target.value)}>
            <option value="">all tasks</option>
            {props.tasks.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
          <label className="checkbox">
            <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
          </label>
        </div>
      </div>
      <pre className="logs" ref={box} tabIndex={0} aria-label="Run log" data-lines={shown.length}>
        {shown.length === 0
          ? props.live
            ? 'Waiting for output…'
            : 'No output.'
          : shown.map((l) => (
              <span key={l.seq} className={`log-line log-${l.stream}`}>
                <span className="log-time">{l.at.slice(11, 19)}</span>
                <span className="log-task">{l.task ?? 'run'}</span>
                {l.line}
                {'\n'}
              </span>
            ))}
      </pre>
    </section>
  );
}
