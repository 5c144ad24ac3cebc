// The reference documentation in docs/reference stays true to the code: the generated files are
// what regenerating gives, and the hand-written ones name every setting and metric the code has.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import { CoreConfigSchema, envNameOf } from '@aiedge/core';
import { buildProgram } from './main.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const doc = (name: string) => readFile(join(root, 'docs', 'reference', name), 'utf8');

async function check(script: string): Promise<void> {
  try {
    const { stdout } = await run(process.execPath, [script, '--check'], { cwd: root, timeout: 120_000 });
    assert.match(stdout, /is current/);
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    assert.fail(`${script} --check failed: ${e.stderr ?? e.message}`);
  }
}

function walk(command: Command, path: string[], visit: (command: Command, path: string[]) => void): void {
  visit(command, path);
  for (const sub of command.commands) walk(sub, [...path, sub.name()], visit);
}

/** Source files of the packages (no tests, no test helpers). */
async function sources(dir = join(root, 'packages')): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (['node_modules', 'dist', 'bench'].includes(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (
      /\.tsx?$/.test(entry.name) &&
      !/\.test\.tsx?$/.test(entry.name) &&
      !entry.name.startsWith('_test')
    )
      out.push(path);
  }
  return out;
}

test('docs/reference/cli.md is what scripts/gen-cli-reference.mjs generates from --help', async () => {
  await check('scripts/gen-cli-reference.mjs');
});

test('docs/reference/cli.md has a section for every verb of the command tree', async () => {
  const headings = new Set((await doc('cli.md')).split('\n').filter((l) => l.startsWith('## ')));
  const missing: string[] = [];
  walk(await buildProgram(), [], (_command, path) => {
    if (!headings.has(`## ${['aiedge', ...path].join(' ')}`)) missing.push(path.join(' ') || '(root)');
  });
  assert.deepEqual(missing, [], 'verbs without a section (run node scripts/gen-cli-reference.mjs)');
});

test('docs/reference/openapi.json is what a running core serves at /api/v1/openapi.json', async () => {
  await check('scripts/gen-openapi.mjs');
});

test('docs/reference/configuration.md names every core setting and every AIEDGE_ variable the code reads', async () => {
  const text = await doc('configuration.md');
  const missing: string[] = [];
  for (const key of Object.keys(CoreConfigSchema.properties)) {
    if (!text.includes(`\`${key}\``)) missing.push(`core key ${key}`);
    if (!text.includes(`\`${envNameOf(key)}\``)) missing.push(`core env ${envNameOf(key)}`);
  }
  walk(await buildProgram(), [], (command, path) => {
    for (const option of command.options) {
      if (option.envVar !== undefined && !text.includes(`\`${option.envVar}\``)) {
        missing.push(`${['aiedge', ...path].join(' ')} ${option.long ?? option.flags}: ${option.envVar}`);
      }
    }
  });
  for (const file of await sources()) {
    for (const m of (await readFile(file, 'utf8')).matchAll(/env(?:\['|\.)(AIEDGE_[A-Z0-9_]+)/g)) {
      if (!text.includes(`\`${m[1]!}\``)) missing.push(`${m[1]!} (read in ${file.slice(root.length)})`);
    }
  }
  assert.deepEqual([...new Set(missing)], [], 'settings missing from docs/reference/configuration.md');
});

test('docs/reference/metrics.md names every Prometheus metric and OpenTelemetry instrument in the code', async () => {
  const text = await doc('metrics.md');
  const names = new Set<string>();
  for (const file of await sources()) {
    const code = await readFile(file, 'utf8');
    for (const m of code.matchAll(/new (?:Counter|Gauge|Histogram|Summary)\(\{\s*name:\s*'([^']+)'/g))
      names.add(m[1]!);
    for (const m of code.matchAll(
      /\.create(?:Counter|UpDownCounter|Histogram|Gauge|Observable\w+)\(\s*'([^']+)'/g,
    ))
      names.add(m[1]!);
  }
  assert.ok(names.size >= 15, `expected the code's metrics, found only ${[...names].join(', ')}`);
  const missing = [...names].filter((name) => !text.includes(`\`${name}\``)).sort();
  assert.deepEqual(missing, [], 'metrics missing from docs/reference/metrics.md');
});
