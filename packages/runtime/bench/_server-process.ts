/**
 * Runs `aiedge serve` in a child process for the serve benchmark, so the load generator does not
 * share the server's event loop, and waits until the server reports ready.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** A server child process. */
export interface ServerProcess {
  readonly url: string;
  readonly pid: number;
  /** Worker threads and intra-op threads the server reported in its "listening" log line. */
  readonly workers: number;
  readonly intraOpThreads: number;
  /** The `aiedge` arguments it was started with. */
  readonly args: readonly string[];
  /** Stops it with SIGTERM (SIGKILL after 10 s) and waits for it to exit. */
  stop(): Promise<void>;
}

/** Options of {@link startServerProcess}. */
export interface ServerProcessOptions {
  /** Repository root: the child's working directory, where `@aiedge/cli` resolves. */
  readonly cwd: string;
  readonly modelRepository: string;
  /** Extra `aiedge serve` flags, e.g. ['--workers', '2']. */
  readonly extraArgs: readonly string[];
  /** How long to wait for /v2/health/ready. */
  readonly readyTimeoutSeconds: number;
}

interface Listening {
  url: string;
  workers: number;
  intraOpThreads: number;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts `aiedge serve` from the TypeScript sources (through tsx) on 127.0.0.1 and a free port. */
export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const args = [
    'serve',
    '--model-repository',
    options.modelRepository,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    ...options.extraArgs,
  ];
  const code =
    `import('@aiedge/cli').then(async (m) => { process.exitCode = await m.main(${JSON.stringify(args)}); })` +
    `.catch((e) => { console.error(e); process.exitCode = 1; });`;
  const child = spawn(process.execPath, ['--conditions=@aiedge/source', '--import', 'tsx', '-e', code], {
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const remember = (line: string): void => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  };
  let listening: Listening | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    remember(line);
    if (listening !== undefined) return;
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry['msg'] === 'listening') {
        listening = {
          url: String(entry['url']),
          workers: Number(entry['workers']),
          intraOpThreads: Number(entry['intraOpThreads']),
        };
      }
    } catch {
      // not a JSON log line
    }
  });
  createInterface({ input: child.stderr! }).on('line', remember);

  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await waitForExit(child);
    clearTimeout(killer);
  };

  const deadline = Date.now() + options.readyTimeoutSeconds * 1000;
  try {
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before it was ready`);
      }
      if (Date.now() > deadline) {
        throw new Error(`the server was not ready within ${options.readyTimeoutSeconds} s`);
      }
      if (listening !== undefined) {
        const ready = await fetch(`${listening.url}/v2/health/ready`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ready) break;
      }
      await sleep(200);
    }
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; its last output:\n${tail.join('\n')}`);
  }
  const { url, workers, intraOpThreads } = listening!;
  return { url, pid: child.pid!, workers, intraOpThreads, args, stop };
}
