// Test helper (left out of the build): a minimal OTLP/HTTP receiver on 127.0.0.1 that records every request.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got. */
export interface ReceivedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/** A running receiver; `close()` stops it and drops open connections. */
export interface OtlpReceiver {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly requests: readonly ReceivedRequest[];
  /** The requests to one path, e.g. `/v1/metrics`. */
  requestsTo(path: string): ReceivedRequest[];
  /** Sets the HTTP status of the following answers (default 200). */
  respondWith(status: number): void;
  close(): Promise<void>;
}

/** Starts a receiver on 127.0.0.1 on a free port; answers 200 with an empty OTLP response unless told otherwise. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: ReceivedRequest[] = [];
  let status = 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      const json = (req.headers['content-type'] ?? '').includes('json');
      if (status !== 200) {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(`status ${status}`);
        return;
      }
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  await listen(server);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    requestsTo: (path) => requests.filter((r) => r.path === path),
    respondWith: (next) => {
      status = next;
    },
    close: () => closeServer(server),
  };
}

/** A port on 127.0.0.1 that nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await listen(server);
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

function listen(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
