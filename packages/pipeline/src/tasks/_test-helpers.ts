/** Test helpers: a hand-built TaskContext over a temp workspace with the example model. */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContentStore } from '@aiedge/oci';
import { exampleModel } from '@aiedge/runtime';
import { parsePipeline } from '../spec.js';
import type { FetchedModel, RunState, TaskContext } from '../types.js';

/** A temp directory. */
export function tempDir(prefix = 'aiedge-pipeline-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Writes `files` (relative path → bytes) under a new `fetched` directory and describes them. */
export async function fetchedModel(files: Record<string, Uint8Array | string>): Promise<FetchedModel> {
  const dir = join(await tempDir(), 'fetched');
  const list = [];
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
    list.push({ path, bytes: Buffer.byteLength(content), sha256: '' });
  }
  return { dir, files: list, origin: 'test' };
}

/** The example model (version 1) as a single file. */
export function exampleFetched(): Promise<FetchedModel> {
  return fetchedModel({ 'model.onnx': exampleModel(1) });
}

/** A pipeline spec with the example model and `extra` merged into `spec`. */
export function testSpec(extra: Record<string, unknown> = {}): ReturnType<typeof parsePipeline> {
  return parsePipeline({
    apiVersion: 'aiedge.io/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'test' },
    spec: {
      model: { name: 'example-classifier', version: '1' },
      source: { local: { path: '.' } },
      image: { repository: '127.0.0.1:1/models/example' },
      ...extra,
    },
  });
}

/** A TaskContext with the given spec and state; log lines are collected in `lines`. */
export async function testContext(options: {
  spec: ReturnType<typeof parsePipeline>;
  state?: RunState;
  store?: ContentStore;
  baseDir?: string;
  env?: Record<string, string>;
  signal?: AbortSignal;
}): Promise<TaskContext & { lines: string[] }> {
  const workspace = await tempDir('aiedge-ws-');
  const lines: string[] = [];
  return {
    workspace,
    baseDir: options.baseDir ?? workspace,
    signal: options.signal ?? new AbortController().signal,
    env: options.env ?? {},
    log: (line: string) => lines.push(line),
    progress: () => undefined,
    spec: options.spec,
    runId: 'run-1',
    state: options.state ?? {},
    store: options.store ?? (await ContentStore.open(join(workspace, 'store'))),
    lines,
  };
}
