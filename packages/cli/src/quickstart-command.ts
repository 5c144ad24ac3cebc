/** `aiedge quickstart`: the whole system on this machine (what `npm start` runs), `ship` and `status`. */
import { Command, Option } from 'commander';
import { InputError, NotFoundError, UnavailableError, type Deployment } from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME, integer } from '@aiedge/runtime';
import { LogLevels, type LogLevel } from '@aiedge/telemetry';
import {
  QUICKSTART_DEFAULT_DATA_DIR,
  QUICKSTART_MAX_SITES,
  displayPath as shown,
  expectedInference,
  inferenceRequestBody,
  quickstartPaths,
  readQuickstart,
  shipModelVersion,
  startQuickstart,
  type QuickstartHandle,
  type QuickstartProgress,
  type RunningQuickstart,
} from './quickstart.js';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/**
 * Shows progress on stderr: on a terminal one live line per running step (spinner, elapsed time,
 * latest news) that becomes a ✔ line when the step is done; elsewhere plain lines.
 */
class ProgressPrinter {
  readonly #out: NodeJS.WriteStream;
  readonly #live: boolean;
  #step: { message: string; detail: string; startedAt: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #frame = 0;

  constructor(out: NodeJS.WriteStream = process.stderr) {
    this.#out = out;
    this.#live = out.isTTY === true && process.env['TERM'] !== 'dumb';
  }

  readonly handle = (event: QuickstartProgress): void => {
    switch (event.state) {
      case 'started':
        this.#clear();
        this.#step = { message: event.message, detail: '', startedAt: Date.now() };
        if (this.#live) {
          this.#timer ??= setInterval(() => this.#render(), 100);
          this.#render();
        } else this.#out.write(`… ${event.message}\n`);
        break;
      case 'update':
        if (this.#step !== undefined) this.#step.detail = event.message;
        if (this.#live) this.#render();
        else this.#out.write(`    ${event.message}\n`);
        break;
      case 'done':
        this.#finish(
          `✔ ${event.message}${event.elapsedMs !== undefined ? `  (${seconds(event.elapsedMs)})` : ''}`,
        );
        break;
      case 'skipped':
        this.#finish(`✔ ${event.message}`);
        break;
      case 'warning':
        this.#finish(`! ${event.message}`);
        break;
    }
  };

  #render(): void {
    const step = this.#step;
    if (step === undefined) return;
    const columns = this.#out.columns ?? 100;
    const head = `${SPINNER[this.#frame++ % SPINNER.length]} ${step.message}  ${seconds(Date.now() - step.startedAt)}`;
    const line = step.detail !== '' ? `${head}  ${step.detail}` : head;
    this.#out.write(`\r\x1b[2K${line.length > columns - 1 ? `${line.slice(0, columns - 2)}…` : line}`);
  }

  #clear(): void {
    if (this.#live) this.#out.write('\r\x1b[2K');
  }

  #finish(line: string): void {
    this.#clear();
    this.#out.write(`${line}\n`);
    this.#step = undefined;
    this.#stopTimer();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Ends a live line left by an interrupted step. */
  close(): void {
    this.#stopTimer();
    if (this.#step !== undefined) {
      this.#clear();
      this.#out.write(`✘ ${this.#step.message}: interrupted\n`);
      this.#step = undefined;
    }
  }
}

