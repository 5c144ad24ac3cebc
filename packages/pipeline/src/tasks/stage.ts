/**
 * `stage`: runs the built image as the edge will (its unpacked layers as a process, or in podman),
 * waits for readiness, sends the test requests and compares every output within tolerance, and
 * checks an optional latency gate. The server is always stopped, on success, failure or abort.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  hostPlatform,
  indexMediaTypes,
  unpackLayer,
  writeArchive,
  type ContentStore,
  type Descriptor,
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
} from '@aiedge/oci';
import { InputError, UnavailableError, describeValue } from '@aiedge/protocol';
import type { TestSpec } from '../spec.js';
import type { StageReport, TaskContext, TaskImplementation } from '../types.js';

const run = promisify(execFile);

/** Default tolerances of a staging test. */
export const DEFAULT_TOLERANCE = { atol: 1e-5, rtol: 1e-4 } as const;
const DEFAULT_READY_TIMEOUT_SECONDS = 60;
const DEFAULT_LATENCY_REQUESTS = 100;
const MAX_DIFF_LINES = 10;
/** Content bytes a single layer may unpack to. */
const MAX_LAYER_BYTES = 16 * 1024 ** 3;
const STOP_GRACE_MS = 5_000;

/** One expected output. */
export interface ExpectedOutput {
  readonly name: string;
  readonly data: readonly unknown[];
  readonly datatype?: string;
  readonly shape?: readonly number[];
  readonly atol?: number;
  readonly rtol?: number;
}

/** One test request and what it must answer. */
export interface StageTestCase {
  readonly name: string;
  readonly request: unknown;
  readonly expected: readonly ExpectedOutput[];
}

interface OipOutput {
  readonly name: string;
  readonly datatype?: string;
  readonly shape?: readonly number[];
  readonly data?: unknown;
}

/** A running server under test. */
interface StagedServer {
  readonly baseUrl: string;
  /** Why it is not running any more, if it stopped. */
  exited(): string | undefined;
  /** Refreshes {@link StagedServer.exited} where that needs a look (a container). */
  checkExited?(): Promise<void>;
  rssBytes(): Promise<number | undefined>;
  stop(): Promise<void>;
}

