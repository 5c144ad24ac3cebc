import { openStore } from './_image-source.js';
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import {
  InputError,
  UnavailableError,
  isAiEdgeError,
  type PipelineRun,
  type PipelineRunSummary,
  type RunLogLine,
  type RunLogStream,
  type RunTask,
  type TaskState,
} from '@aiedge/protocol';
import {
  exportTekton,
  parsePipeline,
  planTasks,
  runPipeline,
  runTask,
  tektonResults,
  type PipelineSpec,
  type ProgressEvent,
  type RunEvents,
} from '@aiedge/pipeline';
import { collect } from '@aiedge/runtime';

/** Default image of the Tekton steps (it has the `aiedge` command). */
const DEFAULT_TEKTON_IMAGE = 'quay.io/aiedge/aiedge:0.1.0';
/** Spinner frames of the live progress. */
const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
/** Longest results column of the summary. */
const MAX_RESULTS_CHARS = 100;
/** Reconnects to a core's log stream before giving up. */
const MAX_RECONNECTS = 10;
/** Cap of the pause between reconnects. */
const MAX_RECONNECT_DELAY_MS = 10_000;

interface DocumentFlags {
  readonly file: string;
  readonly param?: string[];
}

interface LoadedPipeline {
  readonly file: string;
  readonly text: string;
  readonly params: Record<string, string>;
  readonly spec: PipelineSpec;
}

/** `--param k=v` flags as a record; errors name the flag. */
function parseParams(values: readonly string[] = []): Record<string, string> {
  const params: Record<string, string> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new InputError(`--param ${JSON.stringify(value)}: expected NAME=VALUE`);
    const name = value.slice(0, eq);
    if (name in params) throw new InputError(`--param ${name} is given twice`);
    params[name] = value.slice(eq + 1);
  }
  return params;
}

/** Reads and validates the pipeline file; errors start with the file name. */
async function loadPipeline(flags: DocumentFlags): Promise<LoadedPipeline> {
  const file = resolve(flags.file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new InputError(
      `${flags.file}: cannot read the pipeline file (${code === 'ENOENT' ? 'no such file' : (code ?? String(error))})`,
      { cause: error },
    );
  }
  const params = parseParams(flags.param);
  try {
    const spec = parsePipeline(text, params, { what: 'pipeline', paramsWhat: '--param' });
    planTasks(spec);
    return { file, text, params, spec };
  } catch (error) {
    if (error instanceof InputError)
      throw new InputError(`${flags.file}: ${error.message}`, { cause: error });
    throw error;
  }
}

