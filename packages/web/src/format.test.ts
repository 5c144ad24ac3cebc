import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  digestOfReference,
  formatAgo,
  formatBytes,
  formatCount,
  formatDuration,
  formatLatency,
  formatPercent,
  formatRate,
  formatTime,
  shortDigest,
  shortId,
} from './format.js';

test('durations read as people say them, from milliseconds to days', () => {
  assert.equal(formatDuration(0), '0 ms');
  assert.equal(formatDuration(850.4), '850 ms');
  assert.equal(formatDuration(4210), '4.2 s');
  assert.equal(formatDuration(42_400), '42 s');
  assert.equal(formatDuration(60_000), '1 min');
  assert.equal(formatDuration(185_000), '3 min 5 s');
  assert.equal(formatDuration(2 * 3600_000 + 7 * 60_000 + 12_000), '2 h 7 min');
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3600_000), '3 d 4 h');
  assert.equal(formatDuration(null), '—');
  assert.equal(formatDuration(-5), '—');
  assert.equal(formatDuration(Number.NaN), '—');
});

test('relative times count back from now, and say never for null', () => {
  const now = Date.parse('2026-11-02T12:00:00Z');
  assert.equal(formatAgo('2026-11-02T12:00:00Z', now), 'just now');
  assert.equal(formatAgo('2026-11-02T11:59:48Z', now), '12 s ago');
  assert.equal(formatAgo('2026-11-02T11:55:00Z', now), '5 min ago');
  assert.equal(formatAgo('2026-11-02T09:00:00Z', now), '3 h ago');
  assert.equal(formatAgo('2026-10-31T12:00:00Z', now), '2 d ago');
  assert.equal(formatAgo('2026-11-02T12:01:00Z', now), 'in 1 min');
  assert.equal(formatAgo(null, now), 'never');
  assert.equal(formatAgo('not a time', now), '—');
  assert.equal(formatTime('2026-11-02T14:03:07.123Z'), '2026-11-02 14:03:07 UTC');
  assert.equal(formatTime(null), '—');
});

test('sizes use binary units with three significant digits', () => {
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(20 * 1024 * 1024), '20.0 MiB');
  assert.equal(formatBytes(3.25 * 1024 ** 3), '3.25 GiB');
  assert.equal(formatBytes(500 * 1024 ** 3), '500 GiB');
  assert.equal(formatBytes(undefined), '—');
});

test('rates, latencies, ratios and counts', () => {
  assert.equal(formatRate(0), '0/s');
  assert.equal(formatRate(0.0333), '0.033/s');
  assert.equal(formatRate(1.54), '1.5/s');
  assert.equal(formatRate(120.4), '120/s');
  assert.equal(formatRate(1234), '1.2k/s');
  assert.equal(formatRate(null), '—');
  assert.equal(formatLatency(0.00085), '850 µs');
  assert.equal(formatLatency(0.0042), '4.2 ms');
  assert.equal(formatLatency(0.12), '120 ms');
  assert.equal(formatLatency(1.25), '1.25 s');
  assert.equal(formatLatency(null), '—');
  assert.equal(formatPercent(0), '0 %');
  assert.equal(formatPercent(0.004), '0.4 %');
  assert.equal(formatPercent(0.123), '12 %');
  assert.equal(formatCount(12345.4), '12,345');
});

test('digests and ids are shortened; a reference pinned by digest gives its digest', () => {
  const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
  assert.equal(shortDigest(digest), 'sha256:0123456789ab');
  assert.equal(shortDigest(null), '—');
  assert.equal(shortId('4b825dc642cb6eb9a060e54bf8d69288fbee4904'), '4b825dc6');
  assert.equal(shortId(''), '—');
  assert.equal(digestOfReference(`127.0.0.1:8080/models/x@${digest}`), digest);
  assert.equal(digestOfReference('127.0.0.1:8080/models/x:1'), undefined);
});
