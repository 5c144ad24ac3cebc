// Test helper (left out of the build): a minimal OTLP/HTTP endpoint on 127.0.0.1 that records every
// request (body gunzipped) and answers with whatever status the test scripts.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One request the sink got. */
export interface SinkRequest {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body with any gzip undone. */
  readonly body: Buffer;
}

/** What the sink does with one request: answer with a status, or cut the connection. */
export type SinkAnswer = number | 'hang-up';

/** A running sink. */
export interface OtlpSink {
  readonly url: string;
  readonly port: number;
  readonly requests: SinkRequest[];
  /** Answers of the next requests, in order; afterwards 200. */
  script(...answers: SinkAnswer[]): void;
  close(): Promise<void>;
}

/** Starts a sink on 127.0.0.1, on `port` or a free one. */
export async function startOtlpSink(port = 0): Promise<OtlpSink> {
  const requests: SinkRequest[] = [];
  const answers: SinkAnswer[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      requests.push({ path: req.url ?? '', headers: req.headers, body });
      const answer = answers.shift() ?? 200;
      if (answer === 'hang-up') {
        req.socket.destroy();
        return;
      }
      const json = (req.headers['content-type'] ?? '').includes('json');
      res.writeHead(answer, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(answer === 200 ? (json ? '{}' : '') : `status ${answer}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    requests,
    script: (...next) => answers.push(...next),
    close: () => closeServer(server),
  };
}

/** A port on 127.0.0.1 nothing listens on (free a moment ago). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await closeServer(server);
  return port;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
