/**
 * The relay's forwarder: sends the queued OTLP export requests, oldest first, to the core's
 * `/v1/metrics` and `/v1/traces` (or any OTLP/HTTP endpoint), gzip-compressed, each with a stable
 * batch id so a resend after a lost acknowledgement is not stored twice. A record leaves the queue
 * only after a 2xx answer, or a 4xx that says it will never be accepted.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { InputError, TELEMETRY_BATCH_ID_HEADER, describeValue } from '@aiedge/protocol';
import type { DiskQueue, Logger } from '@aiedge/telemetry';
import { contentTypeOf, decodeStoredExport } from './_record.js';

/** Waits `ms`, resolving early (not rejecting) when `signal` aborts. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** Options of {@link TelemetryForwarder}. */
export interface TelemetryForwarderOptions {
  readonly queue: DiskQueue;
  /** Base URL of the OTLP/HTTP endpoint (the core's URL); `/v1/metrics` and `/v1/traces` are appended. */
  readonly endpoint: string;
  /** The bearer token to send (the site token); called for every request, never logged. */
  readonly token: () => string;
  readonly logger: Logger;
  /** PEM CA certificate(s) to trust for an https endpoint, instead of the system's. */
  readonly ca?: string | Buffer;
  /** Prefix of the batch ids; default the queue's instance id. */
  readonly batchIdPrefix?: string;
  /** Time one request may take before it is abandoned and retried; default 15 000. */
  readonly requestTimeoutMs?: number;
  /** First retry delay; doubles per failure up to `maxBackoffMs`; default 500. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay; default 30 000. */
  readonly maxBackoffMs?: number;
  /** How long an idle forwarder waits before looking at the queue again (appends wake it); default 5 000. */
  readonly idlePollMs?: number;
  /** Stops the forwarder. */
  readonly signal?: AbortSignal;
  /** Injected for tests: the delay function; default timers. */
  readonly sleep?: Sleep;
  /** Injected for tests: a random number in [0, 1) for jitter; default Math.random. */
  readonly random?: () => number;
}

/** Counters of a forwarder. */
export interface TelemetryForwarderStats {
  /** Requests the endpoint accepted (2xx). */
  readonly forwarded: number;
  /** Requests the endpoint refused for good (4xx other than 408 and 429), dropped. */
  readonly rejected: number;
  /** Failed attempts that will be retried (network errors, timeouts, 408, 429, 5xx). */
  readonly retries: number;
  /** Consecutive failed attempts of the request at the head of the queue. */
  readonly failing: number;
  /** Why the last attempt failed, when it did. */
  readonly lastError: string | undefined;
}

type Outcome =
  { kind: 'ok' } | { kind: 'reject'; reason: string } | { kind: 'retry'; reason: string; afterMs?: number };

const MAX_ERROR_BODY_BYTES = 2048;

