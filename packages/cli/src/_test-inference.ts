/** Inference helpers shared by the cli package's end-to-end tests (not part of the build). */
import assert from 'node:assert/strict';
import { EXAMPLE_MODEL_NAME, exampleReference } from '@aiedge/runtime';

/** The example model's input the tests send. */
export const FEATURES = new Float32Array([0.5, -1, 2, 0.25]);

/** The answer of one inference: the version that answered and the scores. */
export interface InferAnswer {
  readonly version: string;
  readonly scores: number[];
}

/** One OIP inference of the example model on `127.0.0.1:port`; throws on anything but 200. */
export async function infer(port: number, timeoutMs = 10_000): Promise<InferAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}/v2/models/${EXAMPLE_MODEL_NAME}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      inputs: [{ name: 'features', datatype: 'FP32', shape: [1, FEATURES.length], data: [...FEATURES] }],
    }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text}`);
  const body = JSON.parse(text) as {
    model_version?: string;
    outputs: Array<{ name: string; data: number[] }>;
  };
  return {
    version: body.model_version ?? '?',
    scores: body.outputs.find((o) => o.name === 'scores')?.data ?? [],
  };
}

/** Asserts the answer is the example model's `version` for {@link FEATURES}. */
export function assertVersion(answer: InferAnswer, version: number): void {
  assert.equal(answer.version, String(version));
  const expected = exampleReference(version, FEATURES).scores;
  assert.equal(answer.scores.length, expected.length);
  answer.scores.forEach((s, i) => assert.ok(Math.abs(s - expected[i]!) < 1e-4, `score ${i}: ${s}`));
}

/** The outcome of a load loop. */
export interface LoadResult {
  readonly ok: number;
  readonly failures: string[];
  /** The versions that answered, in order, without repeats. */
  readonly versions: string[];
}

/**
 * Sends requests back to back (with `pauseMs` between them) until stopped; counts failures and
 * the versions that answered. Stops by itself after `maxMs` (a bound for a test that hangs).
 */
export function loadLoop(
  port: number,
  options: { pauseMs?: number; maxMs?: number } = {},
): { stop(): Promise<LoadResult> } {
  let running = true;
  const failures: string[] = [];
  const versions: string[] = [];
  let ok = 0;
  const end = Date.now() + (options.maxMs ?? 600_000);
  const loop = (async () => {
    while (running && Date.now() < end) {
      try {
        const answer = await infer(port);
        ok++;
        if (versions.at(-1) !== answer.version) versions.push(answer.version);
      } catch (error) {
        failures.push(`${new Date().toISOString()} ${(error as Error).message}`);
      }
      if (options.pauseMs !== undefined) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { ok, failures, versions };
    },
  };
}
