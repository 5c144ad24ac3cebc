/** Messages between the server's main thread and its inference worker threads. */
import type { ModelIO } from './codec.js';

/** Settings every worker starts with. */
export interface WorkerSettings {
  readonly intraOpThreads: number;
}

/** Main thread → worker. */
export type ToWorker =
  | { readonly type: 'load'; readonly requestId: number; readonly key: string; readonly path: string }
  | { readonly type: 'unload'; readonly key: string }
  | {
      readonly type: 'infer';
      readonly requestId: number;
      readonly key: string;
      readonly modelName: string;
      readonly modelVersion: string;
      readonly body: Uint8Array;
      readonly headerLength: number | undefined;
    };

/** The outcome of one inference as the worker encoded it. */
export interface InferOutcome {
  readonly status: number;
  readonly body: Uint8Array;
  readonly contentType: string;
  readonly headerLength: number | undefined;
  /** Milliseconds spent inside the worker (decode, run, encode). */
  readonly workMs: number;
}

/** Worker → main thread. */
export type FromWorker =
  | { readonly type: 'loaded'; readonly requestId: number; readonly io: ModelIO }
  | { readonly type: 'loadFailed'; readonly requestId: number; readonly message: string }
  | ({ readonly type: 'inferred'; readonly requestId: number } & InferOutcome);