/** Sleeps with timers; resolves at once when `signal` is aborted. */
export const timerSleep: Sleep = (ms, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/** Sends the queue's records to an OTLP endpoint until closed (see the module comment). */
export class TelemetryForwarder {
  readonly #queue: DiskQueue;
  readonly #endpoint: URL;
  readonly #token: () => string;
  readonly #logger: Logger;
  readonly #ca: string | Buffer | undefined;
  readonly #batchIdPrefix: string;
  readonly #requestTimeoutMs: number;
  readonly #initialBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #idlePollMs: number;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #stop = new AbortController();
  #wake = new AbortController();
  #flushWaiters: (() => void)[] = [];
  #loop: Promise<void> | undefined;
  #forwarded = 0;
  #rejected = 0;
  #retries = 0;
  #failing = 0;
  #lastError: string | undefined;

  constructor(options: TelemetryForwarderOptions) {
    this.#queue = options.queue;
    this.#endpoint = parseEndpoint(options.endpoint);
    this.#token = options.token;
    this.#logger = options.logger.child({ component: 'agent.telemetry.forwarder' });
    this.#ca = options.ca;
    this.#batchIdPrefix = options.batchIdPrefix ?? options.queue.instanceId;
    if (!/^[\x21-\x7e]{1,100}$/.test(this.#batchIdPrefix)) {
      throw new InputError(
        `telemetry forwarder: batchIdPrefix is ${describeValue(this.#batchIdPrefix)}: expected 1-100 printable ASCII characters`,
      );
    }
    this.#requestTimeoutMs = positive(options.requestTimeoutMs ?? 15_000, 'requestTimeoutMs');
    this.#initialBackoffMs = positive(options.initialBackoffMs ?? 500, 'initialBackoffMs');
    this.#maxBackoffMs = positive(options.maxBackoffMs ?? 30_000, 'maxBackoffMs');
    this.#idlePollMs = positive(options.idlePollMs ?? 5_000, 'idlePollMs');
    this.#sleep = options.sleep ?? timerSleep;
    this.#random = options.random ?? Math.random;
    options.signal?.addEventListener('abort', () => void this.close(), { once: true });
  }

  /** Starts the send loop (once). */
  start(): void {
    if (this.#loop !== undefined || this.#stop.signal.aborted) return;
    this.#loop = this.#run().catch((error: unknown) => {
      this.#logger.error('telemetry forwarder stopped', { err: error });
    });
  }

  /** Wakes the loop (something was appended). */
  notify(): void {
    this.#wake.abort();
  }

  /**
   * Resolves when the queue is empty; cuts the current retry delay short. Rejects when `signal`
   * aborts or the forwarder closes first.
   */
  flush(signal?: AbortSignal): Promise<void> {
    if (this.#stop.signal.aborted) return Promise.reject(new InputError('telemetry forwarder is closed'));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#flushWaiters = this.#flushWaiters.filter((w) => w !== waiter);
        reject(signal?.reason ?? new Error('flush aborted'));
      };
      const waiter = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#flushWaiters.push(waiter);
      this.notify();
    });
  }

  /** Counters. */
  stats(): TelemetryForwarderStats {
    return {
      forwarded: this.#forwarded,
      rejected: this.#rejected,
      retries: this.#retries,
      failing: this.#failing,
      lastError: this.#lastError,
    };
  }

  /** Stops the loop, abandoning a request in flight (its record stays queued); resolves when stopped. */
  async close(): Promise<void> {
    this.#stop.abort();
    this.#wake.abort();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      const [record] = this.#queue.peek(1);
      if (record === undefined) {
        for (const waiter of this.#flushWaiters.splice(0)) waiter();
        await this.#pause(this.#idlePollMs);
        continue;
      }
      const stored = decodeStoredExport(record.data);
      const outcome: Outcome =
        stored === undefined
          ? { kind: 'reject', reason: 'the queued record is not an OTLP export request' }
          : await this.#send(stored.signal, contentTypeOf(stored.encoding), stored.gzipBody, record.id);
      if (stop.aborted) break;
      if (outcome.kind === 'retry') {
        this.#retries++;
        this.#failing++;
        this.#lastError = outcome.reason;
        const capped = Math.min(
          this.#maxBackoffMs,
          this.#initialBackoffMs * 2 ** Math.min(this.#failing - 1, 30),
        );
        // Full jitter, but never less than half the step, so a fleet spreads out without hammering.
        const delay = Math.min(
          this.#maxBackoffMs,
          outcome.afterMs ?? capped / 2 + (this.#random() * capped) / 2,
        );
        const log = this.#failing === 1 || this.#failing % 10 === 0 ? 'warn' : 'debug';
        this.#logger[log]('telemetry export failed; will retry', {
          id: record.id,
          reason: outcome.reason,
          attempt: this.#failing,
          delayMs: Math.round(delay),
        });
        await this.#pause(delay);
        continue;
      }
      if (outcome.kind === 'reject') {
        this.#rejected++;
        this.#logger.warn('telemetry export refused; dropped', { id: record.id, reason: outcome.reason });
      } else {
        this.#forwarded++;
      }
      this.#failing = 0;
      this.#lastError = undefined;
      this.#queue.ack(record.id);
    }
  }

  /** Waits `ms` or until woken (append, flush, close); a wake that came while busy ends it at once. */
  async #pause(ms: number): Promise<void> {
    const wake = this.#wake.signal;
    if (!wake.aborted) await this.#sleep(ms, wake);
    if (!this.#stop.signal.aborted) this.#wake = new AbortController();
  }

  #send(signal: 'metrics' | 'traces', contentType: string, gzipBody: Buffer, id: number): Promise<Outcome> {
    const url = new URL(`${this.#endpoint.pathname.replace(/\/$/, '')}/v1/${signal}`, this.#endpoint);
    const https = url.protocol === 'https:';
    const headers = {
      'content-type': contentType,
      'content-encoding': 'gzip',
      'content-length': String(gzipBody.length),
      [TELEMETRY_BATCH_ID_HEADER]: `${this.#batchIdPrefix}-${id}`,
      authorization: `Bearer ${this.#token()}`,
    };
    return new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        resolve(outcome);
      };
      const options = {
        method: 'POST',
        headers,
        signal: this.#stop.signal,
        timeout: this.#requestTimeoutMs,
        ...(https && this.#ca !== undefined ? { ca: this.#ca } : {}),
      };
      const req = (https ? httpsRequest : httpRequest)(url, options, (res) => {
        readLimited(res, MAX_ERROR_BODY_BYTES).then(
          (body) => settle(outcomeOf(res, body)),
          (error: unknown) =>
            settle({ kind: 'retry', reason: `reading the answer: ${(error as Error).message}` }),
        );
      });
      req.once('timeout', () => req.destroy(new Error(`no answer within ${this.#requestTimeoutMs} ms`)));
      req.once('error', (error) => settle({ kind: 'retry', reason: `POST ${url.href}: ${error.message}` }));
      req.end(gzipBody);
    });
  }
}