function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`;
}

const MARKS: Record<TaskState, string> = {
  pending: '·',
  running: '▸',
  succeeded: '✔',
  failed: '✖',
  skipped: '–',
  cancelled: '⊘',
};

interface TaskView {
  state: TaskState;
  attempt: number;
  startedAt?: number;
  endedAt?: number;
  progress?: ProgressEvent;
  reason?: string;
}

/**
 * Live per-task progress on stderr: a redrawn line per task (spinner, elapsed time, bytes) on a
 * TTY, plain lines otherwise; task output is printed above the live block.
 */
class ProgressView {
  readonly #tasks = new Map<string, TaskView>();
  readonly #tty: boolean;
  readonly #out: NodeJS.WriteStream;
  #drawn = 0;
  #frame = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #lastPlainProgress = new Map<string, number>();

  constructor(tasks: readonly string[], out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
    this.#tty = out.isTTY === true && process.env['TERM'] !== 'dumb';
    for (const t of tasks) this.#tasks.set(t, { state: 'pending', attempt: 0 });
    if (this.#tty) {
      this.#timer = setInterval(() => {
        this.#frame++;
        this.#redraw();
      }, 100);
      this.#timer.unref();
      this.#redraw();
    }
  }

  /** A task changed state. */
  transition(task: string, state: TaskState, attempt: number, reason?: string): void {
    const view = this.#tasks.get(task) ?? { state: 'pending', attempt: 0 };
    this.#tasks.set(task, view);
    if (view.state === state && view.attempt === attempt) return;
    const now = Date.now();
    if (state === 'running') {
      view.startedAt ??= now;
      delete view.progress;
    } else if (state !== 'pending') view.endedAt = now;
    view.state = state;
    view.attempt = attempt;
    if (reason !== undefined) view.reason = reason;
    if (this.#tty) return this.#redraw();
    const attemptText = state === 'running' && attempt > 1 ? ` (attempt ${attempt})` : '';
    const time =
      state !== 'running' && view.startedAt !== undefined
        ? ` in ${formatDuration(now - view.startedAt)}`
        : '';
    this.#out.write(`[${task}] ${state}${attemptText}${time}${reason !== undefined ? `: ${reason}` : ''}\n`);
  }

  /** One line of output. */
  log(task: string | null, stream: RunLogStream, line: string): void {
    const text = `[${task ?? 'run'}]${stream === 'stdout' ? '' : ` (${stream})`} ${line}\n`;
    if (!this.#tty) return void this.#out.write(text);
    this.#clear();
    this.#out.write(text);
    this.#redraw();
  }

  /** Progress of a transfer or build. */
  progress(task: string, event: ProgressEvent): void {
    const view = this.#tasks.get(task);
    if (view === undefined) return;
    view.progress = event;
    if (this.#tty) return;
    const last = this.#lastPlainProgress.get(task) ?? 0;
    const done = event.total !== undefined && event.bytes >= event.total;
    if (!done && Date.now() - last < 5000) return;
    this.#lastPlainProgress.set(task, Date.now());
    this.#out.write(`[${task}] ${this.#bytes(event)}\n`);
  }

  /** Stops the live display (leaving its final state on screen). */
  close(): void {
    clearInterval(this.#timer);
    if (this.#tty) this.#redraw();
    this.#drawn = 0;
  }

  #bytes(event: ProgressEvent): string {
    const total = event.total !== undefined ? ` / ${formatBytes(event.total)}` : '';
    return `${event.item !== undefined ? `${event.item} ` : ''}${formatBytes(event.bytes)}${total}`;
  }

  #clear(): void {
    if (this.#drawn > 0) this.#out.write(`\x1b[${this.#drawn}A\x1b[0J`);
    this.#drawn = 0;
  }

  #redraw(): void {
    const now = Date.now();
    const width = Math.max(...[...this.#tasks.keys()].map((k) => k.length), 4);
    const columns = this.#out.columns > 20 ? this.#out.columns : 100;
    const lines = [...this.#tasks].map(([name, v]) => {
      const mark = v.state === 'running' ? (SPINNER[this.#frame % SPINNER.length] ?? '') : MARKS[v.state];
      const elapsed = v.startedAt !== undefined ? formatDuration((v.endedAt ?? now) - v.startedAt) : '';
      const detail =
        v.state === 'running' && v.progress !== undefined
          ? this.#bytes(v.progress)
          : v.state !== 'succeeded' && v.reason !== undefined
            ? v.reason
            : v.state === 'running' && v.attempt > 1
              ? `attempt ${v.attempt}`
              : '';
      const line =
        `${mark} ${name.padEnd(width)}  ${v.state.padEnd(9)} ${elapsed.padStart(7)}  ${detail}`.trimEnd();
      return line.length > columns - 1 ? `${line.slice(0, columns - 2)}…` : line;
    });
    this.#clear();
    this.#out.write(lines.map((l) => `${l}\n`).join(''));
    this.#drawn = lines.length;
  }
}

interface SummaryRow {
  readonly name: string;
  readonly state: TaskState;
  readonly durationMs?: number | undefined;
  readonly results: Readonly<Record<string, string>>;
  readonly reason?: string | undefined;
}

/** The summary table: task, state, duration, key results (or why it did not succeed). */
function summaryTable(rows: readonly SummaryRow[]): string {
  const cells = rows.map((r) => {
    const results =
      r.state === 'succeeded'
        ? Object.entries(r.results)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')
        : (r.reason ?? '');
    return [
      r.name,
      r.state,
      formatDuration(r.durationMs),
      results.length > MAX_RESULTS_CHARS ? `${results.slice(0, MAX_RESULTS_CHARS - 1)}…` : results,
    ];
  });
  const header = ['TASK', 'STATE', 'DURATION', 'RESULTS'];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]) =>
    c
      .map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

/** Aborts `controller` on the first Ctrl-C or SIGTERM; a second Ctrl-C exits at once. */
function onInterrupt(controller: AbortController): () => void {
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(130);
    process.stderr.write(`\naiedge: ${signal}: cancelling the run (again to quit at once)\n`);
    controller.abort(new Error(`interrupted (${signal})`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** A failed run: the summary was printed, exit 1 without another message. */
function runFailed(message: string): CommanderError {
  return new CommanderError(1, 'aiedge.pipeline.failed', message);
}

async function runLocally(
  loaded: LoadedPipeline,
  flags: { workspace?: string; keep?: boolean; store?: string },
): Promise<void> {
  const { spec } = loaded;
  // The same store as `aiedge image`: base and runtime layers built once are reused by every run.
  const store = await openStore(flags.store);
  const given = flags.workspace !== undefined;
  const workspace = given
    ? resolve(flags.workspace!)
    : await mkdtemp(join(tmpdir(), `aiedge-run-${spec.metadata.name}-`));
  const view = new ProgressView(planTasks(spec).map((t) => t.name));
  const events: RunEvents = {
    task: (t) => view.transition(t.task, t.state, t.attempt, t.reason),
    log: (task, stream, line) => view.log(task, stream, line),
    progress: (task, event) => view.progress(task, event),
  };
  const controller = new AbortController();
  const release = onInterrupt(controller);
  let result;
  try {
    result = await runPipeline(spec, {
      workspace,
      baseDir: dirname(loaded.file),
      env: process.env,
      signal: controller.signal,
      events,
      store,
    });
  } finally {
    view.close();
    release();
  }
  process.stdout.write(`\n${summaryTable(result.tasks)}`);
  const reason = result.reason !== undefined ? `: ${result.reason}` : '';
  process.stdout.write(
    `\npipeline ${spec.metadata.name} ${result.status} in ${formatDuration(result.durationMs)}${reason}\n`,
  );
  if (given || flags.keep === true) process.stderr.write(`workspace kept: ${workspace}\n`);
  else await rm(workspace, { recursive: true, force: true });
  if (result.status !== 'succeeded') throw runFailed(`pipeline ${result.status}${reason}`);
}

/** Calls the core's API; errors name the request and carry the core's message. */
async function coreRequest(
  core: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  const url = `${core.replace(/\/+$/, '')}${path}`;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
    throw new UnavailableError(`cannot reach the core at ${core}: ${cause}`, { cause: error });
  }
  if (!response.ok) {
    const text = await response.text();
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { message?: unknown };
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // not JSON: the text itself
    }
    const what = `core: ${method} ${path}: ${response.status} ${message}`;
    throw response.status < 500 ? new InputError(what) : new UnavailableError(what);
  }
  return response;
}

interface SseEvent {
  readonly event: string;
  readonly data: string;
  readonly id?: string;
}

/** Server-Sent Events of a response body. */
async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  let id: string | undefined;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const raw = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line === '') {
        if (data.length > 0) yield { event, data: data.join('\n'), ...(id !== undefined ? { id } : {}) };
        event = 'message';
        data = [];
        id = undefined;
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
  }
}

