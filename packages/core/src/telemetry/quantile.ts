/**
 * Quantiles from explicit-bucket histograms, the way Prometheus' `histogram_quantile` estimates
 * them: observations are spread evenly inside their bucket (linear interpolation); the first bucket
 * starts at 0 when its upper bound is positive; the overflow bucket (above the last bound) is
 * reported as the last bound. Histograms with different bounds are merged exactly through the sum
 * of their piecewise-linear cumulative distributions.
 */

/** Bucket counts of one histogram: `counts` has one more entry than `bounds` (the overflow bucket). */
export interface BucketHistogram {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
}

/** Adds `add` into `into` element by element (same length expected; extra entries are ignored). */
export function addCounts(into: number[], add: readonly number[]): void {
  for (let i = 0; i < into.length && i < add.length; i++) into[i] = (into[i] as number) + (add[i] as number);
}

/** Sums histograms with identical bounds; histograms without bounds or with mismatched counts are left out. */
export function mergeHistograms(histograms: Iterable<BucketHistogram>): BucketHistogram[] {
  const groups = new Map<string, { bounds: readonly number[]; counts: number[] }>();
  for (const h of histograms) {
    if (h.bounds.length === 0 || h.counts.length !== h.bounds.length + 1) continue;
    const key = h.bounds.join(',');
    const group = groups.get(key);
    if (group === undefined) groups.set(key, { bounds: h.bounds, counts: [...h.counts] });
    else addCounts(group.counts, h.counts);
  }
  return [...groups.values()];
}

/** The `q`-quantile (0 ≤ q ≤ 1) of the observations of all `histograms` together; null when they hold none. */
export function histogramQuantile(histograms: Iterable<BucketHistogram>, q: number): number | null {
  const merged = mergeHistograms(histograms).filter((h) => h.counts.some((c) => c > 0));
  const total = merged.reduce((sum, h) => sum + h.counts.reduce((a, b) => a + b, 0), 0);
  if (!(total > 0) || !(q >= 0 && q <= 1)) return null;
  const rank = q * total;
  const lowest = Math.min(...merged.map(lowerEdge));
  const breakpoints = [...new Set(merged.flatMap((h) => [lowerEdge(h), ...h.bounds]))].sort((a, b) => a - b);
  let previous = lowest;
  let previousValue = 0;
  for (const at of breakpoints) {
    let below = 0; // left limit of the merged CDF at `at`
    let upTo = 0; // value of the merged CDF at `at` (includes mass sitting exactly at `at`)
    for (const h of merged) {
      const [l, r] = cdfAt(h, at);
      below += l;
      upTo += r;
    }
    if (upTo >= rank) {
      if (below >= rank && below > previousValue) {
        return previous + ((at - previous) * (rank - previousValue)) / (below - previousValue);
      }
      return below >= rank ? previous : at;
    }
    previous = at;
    previousValue = upTo;
  }
  return breakpoints[breakpoints.length - 1] ?? null;
}

/** Where the first bucket starts: 0 when its upper bound is positive; otherwise the bucket is a mass at its bound. */
function lowerEdge(h: BucketHistogram): number {
  const first = h.bounds[0] as number;
  return first > 0 ? 0 : first;
}

/** The CDF of one histogram at `v`: [left limit, value], with linear interpolation inside buckets. */
function cdfAt(h: BucketHistogram, v: number): [number, number] {
  const { bounds, counts } = h;
  const n = bounds.length;
  const lo = lowerEdge(h);
  let cumulative = 0;
  for (let i = 0; i < n; i++) {
    const upper = bounds[i] as number;
    const lower = i === 0 ? lo : (bounds[i - 1] as number);
    const count = counts[i] as number;
    if (v < upper) {
      if (v <= lower || upper === lower) return [cumulative, cumulative];
      const inside = cumulative + (count * (v - lower)) / (upper - lower);
      return [inside, inside];
    }
    if (v === upper) {
      // A zero-width first bucket is a mass at its bound; otherwise the bucket's count is reached continuously.
      const reached = cumulative + count;
      const left = upper === lower ? cumulative : reached;
      const overflow = i === n - 1 ? (counts[n] as number) : 0;
      return [left, reached + overflow];
    }
    cumulative += count;
  }
  const all = cumulative + (counts[n] as number);
  return [all, all];
}
