// Helpers of the runs tests (left out of the build).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { PipelineRun, RunStatus } from '@aiedge/protocol';
import type { TestCore } from '../_test-core.js';

/** What the helpers need of a core: its authenticated fetch. */
export type Api = Pick<TestCore, 'api'>;

/** One task of a minimal pipeline. */
export interface TestTask {
  name: string;
  command: string[];
  runAfter?: string[];
  timeoutSeconds?: number;
  retries?: number;
}

/** A minimal pipeline document. */
export function pipeline(
  name: string,
  tasks: readonly (TestTask | Record<string, unknown>)[],
): Record<string, unknown> {
  return { apiVersion: 'aiedge.io/v1alpha1', kind: 'Pipeline', metadata: { name }, spec: { tasks } };
}

/** `sh -c script`. */
export const sh = (script: string): string[] => ['sh', '-c', script];
/** `node -e script` (this very node). */
export const node = (script: string): string[] => [process.execPath, '-e', script];

/** Reads a response body as JSON after checking its status (the body is in the failure message). */
export async function json<T>(response: Response, status = 200): Promise<T> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  return JSON.parse(text) as T;
}

/** Starts a run; returns it as created. */
export async function createRun(
  t: Api,
  spec: unknown,
  params?: Record<string, string>,
): Promise<PipelineRun> {
  return json<PipelineRun>(
    await t.api('/api/v1/pipelines/runs', { method: 'POST', json: { spec, ...(params ? { params } : {}) } }),
    201,
  );
}

/** Polls `fn` until it returns a value. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls a run until `ok` holds for it. */
export function waitForRun(
  t: Api,
  id: string,
  ok: (run: PipelineRun) => boolean,
  what = 'the run',
  timeoutMs?: number,
): Promise<PipelineRun> {
  return waitFor(
    what,
    async () => {
      const run = await json<PipelineRun>(await t.api(`/api/v1/pipelines/runs/${id}`));
      return ok(run) ? run : undefined;
    },
    timeoutMs,
  );
}

/** Polls a run until it has one of `statuses`. */
export function waitForStatus(t: Api, id: string, ...statuses: RunStatus[]): Promise<PipelineRun> {
  return waitForRun(t, id, (r) => statuses.includes(r.status), `run ${id} to be ${statuses.join(' or ')}`);
}

/** Waits until the stored log of a run has a line matching `pattern`; returns the match. */
export function waitForLog(t: Api, id: string, pattern: RegExp): Promise<RegExpExecArray> {
  return waitFor(`a log line matching ${pattern}`, async () => {
    const text = await (await t.api(`/api/v1/pipelines/runs/${id}/logs?follow=false`)).text();
    return pattern.exec(text) ?? undefined;
  });
}

/** One Server-Sent Event. */
export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: unknown;
}

/** Reads an event stream to its end (or until `stop` says so); comments are counted, not returned. */
export async function readSse(
  response: Response,
  stop?: (event: SseEvent, all: SseEvent[]) => boolean,
): Promise<{ events: SseEvent[]; comments: number; ended: boolean }> {
  assert.equal(response.status, 200, await (response.status === 200 ? Promise.resolve('') : response.text()));
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let comments = 0;
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return { events, comments, ended: true };
    buffered += value;
    let end: number;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments++;
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length === 0) continue;
      const parsed: SseEvent = { event, id, data: JSON.parse(data.join('\n')) as unknown };
      events.push(parsed);
      if (stop?.(parsed, events)) {
        await reader.cancel();
        return { events, comments, ended: false };
      }
    }
  }
}

/** True while process `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Waits (briefly) until process `pid` is gone: a killed process takes a moment to finish exiting. */
export function gone(pid: number): Promise<true> {
  return waitFor(`process ${pid} to exit`, async () => (alive(pid) ? undefined : true), 3000);
}