async function runOnCore(loaded: LoadedPipeline, core: string, token: string): Promise<void> {
  const created = (await (
    await coreRequest(core, token, 'POST', '/api/v1/pipelines/runs', {
      spec: loaded.text,
      params: loaded.params,
    })
  ).json()) as PipelineRun;
  process.stderr.write(`run ${created.id} of pipeline ${created.pipeline} ${created.status} on ${core}\n`);
  const view = new ProgressView(created.tasks.map((t) => t.name));
  const tasks = new Map<string, RunTask>(created.tasks.map((t) => [t.name, t]));
  const controller = new AbortController();
  const detach = () => controller.abort();
  process.on('SIGINT', detach);
  let final: PipelineRunSummary | undefined;
  let lastSeq = 0;
  try {
    for (let reconnects = 0; final === undefined && !controller.signal.aborted; reconnects++) {
      try {
        const response = await coreRequest(
          core,
          token,
          'GET',
          `/api/v1/pipelines/runs/${created.id}/logs?after=${lastSeq}`,
          undefined,
          { accept: 'text/event-stream' },
        );
        if (response.body === null) throw new UnavailableError('core: the log stream has no body');
        const abort = () => void response.body?.cancel().catch(() => {});
        controller.signal.addEventListener('abort', abort, { once: true });
        for await (const e of sseEvents(response.body)) {
          reconnects = 0;
          if (e.event === 'log') {
            const line = JSON.parse(e.data) as RunLogLine;
            lastSeq = Math.max(lastSeq, line.seq);
            view.log(line.task, line.stream, line.line);
          } else if (e.event === 'task') {
            const task = JSON.parse(e.data) as RunTask;
            tasks.set(task.name, task);
            view.transition(task.name, task.state, task.attempt, task.reason ?? undefined);
          } else if (e.event === 'end') {
            final = JSON.parse(e.data) as PipelineRunSummary;
            break;
          }
        }
        controller.signal.removeEventListener('abort', abort);
      } catch (error) {
        if (controller.signal.aborted) break;
        if (!isAiEdgeError(error) || error.status < 500 || reconnects >= MAX_RECONNECTS) throw error;
        view.log(null, 'system', `log stream lost (${(error as Error).message}); reconnecting`);
      }
      if (final === undefined && !controller.signal.aborted) {
        await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** reconnects, MAX_RECONNECT_DELAY_MS)));
      }
    }
  } finally {
    view.close();
    process.off('SIGINT', detach);
  }
  if (final === undefined) {
    process.stderr.write(
      `detached: run ${created.id} goes on in the core (cancel: POST ${core}/api/v1/pipelines/runs/${created.id}/cancel)\n`,
    );
    throw runFailed('detached');
  }
  process.stdout.write(
    `\n${summaryTable(
      [...tasks.values()].map((t) => ({
        name: t.name,
        state: t.state,
        durationMs: t.durationMs ?? undefined,
        results: t.results,
        reason: t.reason ?? undefined,
      })),
    )}`,
  );
  const reason = final.reason !== null ? `: ${final.reason}` : '';
  process.stdout.write(
    `\npipeline ${final.pipeline} run ${final.id} ${final.status} in ${formatDuration(final.durationMs ?? undefined)}${reason}\n`,
  );
  if (final.status !== 'succeeded') throw runFailed(`pipeline ${final.status}${reason}`);
}

