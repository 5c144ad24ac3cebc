// Test helper (left out of the build): appends to a disk queue as fast as it can, acking some ids,
// and reports every completed step on stdout, until it is killed.
// Usage: node --conditions=@aiedge/source --import tsx _test-disk-queue-writer.ts <dir> <maxBytes> <segmentBytes>
import { writeSync } from 'node:fs';
import { DiskQueue } from './disk-queue.js';

/** The payload the writer gives record `id` (disk-queue.test.ts checks it after the kill: keep the two equal). */
function payloadOf(id: number): Buffer {
  const length = (id * 7919) % 900;
  return Buffer.from(`record ${id};`.padEnd(12 + length, String.fromCharCode(97 + (id % 26))));
}

const [dir, maxBytes, segmentBytes] = process.argv.slice(2);
if (dir !== undefined) {
  const queue = DiskQueue.open({
    dir,
    maxBytes: Number(maxBytes),
    segmentBytes: Number(segmentBytes),
    fsync: 'never',
  });
  writeSync(1, 'ready\n');
  for (;;) {
    const { id } = queue.append(payloadOf(queue.stats().nextId));
    writeSync(1, `appended ${id}\n`);
    if (id % 5 === 0) {
      const head = queue.peek(3);
      const last = head.at(-1);
      if (last !== undefined) {
        queue.ack(last.id);
        writeSync(1, `acked ${last.id}\n`);
      }
    }
  }
}
