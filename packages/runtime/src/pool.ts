/**
 * A pool of inference worker threads. ONNX Runtime's `run` blocks the thread it runs on, so every
 * model version is loaded into every worker and requests wait in one bounded queue for an idle worker.
 */
import { Worker } from 'node:worker_threads';
import { UnavailableError } from '@aiedge/protocol';
import type { Logger } from '@aiedge/telemetry';
import type { ModelIO } from './codec.js';
import type { FromWorker, InferOutcome, ToWorker, WorkerSettings } from './_worker-protocol.js';

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Number of worker threads. */
  readonly workers: number;
  /** ONNX Runtime intra-op threads of each session. */
  readonly intraOpThreads: number;
  /** Requests that may wait for a worker before new ones are refused with 503. */
  readonly maxQueue: number;
  readonly logger: Logger;
}

/** An inference for a loaded model version. */
export interface InferJob {
  readonly key: string;
  readonly modelName: string;
  readonly modelVersion: string;
  readonly body: Uint8Array;
  readonly headerLength: number | undefined;
}

/** The worker's outcome plus the time the request waited for a worker. */
export interface InferResult extends InferOutcome {
  readonly queueMs: number;
}

interface Pending {
  readonly job: InferJob;
  readonly enqueuedAt: number;
  readonly resolve: (result: InferResult) => void;
  readonly reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  /** True once the worker has loaded every model the pool holds. */
  ready: boolean;
  /** Requests handed to this worker, by request id. */
  readonly running: Map<number, Pending & { readonly dispatchedAt: number }>;
  readonly loads: Map<number, { resolve: (io: ModelIO) => void; reject: (error: Error) => void }>;
}

/**
 * Requests a worker holds at once: the one it runs and the next, so it starts the next as soon as
 * it finishes one instead of idling while the result travels back and a new request comes in.
 */
const PIPELINE_DEPTH = 2;

const workerUrl = new URL(import.meta.url.endsWith('.ts') ? './_worker.ts' : './_worker.js', import.meta.url);