/** Writes `content` to `path` through a temporary file and a rename. */
async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.tmp-${process.pid}`;
  await writeFile(temp, content);
  await rename(temp, path);
}

const fileOption = ['-f, --file <pipeline.yaml>', 'the pipeline document (YAML or JSON)'] as const;
const paramOption = [
  '--param <name=value>',
  'a pipeline parameter (repeatable)',
  (v: string, prev: string[] | undefined) => collect(v, prev),
] as const;

/** `aiedge pipeline`: run, validate and export ai-edge pipelines. */
export function pipelineCommand(): Command {
  const pipeline = new Command('pipeline').description(
    'Run MLOps pipelines: fetch a model, build its inference image, test it, push it, publish it',
  );

  pipeline
    .command('run')
    .description('Run a pipeline here (live progress on stderr), or on a core with --core')
    .requiredOption(...fileOption)
    .option(...paramOption)
    .option('--workspace <dir>', 'run workspace (kept); default a temporary directory')
    .option('--keep', 'keep the temporary workspace')
    .option(
      '--store <dir>',
      'content store for built images (env AIEDGE_STORE; default ~/.local/share/aiedge/store)',
    )
    .option('--core <url>', 'run on this core instead and follow its logs')
    .option('--token <token>', 'admin token of the core (default $AIEDGE_TOKEN)')
    .addHelpText(
      'after',
      `
Secrets named by …Env fields of the document are read from the environment. Exit code 0 when the
run succeeded, 1 when it failed or was cancelled, 2 on bad input.

Examples:
  $ aiedge pipeline run -f examples/local-pipeline.yaml
  $ aiedge pipeline run -f examples/s3-pipeline.yaml --param s3Bucket=models --keep
  $ aiedge pipeline run -f examples/local-pipeline.yaml --core http://127.0.0.1:8080 --token "$AIEDGE_TOKEN"
`,
    )
    .action(
      async (
        flags: DocumentFlags & {
          workspace?: string;
          keep?: boolean;
          store?: string;
          core?: string;
          token?: string;
        },
      ) => {
        const loaded = await loadPipeline(flags);
        if (flags.core === undefined) return runLocally(loaded, flags);
        if (flags.workspace !== undefined || flags.keep === true)
          throw new InputError('--workspace and --keep apply to local runs, not with --core');
        if (!/^https?:\/\//.test(flags.core))
          throw new InputError(`--core ${JSON.stringify(flags.core)}: expected an http(s) URL`);
        const token = flags.token ?? process.env['AIEDGE_TOKEN'];
        if (token === undefined || token === '')
          throw new InputError('--core needs an admin token: give --token or set AIEDGE_TOKEN');
        return runOnCore(loaded, flags.core, token);
      },
    );

  pipeline
    .command('task')
    .description('Run one task of a pipeline alone against a workspace (a Tekton step)')
    .argument('<name>', 'the task name')
    .requiredOption(...fileOption)
    .requiredOption('--workspace <dir>', 'the run workspace earlier tasks wrote to')
    .option(...paramOption)
    .option('--results-dir <dir>', 'also write the Tekton results of the task here, one file each')
    .addHelpText(
      'after',
      `