/** Quotes `value` for a POSIX shell when it needs it. */
function sh(value: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function dataFlag(dataDir: string): string {
  const path = shown(dataDir);
  return path === QUICKSTART_DEFAULT_DATA_DIR ? '' : ` --data ${sh(path)}`;
}

/** The curl that sends the example inference to a site. */
export function curlInference(inferenceUrl: string): string {
  return (
    `curl -s ${inferenceUrl}/v2/models/${EXAMPLE_MODEL_NAME}/infer \\\n` +
    `      -d ${sh(inferenceRequestBody())}`
  );
}

/** Rows as aligned columns, indented by two spaces. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => `  ${row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('   ')}`.trimEnd());
}

/** What a person reads once everything runs. */
function summary(q: RunningQuickstart, elapsedMs: number): string {
  const paths = quickstartPaths(q.dataDir);
  const version = Number(q.model.version);
  const expected = expectedInference(version);
  const token = shown(paths.token);
  const data = dataFlag(q.dataDir);
  const both = q.sites.length === 2 ? 'Both sites serve' : `All ${q.sites.length} sites serve`;
  const lines = [
    '',
    `ai-edge is running: a core and ${q.sites.length} near-edge site${q.sites.length === 1 ? '' : 's'} on this machine (ready in ${seconds(elapsedMs)}).`,
    '',
    `  Dashboard     ${q.coreUrl}/`,
    `  Admin token   ${q.adminToken}`,
    `                (also in ${token}; the core keeps only its hash)`,
    '',
    `${both} ${q.model.name} version ${q.model.version}. Ask them:`,
    '',
    ...q.sites.flatMap((s) => [`  # ${s.name}`, `  ${curlInference(s.inferenceUrl)}`]),
    '',
    `  → "model_version":"${version}", scores [${expected.scores.join(', ')}], label [${expected.label}]`,
    '',
    'Where things are:',
    ...table([
      ['GitOps repo', shown(q.gitopsRepo), `git --git-dir ${sh(shown(q.gitopsRepo))} log --oneline`],
      ['Core data', shown(paths.core), 'SQLite store, OCI registry, build store'],
      ...q.sites.map((s) => [s.name, shown(s.dataDir), 'site agent: identity, image store, servers']),
      ['Models', shown(paths.models), 'the example model, one folder per version'],
      ['Pipelines', shown(paths.pipelines), 'the pipeline documents that ran'],
      ['Logs', `${shown(paths.logs)}/quickstart.log`, 'core and agents (JSON lines)'],
    ]),
    '',
    'Ship the next version of the model, and watch the rollout (in another terminal):',
    `  npx aiedge quickstart ship${data}`,
    `  npx aiedge quickstart status${data} --watch`,
    `  curl -s -H "authorization: Bearer $(cat ${sh(token)})" \\
      ${q.coreUrl}/api/v1/deployments/${q.deployment}`,
    '',
    `Ctrl-C stops everything. Run it again to pick up where it left off.`,
    '',
  ];
  return lines.join('\n');
}

function logLevelOption(): Option {
  return new Option('--log-level <level>', 'level of the logs in <data>/logs/quickstart.log')
    .choices(LogLevels.filter((l) => l !== 'fatal'))
    .default('info');
}

function dataOption(): Option {
  return new Option('--data <dir>', 'data directory of the quickstart').default(QUICKSTART_DEFAULT_DATA_DIR);
}

/**
 * Runs `body` with an abort signal that SIGINT and SIGTERM trigger; a second signal exits at once.
 * With `followParent` under an npm script, the parent going away aborts too: npm does not pass a
 * SIGTERM on to its script's shell, which would leave this process and its servers running.
 */
async function withSignals<T>(
  body: (signal: AbortSignal) => Promise<T>,
  what: string,
  followParent = false,
): Promise<T> {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      process.stderr.write(`\n${name}: ${what}\n`);
      controller.abort(new Error(`interrupted by ${name}`));
      return;
    }
    process.stderr.write(`${name} again: exiting now\n`);
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const parent = process.ppid;
  const watch =
    followParent && process.env['npm_lifecycle_event'] !== undefined
      ? setInterval(() => {
          if (process.ppid === parent || controller.signal.aborted) return;
          process.stderr.write(`\nnpm exited: ${what}\n`);
          controller.abort(new Error('npm exited'));
        }, 1000)
      : undefined;
  watch?.unref();
  try {
    return await body(controller.signal);
  } finally {
    clearInterval(watch);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function handleOf(dataDir: string): Promise<QuickstartHandle> {
  const handle = await readQuickstart(dataDir);
  if (handle === undefined) {
    throw new NotFoundError(
      `no quickstart in ${dataDir}: start one with \`npm start\` or \`aiedge quickstart${dataFlag(quickstartPaths(dataDir).root)}\``,
    );
  }
  const alive = await fetch(`${handle.coreUrl}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(
    () => undefined,
  );
  if (alive?.ok !== true) {
    throw new UnavailableError(
      `the quickstart's core at ${handle.coreUrl} does not answer: is \`aiedge quickstart${dataFlag(handle.dataDir)}\` running?`,
    );
  }
  return handle;
}

function shipCommand(): Command {
  return new Command('ship')
    .description('ship a version of the example model (default: the next one) to the running quickstart')
    .addOption(dataOption())
    .option(
      '--model-version <n>',
      'version of the example model (1..1000); default the deployed one + 1',
      integer,
    )
    .addHelpText(
      'after',
      `
Writes the version with \`aiedge model example\`'s code, registers it in the core's model
registry, runs the example pipeline on the core (fetch → inspect → build → stage → push → GitOps
commit) and waits until every site serves it. The sites switch versions without a failed request.

Example:
  $ aiedge quickstart ship
  $ aiedge quickstart ship --model-version 3`,
    )
    .action(async (flags: { data: string; modelVersion?: number }) => {
      const handle = await handleOf(flags.data);
      const printer = new ProgressPrinter();
      try {
        const shipped = await withSignals(
          (signal) =>
            shipModelVersion(handle, {
              ...(flags.modelVersion !== undefined ? { version: flags.modelVersion } : {}),
              signal,
              onProgress: printer.handle,
            }),
          'cancelling the pipeline run',
        );
        process.stdout.write(
          `\n${shipped.model} version ${shipped.version} is live: image ${shipped.imageDigest}` +
            `${shipped.commit !== undefined ? `, GitOps commit ${shipped.commit.slice(0, 12)}` : ''}` +
            `${shipped.runId !== undefined ? `, pipeline run ${shipped.runId}` : ''}\n` +
            `the pipeline document that ran: ${shown(shipped.pipelineFile)}\n`,
        );
      } finally {
        printer.close();
      }
    });
}

function statusLines(deployment: Deployment): string[] {
  const rows = [
    ['SITE', 'ONLINE', 'STATE', 'VERSION', 'UP TO DATE', 'IMAGE', 'SINCE'],
    ...deployment.sites.map((s) => [
      s.site,
      s.online ? 'yes' : 'no',
      s.state,
      s.version ?? '-',
      s.upToDate ? 'yes' : 'no',
      s.imageDigest?.slice(0, 19) ?? '-',
      s.since ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return [
    `${deployment.name}: ${deployment.spec.model.name} version ${deployment.spec.model.version}, ` +
      `${deployment.summary.serving}/${deployment.summary.sites} sites serving`,
    ...rows.map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    ),
  ];
}

function statusCommand(): Command {
  return new Command('status')
    .description("show each site's state of the quickstart's deployment")
    .addOption(dataOption())
    .option('--watch', 'print it again on every change until Ctrl-C')
    .action(async (flags: { data: string; watch?: boolean }) => {
      const handle = await handleOf(flags.data);
      const get = async (signal?: AbortSignal): Promise<Deployment> => {
        const response = await fetch(`${handle.coreUrl}/api/v1/deployments/${EXAMPLE_MODEL_NAME}`, {
          headers: { authorization: `Bearer ${handle.adminToken}` },
          signal:
            signal !== undefined
              ? AbortSignal.any([signal, AbortSignal.timeout(10_000)])
              : AbortSignal.timeout(10_000),
        });
        if (response.status === 404)
          throw new NotFoundError(`no deployment ${EXAMPLE_MODEL_NAME} yet at ${handle.coreUrl}`);
        if (!response.ok)
          throw new UnavailableError(`core: GET deployment: ${response.status} ${await response.text()}`);
        return (await response.json()) as Deployment;
      };
      if (flags.watch !== true) {
        process.stdout.write(`${statusLines(await get()).join('\n')}\n`);
        return;
      }
      await withSignals(async (signal) => {
        let last = '';
        while (!signal.aborted) {
          const text = await get(signal).then(
            (d) => statusLines(d).join('\n'),
            (error: unknown) => (signal.aborted ? last : `(${(error as Error).message})`),
          );
          if (text !== last) {
            last = text;
            process.stdout.write(`\n${new Date().toISOString().slice(11, 19)}  ${text}\n`);
          }
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }, 'stopped watching');
    });
}

/** The `aiedge quickstart` command. */
export function quickstartCommand(): Command {
  const command = new Command('quickstart')
    .description('run the whole system on this machine: a core, near-edge sites, the example pipeline')
    .enablePositionalOptions()
    .addOption(dataOption())
    .option(
      '--sites <n>',
      `number of near-edge sites, 1..${QUICKSTART_MAX_SITES} (default 2, or the previous run's)`,
      integer,
    )
    .option(
      '--port <port>',
      "core port on 127.0.0.1 (default 8080, or the previous run's; 0: any free port)",
      integer,
    )
    .addOption(logLevelOption())
    .addHelpText(
      'after',
      `
Starts the core (data in <data>/core: SQLite store, OCI registry, GitOps repository), creates an
admin token, enrolls the sites edge-1..edge-N (each a site agent with the process driver and its
own serving port), registers the example model in the core's model registry, runs the example
pipeline (examples/registry-pipeline.yaml) on the core, waits until every site serves the model,
and sends a little inference traffic so telemetry reaches the core. Then it prints where
everything is, and runs until Ctrl-C (SIGINT) or SIGTERM, which stop every process it started.

A second run reuses the data directory: the token, the sites and the deployed model.

Examples:
  $ npm start                          # the same as: aiedge quickstart
  $ aiedge quickstart --sites 3 --data /tmp/aiedge --port 9080
  $ aiedge quickstart ship             # in another terminal: the next model version
  $ aiedge quickstart status --watch`,
    )
    .action(async (flags: { data: string; sites?: number; port?: number; logLevel: string }) => {
      if (flags.sites !== undefined && (flags.sites < 1 || flags.sites > QUICKSTART_MAX_SITES)) {
        throw new InputError(`--sites ${flags.sites} must be from 1 to ${QUICKSTART_MAX_SITES}`);
      }
      if (flags.port !== undefined && (flags.port < 0 || flags.port > 65535)) {
        throw new InputError(`--port ${flags.port} must be from 0 to 65535`);
      }
      const paths = quickstartPaths(flags.data);
      const printer = new ProgressPrinter();
      const startedAt = Date.now();
      process.stderr.write(`ai-edge quickstart: data in ${shown(paths.root)}/\n`);
      await withSignals(
        async (signal) => {
          let running: RunningQuickstart;
          try {
            running = await startQuickstart({
              dataDir: paths.root,
              ...(flags.sites !== undefined ? { sites: flags.sites } : {}),
              ...(flags.port !== undefined ? { port: flags.port } : {}),
              signal,
              onProgress: printer.handle,
              logLevel: flags.logLevel as LogLevel,
            });
          } catch (error) {
            printer.close();
            if (signal.aborted) {
              process.stderr.write('stopped before it was ready\n');
              return;
            }
            throw error;
          }
          process.stdout.write(summary(running, Date.now() - startedAt));
          if (!signal.aborted)
            await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          await running.stop();
          printer.close();
        },
        'stopping the sites, their inference servers and the core',
        true,
      );
    });
  command.addCommand(shipCommand());
  command.addCommand(statusCommand());
  return command;
}
