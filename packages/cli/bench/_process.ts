/**
 * Runs a command as a child process the way a user would, timing it (wall clock in this process;
 * CPU and peak memory through GNU time when /usr/bin/time exists) and stamping every output line
 * with the time it arrived, so phases can be read off the tool's own progress output.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const GNU_TIME = '/usr/bin/time';

/** One output line and when it arrived, in seconds after the spawn. */
export interface TimedLine {
  readonly t: number;
  readonly stream: 'stdout' | 'stderr';
  readonly text: string;
}

/** A finished child process. */
export interface TimedRun {
  readonly command: string;
  /** Wall-clock seconds from spawn to exit. */
  readonly seconds: number;
  /** CPU seconds (user + system) of the command and its children, when GNU time is available. */
  readonly cpuSeconds: number | undefined;
  /** Peak resident memory in MB of the largest process, when GNU time is available. */
  readonly maxRssMb: number | undefined;
  readonly lines: readonly TimedLine[];
  readonly stdout: string;
}

/** Options of {@link runTimed}. */
export interface RunOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Killed (and the run fails) after this many seconds. Default 600. */
  readonly timeoutSeconds?: number;
  /** Called with each line as it arrives (progress display). */
  readonly onLine?: (line: TimedLine) => void;
}

let serial = 0;

/** Quotes an argument for display. */
function shellWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Runs `command args…`; resolves when it exits 0, rejects (with its last output) otherwise. */
export async function runTimed(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<TimedRun> {
  const display = [command, ...args].map(shellWord).join(' ');
  const useTime = existsSync(GNU_TIME);
  const timeFile = join(tmpdir(), `aiedge-bench-time-${process.pid}-${serial++}.txt`);
  const [file, argv] = useTime
    ? [GNU_TIME, ['-f', '%U %S %M', '-o', timeFile, command, ...args]]
    : [command, [...args]];
  const lines: TimedLine[] = [];
  const started = performance.now();
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const collect = (stream: 'stdout' | 'stderr', source: NodeJS.ReadableStream): Promise<void> =>
    new Promise((resolve) => {
      const rl = createInterface({ input: source, crlfDelay: Infinity });
      rl.on('line', (text) => {
        const line = { t: (performance.now() - started) / 1000, stream, text };
        lines.push(line);
        options.onLine?.(line);
      });
      rl.on('close', resolve);
    });
  const outputs = Promise.all([collect('stdout', child.stdout!), collect('stderr', child.stderr!)]);
  const timeout = setTimeout(() => child.kill('SIGKILL'), (options.timeoutSeconds ?? 600) * 1000);
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  ).finally(() => clearTimeout(timeout));
  const seconds = (performance.now() - started) / 1000;
  await outputs;
  let cpuSeconds: number | undefined;
  let maxRssMb: number | undefined;
  if (useTime) {
    const text = await readFile(timeFile, 'utf8').catch(() => '');
    await rm(timeFile, { force: true });
    // GNU time writes "Command exited with non-zero status N" first when the command fails.
    const match = /(\d+(?:\.\d+)?) (\d+(?:\.\d+)?) (\d+)\s*$/.exec(text);
    if (match !== null) {
      cpuSeconds = Number(match[1]) + Number(match[2]);
      maxRssMb = Number(match[3]) / 1024;
    }
  }
  if (exit.code !== 0) {
    const tail = lines
      .slice(-25)
      .map((l) => `    ${l.stream}: ${l.text}`)
      .join('\n');
    throw new Error(
      `${display} ${exit.signal !== null ? `was killed by ${exit.signal}` : `exited with ${exit.code}`} after ${seconds.toFixed(1)} s:\n${tail}`,
    );
  }
  const stdout = lines
    .filter((l) => l.stream === 'stdout')
    .map((l) => l.text)
    .join('\n');
  return { command: display, seconds, cpuSeconds, maxRssMb, lines, stdout };
}

/** Seconds after spawn of the first line matching `pattern`, or undefined. */
export function lineTime(run: TimedRun, pattern: RegExp): number | undefined {
  return run.lines.find((l) => pattern.test(l.text))?.t;
}
