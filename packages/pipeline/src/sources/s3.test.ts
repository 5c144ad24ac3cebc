// The S3 source through the AWS SDK against s3rver (an in-process S3 implementation) on 127.0.0.1.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { DigestMismatchError } from '@aiedge/oci';
import { InputError, NotFoundError, UnauthorizedError } from '@aiedge/protocol';
import { exampleModel } from '@aiedge/runtime';
import { S3Source } from './s3.js';
import { testContext } from './_test-context.js';

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverInstance;

const KEY_ID = 'S3RVER';
const SECRET = 'S3RVER';
const BUCKET = 'models';
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('s3 source (s3rver)', () => {
  let dataDir: string;
  let s3rver: S3rverInstance;
  let endpoint: string;
  let proxy: Server;
  let proxyEndpoint: string;
  const env = { MY_KEY: KEY_ID, MY_SECRET: SECRET };
  const model = Buffer.from(exampleModel(1));
  const files: Record<string, Buffer> = {
    'mnist/1/model.onnx': Buffer.from(exampleModel(3)),
    'mnist/config.pbtxt': Buffer.from('name: "mnist"\nplatform: "onnxruntime_onnx"\n'),
    'mnist/labels.txt': Buffer.from('0\n1\n2\n'),
    'mnist/extra/notes.md': Buffer.from('# notes\n'),
    'mnist/extra/more.bin': Buffer.alloc(3 * 1024 * 1024, 7),
  };

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'aiedge-s3rver-'));
    s3rver = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: dataDir,
      configureBuckets: [{ name: BUCKET }],
    });
    const address = await s3rver.run();
    endpoint = `http://127.0.0.1:${address.port}`;
    const client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: KEY_ID, secretAccessKey: SECRET },
    });
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'classifier/model.onnx', Body: model }));
    for (const [key, body] of Object.entries(files)) {
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    }
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'mnist/', Body: '' })); // a "directory" marker
    // A multipart upload (s3rver answers it with a plain MD5 ETag; the proxy below gives it S3's form).
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'big/model.onnx' }),
    );
    const parts = [model.subarray(0, 100), model.subarray(100)];
    const etags: string[] = [];
    for (const [i, body] of parts.entries()) {
      const part = await client.send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key: 'big/model.onnx',
          UploadId,
          PartNumber: i + 1,
          Body: body,
        }),
      );
      etags.push(part.ETag ?? '');
    }
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: 'big/model.onnx',
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    client.destroy();

    // A proxy in front of s3rver that flips one byte of GET bodies under `tamper/` (length unchanged),
    // as a broken cache or network would: the ETag (MD5) check must catch it.
    proxy = createServer((req, res) => {
      const upstream = request(
        `${endpoint}${req.url ?? '/'}`,
        { method: req.method, headers: req.headers },
        (up) => {
          const url = req.url ?? '';
          const headers = { ...up.headers };
          // Real S3 gives multipart uploads an ETag `<md5 of part md5s>-<parts>`; s3rver does not.
          if (url.includes('/big/') && typeof headers.etag === 'string') {
            headers.etag = `"${'a'.repeat(32)}-2"`;
          }
          res.writeHead(up.statusCode ?? 502, headers);
          const tamper = req.method === 'GET' && url.includes('/classifier/');
          // The listing of mnist/extra claims notes.md (8 bytes) has 9 (same body length).
          const resize = url.includes('list-type=2') && url.includes('prefix=mnist%2Fextra');
          let first = true;
          up.on('data', (chunk: Buffer) => {
            if (tamper && first && chunk.length > 0) {
              chunk = Buffer.from(chunk);
              chunk[0] = (chunk[0] ?? 0) ^ 0xff;
            }
            first = false;
            res.write(
              resize
                ? Buffer.from(chunk.toString('utf8').replace('<Size>8</Size>', '<Size>9</Size>'))
                : chunk,
            );
          });
          up.on('end', () => res.end());
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyEndpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  after(async () => {
    await new Promise((resolve) => proxy.close(resolve));
    await s3rver.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('key: downloads one object with credentials from env, checks ETag, reports progress', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const source = new S3Source({
        bucket: BUCKET,
        key: 'classifier/model.onnx',
        endpoint,
        accessKeyIdEnv: 'MY_KEY',
        secretAccessKeyEnv: 'MY_SECRET',
      });
      const got = await source.fetch(ctx, ctx.modelDir);
      assert.deepEqual(got.files, [{ path: 'model.onnx', bytes: model.length, sha256: sha(model) }]);
      assert.deepEqual(await readFile(join(ctx.modelDir, 'model.onnx')), model);
      const md5 = createHash('md5').update(model).digest('hex');
      assert.equal(got.origin, `s3://${BUCKET}/classifier/model.onnx#etag=${md5}`);
      assert.deepEqual(ctx.events.at(-1), {
        item: `s3://${BUCKET}/classifier/model.onnx`,
        bytes: model.length,
        total: model.length,
      });
    } finally {
      await ctx.cleanup();
    }
  });

  test('prefix: lists and downloads several objects in parallel, keeping the layout', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new S3Source({
        bucket: BUCKET,
        prefix: 'mnist/',
        endpoint,
        accessKeyIdEnv: 'MY_KEY',
        secretAccessKeyEnv: 'MY_SECRET',
      }).fetch(ctx, ctx.modelDir);
      const expected = Object.entries(files)
        .map(([key, body]) => ({ path: key.slice('mnist/'.length), bytes: body.length, sha256: sha(body) }))
        .sort((a, b) => (a.path < b.path ? -1 : 1));
      assert.deepEqual(got.files, expected);
      for (const [key, body] of Object.entries(files)) {
        assert.deepEqual(await readFile(join(ctx.modelDir, ...key.slice(6).split('/'))), body);
      }
      assert.equal(got.origin, `s3://${BUCKET}/mnist/`);
      assert.ok(ctx.events.some((e) => e.item === `s3://${BUCKET}/mnist/extra/more.bin` && e.bytes > 0));
    } finally {
      await ctx.cleanup();
    }
  });

  test('storageConfig: the original s3-storage-config JSON (relative to baseDir) gives endpoint and credentials', async () => {
    const ctx = await testContext({});
    try {
      await mkdir(join(ctx.root, 'secrets'), { recursive: true });
      await writeFile(
        join(ctx.root, 'secrets', 's3.json'),
        JSON.stringify({
          type: 's3',
          access_key_id: KEY_ID,
          secret_access_key: SECRET,
          endpoint_url: endpoint,
          region: 'us-east-1',
          bucket: BUCKET,
        }),
      );
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new S3Source({
        bucket: BUCKET,
        key: 'classifier/model.onnx',
        storageConfig: 'secrets/s3.json',
      }).fetch(ctx, ctx.modelDir);
      assert.equal(got.files[0]?.sha256, sha(model));
    } finally {
      await ctx.cleanup();
    }
  });

  test('a multipart ETag skips the MD5 check; a size differing from the listing fails', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const got = await new S3Source({
        bucket: BUCKET,
        key: 'big/model.onnx',
        endpoint: proxyEndpoint,
        accessKeyIdEnv: 'MY_KEY',
        secretAccessKeyEnv: 'MY_SECRET',
      }).fetch(ctx, ctx.modelDir);
      assert.equal(got.files[0]?.sha256, sha(model));
      assert.match(got.origin, /#etag=a{32}-2$/);
      await assert.rejects(
        new S3Source({
          bucket: BUCKET,
          prefix: 'mnist/extra/',
          endpoint: proxyEndpoint,
          accessKeyIdEnv: 'MY_KEY',
          secretAccessKeyEnv: 'MY_SECRET',
        }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof DigestMismatchError, String(e));
          assert.match(
            e.message,
            /s3:\/\/models\/mnist\/extra\/notes\.md: received 8 bytes, the listing says 9/,
          );
          return true;
        },
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('content altered on the way fails the ETag (MD5) check and leaves no file', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new S3Source({
          bucket: BUCKET,
          key: 'classifier/model.onnx',
          endpoint: proxyEndpoint,
          accessKeyIdEnv: 'MY_KEY',
          secretAccessKeyEnv: 'MY_SECRET',
        }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof DigestMismatchError, String(e));
          assert.match(
            e.message,
            /s3:\/\/models\/classifier\/model\.onnx: received content has MD5 [0-9a-f]{32}, but the object's ETag is [0-9a-f]{32}/,
          );
          return true;
        },
      );
      assert.deepEqual(await readdir(ctx.modelDir), []);
    } finally {
      await ctx.cleanup();
    }
  });

  test('a missing object is NotFoundError naming bucket and key', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      await assert.rejects(
        new S3Source({
          bucket: BUCKET,
          key: 'nope/model.onnx',
          endpoint,
          accessKeyIdEnv: 'MY_KEY',
          secretAccessKeyEnv: 'MY_SECRET',
        }).fetch(ctx, ctx.modelDir),
        (e: unknown) => {
          assert.ok(e instanceof NotFoundError, String(e));
          assert.match(e.message, /s3:\/\/models\/nope\/model\.onnx .*no such object/);
          return true;
        },
      );
      assert.deepEqual(await readdir(ctx.modelDir), []);
      await assert.rejects(
        new S3Source({
          bucket: BUCKET,
          prefix: 'nothing-here/',
          endpoint,
          accessKeyIdEnv: 'MY_KEY',
          secretAccessKeyEnv: 'MY_SECRET',
        }).fetch(ctx, ctx.modelDir),
        /no objects under s3:\/\/models\/nothing-here\//,
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('wrong credentials are UnauthorizedError without the secret; unset env names the field', async () => {
    // s3rver checks the access key id (not V4 signatures): an unknown id is refused with 403.
    const ctx = await testContext({ MY_KEY: 'UNKNOWNKEY', MY_SECRET: 'not-the-secret-xyz' });
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      const source = new S3Source({
        bucket: BUCKET,
        key: 'classifier/model.onnx',
        endpoint,
        accessKeyIdEnv: 'MY_KEY',
        secretAccessKeyEnv: 'MY_SECRET',
      });
      await assert.rejects(source.fetch(ctx, ctx.modelDir), (e: unknown) => {
        assert.ok(e instanceof UnauthorizedError, String(e));
        assert.match(
          e.message,
          /s3:\/\/models\/classifier\/model\.onnx .*access denied \(InvalidAccessKeyId\)/,
        );
        assert.ok(!e.message.includes('not-the-secret-xyz'));
        return true;
      });
      const unset = new S3Source({
        bucket: BUCKET,
        key: 'k',
        endpoint,
        accessKeyIdEnv: 'NOT_SET',
        secretAccessKeyEnv: 'MY_SECRET',
      });
      await assert.rejects(unset.fetch(ctx, ctx.modelDir), (e: unknown) => {
        assert.ok(e instanceof InputError);
        assert.match(e.message, /spec\.source\.s3\.accessKeyIdEnv names environment variable NOT_SET/);
        return true;
      });
    } finally {
      await ctx.cleanup();
    }
  });

  test('an aborted run stops the download', async () => {
    const ctx = await testContext(env);
    try {
      await mkdir(ctx.modelDir, { recursive: true });
      ctx.abort();
      await assert.rejects(
        new S3Source({
          bucket: BUCKET,
          prefix: 'mnist/',
          endpoint,
          accessKeyIdEnv: 'MY_KEY',
          secretAccessKeyEnv: 'MY_SECRET',
        }).fetch(ctx, ctx.modelDir),
        (e: unknown) => (e as Error).name === 'AbortError',
      );
    } finally {
      await ctx.cleanup();
    }
  });

  test('key and prefix together are refused', () => {
    assert.throws(
      () => new S3Source({ bucket: BUCKET, key: 'a', prefix: 'b' }),
      /exactly one of key or prefix/,
    );
  });
});
