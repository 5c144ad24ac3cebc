/**
 * The site's telemetry relay: a loopback OTLP/HTTP receiver for the runtimes, a disk-backed
 * bounded queue, and a forwarder to the core (or any OTLP endpoint).
 */
import { InputError, describeValue } from '@aiedge/protocol';
import { DiskQueue, type DiskQueueFsyncPolicy, type DiskQueueStats, type Logger } from '@aiedge/telemetry';
import { TelemetryForwarder, type Sleep, type TelemetryForwarderStats } from './forwarder.js';
import { DEFAULT_OTLP_HTTP_PORT, startOtlpReceiver, type OtlpReceiverStats } from './receiver.js';

/** Default bound of the relay's queue on disk. */
export const DEFAULT_TELEMETRY_QUEUE_BYTES = 256 * 1024 * 1024;

/** Options of {@link startTelemetryRelay}. */
export interface TelemetryRelayOptions {
  /** Directory of the durable queue. */
  readonly dir: string;
  /** Where the receiver listens; default `127.0.0.1:4318` (port 0 picks a free one). */
  readonly listen?: { readonly host?: string; readonly port?: number };
  /** Base URL of the OTLP/HTTP endpoint: the core's URL. */
  readonly endpoint: string;
  /** The site token sent as bearer; called per request, never logged. */
  readonly token: () => string;
  /** Bound of the queue; oldest requests are dropped beyond it. Default {@link DEFAULT_TELEMETRY_QUEUE_BYTES}. */
  readonly maxQueueBytes?: number;
  readonly logger: Logger;
  /** PEM CA certificate(s) to trust for an https endpoint. */
  readonly ca?: string | Buffer;
  /** Largest OTLP request body accepted (compressed and inflated); default 4 MiB. */
  readonly maxBodyBytes?: number;
  /** fsync policy of the queue; default `always`. */
  readonly fsync?: DiskQueueFsyncPolicy;
  /** Time one export may take before it is abandoned and retried; default 15 000. */
  readonly requestTimeoutMs?: number;
  /** First retry delay; default 500. */
  readonly initialBackoffMs?: number;
  /** Longest retry delay; default 30 000. */
  readonly maxBackoffMs?: number;
  /** Stops the relay. */
  readonly signal?: AbortSignal;
  /** Injected for tests: the delay function. */
  readonly sleep?: Sleep;
}

/** Counters of the relay. */
export interface TelemetryRelayStats {
  readonly receiver: OtlpReceiverStats;
  readonly queue: DiskQueueStats;
  readonly forwarder: TelemetryForwarderStats;
}

/** A running relay. */
export interface TelemetryRelay {
  /** Base URL of the receiver, for `OTEL_EXPORTER_OTLP_ENDPOINT` of the runtimes. */
  readonly url: string;
  stats(): TelemetryRelayStats;
  /** Resolves when everything queued was forwarded (or refused); rejects when `signal` aborts first. */
  flush(signal?: AbortSignal): Promise<void>;
  /** Stops receiving and forwarding; what is queued stays on disk for the next start. */
  close(): Promise<void>;
}

const KNOWN_OPTIONS = new Set([
  'dir',
  'listen',
  'endpoint',
  'token',
  'maxQueueBytes',
  'logger',
  'ca',
  'maxBodyBytes',
  'fsync',
  'requestTimeoutMs',
  'initialBackoffMs',
  'maxBackoffMs',
  'signal',
  'sleep',
]);

/** Starts the telemetry relay: receiver, queue and forwarder. */
export async function startTelemetryRelay(options: TelemetryRelayOptions): Promise<TelemetryRelay> {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key))
      throw new InputError(`telemetry relay: unknown option ${describeValue(key)}`);
  }
  if (typeof options.token !== 'function') {
    throw new InputError('telemetry relay: token must be a function returning the site token');
  }
  const logger = options.logger.child({ component: 'agent.telemetry' });
  const port = options.listen?.port ?? DEFAULT_OTLP_HTTP_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new InputError(`telemetry relay: listen.port is ${describeValue(port)}: expected 0-65535`);
  }
  const queue = DiskQueue.open({
    dir: options.dir,
    maxBytes: options.maxQueueBytes ?? DEFAULT_TELEMETRY_QUEUE_BYTES,
    ...(options.fsync !== undefined ? { fsync: options.fsync } : {}),
  });
  let forwarder: TelemetryForwarder;
  try {
    forwarder = new TelemetryForwarder({
      queue,
      endpoint: options.endpoint,
      token: options.token,
      logger,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
      ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
      ...(options.sleep !== undefined ? { sleep: options.sleep } : {}),
    });
  } catch (error) {
    queue.close();
    throw error;
  }
  let receiver;
  try {
    receiver = await startOtlpReceiver({
      queue,
      host: options.listen?.host ?? '127.0.0.1',
      port,
      logger,
      onStored: () => forwarder.notify(),
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
    });
  } catch (error) {
    queue.close();
    throw error;
  }
  forwarder.start();
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      await receiver.close();
      await forwarder.close();
      queue.close();
    })();
    return closing;
  };
  options.signal?.addEventListener('abort', () => void close(), { once: true });
  return {
    url: receiver.url,
    stats: () => ({ receiver: receiver.stats(), queue: queue.stats(), forwarder: forwarder.stats() }),
    flush: (signal) => forwarder.flush(signal),
    close,
  };
}
