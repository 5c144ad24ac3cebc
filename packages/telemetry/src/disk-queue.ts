/**
 * A durable FIFO of byte records in one directory, bounded by bytes: when full, the oldest records
 * are dropped first (and counted). Made to survive `kill -9` at any moment.
 *
 * Layout: append-only segment files `seg-<first id>.log` of frames
 * `[u32 LE payload length][u32 LE crc32(id ‖ payload)][u64 LE id][payload]`, and `cursor.json`
 * (written by temp file + rename) holding the last consumed id, the drop counter and the queue's
 * random instance id. A torn or corrupt tail is found by its length or checksum at open and cut
 * off. Segments whose records are all consumed are deleted.
 *
 * File I/O is synchronous: one call is one consistent step, with no interleaving to reason about.
 * One process at a time may open a directory.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import * as zlib from 'node:zlib';
import { InputError, PayloadTooLargeError, describeValue } from '@aiedge/protocol';

/** When the queue calls fsync: after every append and cursor write, or never (the OS decides). */
export const DiskQueueFsyncPolicies = ['always', 'never'] as const;
/** One of {@link DiskQueueFsyncPolicies}. */
export type DiskQueueFsyncPolicy = (typeof DiskQueueFsyncPolicies)[number];

/** Options of {@link DiskQueue.open}. */
export interface DiskQueueOptions {
  /** Directory of the queue (created when missing). */
  readonly dir: string;
  /** Most bytes of unconsumed records (frames included); older records are dropped to stay under it. */
  readonly maxBytes: number;
  /** Size at which a segment file is closed and a new one started; default min(maxBytes / 8, 4 MiB), at least 4 KiB. */
  readonly segmentBytes?: number;
  /**
   * `always` (default): fsync every append and cursor write, surviving power loss; `never`: survive
   * process crashes only (the OS writes the page cache later).
   */
  readonly fsync?: DiskQueueFsyncPolicy;
}

/** A record read from the queue. */
export interface DiskQueueRecord {
  /** Increasing id (never reused within the queue's instance). */
  readonly id: number;
  readonly data: Buffer;
}

/** What {@link DiskQueue.append} did. */
export interface DiskQueueAppendResult {
  /** Id of the new record. */
  readonly id: number;
  /** Older records dropped to make room for it. */
  readonly dropped: number;
}

/** Counters and sizes of a queue. */
export interface DiskQueueStats {
  /** Unconsumed records. */
  readonly records: number;
  /** Bytes of unconsumed records, frames included. */
  readonly bytes: number;
  readonly maxBytes: number;
  /** Records dropped because the queue was full, over the queue's life (persisted). */
  readonly dropped: number;
  /** Last consumed (acknowledged or dropped) id; 0 before any. */
  readonly ackedId: number;
  /** Id the next append gets. */
  readonly nextId: number;
  readonly segments: number;
  /** Bytes cut off at open because a record was torn or corrupt (since open). */
  readonly truncatedBytes: number;
}

const HEADER_BYTES = 16;
const CURSOR_FILE = 'cursor.json';
const SEGMENT_PATTERN = /^seg-(\d{20})\.log$/;
const MIN_SEGMENT_BYTES = 4096;
const DEFAULT_MAX_SEGMENT_BYTES = 4 * 1024 * 1024;

interface RecordRef {
  readonly id: number;
  readonly offset: number;
  /** Frame bytes (header + payload). */
  readonly frameBytes: number;
}

interface Segment {
  readonly firstId: number;
  readonly path: string;
  size: number;
  readonly records: RecordRef[];
}

interface Cursor {
  readonly version: 1;
  readonly instance: string;
  readonly ackedId: number;
  readonly dropped: number;
}

