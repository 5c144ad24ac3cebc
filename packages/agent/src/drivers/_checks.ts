/**
 * What every driver shares: the health checks of a new inference server (its model version loaded,
 * ready, metadata and a smoke inference) over the Open Inference Protocol, and the book of
 * deployment reports (state changes are logged and passed to the agent once).
 */
import { createServer } from 'node:net';
import type { DeploymentState } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { DeploymentReport } from './types.js';

const POLL_MS = 100;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_REASON = 4000;

/** A check that failed: its message is the report's reason. */
export class CheckFailed extends Error {
  override readonly name = 'CheckFailed';
}

/** The message of an error (or the value as text). */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free TCP port on `host`. */
export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** An HTTP answer with its body parsed as JSON when it is JSON. */
export interface HttpResult {
  readonly status: number;
  readonly body: unknown;
  readonly text: string;
}

/** A JSON request with a timeout; network errors throw. */
export async function http(url: string, init: { method?: string; body?: unknown } = {}): Promise<HttpResult> {
  const res = await fetch(url, {
    method: init.method ?? 'GET',
    ...(init.body !== undefined
      ? { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }
      : {}),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, body, text };
}

/** The OIP error message of an answer, else its status and text. */
export function oipError(r: HttpResult): string {
  const e = (r.body as { error?: unknown } | undefined)?.error;
  return typeof e === 'string' ? e : `HTTP ${r.status} ${r.text.slice(0, 500)}`;
}

/** A request of zeros for the model's inputs (dynamic dimensions as 1). */
function zerosRequest(metadata: unknown): unknown {
  const inputs = (metadata as { inputs?: unknown } | undefined)?.inputs;
  if (!Array.isArray(inputs)) return undefined;
  return {
    inputs: inputs.map((t: { name: string; datatype: string; shape: number[] }) => {
      const shape = t.shape.map((d) => (d < 0 ? 1 : d));
      const n = shape.reduce((a, b) => a * b, 1);
      const zero = t.datatype === 'BOOL' ? false : t.datatype === 'BYTES' ? '' : 0;
      return { name: t.name, datatype: t.datatype, shape, data: new Array<unknown>(n).fill(zero) };
    }),
  };
}

/** Options of {@link waitLoaded} and {@link checkServing}. */
export interface CheckOptions {
  readonly timeoutMs: number;
  /** Polled while waiting: a reason when the server is gone (it exited), else undefined. */
  readonly gone?: () => Promise<string | undefined>;
}

/**
 * Polls the repository index at `base` until `model/version` is READY; fails at once when it is
 * UNAVAILABLE with a reason (ORT's load error) or when the server is gone.
 */
export async function waitLoaded(
  base: string,
  model: string,
  version: string,
  options: CheckOptions,
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    const gone = await options.gone?.();
    if (gone !== undefined) throw new CheckFailed(gone);
    try {
      const index = await http(`${base}/v2/repository/index`, { method: 'POST', body: {} });
      if (index.status === 200 && Array.isArray(index.body)) {
        const rows = index.body as Array<{ name: string; version?: string; state: string; reason?: string }>;
        const row = rows.find((r) => r.name === model && (r.version === version || r.version === undefined));
        if (row?.state === 'READY') return;
        if (row?.state === 'UNAVAILABLE' && row.reason !== undefined) {
          throw new CheckFailed(`${model} version ${version} failed to load: ${row.reason}`);
        }
        last = row === undefined ? 'not in the repository index' : row.state;
      } else {
        last = oipError(index);
      }
    } catch (error) {
      if (error instanceof CheckFailed) throw error;
      last = errorText(error);
    }
    if (Date.now() > deadline) {
      throw new CheckFailed(
        `${model} version ${version} was not ready within ${options.timeoutMs} ms (${last})`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** Ready, metadata and a smoke inference of zeros on the version's own endpoints. */
export async function checkVersion(
  base: string,
  model: string,
  version: string,
  timeoutMs: number,
): Promise<void> {
  const at = `${base}/v2/models/${model}/versions/${version}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await http(`${at}/ready`).catch((e: unknown) => ({
      status: 0,
      body: undefined,
      text: errorText(e),
    }));
    if (ready.status === 200) break;
    if (ready.status === 404 || Date.now() > deadline) {
      throw new CheckFailed(`${model} version ${version} is not ready: ${oipError(ready)}`);
    }
    await sleep(POLL_MS);
  }
  const metadata = await http(at);
  if (metadata.status !== 200) {
    throw new CheckFailed(`${model} version ${version} metadata failed: ${oipError(metadata)}`);
  }
  const request = zerosRequest(metadata.body);
  if (request === undefined) {
    throw new CheckFailed(
      `${model} version ${version} metadata has no inputs: ${metadata.text.slice(0, 200)}`,
    );
  }
  const inferred = await http(`${at}/infer`, { method: 'POST', body: request });
  if (inferred.status !== 200) {
    throw new CheckFailed(`${model} version ${version} smoke inference failed: ${oipError(inferred)}`);
  }
}

/** Waits until a freshly started server at `base` serves `model/version` and passes the checks. */
export async function checkServing(
  base: string,
  model: string,
  version: string,
  options: CheckOptions,
): Promise<void> {
  await waitLoaded(base, model, version, options);
  await checkVersion(base, model, version, options.timeoutMs);
}

/** True when `base` answers `model/version` ready. */
export async function versionReady(base: string, model: string, version: string): Promise<boolean> {
  try {
    return (await http(`${base}/v2/models/${model}/versions/${version}/ready`)).status === 200;
  } catch {
    return false;
  }
}

/** The fields of a report besides the deployment and its state. */
export interface ReportFields {
  readonly model: string;
  readonly version: string;
  readonly imageDigest?: string;
  readonly reason?: string;
}

/** The current report of every deployment; a change is logged and passed on once. */
export class ReportBook {
  readonly #reports = new Map<string, DeploymentReport>();
  readonly #logger: Logger;
  readonly #onReport: (report: DeploymentReport) => void;

  constructor(logger: Logger, onReport: (report: DeploymentReport) => void) {
    this.#logger = logger;
    this.#onReport = onReport;
  }

  /** Sets `name`'s state; `since` moves only when state, digest or version change. */
  set(name: string, state: DeploymentState, fields: ReportFields): DeploymentReport {
    const previous = this.#reports.get(name);
    const reason =
      fields.reason === undefined
        ? undefined
        : fields.reason.length > MAX_REASON
          ? `${fields.reason.slice(0, MAX_REASON - 1)}…`
          : fields.reason;
    const report: DeploymentReport = {
      deployment: name,
      model: fields.model,
      version: fields.version,
      ...(fields.imageDigest !== undefined ? { imageDigest: fields.imageDigest } : {}),
      state,
      ...(reason !== undefined ? { reason } : {}),
      since:
        previous !== undefined &&
        previous.state === state &&
        previous.imageDigest === fields.imageDigest &&
        previous.version === fields.version
          ? previous.since
          : new Date().toISOString(),
    };
    const same =
      previous !== undefined &&
      previous.state === report.state &&
      previous.reason === report.reason &&
      previous.imageDigest === report.imageDigest &&
      previous.version === report.version &&
      previous.model === report.model;
    this.#reports.set(name, report);
    if (!same) {
      this.#logger.info('deployment state', { ...report });
      try {
        this.#onReport(report);
      } catch (error) {
        this.#logger.warn('onReport failed', { err: error });
      }
    }
    return report;
  }

  /**
   * A version that did not make it: RolledBack (naming what still serves) when `serving` is given,
   * else Failed.
   */
  failed(
    name: string,
    fields: ReportFields,
    reason: string,
    serving?: { readonly model: string; readonly version: string; readonly imageDigest: string },
  ): DeploymentReport {
    if (serving === undefined) return this.set(name, 'Failed', { ...fields, reason });
    return this.set(name, 'RolledBack', {
      ...fields,
      reason: `${reason}; still serving ${serving.model} version ${serving.version} (${serving.imageDigest})`,
    });
  }

  get(name: string): DeploymentReport | undefined {
    return this.#reports.get(name);
  }

  has(name: string): boolean {
    return this.#reports.has(name);
  }

  delete(name: string): void {
    this.#reports.delete(name);
  }

  /** Every report, sorted by deployment. */
  all(): DeploymentReport[] {
    return [...this.#reports.values()].sort((a, b) => a.deployment.localeCompare(b.deployment));
  }
}

/** Runs tasks one after another (a driver's start, reconciles and close never overlap). */
export class Serial {
  #chain: Promise<unknown> = Promise.resolve();

  /** Runs `task` after the earlier ones, whether they failed or not. */
  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(task, task);
    this.#chain = next.catch(() => undefined);
    return next;
  }
}
