/** A minimal JSON client of the core's API for the agent: bearer token, custom CA, abort and timeout. */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { InputError, describeValue } from '@aiedge/protocol';

/** An answer of the core. */
export interface CoreResponse {
  readonly status: number;
  readonly body: string;
}

/** Options of {@link CoreClient}. */
export interface CoreClientOptions {
  /** Base URL of the core (`http://` or `https://`). */
  readonly url: string;
  /** The bearer token; called per request, never logged. */
  readonly token: () => string;
  /** PEM CA certificate(s) to trust for https. */
  readonly ca?: string | Buffer;
}

/** Options of one request. */
export interface CoreRequestOptions {
  readonly body?: unknown;
  readonly signal?: AbortSignal;
  /** Time the whole request may take; default 30 000. */
  readonly timeoutMs?: number;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** Checks a core URL: http(s), no credentials, no query; returns it without a trailing slash. */
export function checkCoreUrl(url: string, what = 'core URL'): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InputError(`${what} is ${describeValue(url)}: not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InputError(`${what} is ${describeValue(url)}: must be http:// or https://`);
  }
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    throw new InputError(`${what} must not carry credentials, a query or a fragment`);
  }
  return parsed.toString().replace(/\/+$/, '');
}

/** Talks JSON to the core. Network failures reject; every HTTP answer resolves. */
export class CoreClient {
  readonly url: string;
  readonly #token: () => string;
  readonly #agent: HttpAgent | HttpsAgent;
  readonly #https: boolean;

  constructor(options: CoreClientOptions) {
    this.url = checkCoreUrl(options.url);
    this.#token = options.token;
    this.#https = this.url.startsWith('https:');
    this.#agent = this.#https
      ? new HttpsAgent({ keepAlive: true, ...(options.ca !== undefined ? { ca: options.ca } : {}) })
      : new HttpAgent({ keepAlive: true });
  }

  /** Sends `method path` with the bearer token (and `body` as JSON). */
  request(method: string, path: string, options: CoreRequestOptions = {}): Promise<CoreResponse> {
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const url = new URL(this.url + path);
    const timeoutMs = options.timeoutMs ?? 30_000;
    return new Promise<CoreResponse>((resolve, reject) => {
      const req = (this.#https ? httpsRequest : httpRequest)(
        url,
        {
          method,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${this.#token()}`,
            accept: 'application/json',
            ...(payload !== undefined
              ? { 'content-type': 'application/json', 'content-length': payload.length }
              : {}),
          },
          ...(options.signal !== undefined ? { signal: options.signal } : {}),
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) {
              req.destroy(new Error(`answer of ${method} ${url.pathname} exceeds ${MAX_BODY_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
          });
          res.on('error', (error) => {
            clearTimeout(timer);
            reject(error);
          });
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`${method} ${url.pathname} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      req.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      req.end(payload);
    });
  }

  /** Closes idle connections. */
  close(): void {
    this.#agent.destroy();
  }
}

/** The core's error message from an error answer (`{message}`), or the status. */
export function errorMessageOf(response: CoreResponse): string {
  try {
    const parsed = JSON.parse(response.body) as { message?: unknown };
    if (typeof parsed.message === 'string') return `${response.status}: ${parsed.message}`;
  } catch {
    // not JSON
  }
  return `HTTP ${response.status}`;
}