/** CRC-32 (IEEE): node:zlib's where present (Node ≥ 20.15), else a table-driven one. */
const crc32: (data: Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : tableCrc32;

let crcTable: Uint32Array | undefined;
/** Table-driven CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320). */
export function tableCrc32(data: Uint8Array, value = 0): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = (value ^ 0xffffffff) >>> 0;
  for (const byte of data) crc = (crcTable[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function frameChecksum(idBytes: Uint8Array, payload: Uint8Array): number {
  return crc32(payload, crc32(idBytes));
}

function segmentName(firstId: number): string {
  return `seg-${String(firstId).padStart(20, '0')}.log`;
}

function positiveInteger(value: unknown, key: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new InputError(`disk queue: ${key} is ${describeValue(value)}: expected a positive integer`);
  }
  return value;
}

/** A durable, byte-bounded FIFO of records in a directory (see the module comment). */
export class DiskQueue {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #fsync: boolean;
  readonly #instance: string;
  readonly #segments: Segment[] = [];
  #ackedId: number;
  #dropped: number;
  #nextId: number;
  #liveBytes = 0;
  #liveRecords = 0;
  #tailFd: number | undefined;
  #truncatedBytes = 0;
  #closed = false;

  private constructor(options: Required<DiskQueueOptions>, cursor: Cursor) {
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#segmentBytes = options.segmentBytes;
    this.#fsync = options.fsync === 'always';
    this.#instance = cursor.instance;
    this.#ackedId = cursor.ackedId;
    this.#dropped = cursor.dropped;
    this.#nextId = cursor.ackedId + 1;
  }

  /** Opens (or creates) the queue in `options.dir`, cutting off a torn tail and deleting consumed segments. */
  static open(options: DiskQueueOptions): DiskQueue {
    const known = new Set(['dir', 'maxBytes', 'segmentBytes', 'fsync']);
    for (const key of Object.keys(options)) {
      if (!known.has(key)) throw new InputError(`disk queue: unknown option ${describeValue(key)}`);
    }
    if (typeof options.dir !== 'string' || options.dir === '') {
      throw new InputError(`disk queue: dir is ${describeValue(options.dir)}: expected a directory path`);
    }
    const maxBytes = positiveInteger(options.maxBytes, 'maxBytes');
    const segmentBytes =
      options.segmentBytes === undefined
        ? Math.max(MIN_SEGMENT_BYTES, Math.min(DEFAULT_MAX_SEGMENT_BYTES, Math.floor(maxBytes / 8)))
        : positiveInteger(options.segmentBytes, 'segmentBytes');
    const fsync = options.fsync ?? 'always';
    if (!DiskQueueFsyncPolicies.includes(fsync)) {
      throw new InputError(
        `disk queue: fsync is ${describeValue(fsync)}: expected one of ${DiskQueueFsyncPolicies.join(', ')}`,
      );
    }
    mkdirSync(options.dir, { recursive: true });
    const resolved = { dir: options.dir, maxBytes, segmentBytes, fsync };
    const cursor = readCursor(options.dir);
    const queue = new DiskQueue(resolved, cursor ?? newCursor());
    if (cursor === undefined) queue.#writeCursor();
    queue.#load();
    return queue;
  }

  /** Random id of this queue's directory, made at creation: record ids are unique within it. */
  get instanceId(): string {
    return this.#instance;
  }

  /** Appends a record, dropping the oldest unconsumed records first when it would not fit. */
  append(data: Uint8Array): DiskQueueAppendResult {
    this.#assertOpen();
    const frameBytes = HEADER_BYTES + data.byteLength;
    if (frameBytes > this.#maxBytes) {
      throw new PayloadTooLargeError(
        `disk queue ${this.#dir}: a record of ${data.byteLength} bytes does not fit in maxBytes ${this.#maxBytes}`,
      );
    }
    let dropped = 0;
    if (this.#liveBytes + frameBytes > this.#maxBytes) {
      let ackedId = this.#ackedId;
      let freed = 0;
      for (const record of this.#liveRecordRefs()) {
        if (this.#liveBytes - freed + frameBytes <= this.#maxBytes) break;
        freed += record.frameBytes;
        ackedId = record.id;
        dropped++;
      }
      this.#consumeUpTo(ackedId, dropped);
    }
    const id = this.#nextId;
    const frame = Buffer.allocUnsafe(frameBytes);
    frame.writeUInt32LE(data.byteLength, 0);
    frame.writeBigUInt64LE(BigInt(id), 8);
    frame.writeUInt32LE(frameChecksum(frame.subarray(8, 16), data), 4);
    frame.set(data, HEADER_BYTES);
    let tail = this.#segments.at(-1);
    if (tail === undefined || this.#tailFd === undefined || tail.size + frameBytes > this.#segmentBytes) {
      tail = this.#startSegment(id);
    }
    const fd = this.#tailFd;
    if (fd === undefined) throw new Error('disk queue: no open segment');
    let written = 0;
    while (written < frame.length) {
      written += writeSync(fd, frame, written, frame.length - written, tail.size + written);
    }
    if (this.#fsync) fsyncSync(fd);
    tail.records.push({ id, offset: tail.size, frameBytes });
    tail.size += frameBytes;
    this.#nextId = id + 1;
    this.#liveBytes += frameBytes;
    this.#liveRecords++;
    return { id, dropped };
  }

  /** The oldest unconsumed records, at most `maxRecords` and `maxBytes` of payload (always at least one when any). */
  peek(maxRecords: number, maxBytes = Number.MAX_SAFE_INTEGER): DiskQueueRecord[] {
    this.#assertOpen();
    const out: DiskQueueRecord[] = [];
    let bytes = 0;
    let fd: number | undefined;
    let fdPath = '';
    try {
      for (const [segment, record] of this.#liveRecordEntries()) {
        if (out.length >= maxRecords) break;
        const payloadBytes = record.frameBytes - HEADER_BYTES;
        if (out.length > 0 && bytes + payloadBytes > maxBytes) break;
        if (fd === undefined || fdPath !== segment.path) {
          if (fd !== undefined) closeSync(fd);
          fd = openSync(segment.path, 'r');
          fdPath = segment.path;
        }
        const data = Buffer.allocUnsafe(payloadBytes);
        readFully(fd, data, record.offset + HEADER_BYTES);
        out.push({ id: record.id, data });
        bytes += payloadBytes;
      }
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    return out;
  }

  /** Marks every record up to and including `upToId` consumed; deletes segments left with none unconsumed. */
  ack(upToId: number): void {
    this.#assertOpen();
    if (!Number.isSafeInteger(upToId) || upToId >= this.#nextId) {
      throw new InputError(
        `disk queue ${this.#dir}: ack(${describeValue(upToId)}) is not an appended id (next is ${this.#nextId})`,
      );
    }
    if (upToId <= this.#ackedId) return;
    this.#consumeUpTo(upToId, 0);
  }

  /** Counters and sizes. */
  stats(): DiskQueueStats {
    return {
      records: this.#liveRecords,
      bytes: this.#liveBytes,
      maxBytes: this.#maxBytes,
      dropped: this.#dropped,
      ackedId: this.#ackedId,
      nextId: this.#nextId,
      segments: this.#segments.length,
      truncatedBytes: this.#truncatedBytes,
    };
  }

  /** Closes the open segment file; the queue is unusable afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#tailFd !== undefined) closeSync(this.#tailFd);
    this.#tailFd = undefined;
  }

  #assertOpen(): void {
    if (this.#closed) throw new InputError(`disk queue ${this.#dir} is closed`);
  }

  *#liveRecordEntries(): Generator<[Segment, RecordRef]> {
    for (const segment of this.#segments) {
      const last = segment.records.at(-1);
      if (last === undefined || last.id <= this.#ackedId) continue;
      for (const record of segment.records) {
        if (record.id > this.#ackedId) yield [segment, record];
      }
    }
  }

  *#liveRecordRefs(): Generator<RecordRef> {
    for (const [, record] of this.#liveRecordEntries()) yield record;
  }

  /** Advances the cursor to `ackedId` (adding `dropped` to the drop counter), then deletes consumed segments. */
  #consumeUpTo(ackedId: number, dropped: number): void {
    for (const record of this.#liveRecordRefs()) {
      if (record.id > ackedId) break;
      this.#liveBytes -= record.frameBytes;
      this.#liveRecords--;
    }
    this.#ackedId = ackedId;
    this.#dropped += dropped;
    // The cursor first: a kill between the two leaves consumed segments that open deletes.
    this.#writeCursor();
    this.#deleteConsumedSegments();
  }

  #deleteConsumedSegments(): void {
    for (let first = this.#segments[0]; first !== undefined; first = this.#segments[0]) {
      const last = first.records.at(-1);
      if (last !== undefined && last.id > this.#ackedId) break;
      if (this.#segments.length === 1 && this.#tailFd !== undefined) {
        if (last === undefined) break;
        closeSync(this.#tailFd);
        this.#tailFd = undefined;
      }
      unlinkSync(first.path);
      this.#segments.shift();
    }
  }

  #startSegment(firstId: number): Segment {
    if (this.#tailFd !== undefined) {
      closeSync(this.#tailFd);
      this.#tailFd = undefined;
    }
    const path = join(this.#dir, segmentName(firstId));
    this.#tailFd = openSync(path, 'w+');
    if (this.#fsync) fsyncDir(this.#dir);
    const segment: Segment = { firstId, path, size: 0, records: [] };
    this.#segments.push(segment);
    return segment;
  }

  #writeCursor(): void {
    const cursor: Cursor = {
      version: 1,
      instance: this.#instance,
      ackedId: this.#ackedId,
      dropped: this.#dropped,
    };
    writeAtomic(join(this.#dir, CURSOR_FILE), `${JSON.stringify(cursor)}\n`, this.#fsync);
  }

  /** Scans the segments: validates every frame, cuts off a torn or corrupt tail, rebuilds the index. */
  #load(): void {
    const names = readdirSync(this.#dir)
      .map((name) => ({ name, match: SEGMENT_PATTERN.exec(name) }))
      .filter((e) => e.match !== null)
      .map((e) => ({ name: e.name, firstId: Number(e.match?.[1]) }))
      .sort((a, b) => a.firstId - b.firstId);
    let lastId = 0;
    for (const { name, firstId } of names) {
      const path = join(this.#dir, name);
      const segment: Segment = { firstId, path, size: 0, records: [] };
      const content = readFileSync(path);
      let offset = 0;
      while (offset + HEADER_BYTES <= content.length) {
        const length = content.readUInt32LE(offset);
        const checksum = content.readUInt32LE(offset + 4);
        const idBig = content.readBigUInt64LE(offset + 8);
        if (length > this.#maxBytes || offset + HEADER_BYTES + length > content.length) break;
        if (idBig > BigInt(Number.MAX_SAFE_INTEGER)) break;
        const id = Number(idBig);
        const payload = content.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
        if (frameChecksum(content.subarray(offset + 8, offset + 16), payload) !== checksum) break;
        // A segment starts with the id in its name and ids only grow: anything else is not ours.
        if ((segment.records.length === 0 && id !== firstId) || id <= lastId) break;
        segment.records.push({ id, offset, frameBytes: HEADER_BYTES + length });
        offset += HEADER_BYTES + length;
        lastId = Math.max(lastId, id);
      }
      if (offset < content.length) {
        this.#truncatedBytes += content.length - offset;
        const fd = openSync(path, 'r+');
        try {
          ftruncateSync(fd, offset);
          if (this.#fsync) fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      segment.size = offset;
      this.#segments.push(segment);
    }
    this.#nextId = Math.max(lastId, this.#ackedId) + 1;
    for (const [, record] of this.#liveRecordEntries()) {
      this.#liveBytes += record.frameBytes;
      this.#liveRecords++;
    }
    // Delete consumed and empty segments; appends always start a new segment after open.
    this.#segments.splice(
      0,
      this.#segments.length,
      ...this.#segments.filter((segment) => {
        const last = segment.records.at(-1);
        if (last !== undefined && last.id > this.#ackedId) return true;
        unlinkSync(segment.path);
        return false;
      }),
    );
    // Over the bound (maxBytes lowered since last time): drop the oldest now.
    if (this.#liveBytes > this.#maxBytes) {
      let ackedId = this.#ackedId;
      let freed = 0;
      let dropped = 0;
      for (const record of this.#liveRecordRefs()) {
        if (this.#liveBytes - freed <= this.#maxBytes) break;
        freed += record.frameBytes;
        ackedId = record.id;
        dropped++;
      }
      this.#consumeUpTo(ackedId, dropped);
    }
  }
}

function newCursor(): Cursor {
  return { version: 1, instance: randomBytes(8).toString('hex'), ackedId: 0, dropped: 0 };
}

function readCursor(dir: string): Cursor | undefined {
  const path = join(dir, CURSOR_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`disk queue: ${path} is not valid JSON`, { cause: error });
  }
  const c = parsed as Partial<Cursor> | null;
  if (
    c === null ||
    typeof c !== 'object' ||
    c.version !== 1 ||
    typeof c.instance !== 'string' ||
    !/^[0-9a-f]{1,64}$/.test(c.instance) ||
    !Number.isSafeInteger(c.ackedId) ||
    (c.ackedId ?? -1) < 0 ||
    !Number.isSafeInteger(c.dropped) ||
    (c.dropped ?? -1) < 0
  ) {
    throw new InputError(`disk queue: ${path} is ${describeValue(text)}: not a queue cursor`);
  }
  return c as Cursor;
}

function readFully(fd: number, into: Buffer, position: number): void {
  let read = 0;
  while (read < into.length) {
    const n = readSync(fd, into, read, into.length - read, position + read);
    if (n === 0) throw new Error(`disk queue: unexpected end of segment at ${position + read}`);
    read += n;
  }
}

/** Writes `path` by temp file + rename, so a reader sees the old or the new content, never a mix. */
function writeAtomic(path: string, content: string, fsync: boolean): void {
  const temp = `${path}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeFileSync(fd, content);
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
  if (fsync) fsyncDir(dirname(path));
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
