/**
 * Debian's docker-registry (CNCF distribution 2.x) on 127.0.0.1 for the build benchmark, and what
 * its storage directory holds: the blobs it stores are counted on disk, independently of what any
 * client says it uploaded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A running docker-registry. */
export interface Distribution {
  /** `127.0.0.1:<port>`. */
  readonly host: string;
  /** Its storage root directory. */
  readonly root: string;
  readonly pid: number;
  /** CPU seconds (user + system) it has used so far, from /proc. */
  cpuSeconds(): Promise<number | undefined>;
  /** Stops it (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** CPU seconds (utime + stime) of a process from /proc/<pid>/stat, or undefined off Linux. */
async function processCpuSeconds(pid: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14 and 15.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
}

/** USER_HZ; 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/** Starts docker-registry on 127.0.0.1 and a free port, storing under `<dir>/data`. */
export async function startDistribution(dir: string): Promise<Distribution> {
  const port = await freePort();
  const root = join(dir, 'data');
  const config = join(dir, 'distribution.yml');
  await mkdir(dir, { recursive: true });
  await writeFile(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${root}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  const errors: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    errors.push(chunk.toString('utf8'));
    if (errors.length > 50) errors.shift();
  });
  const host = `127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await waitForExit(child);
  };
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    const status = await fetch(`http://${host}/v2/`).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200)
      return { host, root, pid: child.pid!, cpuSeconds: () => processCpuSeconds(child.pid!), stop };
    await sleep(100);
  }
  await stop();
  throw new Error(`docker-registry did not start on ${host}: ${errors.join('').slice(-2000)}`);
}

/** sha256 hex → size of every blob in the registry's storage (`docker/registry/v2/blobs/sha256/xx/<hex>/data`). */
export async function storedBlobs(root: string): Promise<Map<string, number>> {
  const blobs = new Map<string, number>();
  const base = join(root, 'docker', 'registry', 'v2', 'blobs', 'sha256');
  let prefixes: string[];
  try {
    prefixes = await readdir(base);
  } catch {
    return blobs; // nothing stored yet
  }
  for (const prefix of prefixes) {
    for (const hex of await readdir(join(base, prefix))) {
      const s = await stat(join(base, prefix, hex, 'data')).catch(() => undefined);
      if (s?.isFile() === true) blobs.set(hex, s.size);
    }
  }
  return blobs;
}

/** Blobs that are in `after` but not in `before`, and their total size. */
export function newBlobs(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): { bytes: number; blobs: Array<{ digest: string; size: number }> } {
  const blobs: Array<{ digest: string; size: number }> = [];
  for (const [hex, size] of after) if (!before.has(hex)) blobs.push({ digest: `sha256:${hex}`, size });
  blobs.sort((a, b) => b.size - a.size);
  return { bytes: blobs.reduce((n, b) => n + b.size, 0), blobs };
}
