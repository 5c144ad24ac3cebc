import assert from 'node:assert/strict';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readState, writeState } from './state.js';

describe('run state', () => {
  it('is empty before the first write and round-trips atomically', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-state-'));
    assert.deepEqual(await readState(dir), {});
    const state = { built: { digest: `sha256:${'0'.repeat(64)}`, mediaType: 'm', size: 1, store: '/s' } };
    await writeState(dir, state);
    assert.deepEqual(await readState(dir), state);
    assert.deepEqual(await readdir(dir), ['state.json']);
  });

  it('names the file when it is not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-state-'));
    await writeFile(join(dir, 'state.json'), '{');
    await assert.rejects(readState(dir), /state\.json is not valid JSON/);
  });
});
