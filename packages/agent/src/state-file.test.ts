import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { InputError } from '@aiedge/protocol';
import { readJsonFile, writeJsonFile } from './state-file.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'aiedge-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('state files', () => {
  it('writes JSON atomically with the given mode and leaves no temp file', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'sub', 'identity.json');
    await writeJsonFile(path, { a: 1 }, { mode: 0o600 });
    assert.deepEqual(await readJsonFile(path), { a: 1 });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await writeJsonFile(path, { a: 2 }, { mode: 0o600 });
    assert.deepEqual(await readJsonFile(path), { a: 2 });
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['identity.json']);
  });

  it('keeps the old content when a write fails midway', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'applied.json');
    await writeJsonFile(path, { revision: 'r1' });
    // A value JSON cannot encode fails after the temp file was opened.
    await assert.rejects(writeJsonFile(path, { bad: 1n }), TypeError);
    assert.deepEqual(await readJsonFile(path), { revision: 'r1' });
    assert.deepEqual(readdirSync(dir), ['applied.json']);
  });

  it('concurrent writers leave one complete version', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'desired.json');
    const big = (i: number) => ({ i, files: { x: 'y'.repeat(200_000 + i) } });
    await Promise.all(Array.from({ length: 20 }, (_, i) => writeJsonFile(path, big(i))));
    const value = (await readJsonFile(path)) as { i: number; files: { x: string } };
    assert.equal(value.files.x.length, 200_000 + value.i);
    assert.deepEqual(readdirSync(dir), ['desired.json']);
  });

  it('reads a missing file as undefined and names a broken one', async (t) => {
    const dir = tempDir(t);
    assert.equal(await readJsonFile(join(dir, 'none.json')), undefined);
    writeFileSync(join(dir, 'broken.json'), '{"a":');
    await assert.rejects(readJsonFile(join(dir, 'broken.json')), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /broken\.json: not valid JSON/);
      return true;
    });
  });
});
