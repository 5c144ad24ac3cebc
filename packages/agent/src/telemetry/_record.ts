/**
 * How the relay stores one OTLP export request in the disk queue: a 3-byte header (format version,
 * signal, encoding) then the request body exactly as received, gzip-compressed (kept as sent when
 * the sender already compressed it).
 */
import type { OtlpEncoding } from '@aiedge/telemetry';

/** The OTLP signals the relay carries. */
export type OtlpSignal = 'metrics' | 'traces';

/** One stored export request. */
export interface StoredExport {
  readonly signal: OtlpSignal;
  readonly encoding: OtlpEncoding;
  /** The request body, gzip-compressed. */
  readonly gzipBody: Buffer;
}

const FORMAT_VERSION = 1;
const HEADER_BYTES = 3;
const SIGNALS: readonly OtlpSignal[] = ['metrics', 'traces'];
const ENCODINGS: readonly OtlpEncoding[] = ['protobuf', 'json'];

/** Encodes an export request for the queue. */
export function encodeStoredExport(record: StoredExport): Buffer {
  const header = Buffer.from([
    FORMAT_VERSION,
    SIGNALS.indexOf(record.signal),
    ENCODINGS.indexOf(record.encoding),
  ]);
  return Buffer.concat([header, record.gzipBody]);
}

/** Decodes a queue record; undefined when it is not one this version wrote. */
export function decodeStoredExport(data: Buffer): StoredExport | undefined {
  if (data.length < HEADER_BYTES || data[0] !== FORMAT_VERSION) return undefined;
  const signal = SIGNALS[data[1] ?? -1];
  const encoding = ENCODINGS[data[2] ?? -1];
  if (signal === undefined || encoding === undefined) return undefined;
  return { signal, encoding, gzipBody: data.subarray(HEADER_BYTES) };
}

/** The content type of an encoding on the wire. */
export function contentTypeOf(encoding: OtlpEncoding): string {
  return encoding === 'json' ? 'application/json' : 'application/x-protobuf';
}
