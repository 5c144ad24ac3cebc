/** A small client-side router over the History API (the core answers every client route with the app). */
import { useSyncExternalStore } from 'react';

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener('popstate', listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener('popstate', listener);
  };
}

const snapshot = () => window.location.pathname + window.location.search;

/** The current path and query, re-rendering on navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const full = useSyncExternalStore(subscribe, snapshot);
  const q = full.indexOf('?');
  return { path: q < 0 ? full : full.slice(0, q), query: new URLSearchParams(q < 0 ? '' : full.slice(q)) };
}

/** Goes to `to` (same origin), adding a history entry unless `replace`. */
export function navigate(to: string, replace = false): void {
  if (to === snapshot()) return;
  if (replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.scrollTo(0, 0);
  for (const l of listeners) l();
}

/** Matches `/sites/:name` style patterns; returns the decoded params or undefined. */
export function match(pattern: string, path: string): Record<string, string> | undefined {
  const p = pattern.split('/');
  const s = path.replace(/\/+$/, '').split('/');
  if (p.length !== s.length && !(path === '/' && pattern === '/')) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    const part = p[i] ?? '';
    const seg = s[i] ?? '';
    if (part.startsWith(':')) {
      if (seg === '') return undefined;
      try {
        params[part.slice(1)] = decodeURIComponent(seg);
      } catch {
        return undefined;
      }
    } else if (part !== seg) return undefined;
  }
  return params;
}
