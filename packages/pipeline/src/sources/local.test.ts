import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { NotFoundError } from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { LocalSource } from './local.js';
import { testContext } from './_test-context.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

test('local source copies a file (relative to baseDir) with its digest', async () => {
  const ctx = await testContext();
  try {
    const model = exampleModel(1);
    await writeFile(join(ctx.root, 'm.onnx'), model);
    await mkdir(ctx.modelDir, { recursive: true });
    const got = await new LocalSource({ path: 'm.onnx' }).fetch(ctx, ctx.modelDir);
    assert.deepEqual(got.files, [{ path: 'm.onnx', bytes: model.length, sha256: sha(model) }]);
    assert.deepEqual(await readFile(join(ctx.modelDir, 'm.onnx')), Buffer.from(model));
    assert.match(got.origin, /^file:\/\/.*m\.onnx$/);
  } finally {
    await ctx.cleanup();
  }
});

test('local source copies a directory tree (Triton layout), skipping directory links', async () => {
  const ctx = await testContext();
  try {
    const src = join(ctx.root, 'repo');
    await mkdir(join(src, '1'), { recursive: true });
    await writeFile(join(src, '1', 'model.onnx'), exampleModel(1));
    await writeFile(join(src, 'config.pbtxt'), 'name: "m"\n');
    await symlink(src, join(src, 'loop'));
    await mkdir(ctx.modelDir, { recursive: true });
    const got = await new LocalSource({ path: src }).fetch(ctx, ctx.modelDir);
    assert.deepEqual(
      got.files.map((f) => f.path),
      ['1/model.onnx', 'config.pbtxt'],
    );
    assert.ok(ctx.logs.some((l) => l.includes('skipped loop')));
  } finally {
    await ctx.cleanup();
  }
});

test('local source: a missing path is NotFoundError naming the field', async () => {
  const ctx = await testContext();
  try {
    await mkdir(ctx.modelDir, { recursive: true });
    await assert.rejects(new LocalSource({ path: 'nope' }).fetch(ctx, ctx.modelDir), (e: unknown) => {
      assert.ok(e instanceof NotFoundError);
      assert.match(e.message, /spec\.source\.local\.path: .*nope is not a file or directory/);
      return true;
    });
  } finally {
    await ctx.cleanup();
  }
});
