/**
 * The agent's small state files (identity, desired and applied state): JSON written atomically
 * (temp file in the same directory, fsync, rename, fsync of the directory), so a kill at any moment
 * leaves either the old or the new content, never a torn file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { InputError } from '@aiedge/protocol';

/** Options of {@link writeJsonFile}. */
export interface WriteJsonFileOptions {
  /** File mode of the new file; default 0o644 (use 0o600 for secrets). */
  readonly mode?: number;
}

/** Writes `value` as JSON to `path` atomically; creates the directory when missing. */
export async function writeJsonFile(
  path: string,
  value: unknown,
  options: WriteJsonFileOptions = {},
): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const mode = options.mode ?? 0o644;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      // The mode given to open is masked by the umask; a secret must not depend on it.
      await handle.chmod(mode);
      await handle.writeFile(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  }
}

/** Reads the JSON file at `path`; undefined when it does not exist; InputError naming the file when it is not JSON. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InputError(`${path}: not valid JSON: ${(error as Error).message}`, { cause: error });
  }
}
