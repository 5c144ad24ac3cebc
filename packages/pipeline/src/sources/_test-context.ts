// Test helper: a StepContext over a temporary workspace that records logs and progress.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgressEvent, StepContext } from '../types.js';

/** A StepContext for tests, with what it recorded. */
export interface TestContext extends StepContext {
  readonly logs: string[];
  readonly events: ProgressEvent[];
  /** Aborts {@link StepContext.signal}. */
  abort(): void;
  /** Removes the temporary directory. */
  cleanup(): Promise<void>;
}

/** Makes a workspace and model dir under a new temp dir. */
export async function testContext(
  env: Record<string, string | undefined> = {},
  baseDir?: string,
): Promise<TestContext & { readonly root: string; readonly modelDir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'aiedge-sources-'));
  const controller = new AbortController();
  const logs: string[] = [];
  const events: ProgressEvent[] = [];
  return {
    root,
    workspace: join(root, 'ws'),
    modelDir: join(root, 'ws', 'model'),
    baseDir: baseDir ?? root,
    signal: controller.signal,
    env,
    logs,
    events,
    log: (line) => logs.push(line),
    progress: (event) => events.push(event),
    abort: () => controller.abort(),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
