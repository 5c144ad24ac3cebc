import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { histogramQuantile, mergeHistograms } from './quantile.js';

function near(actual: number | null, expected: number): void {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${actual} != ${expected}`);
}

describe('histogramQuantile', () => {
  it('interpolates linearly inside the bucket that holds the rank', () => {
    // 10 in (0, 1], 30 in (1, 2], 60 in (2, 4]
    const h = { bounds: [1, 2, 4], counts: [10, 30, 60, 0] };
    near(histogramQuantile([h], 0.05), (1 * 5) / 10);
    near(histogramQuantile([h], 0.25), 1 + (1 * (25 - 10)) / 30);
    near(histogramQuantile([h], 0.5), 2 + (2 * (50 - 40)) / 60);
    near(histogramQuantile([h], 1), 4);
  });

  it('reports the overflow bucket as the last bound and a non-positive first bucket as its bound', () => {
    near(histogramQuantile([{ bounds: [1, 2], counts: [1, 1, 8] }], 0.9), 2);
    near(histogramQuantile([{ bounds: [-1, 1], counts: [4, 6, 0] }], 0.25), -1);
    near(histogramQuantile([{ bounds: [-1, 1], counts: [4, 6, 0] }], 0.9), -1 + (2 * (9 - 4)) / 6);
  });

  it('gives null without observations, or for a quantile outside [0, 1]', () => {
    assert.equal(histogramQuantile([], 0.5), null);
    assert.equal(histogramQuantile([{ bounds: [1], counts: [0, 0] }], 0.5), null);
    assert.equal(histogramQuantile([{ bounds: [1], counts: [1, 0] }], 1.5), null);
    assert.equal(histogramQuantile([{ bounds: [], counts: [5] }], 0.5), null);
  });

  it('sums histograms with the same bounds', () => {
    const a = { bounds: [1, 2], counts: [10, 0, 0] };
    const b = { bounds: [1, 2], counts: [0, 10, 0] };
    assert.deepEqual(mergeHistograms([a, b]), [{ bounds: [1, 2], counts: [10, 10, 0] }]);
    near(histogramQuantile([a, b], 0.75), 1.5);
  });

  it('merges histograms with different bounds through their summed distributions', () => {
    // A: 10 spread over (1, 2]; B: 10 spread over (1.5, 3]. At v = 1.8: A holds 8, B holds 2.
    const a = { bounds: [1, 2], counts: [0, 10, 0] };
    const b = { bounds: [1.5, 3], counts: [0, 10, 0] };
    near(histogramQuantile([a, b], 0.5), 1.8);
    // Above 2 only B rises: 10 (A) + 10 × (v − 1.5) / 1.5 = 18 at v = 2.7.
    near(histogramQuantile([a, b], 0.9), 2.7);
  });
});
