import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DigestMismatchError } from '@aiedge/oci';
import { NotFoundError } from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { HttpSource } from './http.js';
import { testContext } from './_test-context.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('http source', () => {
  const model = Buffer.from(exampleModel(2));
  let server: Server;
  let base: string;
  let slow: (() => void) | undefined;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/models/classifier.onnx') {
        res.writeHead(200, { 'content-length': model.length }).end(model);
      } else if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: '/models/classifier.onnx' }).end();
      } else if (req.url === '/slow.onnx') {
        res.writeHead(200, { 'content-length': 1_000_000 });
        res.write(Buffer.alloc(1000));
        slow = () => res.destroy();
      } else res.writeHead(404).end('not here');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    slow?.();
    await new Promise((resolve) => server.close(resolve));
  });

  test('downloads and verifies the sha256 (following a redirect)', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new HttpSource({ url: `${base}/redirect?token=secret`, sha256: sha(model) }).fetch(
        ctx,
        ctx.modelDir,
      );
      assert.deepEqual(got.files, [{ path: 'classifier.onnx', bytes: model.length, sha256: sha(model) }]);
      assert.deepEqual(await readFile(join(ctx.modelDir, 'classifier.onnx')), model);
      assert.ok(!got.origin.includes('secret'), 'query strings (presigned credentials) stay out of origin');
      assert.ok(!ctx.logs.join('\n').includes('secret'));
      assert.equal(ctx.events.at(-1)?.bytes, model.length);
    } finally {
      await ctx.cleanup();
    }
  });

  test('a sha256 mismatch fails with both digests and leaves no file', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const wrong = '0'.repeat(64);
      await assert.rejects(
        new HttpSource({ url: `${base}/models/classifier.onnx`, sha256: wrong }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof DigestMismatchError);
          assert.ok(e.message.includes(wrong) && e.message.includes(sha(model)), e.message);
          return true;
        },
      );
      assert.deepEqual(await readdir(ctx.modelDir), []);
    } finally {
      await ctx.cleanup();
    }
  });

  test('404 is NotFoundError', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new HttpSource({ url: `${base}/missing.onnx`, sha256: sha(model) }).fetch(ctx, ctx.modelDir),
        NotFoundError,
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('abort stops a transfer and leaves no partial file', async () => {
    const ctx = await testContext();
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const pending = new HttpSource({ url: `${base}/slow.onnx`, sha256: sha(model) }).fetch(
        ctx,
        ctx.modelDir,
      );
      setTimeout(() => ctx.abort(), 100);
      await assert.rejects(pending, (e: unknown) => (e as Error).name === 'AbortError');
      assert.deepEqual(await readdir(ctx.modelDir), []);
    } finally {
      await ctx.cleanup();
    }
  });
});
