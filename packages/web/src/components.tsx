/** Shared pieces of every page: links, badges, figures, and the designed loading, empty and error states. */
import type { MouseEvent, ReactNode } from 'react';
import { formatAgo } from './format.js';
import { navigate } from './router.js';

/** An in-app link (keeps modifier-clicks and middle-clicks for the browser). */
export function Link(props: {
  to: string;
  children: ReactNode;
  className?: string;
  'aria-label'?: string;
  'aria-current'?: 'page' | undefined;
}) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(props.to);
  };
  return (
    <a
      href={props.to}
      onClick={onClick}
      className={props.className}
      aria-label={props['aria-label']}
      aria-current={props['aria-current']}
    >
      {props.children}
    </a>
  );
}

/** Tones of a badge. */
export type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'muted';

/** A small coloured label; the text carries the meaning, the colour only repeats it. */
export function Badge(props: { tone: Tone; children: ReactNode; title?: string | undefined }) {
  return (
    <span className={`badge badge-${props.tone}`} title={props.title}>
      {props.children}
    </span>
  );
}

const TONES: Record<string, Tone> = {
  // deployment states
  Serving: 'ok',
  Pending: 'info',
  Pulling: 'info',
  Starting: 'info',
  Failed: 'bad',
  RolledBack: 'bad',
  Unknown: 'muted',
  // run and task states
  succeeded: 'ok',
  running: 'info',
  queued: 'muted',
  pending: 'muted',
  failed: 'bad',
  cancelled: 'warn',
  skipped: 'muted',
  // site health
  healthy: 'ok',
  progressing: 'info',
  failing: 'bad',
  offline: 'warn',
  revoked: 'muted',
  idle: 'muted',
  online: 'ok',
};

/** A badge for a state name, toned by what it means. */
export function StateBadge(props: { state: string; label?: string | undefined; title?: string | undefined }) {
  return (
    <Badge
      tone={TONES[props.state] ?? 'muted'}
      {...(props.title !== undefined ? { title: props.title } : {})}
    >
      {props.label ?? props.state}
    </Badge>
  );
}

/** A labelled figure at the top of a page. */
export function Stat(props: {
  label: string;
  value: ReactNode;
  tone?: Tone | undefined;
  hint?: string | undefined;
}) {
  return (
    <div className={`stat${props.tone !== undefined ? ` stat-${props.tone}` : ''}`} title={props.hint}>
      <div className="stat-value">{props.value}</div>
      <div className="stat-label">{props.label}</div>
    </div>
  );
}

/** A page's title row, with optional actions on the right. */
export function PageHeader(props: { title: ReactNode; subtitle?: ReactNode; actions?: ReactNode }) {
  return (
    <header className="page-header">
      <div>
        <h1>{props.title}</h1>
        {props.subtitle !== undefined && <p className="subtitle">{props.subtitle}</p>}
      </div>
      {props.actions !== undefined && <div className="page-actions">{props.actions}</div>}
    </header>
  );
}

/** Loading placeholder: a few shimmering rows, announced to screen readers. */
export function Loading(props: { what: string; rows?: number }) {
  return (
    <div className="loading" role="status" aria-live="polite">
      <span className="visually-hidden">Loading {props.what}…</span>
      {Array.from({ length: props.rows ?? 3 }, (_, i) => (
        <div key={i} className="skeleton" aria-hidden="true" />
      ))}
    </div>
  );
}

/** An error in place of content, with the server's message and a retry. */
export function ErrorState(props: { title: string; error: Error; onRetry?: () => void }) {
  return (
    <div className="state state-error" role="alert">
      <h2>{props.title}</h2>
      <p>{props.error.message}</p>
      {props.onRetry !== undefined && (
        <button type="button" onClick={props.onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** Nothing to show yet, with what it means and what to do. */
export function EmptyState(props: { title: string; children?: ReactNode }) {
  return (
    <div className="state state-empty">
      <h2>{props.title}</h2>
      {props.children}
    </div>
  );
}

/** "Live" with the age of the data; says so when the last refresh failed. */
export function LiveStatus(props: { updatedAt: number | undefined; error: Error | undefined; now: number }) {
  if (props.error !== undefined && props.updatedAt !== undefined) {
    return (
      <span className="live live-stale" role="status" title={props.error.message}>
        Refresh failed: showing data from {formatAgo(new Date(props.updatedAt).toISOString(), props.now)}
      </span>
    );
  }
  if (props.updatedAt === undefined) return null;
  return (
    <span className="live" role="status" aria-live="off">
      <span className="live-dot" aria-hidden="true" /> Live · updated{' '}
      {formatAgo(new Date(props.updatedAt).toISOString(), props.now)}
    </span>
  );
}

/** Key/value pairs of labels as chips; clicking one filters by it when `onPick` is given. */
export function Labels(props: {
  labels: Readonly<Record<string, string>>;
  onPick?: (key: string, value: string) => void;
  active?: (key: string, value: string) => boolean;
}) {
  const entries = Object.entries(props.labels).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <span className="muted">none</span>;
  return (
    <span className="labels">
      {entries.map(([k, v]) =>
        props.onPick !== undefined ? (
          <button
            key={k}
            type="button"
            className={`chip chip-button${props.active?.(k, v) === true ? ' chip-active' : ''}`}
            onClick={() => props.onPick?.(k, v)}
            aria-pressed={props.active?.(k, v) === true}
            aria-label={`Filter by label ${k}=${v}`}
          >
            {k}={v}
          </button>
        ) : (
          <span key={k} className="chip">
            {k}={v}
          </span>
        ),
      )}
    </span>
  );
}

/** A monospace id shortened for display, the full value in its title and for copying. */
export function Mono(props: { value: string; short: string }) {
  return (
    <code className="mono" title={props.value}>
      {props.short}
    </code>
  );
}
