// Shared by the scripts that generate reference files (scripts/gen-*.mjs): run from the TypeScript
// sources, format with the repository's Prettier settings, and write, or check that the file is current.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Re-runs `script` with the @aiedge/source condition and tsx unless this process has them, so the
 * packages load from their TypeScript sources (no build needed; the code the tests run).
 */
export function ensureSources(script) {
  if (process.execArgv.some((a) => a.includes('@aiedge/source'))) return;
  const child = spawnSync(
    process.execPath,
    ['--conditions=@aiedge/source', '--import', 'tsx', script, ...process.argv.slice(2)],
    { cwd: root, stdio: 'inherit' },
  );
  process.exit(child.status ?? 1);
}

/**
 * Formats `text` for `target` with Prettier, then writes it, or with `--check` on the command line
 * exits 1 naming the first differing line when the file on disk is not exactly that.
 */
export async function writeOrCheck(target, text, { script, what }) {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(target)) ?? {};
  const formatted = await prettier.format(text, { ...options, filepath: target });
  const name = relative(root, target);
  if (!process.argv.includes('--check')) {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, formatted);
    console.log(`wrote ${name} (${what})`);
    return;
  }
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // a missing file differs at line 1
  }
  if (current === formatted) {
    console.log(`${name} is current (${what})`);
    return;
  }
  const a = current.split('\n');
  const b = formatted.split('\n');
  const line = b.findIndex((l, i) => l !== a[i]);
  console.error(
    `${name} is out of date: line ${line + 1} is ${JSON.stringify(a[line] ?? '<end of file>')}, ` +
      `regenerating gives ${JSON.stringify(b[line] ?? '<end of file>')}.\nRun: node ${script}`,
  );
  process.exit(1);
}