function outcomeOf(res: IncomingMessage, body: Buffer): Outcome {
  const status = res.statusCode ?? 0;
  if (status >= 200 && status < 300) return { kind: 'ok' };
  const text = body.toString('utf8').replace(/\s+/g, ' ').slice(0, 300);
  const reason = `HTTP ${status}${text === '' ? '' : `: ${text}`}`;
  if (status === 408 || status === 429 || status >= 500) {
    const retryAfter = Number(res.headers['retry-after']);
    return Number.isFinite(retryAfter) && retryAfter >= 0
      ? { kind: 'retry', reason, afterMs: retryAfter * 1000 }
      : { kind: 'retry', reason };
  }
  if (status >= 400) return { kind: 'reject', reason };
  return { kind: 'retry', reason: `unexpected ${reason}` };
}

function readLimited(res: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      if (size < maxBytes) chunks.push(chunk.subarray(0, maxBytes - size));
      size += chunk.length;
    });
    res.once('end', () => resolve(Buffer.concat(chunks)));
    res.once('error', reject);
    res.once('aborted', () => reject(new Error('answer cut off')));
  });
}

function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch (error) {
    throw new InputError(`telemetry forwarder: endpoint is ${describeValue(endpoint)}: not a URL`, {
      cause: error,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InputError(
      `telemetry forwarder: endpoint is ${describeValue(endpoint)}: expected http or https`,
    );
  }
  if (url.username !== '' || url.password !== '') {
    throw new InputError('telemetry forwarder: endpoint must not carry credentials; use the token');
  }
  return url;
}

function positive(value: number, key: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new InputError(
      `telemetry forwarder: ${key} is ${describeValue(value)}: expected a positive number`,
    );
  }
  return value;
}