Examples:
  $ aiedge pipeline task fetch -f pipeline.yaml --workspace ./run
  $ aiedge pipeline task push -f /workspace/pipeline/pipeline.yaml --workspace /workspace/run --results-dir /tekton/results
`,
    )
    .action(async (name: string, flags: DocumentFlags & { workspace: string; resultsDir?: string }) => {
      const loaded = await loadPipeline(flags);
      const planned = planTasks(loaded.spec).find((t) => t.name === name);
      if (planned === undefined) {
        const names = planTasks(loaded.spec).map((t) => t.name);
        throw new InputError(`task "${name}" is not a task of ${flags.file} (${names.join(', ')})`);
      }
      const view = new ProgressView([name]);
      const controller = new AbortController();
      const release = onInterrupt(controller);
      let outcome;
      try {
        outcome = await runTask(loaded.spec, name, {
          workspace: resolve(flags.workspace),
          baseDir: dirname(loaded.file),
          env: process.env,
          signal: controller.signal,
          events: {
            task: (t) => view.transition(t.task, t.state, t.attempt, t.reason),
            log: (task, stream, line) => view.log(task, stream, line),
            progress: (task, event) => view.progress(task, event),
          },
        });
      } finally {
        view.close();
        release();
      }
      for (const [k, v] of Object.entries(outcome.results)) process.stdout.write(`${k}=${v}\n`);
      if (flags.resultsDir !== undefined) {
        const dir = resolve(flags.resultsDir);
        for (const [k, v] of Object.entries(tektonResults(planned.uses, outcome.runState)))
          await writeAtomic(join(dir, k), v);
      }
      if (outcome.state !== 'succeeded')
        throw runFailed(`task ${name} ${outcome.state}: ${outcome.reason ?? ''}`);
    });

  pipeline
    .command('validate')
    .description('Check a pipeline document and its params without running it')
    .requiredOption(...fileOption)
    .option(...paramOption)
    .addHelpText(
      'after',
      `
Examples:
  $ aiedge pipeline validate -f examples/local-pipeline.yaml
  $ aiedge pipeline validate -f examples/git-pipeline.yaml --param gitRepo=https://git.example.com/models.git
`,
    )
    .action(async (flags: DocumentFlags) => {
      const { spec } = await loadPipeline(flags);
      const tasks = planTasks(spec);
      process.stdout.write(
        `${flags.file}: pipeline ${spec.metadata.name} is valid: ${tasks.length} tasks: ${tasks
          .map((t) => (t.runAfter.length > 0 ? `${t.name} (after ${t.runAfter.join(', ')})` : t.name))
          .join(', ')}\n`,
      );
    });

  pipeline
    .command('export')
    .description('Export a pipeline to another engine: Tekton (OpenShift Pipelines)')
    .requiredOption(...fileOption)
    .option(...paramOption)
    .requiredOption('--format <format>', 'target format: tekton')
    .option('--out <dir>', 'write one file per resource here (default: all on stdout)')
    .option('--image <image>', 'the ai-edge image the steps run', DEFAULT_TEKTON_IMAGE)
    .option('--secret-name <name>', 'default name of the Secret holding the …Env variables', 'aiedge-secrets')
    .addHelpText(
      'after',
      `
Writes pipeline.yaml (tekton.dev/v1 Pipeline), task-<name>.yaml (one Task each), configmap.yaml
(the pipeline document, mounted as the 'pipeline' workspace) and pipelinerun.yaml (an example run
with a PVC as the 'run' workspace). Secrets: one key per …Env variable in the Secret named by the
'secret-name' param.

Examples:
  $ aiedge pipeline export -f examples/s3-pipeline.yaml --format tekton --out ./tekton
  $ kubectl create -f ./tekton/     # the PipelineRun has generateName: create, not apply
`,
    )
    .action(
      async (flags: DocumentFlags & { format: string; out?: string; image: string; secretName: string }) => {
        if (flags.format !== 'tekton')
          throw new InputError(`--format ${JSON.stringify(flags.format)}: expected tekton`);
        const loaded = await loadPipeline(flags);
        const files = exportTekton(loaded.spec, {
          image: flags.image,
          document: loaded.text,
          params: loaded.params,
          secretName: flags.secretName,
        });
        if (flags.out === undefined) {
          process.stdout.write([...files.values()].join('---\n'));
          return;
        }
        const out = resolve(flags.out);
        for (const [name, content] of files) {
          await writeAtomic(join(out, name), content);
          process.stdout.write(`wrote ${join(flags.out, name)}\n`);
        }
      },
    );
  return pipeline;
}
