/**
 * The seams inside a pipeline run: model sources, tasks, the run state tasks hand to each other,
 * and the events a run reports. Every task runs in-process in `aiedge pipeline run` and in the
 * core, or alone as `aiedge pipeline task <name>` in a Tekton step: so what a task passes on is
 * written to the workspace ({@link RunState}, `state.json`) as well as returned as string results.
 */
import type { ContentStore } from '@aiedge/oci';
import type { PipelineSpec } from './spec.js';

/** Progress of a long step (a transfer, a build). */
export interface ProgressEvent {
  /** What moves, e.g. `s3://bucket/key`, `layer sha256:ab…`. */
  readonly item?: string;
  /** Bytes done so far. */
  readonly bytes: number;
  /** Total bytes, when known. */
  readonly total?: number;
}

/** What a source or task gets to do its work. */
export interface StepContext {
  /** The run's workspace (empty at the start of the run; shared by its tasks). */
  readonly workspace: string;
  /** Directory of the pipeline file: relative paths in the spec resolve against it. */
  readonly baseDir: string;
  /** Aborted on cancel or timeout: stop promptly, kill child processes, clean up. */
  readonly signal: AbortSignal;
  /** Where secrets named by `…Env` fields are read (never logged). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** One line of task output. */
  log(line: string): void;
  /** Progress of a long step. */
  progress(event: ProgressEvent): void;
}

/** A fetched file. */
export interface FetchedFile {
  /** Path relative to {@link FetchedModel.dir}, `/`-separated. */
  readonly path: string;
  readonly bytes: number;
  /** hex SHA-256 of the content. */
  readonly sha256: string;
}

/** A model fetched into the workspace. */
export interface FetchedModel {
  /** Absolute directory holding the fetched files (inside the workspace). */
  readonly dir: string;
  readonly files: readonly FetchedFile[];
  /** Where it came from, pinned where the source can (`s3://b/k` + ETag, a Git commit, a digest, …). */
  readonly origin: string;
}

/** One kind of model source (S3, Git, model registry, HTTP, OCI, local). */
export interface ModelSource {
  readonly kind: string;
  /** Fetches the model into `dir` (created by the caller, empty) and verifies what the source can verify. */
  fetch(context: StepContext, dir: string): Promise<FetchedModel>;
}

/** A tensor of a model's signature. */
export interface SignatureTensor {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** What `inspect` found. */
export interface InspectedModel {
  /** Absolute path of the one `.onnx` file the image will serve. */
  readonly modelPath: string;
  /** Layout found: a single file, the OVMS/Triton `<version>/model.onnx` layout, or an MLflow model. */
  readonly layout: 'file' | 'triton' | 'mlflow';
  readonly bytes: number;
  readonly sha256: string;
  readonly inputs: readonly SignatureTensor[];
  readonly outputs: readonly SignatureTensor[];
  readonly opset?: number;
}

/** What `build` produced (in the run's content store). */
export interface BuiltImage {
  /** Digest of the root (manifest or index). */
  readonly digest: string;
  /** Media type of the root. */
  readonly mediaType: string;
  readonly size: number;
  /** Content store directory holding the image. */
  readonly store: string;
}

/** What `stage` measured. */
export interface StageReport {
  readonly mode: 'process' | 'podman';
  readonly requests: number;
  readonly passed: number;
  readonly p50Ms?: number;
  readonly p95Ms?: number;
  readonly rssBytes?: number;
}

/** What `push` did. */
export interface PushedImage {
  /** `repository@sha256:…`. */
  readonly reference: string;
  readonly digest: string;
  readonly tags: readonly string[];
  /** Id of the model artifact registered for this image, when a registry is configured. */
  readonly artifactId?: string;
}

/** What `gitops` did. */
export interface GitOpsReport {
  /** The commit; undefined when nothing changed. */
  readonly commit?: string;
  readonly branch: string;
  readonly changed: readonly string[];
}

/** The state tasks hand on, persisted as `<workspace>/state.json` after every task. */
export interface RunState {
  fetched?: FetchedModel;
  inspected?: InspectedModel;
  built?: BuiltImage;
  staged?: StageReport;
  pushed?: PushedImage;
  gitops?: GitOpsReport;
}

/** What every task gets. */
export interface TaskContext extends StepContext {
  readonly spec: PipelineSpec;
  /** The run id (named in the GitOps commit). */
  readonly runId: string;
  /** Read and updated by tasks; the runner persists it after every task. */
  readonly state: RunState;
  /** The content store images are built into and pushed from. */
  readonly store: ContentStore;
}

/** A built-in task: does its work, updates `context.state`, returns its string results. */
export type TaskImplementation = (context: TaskContext) => Promise<Record<string, string>>;

/** Names of the built-in tasks. */
export const TaskKinds = ['fetch', 'inspect', 'build', 'stage', 'push', 'gitops'] as const;
/** One built-in task. */
export type TaskKind = (typeof TaskKinds)[number];