/** Starts a worker thread on the worker module, also when running from TypeScript sources. */
function spawn(settings: WorkerSettings): Worker {
  if (workerUrl.pathname.endsWith('.ts')) {
    // Sources run through tsx (tests, development); Node 20 workers do not inherit its loader hooks.
    const tsx = import.meta.resolve('tsx/esm/api');
    const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(workerUrl.href)}); })`;
    return new Worker(code, { eval: true, workerData: settings });
  }
  return new Worker(workerUrl, { workerData: settings });
}

/** Worker threads that load model versions and run inferences. */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  /** Model versions loaded into every worker, by key, with their file for reloading after a crash. */
  readonly #loaded = new Map<string, string>();
  #nextId = 1;
  #closed = false;
  #idleWaiters: Array<() => void> = [];

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
    for (let i = 0; i < options.workers; i++) this.#slots.push(this.#startSlot(i));
  }

  /** Requests waiting for a worker. */
  get queueDepth(): number {
    return this.#queue.length;
  }

  /** Requests handed to a worker and not yet answered. */
  get inFlight(): number {
    return this.#slots.reduce((n, s) => n + s.running.size, 0);
  }

  #startSlot(index: number): Slot {
    const slot: Slot = {
      worker: spawn({ intraOpThreads: this.#options.intraOpThreads }),
      ready: true,
      running: new Map(),
      loads: new Map(),
    };
    slot.worker.on('message', (message: FromWorker) => this.#onMessage(slot, message));
    slot.worker.on('error', (error) => {
      this.#options.logger.error('inference worker failed', { worker: index, err: error });
    });
    slot.worker.on('exit', (code) => this.#onExit(slot, index, code));
    return slot;
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case 'loaded':
      case 'loadFailed': {
        const waiter = slot.loads.get(message.requestId);
        slot.loads.delete(message.requestId);
        if (message.type === 'loaded') waiter?.resolve(message.io);
        else waiter?.reject(new Error(message.message));
        break;
      }
      case 'inferred': {
        const pending = slot.running.get(message.requestId);
        if (pending === undefined) return;
        slot.running.delete(message.requestId);
        pending.resolve({ ...message, queueMs: pending.dispatchedAt - pending.enqueuedAt });
        this.#dispatch();
        break;
      }
    }
  }

  #onExit(slot: Slot, index: number, code: number): void {
    const crashed = new Error(`inference worker ${index} exited with code ${code}`);
    slot.ready = false;
    for (const pending of slot.running.values()) pending.reject(crashed);
    slot.running.clear();
    this.#dispatch();
    for (const waiter of slot.loads.values()) waiter.reject(crashed);
    slot.loads.clear();
    if (this.#closed) return;
    this.#options.logger.error('inference worker exited; starting a new one', { worker: index, code });
    const replacement = this.#startSlot(index);
    replacement.ready = false;
    this.#slots[index] = replacement;
    void (async () => {
      for (const [key, path] of this.#loaded) {
        try {
          await this.#loadInto(replacement, key, path);
        } catch (error) {
          this.#options.logger.error('reloading a model into a new worker failed', { key, err: error });
        }
      }
      replacement.ready = true;
      this.#dispatch();
    })();
  }

  #loadInto(slot: Slot, key: string, path: string): Promise<ModelIO> {
    const requestId = this.#nextId++;
    return new Promise((resolve, reject) => {
      slot.loads.set(requestId, { resolve, reject });
      slot.worker.postMessage({ type: 'load', requestId, key, path } satisfies ToWorker);
    });
  }

  /**
   * Loads a model version into every worker, one worker at a time so the others keep serving.
   * On failure the version is unloaded from the workers that had it and the error is thrown.
   */
  async load(key: string, path: string): Promise<ModelIO> {
    if (this.#closed) throw new UnavailableError('the worker pool is shut down');
    let io: ModelIO | undefined;
    const done: Slot[] = [];
    try {
      for (const slot of [...this.#slots]) {
        io = await this.#loadInto(slot, key, path);
        done.push(slot);
      }
    } catch (error) {
      for (const slot of done) slot.worker.postMessage({ type: 'unload', key } satisfies ToWorker);
      throw error;
    }
    this.#loaded.set(key, path);
    return io!;
  }

  /** Drops a model version from every worker. Callers make sure no request for it is pending. */
  unload(key: string): void {
    this.#loaded.delete(key);
    for (const slot of this.#slots) slot.worker.postMessage({ type: 'unload', key } satisfies ToWorker);
  }

  /** Runs an inference on the next idle worker; refuses with 503 when the queue is full. */
  infer(job: InferJob): Promise<InferResult> {
    if (this.#closed) return Promise.reject(new UnavailableError('the server is shutting down'));
    if (this.#queue.length >= this.#options.maxQueue) {
      return Promise.reject(
        new UnavailableError(`the inference queue is full (${this.#options.maxQueue} waiting); retry later`, {
          retryAfterSeconds: 1,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ job, enqueuedAt: performance.now(), resolve, reject });
      this.#dispatch();
    });
  }

  /** Hands queued requests to the least-loaded ready workers, up to PIPELINE_DEPTH each. */
  #dispatch(): void {
    while (this.#queue.length > 0) {
      let slot: Slot | undefined;
      for (const candidate of this.#slots) {
        if (!candidate.ready || candidate.running.size >= PIPELINE_DEPTH) continue;
        if (slot === undefined || candidate.running.size < slot.running.size) slot = candidate;
      }
      if (slot === undefined) break;
      const next = this.#queue.shift()!;
      const requestId = this.#nextId++;
      slot.running.set(requestId, { ...next, dispatchedAt: performance.now() });
      const { body } = next.job;
      // Transfer the bytes without copying when the body owns its whole buffer; otherwise copy
      // them out (a small Buffer is a view into Node's shared pool, which must never be transferred).
      const owned =
        body.byteOffset === 0 && body.byteLength === body.buffer.byteLength ? body : new Uint8Array(body);
      slot.worker.postMessage(
        {
          type: 'infer',
          requestId,
          key: next.job.key,
          modelName: next.job.modelName,
          modelVersion: next.job.modelVersion,
          body: owned,
          headerLength: next.job.headerLength,
        } satisfies ToWorker,
        [owned.buffer as ArrayBuffer],
      );
    }
    if (this.#queue.length === 0 && this.inFlight === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Refuses queued requests, waits for running ones, and stops every worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) {
      pending.reject(new UnavailableError('the server is shutting down'));
    }
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
