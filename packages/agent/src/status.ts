/**
 * Status reporting: `PUT /api/v1/sites/{site}/status` after every change (debounced) and every
 * `intervalMs` as a heartbeat. The report is built when it is sent, so while the core is
 * unreachable nothing piles up: on reconnect exactly the newest status goes out.
 */
import { readFile, statfs } from 'node:fs/promises';
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os';
import type { ContentStore } from '@aiedge/oci';
import type { SiteResources, SiteStatusReport } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import { errorMessageOf } from './_core-client.js';
import type { DeploymentReport } from './drivers/types.js';
import type { CoreRequester } from './sync.js';
import { backoffDelayMs } from './sync.js';
import { timerSleep, type Sleep } from './telemetry/forwarder.js';

/** What the reporter asks the agent for when it sends. */
export interface StatusSnapshot {
  readonly appliedRevision?: string;
  readonly deployments: readonly DeploymentReport[];
}

/** Options of {@link StatusReporter}. */
export interface StatusReporterOptions {
  readonly client: CoreRequester;
  readonly site: string;
  readonly agentVersion: string;
  readonly logger: Logger;
  /** The current status; called per send. */
  collect(): StatusSnapshot;
  /** Measures the site's resources; default none. */
  readonly resources?: () => Promise<SiteResources>;
  /** Heartbeat period; default 30 000. */
  readonly intervalMs?: number;
  /** Changes within this window go out as one report; default 200. */
  readonly debounceMs?: number;
  /** First retry delay after a failed send (doubles, at most `intervalMs`); default 1 000. */
  readonly initialRetryMs?: number;
  /** Injected for tests: the delay function. */
  readonly sleep?: Sleep;
}

/** Counters of a reporter. */
export interface StatusReporterStats {
  /** Reports the core accepted. */
  readonly sent: number;
  /** Failed attempts. */
  readonly failed: number;
  /** A change (or heartbeat) is waiting to be sent. */
  readonly pending: boolean;
  readonly lastError: string | undefined;
  /** The last report the core accepted. */
  readonly lastSent: SiteStatusReport | undefined;
}

/** Measures CPU, memory and the disk of the data directory and the content store. */
export async function measureSiteResources(dataDir: string, store?: ContentStore): Promise<SiteResources> {
  let memoryAvailableBytes = freemem();
  try {
    const match = /^MemAvailable:\s+(\d+) kB$/m.exec(await readFile('/proc/meminfo', 'utf8'));
    if (match?.[1] !== undefined) memoryAvailableBytes = Number(match[1]) * 1024;
  } catch {
    // not Linux: freemem
  }
  const resources: {
    -readonly [K in keyof SiteResources]: SiteResources[K];
  } = {
    cpuCores: availableParallelism(),
    cpuLoad1m: loadavg()[0] ?? 0,
    memoryTotalBytes: totalmem(),
    memoryAvailableBytes,
  };
  try {
    const fs = await statfs(dataDir);
    resources.diskFreeBytes = Number(fs.bavail) * Number(fs.bsize);
  } catch {
    // unknown
  }
  if (store !== undefined) {
    try {
      resources.diskStoreBytes = (await store.usage()).bytes;
    } catch {
      // unknown
    }
  }
  return resources;
}

/** Sends the site's status to the core (see the module comment). */
export class StatusReporter {
  readonly #options: StatusReporterOptions;
  readonly #logger: Logger;
  readonly #sleep: Sleep;
  readonly #intervalMs: number;
  readonly #debounceMs: number;
  readonly #stop = new AbortController();
  #wake = new AbortController();
  #debounce: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  #pending = true;
  #sent = 0;
  #failed = 0;
  #failures = 0;
  #lastError: string | undefined;
  #lastSent: SiteStatusReport | undefined;

  constructor(options: StatusReporterOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'agent.status' });
    this.#sleep = options.sleep ?? timerSleep;
    this.#intervalMs = options.intervalMs ?? 30_000;
    this.#debounceMs = options.debounceMs ?? 200;
  }

  /** Starts sending: one report at once, then on changes and every interval. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Something changed: a report goes out after the debounce window. */
  changed(): void {
    this.#pending = true;
    if (this.#debounce !== undefined || this.#stop.signal.aborted) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined;
      this.#wake.abort();
    }, this.#debounceMs);
  }

  /** The core is reachable again: a pending report goes out now instead of after the retry delay. */
  reconnected(): void {
    if (this.#failures > 0) this.#wake.abort();
  }

  stats(): StatusReporterStats {
    return {
      sent: this.#sent,
      failed: this.#failed,
      pending: this.#pending,
      lastError: this.#lastError,
      lastSent: this.#lastSent,
    };
  }

  /** Stops sending; with `flush`, tries once more to send a pending report first. */
  async close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.#debounce !== undefined) clearTimeout(this.#debounce);
    this.#debounce = undefined;
    this.#stop.abort();
    await this.#loop;
    if (options.flush === true && this.#pending) await this.#send();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      if (this.#pending) await this.#send();
      if (signal.aborted) break;
      const waitMs =
        this.#failures > 0
          ? backoffDelayMs(this.#failures, this.#options.initialRetryMs ?? 1_000, this.#intervalMs)
          : this.#intervalMs;
      await this.#sleep(waitMs, AbortSignal.any([signal, this.#wake.signal]));
      if (this.#wake.signal.aborted) this.#wake = new AbortController();
      else this.#pending = true; // heartbeat or retry
    }
  }

  async #send(): Promise<void> {
    this.#pending = false;
    let report: SiteStatusReport;
    try {
      const snapshot = this.#options.collect();
      const resources = await this.#options.resources?.();
      report = {
        ...(snapshot.appliedRevision !== undefined ? { appliedRevision: snapshot.appliedRevision } : {}),
        agentVersion: this.#options.agentVersion,
        deployments: [...snapshot.deployments],
        ...(resources !== undefined ? { resources } : {}),
      };
    } catch (error) {
      this.#logger.error('cannot build the status report', { err: error });
      return;
    }
    try {
      const response = await this.#options.client.request(
        'PUT',
        `/api/v1/sites/${this.#options.site}/status`,
        { body: report, timeoutMs: 30_000 },
      );
      if (response.status !== 200 && response.status !== 204) {
        throw new Error(errorMessageOf(response));
      }
      if (this.#failures > 0) this.#logger.info('status sent after failures', { failures: this.#failures });
      this.#sent++;
      this.#failures = 0;
      this.#lastError = undefined;
      this.#lastSent = report;
    } catch (error) {
      this.#failed++;
      this.#failures++;
      const reason = (error as Error).message;
      if (this.#failures === 1) this.#logger.warn('status not sent; retrying', { reason });
      this.#lastError = reason;
      // Only the newest status matters: the next attempt builds a fresh report.
      this.#pending = true;
    }
  }
}
