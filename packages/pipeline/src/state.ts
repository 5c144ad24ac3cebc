/** The run state on disk: `<workspace>/state.json`, written atomically so a kill never leaves half a file. */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '@aiedge/protocol';
import type { RunState } from './types.js';

/** Path of the state file in a workspace. */
export function statePath(workspace: string): string {
  return join(workspace, 'state.json');
}

/** Reads `<workspace>/state.json`; an absent file is an empty state. */
export async function readState(workspace: string): Promise<RunState> {
  const path = statePath(workspace);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(`${path} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InputError(`${path} does not hold a run state object`);
  }
  return parsed as RunState;
}

/** Writes `<workspace>/state.json` through a temporary file and a rename. */
export async function writeState(workspace: string, state: RunState): Promise<void> {
  const path = statePath(workspace);
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
