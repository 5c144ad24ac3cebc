import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import * as zlib from 'node:zlib';
import { DiskQueue, tableCrc32 } from './disk-queue.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-queue-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith('seg-'))
    .sort();
}

const text = (b: Buffer) => b.toString('utf8');

/** Same as payloadOf in _test-disk-queue-writer.ts. */
function payloadOf(id: number): Buffer {
  const length = (id * 7919) % 900;
  return Buffer.from(`record ${id};`.padEnd(12 + length, String.fromCharCode(97 + (id % 26))));
}

/** A small seeded PRNG (mulberry32), so a failing random run can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('DiskQueue', () => {
  it('is a FIFO that keeps unacknowledged records across reopen', (t) => {
    const dir = tempDir(t);
    let q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    for (const s of ['a', 'bb', 'ccc', 'dddd']) q.append(Buffer.from(s));
    const head = q.peek(2);
    assert.deepEqual(
      head.map((r) => [r.id, text(r.data)]),
      [
        [1, 'a'],
        [2, 'bb'],
      ],
    );
    q.ack(1);
    // peek does not consume.
    assert.deepEqual(
      q.peek(10).map((r) => r.id),
      [2, 3, 4],
    );
    const instance = q.instanceId;
    q.close();

    q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    assert.equal(q.instanceId, instance);
    assert.deepEqual(
      q.peek(10).map((r) => text(r.data)),
      ['bb', 'ccc', 'dddd'],
    );
    assert.equal(q.stats().records, 3);
    assert.equal(q.stats().bytes, 3 * 16 + 2 + 3 + 4);
    // Ids are never reused, also after everything was acknowledged and the files deleted.
    q.ack(4);
    assert.equal(q.stats().records, 0);
    assert.deepEqual(segmentFiles(dir), []);
    q.close();
    q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    assert.equal(q.append(Buffer.from('e')).id, 5);
    q.close();
  });

  it('peek honours maxRecords and maxBytes but always returns at least one record', (t) => {
    const q = DiskQueue.open({ dir: tempDir(t), maxBytes: 1 << 20, fsync: 'never' });
    t.after(() => q.close());
    q.append(Buffer.alloc(100));
    q.append(Buffer.alloc(100));
    q.append(Buffer.alloc(100));
    assert.equal(q.peek(10, 250).length, 2);
    assert.equal(q.peek(10, 10).length, 1);
    assert.equal(q.peek(1).length, 1);
    assert.throws(() => q.ack(4), /not an appended id/);
  });

  it('drops the oldest records first when full, counts them, and persists the count', (t) => {
    const dir = tempDir(t);
    // Frames are 16 + 84 = 100 bytes: five fit.
    let q = DiskQueue.open({ dir, maxBytes: 500, segmentBytes: 4096 });
    const record = (i: number) => Buffer.from(String(i).padEnd(84, '.'));
    for (let i = 1; i <= 5; i++) assert.equal(q.append(record(i)).dropped, 0);
    assert.equal(q.append(record(6)).dropped, 1);
    assert.equal(q.append(record(7)).dropped, 1);
    // A bigger record drops as many as it needs.
    assert.equal(q.append(Buffer.alloc(250)).dropped, 3);
    assert.deepEqual(
      q.peek(10).map((r) => r.id),
      [6, 7, 8],
    );
    assert.equal(q.stats().dropped, 5);
    assert.ok(q.stats().bytes <= 500);
    assert.throws(() => q.append(Buffer.alloc(500)), { name: 'PayloadTooLargeError' });
    q.close();
    q = DiskQueue.open({ dir, maxBytes: 500 });
    assert.equal(q.stats().dropped, 5);
    assert.deepEqual(
      q.peek(10).map((r) => r.id),
      [6, 7, 8],
    );
    q.close();
    // Reopened with a smaller bound: the oldest go at once.
    q = DiskQueue.open({ dir, maxBytes: 300 });
    assert.deepEqual(
      q.peek(10).map((r) => r.id),
      [8],
    );
    assert.equal(q.stats().dropped, 7);
    q.close();
  });

  it('rotates segments and deletes those fully consumed', (t) => {
    const dir = tempDir(t);
    const q = DiskQueue.open({ dir, maxBytes: 1 << 20, segmentBytes: 4096, fsync: 'never' });
    t.after(() => q.close());
    for (let i = 0; i < 100; i++) q.append(Buffer.alloc(200, i)); // 216-byte frames, 18 per segment
    const files = segmentFiles(dir);
    assert.equal(files.length, 6);
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 4096);
    q.ack(40);
    assert.equal(segmentFiles(dir).length, 4);
    assert.equal(q.peek(1)[0]?.id, 41);
    q.ack(100);
    assert.deepEqual(segmentFiles(dir), []);
  });

  it('cuts off a torn or corrupt tail at open and keeps everything before it', (t) => {
    const dir = tempDir(t);
    let q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    for (let i = 1; i <= 3; i++) q.append(payloadOf(i));
    q.close();
    const [segment] = segmentFiles(dir);
    assert.ok(segment !== undefined);
    const path = join(dir, segment);
    const sizeBefore = statSync(path).size;
    // Half a frame: a header announcing 1000 bytes, then only 10.
    const torn = Buffer.alloc(26);
    torn.writeUInt32LE(1000, 0);
    appendFileSync(path, torn);
    q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    assert.equal(q.stats().truncatedBytes, 26);
    assert.equal(statSync(path).size, sizeBefore);
    assert.deepEqual(
      q.peek(10).map((r) => r.id),
      [1, 2, 3],
    );
    assert.equal(q.append(payloadOf(4)).id, 4);
    q.close();

    // A flipped byte in the payload of the last record of the first segment: that record is cut.
    const buf = readFileSync(path);
    buf.writeUInt8((buf.at(-1) ?? 0) ^ 0xff, buf.length - 1);
    writeFileSync(path, buf);
    q = DiskQueue.open({ dir, maxBytes: 1 << 20 });
    assert.deepEqual(
      q.peek(10).map((r) => text(r.data)),
      [payloadOf(1), payloadOf(2), payloadOf(4)].map(text),
    );
    q.close();
  });

  it('survives SIGKILL in the middle of appends and acks', { timeout: 120_000 }, async (t) => {
    const helper = new URL('./_test-disk-queue-writer.ts', import.meta.url).pathname;
    for (const delayMs of [30, 80, 150, 250, 400]) {
      const dir = tempDir(t);
      const child = spawn(
        process.execPath,
        ['--conditions=@aiedge/source', '--import', 'tsx', helper, dir, '200000', '8192'],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => (out += chunk));
      await new Promise<void>((resolve, reject) => {
        child.once('error', reject);
        child.stdout.on('data', () => {
          if (out.includes('ready\n')) resolve();
        });
        child.once('exit', () => reject(new Error(`writer exited early: ${out.slice(-200)}`)));
      });
      await new Promise((r) => setTimeout(r, delayMs));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;

      const lines = out.split('\n');
      const appended = Math.max(
        0,
        ...lines.filter((l) => l.startsWith('appended ')).map((l) => Number(l.slice(9))),
      );
      const acked = Math.max(
        0,
        ...lines.filter((l) => l.startsWith('acked ')).map((l) => Number(l.slice(6))),
      );
      assert.ok(appended > 0, `delay ${delayMs}: the writer appended nothing`);

      const q = DiskQueue.open({ dir, maxBytes: 200_000 });
      const stats = q.stats();
      // Every reported step is on disk; at most the one in flight when the kill came is extra.
      assert.ok(
        stats.nextId - 1 >= appended && stats.nextId - 1 <= appended + 1,
        `${stats.nextId} vs ${appended}`,
      );
      assert.ok(stats.ackedId >= acked, `acked ${stats.ackedId} < reported ${acked}`);
      const records = q.peek(Number.MAX_SAFE_INTEGER);
      assert.equal(records.length, stats.records);
      let expected = stats.ackedId + 1;
      for (const r of records) {
        assert.equal(r.id, expected, `delay ${delayMs}: ids must be contiguous`);
        assert.ok(r.data.equals(payloadOf(r.id)), `delay ${delayMs}: record ${r.id} is intact`);
        expected++;
      }
      assert.equal(expected, stats.nextId);
      // Still usable.
      const { id } = q.append(payloadOf(stats.nextId));
      assert.equal(id, stats.nextId);
      q.close();
    }
  });

  it('matches a model under random appends, acks, drops and reopens', (t) => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const random = prng(seed);
      const dir = tempDir(t);
      const maxBytes = 2000 + Math.floor(random() * 6000);
      const segmentBytes = 4096;
      let q = DiskQueue.open({ dir, maxBytes, segmentBytes, fsync: 'never' });
      const model: { id: number; data: Buffer }[] = [];
      let dropped = 0;
      let nextId = 1;
      let bytes = 0;
      for (let step = 0; step < 600; step++) {
        const op = random();
        if (op < 0.55) {
          const data = Buffer.alloc(Math.floor(random() * 600), step % 251);
          const result = q.append(data);
          assert.equal(result.id, nextId);
          model.push({ id: nextId++, data });
          bytes += 16 + data.length;
          let d = 0;
          while (bytes > maxBytes) {
            const gone = model.shift();
            assert.ok(gone !== undefined);
            bytes -= 16 + gone.data.length;
            d++;
          }
          assert.equal(result.dropped, d, `seed ${seed} step ${step}`);
          dropped += d;
        } else if (op < 0.85) {
          const n = 1 + Math.floor(random() * 5);
          const head = q.peek(n);
          assert.deepEqual(
            head.map((r) => r.id),
            model.slice(0, n).map((r) => r.id),
            `seed ${seed} step ${step}`,
          );
          head.forEach((r, i) => assert.ok(r.data.equals(model[i]?.data ?? Buffer.alloc(1))));
          const last = head.at(-1);
          if (last !== undefined && random() < 0.8) {
            q.ack(last.id);
            const removed = model.splice(0, head.length);
            for (const r of removed) bytes -= 16 + r.data.length;
          }
        } else {
          q.close();
          q = DiskQueue.open({ dir, maxBytes, segmentBytes, fsync: 'never' });
        }
        const s = q.stats();
        assert.equal(s.records, model.length, `seed ${seed} step ${step}`);
        assert.equal(s.bytes, bytes);
        assert.equal(s.dropped, dropped);
        assert.ok(s.bytes <= maxBytes);
        // The disk holds at most the bound plus one segment plus the cursor.
        const onDisk = readdirSync(dir).reduce((sum, n) => sum + statSync(join(dir, n)).size, 0);
        assert.ok(
          onDisk <= maxBytes + segmentBytes + 200,
          `seed ${seed} step ${step}: ${onDisk} bytes on disk`,
        );
      }
      q.close();
    }
  });

  it('computes the same CRC-32 as zlib', () => {
    for (const s of ['', 'a', '123456789', 'x'.repeat(1000)]) {
      assert.equal(tableCrc32(Buffer.from(s)), zlib.crc32(Buffer.from(s)));
    }
    assert.equal(tableCrc32(Buffer.from('123456789')), 0xcbf43926);
  });

  it('rejects bad options naming the key', (t) => {
    const dir = tempDir(t);
    assert.throws(() => DiskQueue.open({ dir, maxBytes: 0 }), /maxBytes is 0/);
    assert.throws(() => DiskQueue.open({ dir, maxBytes: 10, fsync: 'sometimes' as 'always' }), /fsync/);
    assert.throws(
      () =>
        DiskQueue.open({ dir, maxBytes: 10, extra: 1 } as unknown as Parameters<typeof DiskQueue.open>[0]),
      /unknown option "extra"/,
    );
  });
});
