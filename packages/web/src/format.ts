/** How the dashboard writes times, durations, sizes, rates, latencies and digests. Pure functions. */

/** A duration in milliseconds, short: `850 ms`, `4.2 s`, `3 min 5 s`, `2 h 7 min`, `3 d 4 h`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${Math.round(s)} s`;
  const total = Math.round(s);
  const d = Math.floor(total / 86_400);
  const h = Math.floor((total % 86_400) / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  if (d > 0) return h > 0 ? `${d} d ${h} h` : `${d} d`;
  if (h > 0) return m > 0 ? `${h} h ${m} min` : `${h} h`;
  return sec > 0 ? `${m} min ${sec} s` : `${m} min`;
}

/** How long ago `iso` was, relative to `nowMs`: `just now`, `12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`. */
export function formatAgo(iso: string | null | undefined, nowMs: number): string {
  if (iso === null || iso === undefined) return 'never';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.round((nowMs - t) / 1000);
  if (s < -5) return `in ${formatDuration(-s * 1000)}`;
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** An RFC 3339 time as `2026-11-02 14:03:07` in UTC (stable across the operators' time zones). */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  return `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** `HH:MM` (UTC) of a time, for chart axes. */
export function formatClock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `20.0 MiB`, `3.25 GiB`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** A request rate per second: `0`, `0.03/s`, `1.5/s`, `120/s`, `1.2k/s`. */
export function formatRate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '—';
  if (perSecond === 0) return '0/s';
  if (perSecond >= 1000) return `${(perSecond / 1000).toFixed(1)}k/s`;
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 1) return `${Number(perSecond.toFixed(1))}/s`;
  return `${Number(perSecond.toPrecision(2))}/s`;
}

/** A latency given in seconds: `850 µs`, `4.2 ms`, `120 ms`, `1.25 s`. */
export function formatLatency(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '—';
  const ms = seconds * 1000;
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${seconds.toFixed(2)} s`;
}

/** A ratio as a percentage: `0 %`, `0.4 %`, `12 %`. */
export function formatPercent(ratio: number | null | undefined): string {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  const p = ratio * 100;
  if (p === 0) return '0 %';
  if (p < 10) return `${Number(p.toFixed(1))} %`;
  return `${Math.round(p)} %`;
}

/** A count with thousands separators: `12,345`; fractions (rolled-up counts) rounded. */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return Math.round(n).toLocaleString('en-US');
}

/** A digest shortened for tables: `sha256:0123456789ab`. */
export function shortDigest(digest: string | null | undefined): string {
  if (digest === null || digest === undefined || digest === '') return '—';
  const colon = digest.indexOf(':');
  const algo = colon < 0 ? '' : digest.slice(0, colon + 1);
  const hex = colon < 0 ? digest : digest.slice(colon + 1);
  return `${algo}${hex.slice(0, 12)}`;
}

/** A Git object id shortened: first 8 characters (`—` when empty). */
export function shortId(id: string | null | undefined, length = 8): string {
  if (id === null || id === undefined || id === '') return '—';
  return id.slice(0, length);
}

/** The digest of an image reference pinned by digest (`repo@sha256:…`), else undefined. */
export function digestOfReference(reference: string): string | undefined {
  const at = reference.lastIndexOf('@');
  if (at < 0) return undefined;
  const digest = reference.slice(at + 1);
  return /^sha256:[0-9a-f]{64}$/.test(digest) ? digest : undefined;
}
