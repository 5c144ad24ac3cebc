// The generated reference files in docs/reference are current: regenerating them changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { buildProgram } from './main.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));

async function check(script: string): Promise<void> {
  try {
    const { stdout } = await run(process.execPath, [script, '--check'], { cwd: root, timeout: 120_000 });
    assert.match(stdout, /is current/);
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    assert.fail(`${script} --check failed: ${e.stderr ?? e.message}`);
  }
}

test('docs/reference/cli.md is what scripts/gen-cli-reference.mjs generates from --help', async () => {
  await check('scripts/gen-cli-reference.mjs');
});

test('docs/reference/cli.md has a section for every verb of the command tree', async () => {
  const text = await readFile(`${root}/docs/reference/cli.md`, 'utf8');
  const headings = new Set(text.split('\n').filter((l) => l.startsWith('## ')));
  const missing: string[] = [];
  const walk = (command: Command, path: string[]): void => {
    if (!headings.has(`## ${['aiedge', ...path].join(' ')}`)) missing.push(path.join(' ') || '(root)');
    for (const sub of command.commands) walk(sub, [...path, sub.name()]);
  };
  walk(buildProgram(), []);
  assert.deepEqual(missing, [], 'verbs without a section (run node scripts/gen-cli-reference.mjs)');
});

test('docs/reference/openapi.json is what a running core serves at /api/v1/openapi.json', async () => {
  await check('scripts/gen-openapi.mjs');
});
