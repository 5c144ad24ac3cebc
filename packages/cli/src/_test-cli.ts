/** Helpers shared by the cli package's tests (not part of the build). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

const bin = new URL('./_test-bin.ts', import.meta.url).pathname;

/** How a CLI run ended; stdout and stderr read live while it runs. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts `aiedge ARGS` from the TypeScript sources (or with `command`, e.g. the compiled CLI). */
export function startCli(
  args: string[],
  env: Record<string, string> = {},
  command: readonly string[] = [process.execPath, '--conditions=@aiedge/source', '--import', 'tsx', bin],
): { child: ChildProcess; done: Promise<CliRun>; stderr(): string } {
  const [program, ...prefix] = command;
  const child = spawn(program!, [...prefix, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliRun>((resolve) =>
    child.on('exit', (code) =>
      resolve({
        code,
        get stdout() {
          return stdout;
        },
        get stderr() {
          return stderr;
        },
      }),
    ),
  );
  return { child, done, stderr: () => stderr };
}

/** Runs `aiedge ARGS` to completion. */
export function runCli(args: string[], env?: Record<string, string>): Promise<CliRun> {
  return startCli(args, env).done;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Why a test needing `tool` is skipped (with the install command), or a thrown error in CI. */
export function missingTool(tool: string, install: string): string | undefined {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0) return undefined;
  const why = `${tool} is not installed: ${install}`;
  if (process.env['CI'] === 'true') throw new Error(why);
  return why;
}
