/**
 * The relay's OTLP/HTTP receiver for the runtimes on this site: `POST /v1/metrics` and
 * `POST /v1/traces` (protobuf or JSON, optionally gzip) on a loopback address. Each request is
 * decoded only to validate it; its original bytes are stored in the disk queue and acknowledged as
 * OTLP expects once they are on disk.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { AiEdgeError, describeValue, httpStatusOf } from '@aiedge/protocol';
import {
  decodeOtlpMetrics,
  decodeOtlpTraces,
  encodeOtlpResponse,
  type DiskQueue,
  type Logger,
  type OtlpEncoding,
} from '@aiedge/telemetry';
import { contentTypeOf, encodeStoredExport, type OtlpSignal } from './_record.js';

const gunzipAsync = promisify(gunzip);
const gzipAsync = promisify(gzip);

/** Default port of the receiver: the OTLP/HTTP standard port. */
export const DEFAULT_OTLP_HTTP_PORT = 4318;
/** Default largest request body accepted, compressed or inflated. */
export const DEFAULT_MAX_OTLP_BODY_BYTES = 4 * 1024 * 1024;

const PATHS: Readonly<Record<string, OtlpSignal>> = { '/v1/metrics': 'metrics', '/v1/traces': 'traces' };
/** google.rpc.Code values used in OTLP error bodies. */
const RPC_CODES = { INVALID_ARGUMENT: 3, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14, INTERNAL: 13 } as const;

/** Options of {@link startOtlpReceiver}. */
export interface OtlpReceiverOptions {
  /** Queue the accepted requests go to. */
  readonly queue: DiskQueue;
  /** Address to bind; default `127.0.0.1`. */
  readonly host?: string;
  /** Port; default {@link DEFAULT_OTLP_HTTP_PORT}; 0 picks a free one. */
  readonly port?: number;
  /** Largest body accepted, compressed and inflated; default {@link DEFAULT_MAX_OTLP_BODY_BYTES}. */
  readonly maxBodyBytes?: number;
  readonly logger: Logger;
  /** Called after each stored request (the forwarder wakes up). */
  readonly onStored?: () => void;
}

/** Counters of the receiver. */
export interface OtlpReceiverStats {
  /** Requests stored, by signal. */
  readonly accepted: { readonly metrics: number; readonly traces: number };
  /** Requests refused (bad path, method, type, encoding, size or content). */
  readonly refused: number;
  /** Older queued requests dropped to make room for new ones. */
  readonly droppedForSpace: number;
}

/** A running receiver. */
export interface RunningOtlpReceiver {
  /** Base URL, e.g. `http://127.0.0.1:4318`. */
  readonly url: string;
  readonly port: number;
  stats(): OtlpReceiverStats;
  /** Stops accepting; resolves when the server is closed. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Starts the receiver. */
export async function startOtlpReceiver(options: OtlpReceiverOptions): Promise<RunningOtlpReceiver> {
  const { queue } = options;
  const logger = options.logger.child({ component: 'agent.telemetry.receiver' });
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_OTLP_BODY_BYTES;
  const accepted = { metrics: 0, traces: 0 };
  let refused = 0;
  let droppedForSpace = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0] ?? '';
    const signal = PATHS[path];
    if (signal === undefined) throw new HttpError(404, `no OTLP receiver at ${describeValue(path)}`);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      throw new HttpError(405, `${path} accepts POST only, not ${req.method ?? ''}`);
    }
    const encoding = encodingOf(req.headers['content-type']);
    const gzipped = isGzip(req.headers['content-encoding']);
    const raw = await readBody(req, maxBodyBytes);
    let body: Buffer;
    if (gzipped) {
      try {
        body = await gunzipAsync(raw, { maxOutputLength: maxBodyBytes });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
          throw new HttpError(413, `request body inflates to more than ${maxBodyBytes} bytes`);
        }
        throw new HttpError(400, `request body is not valid gzip: ${(error as Error).message}`);
      }
    } else {
      body = raw;
    }
    // Decoded only to refuse garbage here, where the sender can see it; the original bytes are kept.
    if (signal === 'metrics') decodeOtlpMetrics(body, encoding);
    else decodeOtlpTraces(body, encoding);
    const gzipBody = gzipped ? raw : await gzipAsync(body);
    const { dropped } = queue.append(encodeStoredExport({ signal, encoding, gzipBody }));
    accepted[signal]++;
    if (dropped > 0) {
      droppedForSpace += dropped;
      logger.warn('telemetry queue full: dropped the oldest requests', { dropped });
    }
    options.onStored?.();
    const response = encodeOtlpResponse(signal, encoding);
    res.writeHead(200, { 'content-type': contentTypeOf(encoding) });
    res.end(Buffer.from(response.buffer, response.byteOffset, response.byteLength));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      refused++;
      const status =
        error instanceof HttpError ? error.status : error instanceof AiEdgeError ? httpStatusOf(error) : 500;
      const message = (error as Error).message;
      if (status >= 500) logger.error('OTLP request failed', { err: error });
      else logger.debug('OTLP request refused', { status, reason: message });
      const encoding = safeEncodingOf(req.headers['content-type']);
      const code =
        status === 413
          ? RPC_CODES.RESOURCE_EXHAUSTED
          : status >= 500
            ? RPC_CODES.INTERNAL
            : RPC_CODES.INVALID_ARGUMENT;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(status, { 'content-type': contentTypeOf(encoding), connection: 'close' });
      res.end(encodeStatus(encoding, code, message));
      // Unread request bytes (refused early) are discarded with the connection.
      req.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? DEFAULT_OTLP_HTTP_PORT, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  logger.info('OTLP receiver listening', { url });
  return {
    url,
    port: address.port,
    stats: () => ({ accepted: { ...accepted }, refused, droppedForSpace }),
    close: () => closeServer(server),
  };
}

function encodingOf(header: string | undefined): OtlpEncoding {
  const type = (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json') return 'json';
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  throw new HttpError(
    415,
    `content-type ${describeValue(header ?? '')} is not supported: send application/x-protobuf or application/json`,
  );
}

function safeEncodingOf(header: string | undefined): OtlpEncoding {
  try {
    return encodingOf(header);
  } catch {
    return 'json';
  }
}

function isGzip(header: string | undefined): boolean {
  const encoding = (header ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') return false;
  if (encoding === 'gzip') return true;
  throw new HttpError(415, `content-encoding ${describeValue(encoding)} is not supported: send gzip or none`);
}

/** Reads the body, refusing more than `maxBytes` (by content-length up front, or as it streams). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(new HttpError(413, `request body of ${declared} bytes exceeds ${maxBytes}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        reject(new HttpError(413, `request body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** A `google.rpc.Status` with `code` and `message`, as OTLP/HTTP error bodies are. */
function encodeStatus(encoding: OtlpEncoding, code: number, message: string): Buffer {
  if (encoding === 'json') return Buffer.from(JSON.stringify({ code, message }));
  const text = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from([0x08, code, 0x12]), varint(text.length), text]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeIdleConnections();
  });
}