function resolvePath(context: TaskContext, path: string): string {
  return isAbsolute(path) ? path : resolve(context.baseDir, path);
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new InputError(`${what} ${path} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InputError(`${what} ${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}

function checkCases(value: unknown, what: string): StageTestCase[] {
  if (!Array.isArray(value)) throw new InputError(`${what} is ${describeValue(value)}: expected a list`);
  return value.map((c: unknown, i) => {
    const item = c as { name?: unknown; request?: unknown; expected?: unknown } | null;
    if (typeof item !== 'object' || item === null || item.request === undefined) {
      throw new InputError(`${what}[${i}] has no request`);
    }
    if (!Array.isArray(item.expected)) throw new InputError(`${what}[${i}].expected is not a list`);
    item.expected.forEach((e: unknown, j) => {
      const o = e as { name?: unknown; data?: unknown } | null;
      if (typeof o?.name !== 'string' || !Array.isArray(o.data)) {
        throw new InputError(`${what}[${i}].expected[${j}] needs a name and a data list`);
      }
    });
    return {
      name: typeof item.name === 'string' ? item.name : `request ${i + 1}`,
      request: item.request,
      expected: item.expected as ExpectedOutput[],
    };
  });
}

/** The test cases of a test spec: inline, from `requestsFile`, and the `dataJson` + `outputJson` pair. */
export async function loadTestCases(
  context: TaskContext,
  test: TestSpec | undefined,
): Promise<StageTestCase[]> {
  if (test === undefined) return [];
  const cases: StageTestCase[] = [];
  if (test.requests !== undefined) cases.push(...checkCases(test.requests, 'spec.test.requests'));
  if (test.requestsFile !== undefined) {
    const path = resolvePath(context, test.requestsFile);
    cases.push(...checkCases(await readJsonFile(path, 'spec.test.requestsFile'), path));
  }
  if ((test.dataJson === undefined) !== (test.outputJson === undefined)) {
    throw new InputError('spec.test.dataJson and spec.test.outputJson go together: give both or neither');
  }
  if (test.dataJson !== undefined && test.outputJson !== undefined) {
    const request = await readJsonFile(resolvePath(context, test.dataJson), 'spec.test.dataJson');
    const outputPath = resolvePath(context, test.outputJson);
    const response = (await readJsonFile(outputPath, 'spec.test.outputJson')) as { outputs?: unknown };
    if (!Array.isArray(response?.outputs)) {
      throw new InputError(`spec.test.outputJson ${outputPath} has no outputs list (an OIP response body)`);
    }
    cases.push(
      ...checkCases(
        [{ name: test.dataJson, request, expected: response.outputs as unknown[] }],
        'spec.test.outputJson',
      ),
    );
  }
  return cases;
}

function flatten(value: unknown): unknown[] {
  return Array.isArray(value) ? value.flatMap((v) => flatten(v)) : [value];
}

function show(value: unknown): string {
  return typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
}

/**
 * Compares an OIP response with the expected outputs; returns readable difference lines (at most
 * {@link MAX_DIFF_LINES} plus a count of the rest), empty when everything is within tolerance.
 */
export function compareOutputs(
  actual: readonly OipOutput[],
  expected: readonly ExpectedOutput[],
  tolerance: { atol?: number | undefined; rtol?: number | undefined } = {},
): string[] {
  const lines: string[] = [];
  let more = 0;
  const add = (line: string): void => {
    if (lines.length < MAX_DIFF_LINES) lines.push(line);
    else more++;
  };
  for (const e of expected) {
    const atol = e.atol ?? tolerance.atol ?? DEFAULT_TOLERANCE.atol;
    const rtol = e.rtol ?? tolerance.rtol ?? DEFAULT_TOLERANCE.rtol;
    const a = actual.find((o) => o.name === e.name);
    if (a === undefined) {
      add(
        `${e.name}: missing from the response (it has ${actual.map((o) => o.name).join(', ') || 'no outputs'})`,
      );
      continue;
    }
    if (e.datatype !== undefined && a.datatype !== e.datatype) {
      add(`${e.name}: datatype ${String(a.datatype)}, expected ${e.datatype}`);
    }
    if (e.shape !== undefined && JSON.stringify(a.shape) !== JSON.stringify(e.shape)) {
      add(`${e.name}: shape [${(a.shape ?? []).join(',')}], expected [${e.shape.join(',')}]`);
    }
    const want = flatten(e.data);
    const got = flatten(a.data);
    if (got.length !== want.length) {
      add(`${e.name}: ${got.length} elements, expected ${want.length}`);
      continue;
    }
    want.forEach((w, i) => {
      const g = got[i];
      if (typeof w === 'number' && typeof g === 'number') {
        const limit = atol + rtol * Math.abs(w);
        if (!(Math.abs(g - w) <= limit) && !(Number.isNaN(g) && Number.isNaN(w))) {
          add(
            `${e.name}[${i}]: expected ${show(w)}, got ${show(g)} (|diff| ${Math.abs(g - w).toPrecision(3)} > atol ${atol} + rtol ${rtol} × |expected|)`,
          );
        }
      } else if (g !== w) {
        add(`${e.name}[${i}]: expected ${show(w)}, got ${show(g)}`);
      }
    });
  }
  if (more > 0) lines.push(`… and ${more} more differences`);
  return lines;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

async function onPath(command: string): Promise<boolean> {
  try {
    await run(command, ['--version'], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/** The manifest and config of the host's platform. */
async function hostImage(
  store: ContentStore,
  root: Descriptor,
): Promise<{ manifest: ImageManifest; config: ImageConfig }> {
  let desc = root;
  if (indexMediaTypes.includes(root.mediaType)) {
    const host = hostPlatform();
    const index = await store.readJson<ImageIndex>(root.digest);
    const match = index.manifests.find(
      (m) => m.platform?.os === host.os && m.platform.architecture === host.architecture,
    );
    if (match === undefined) {
      throw new InputError(
        `the image has no ${host.os}/${host.architecture} manifest to stage on this machine`,
      );
    }
    desc = match;
  }
  const manifest = await store.readJson<ImageManifest>(desc.digest);
  const config = await store.readJson<ImageConfig>(manifest.config.digest);
  return { manifest, config };
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

async function readRss(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Unpacks the image for the host platform and runs its entrypoint as a child process. */
async function startProcess(context: TaskContext, root: Descriptor, port: number): Promise<StagedServer> {
  const { manifest, config } = await hostImage(context.store, root);
  const rootfs = join(context.workspace, 'stage', 'rootfs');
  await rm(rootfs, { recursive: true, force: true });
  await mkdir(rootfs, { recursive: true });
  for (const layer of manifest.layers) {
    context.signal.throwIfAborted();
    await unpackLayer(await context.store.read(layer.digest), rootfs, { maxBytes: MAX_LAYER_BYTES });
  }
  context.log(`unpacked ${manifest.layers.length} layers into ${rootfs}`);
  const c = config.config ?? {};
  const inRoot = (p: string): string => (p.startsWith('/') ? join(rootfs, p) : p);
  const entrypoint = [...(c.Entrypoint ?? []), ...(c.Cmd ?? [])];
  const [program, ...args] = entrypoint;
  if (program === undefined) throw new InputError('the image has no Entrypoint or Cmd to run');
  // The image's node is this machine's (host base); with another base, this machine's node runs the runtime.
  const executable = program === 'node' || program.endsWith('/node') ? process.execPath : inRoot(program);
  const imageEnv: Record<string, string> = {};
  for (const kv of c.Env ?? []) {
    const at = kv.indexOf('=');
    if (at > 0) imageEnv[kv.slice(0, at)] = kv.slice(at + 1);
  }
  const home = join(context.workspace, 'stage', 'home');
  await mkdir(home, { recursive: true });
  const modelRepository = inRoot(imageEnv['AIEDGE_SERVE_MODEL_REPOSITORY'] ?? '/models');
  const env: Record<string, string> = {
    ...imageEnv,
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    AIEDGE_SERVE_MODEL_REPOSITORY: modelRepository,
  };
  if (env['SSL_CERT_FILE'] !== undefined) env['SSL_CERT_FILE'] = inRoot(env['SSL_CERT_FILE']);
  const argv = [
    ...args.map(inRoot),
    '--model-repository',
    modelRepository,
    '--host',
    '127.0.0.1',
    '--port',
    String(port),
  ];
  context.log(`starting ${[executable, ...argv].join(' ')}`);
  const child: ChildProcess = spawn(executable, argv, {
    cwd: c.WorkingDir !== undefined ? inRoot(c.WorkingDir) : rootfs,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-16_384);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exit: string | undefined;
  const exited = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exit = `exited with ${signal ?? `code ${String(code)}`}${output === '' ? '' : `:\n${tail(output)}`}`;
      done();
    });
    child.once('error', (error) => {
      exit = `could not start: ${error.message}`;
      done();
    });
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    exited: () => exit,
    rssBytes: () => (child.pid === undefined ? Promise.resolve(undefined) : readRss(child.pid)),
    stop: async () => {
      if (exit !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Loads the image into podman from an OCI archive and runs it. */
async function startPodman(context: TaskContext, root: Descriptor, port: number): Promise<StagedServer> {
  const dir = join(context.workspace, 'stage');
  await mkdir(dir, { recursive: true });
  const archive = join(dir, 'image.tar');
  const tag = `localhost/aiedge-stage/${context.spec.spec.model.name.toLowerCase()}:${root.digest.slice(7, 19)}`;
  await writeArchive(context.store, root, archive, tag);
  const podman = async (args: string[], timeoutMs = 300_000): Promise<string> => {
    try {
      return (await run('podman', args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 })).stdout;
    } catch (error) {
      const e = error as Error & { stderr?: string };
      throw new UnavailableError(`podman ${args[0] ?? ''} failed: ${(e.stderr ?? '').trim() || e.message}`, {
        cause: error,
      });
    }
  };
  const loaded = await podman(['load', '-q', '-i', archive]);
  await rm(archive, { force: true });
  const image = /Loaded image(?:\(s\))?:\s*(\S+)/.exec(loaded)?.[1] ?? tag;
  context.log(`loaded ${image} into podman`);
  const name = `aiedge-stage-${context.runId.toLowerCase().replace(/[^a-z0-9_.-]/g, '-')}-${port}`;
  // Host networking with the port in the environment: works whether or not podman's default netns
  // is the host's (this sandbox's containers.conf sets netns = "host", where -p is discarded).
  let started = false;
  const stop = async (): Promise<void> => {
    await run('podman', ['rm', '-f', '-t', '5', name], { timeout: 60_000 }).catch(() => undefined);
    await run('podman', ['rmi', '-f', image], { timeout: 60_000 }).catch(() => undefined);
  };
  try {
    await podman([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '-e',
      'AIEDGE_SERVE_HOST=127.0.0.1',
      '-e',
      `AIEDGE_SERVE_PORT=${port}`,
      image,
    ]);
    started = true;
  } finally {
    if (!started) await stop();
  }
  let exit: string | undefined;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    exited: () => exit,
    rssBytes: async () => {
      try {
        const { stdout } = await run('podman', ['stats', '--no-stream', '--format', '{{.MemUsage}}', name], {
          timeout: 30_000,
        });
        const m = /^([\d.]+)\s*([kKMG]i?B|B)/.exec(stdout.trim());
        if (m === null) return undefined;
        const unit = { B: 1, kB: 1e3, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 }[
          m[2] as string
        ];
        return unit === undefined ? undefined : Math.round(Number(m[1]) * unit);
      } catch {
        return undefined;
      }
    },
    stop,
    // Polled while waiting for readiness: a container that stopped reports its logs.
    checkExited: async () => {
      const state = await run('podman', ['inspect', '-f', '{{.State.Status}}', name]).catch(() => undefined);
      if (state !== undefined && state.stdout.trim() === 'exited') {
        const logs = await run('podman', ['logs', name]).catch(() => undefined);
        exit = `container exited${logs === undefined ? '' : `:\n${tail(`${logs.stdout}${logs.stderr}`)}`}`;
      }
    },
  };
}

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((done, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    // The listener goes when the timer fires: a wait of many sleeps must not pile them up.
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      done();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function waitReady(server: StagedServer, timeoutSeconds: number, signal: AbortSignal): Promise<number> {
  const started = performance.now();
  const deadline = started + timeoutSeconds * 1000;
  let last = 'no answer yet';
  for (;;) {
    signal.throwIfAborted();
    await server.checkExited?.();
    const exit = server.exited();
    if (exit !== undefined) throw new UnavailableError(`the staged server ${exit}`);
    try {
      const res = await fetch(`${server.baseUrl}/v2/health/ready`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - started;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    }
    if (performance.now() > deadline) {
      throw new UnavailableError(
        `the staged server was not ready within ${timeoutSeconds} s (${server.baseUrl}/v2/health/ready: ${last})`,
      );
    }
    await sleep(200, signal);
  }
}

async function infer(
  url: string,
  request: unknown,
  signal: AbortSignal,
): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
    signal,
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

/** A request of zeros matching the inspected signature (dynamic dimensions as 1), for the latency gate. */
function zerosRequest(context: TaskContext): unknown {
  const inputs = context.state.inspected?.inputs ?? [];
  return {
    inputs: inputs.map((t) => {
      const shape = t.shape.map((d) => (d < 0 ? 1 : d));
      const n = shape.reduce((a, b) => a * b, 1);
      const zero = t.datatype === 'BOOL' ? false : t.datatype === 'BYTES' ? '' : 0;
      return { name: t.name, datatype: t.datatype, shape, data: new Array<unknown>(n).fill(zero) };
    }),
  };
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

/** Decides the mode: `podman` when asked, or `auto` and podman is on PATH; else `process`. */
async function resolveMode(test: TestSpec | undefined): Promise<'process' | 'podman'> {
  const mode = test?.mode ?? 'process';
  if (mode === 'auto') return (await onPath('podman')) ? 'podman' : 'process';
  if (mode === 'podman' && !(await onPath('podman'))) {
    throw new InputError(
      'spec.test.mode is podman but podman is not on PATH (install it: apt-get install podman, or use mode: process)',
    );
  }
  return mode;
}

/** The `stage` task. */
export const stageTask: TaskImplementation = async (context: TaskContext) => {
  const built = context.state.built;
  if (built === undefined) throw new InputError('stage needs a built image: run build first');
  const spec = context.spec.spec;
  const test = spec.test;
  const cases = await loadTestCases(context, test);
  const mode = await resolveMode(test);
  const root: Descriptor = {
    mediaType: built.mediaType,
    digest: built.digest as Descriptor['digest'],
    size: built.size,
  };
  const port = await freePort();
  context.log(`staging ${built.digest} (${mode} mode) on 127.0.0.1:${port}`);
  let server: StagedServer | undefined;
  const onAbort = (): void => {
    void server?.stop();
  };
  context.signal.addEventListener('abort', onAbort, { once: true });
  try {
    server =
      mode === 'process' ? await startProcess(context, root, port) : await startPodman(context, root, port);
    context.signal.throwIfAborted();
    const readyMs = await waitReady(
      server,
      test?.readyTimeoutSeconds ?? DEFAULT_READY_TIMEOUT_SECONDS,
      context.signal,
    );
    context.log(`ready after ${(readyMs / 1000).toFixed(1)} s`);
    const inferUrl = `${server.baseUrl}/v2/models/${encodeURIComponent(spec.model.name)}/versions/${encodeURIComponent(spec.model.version)}/infer`;
    if (cases.length === 0 && test?.latency === undefined) {
      context.log('no test requests configured: checked readiness only');
    }
    let passed = 0;
    const failures: string[] = [];
    for (const c of cases) {
      const res = await infer(inferUrl, c.request, context.signal);
      if (res.status !== 200) {
        failures.push(`${c.name}: HTTP ${res.status}: ${res.text.slice(0, 300)}`);
        continue;
      }
      const outputs = (res.body as { outputs?: OipOutput[] } | undefined)?.outputs ?? [];
      const diff = compareOutputs(outputs, c.expected, { atol: test?.atol, rtol: test?.rtol });
      if (diff.length === 0) {
        passed++;
        context.log(`${c.name}: passed`);
      } else {
        failures.push(`${c.name}: outputs differ:\n  ${diff.join('\n  ')}`);
      }
    }
    if (failures.length > 0) {
      throw new InputError(
        `staging test failed: ${failures.length} of ${cases.length} requests did not match\n${failures.join('\n')}`,
      );
    }
    let p50: number | undefined;
    let p95: number | undefined;
    if (test?.latency !== undefined) {
      const n = test.latency.requests ?? DEFAULT_LATENCY_REQUESTS;
      const request = cases[0]?.request ?? zerosRequest(context);
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const res = await infer(inferUrl, request, context.signal);
        times.push(performance.now() - t0);
        if (res.status !== 200) {
          throw new InputError(
            `latency request ${i + 1} failed: HTTP ${res.status}: ${res.text.slice(0, 300)}`,
          );
        }
      }
      times.sort((a, b) => a - b);
      p50 = round(percentile(times, 0.5));
      p95 = round(percentile(times, 0.95));
      context.log(`latency over ${n} requests: p50 ${p50} ms, p95 ${p95} ms (gate ${test.latency.p95Ms} ms)`);
      if (p95 > test.latency.p95Ms) {
        throw new InputError(
          `latency gate missed: p95 ${p95} ms > p95Ms ${test.latency.p95Ms} ms (p50 ${p50} ms over ${n} requests)`,
        );
      }
    }
    const rss = await server.rssBytes();
    if (rss !== undefined) context.log(`server RSS ${(rss / 1e6).toFixed(1)} MB`);
    const report: StageReport = {
      mode,
      requests: cases.length,
      passed,
      ...(p50 !== undefined ? { p50Ms: p50 } : {}),
      ...(p95 !== undefined ? { p95Ms: p95 } : {}),
      ...(rss !== undefined ? { rssBytes: rss } : {}),
    };
    context.state.staged = report;
    return {
      mode,
      requests: String(cases.length),
      passed: String(passed),
      p95Ms: p95 === undefined ? '' : String(p95),
    };
  } finally {
    context.signal.removeEventListener('abort', onAbort);
    await server?.stop();
  }
};
