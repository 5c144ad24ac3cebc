#!/usr/bin/env node
// Prints the command blocks of a guide in docs/guides as one bash script, so a guide can be re-run as
// written: every ```sh block, except those whose preceding prose has a paragraph starting with
// "_Not run here_". `VAR=VALUE` arguments replace the value VAR gets in an `export` line (to pick free
// ports); nothing else is changed.
//
// Usage: node scripts/guide-commands.mjs docs/guides/deliver-a-model.md AIEDGE_CORE_PORT=18000 > /tmp/guide.sh
//        (cd a-fresh-checkout && bash /tmp/guide.sh)
import { readFileSync } from 'node:fs';

const [file, ...overrides] = process.argv.slice(2);
if (file === undefined) {
  console.error('usage: node scripts/guide-commands.mjs GUIDE.md [VAR=VALUE ...]');
  process.exit(2);
}
const values = overrides.map((o) => {
  const at = o.indexOf('=');
  if (at <= 0) {
    console.error(`${o}: expected VAR=VALUE`);
    process.exit(2);
  }
  return [o.slice(0, at), o.slice(at + 1)];
});

const text = readFileSync(file, 'utf8');
const out = ['set -euo pipefail', 'set -x'];
let last = 0;
for (const match of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
  const prose = text.slice(last, match.index);
  last = match.index + match[0].length;
  if (/^_Not run here\.?_/m.test(prose)) {
    out.push(`# (block at line ${text.slice(0, match.index).split('\n').length} is marked not run here)`);
    continue;
  }
  let block = match[1];
  for (const [name, value] of values) {
    block = block.replace(new RegExp(`^(export\\b.*?\\b${name}=)\\S+`, 'm'), `$1${value}`);
  }
  out.push(`# block at line ${text.slice(0, match.index).split('\n').length}`, block.trimEnd());
}
console.log(out.join('\n'));
