/**
 * The failure table: the whole default pipeline (fetch → inspect → build → stage → push → gitops)
 * run with `runPipeline` against real peers on 127.0.0.1 (s3rver, an HTTP server, `file://` Git
 * repositories, ai-edge registries, the staged server as a process). Each failure stops the run at
 * its step with a message naming the thing, later tasks are skipped, the GitOps repository gets no
 * commit, and no staged server is left running. One success case proves the fixture itself works.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { fileRemoteUrl } from '@aiedge/gitops';
import { ContentStore, startRegistry, type RunningRegistry } from '@aiedge/oci';
import { ForbiddenError } from '@aiedge/protocol';
import { EXAMPLE_MODEL_NAME, exampleModel, writeExampleModelRepository } from '@aiedge/runtime';
import { runPipeline, type RunEvents } from './runner.js';
import { DEFAULT_TASKS, parsePipeline } from './spec.js';

const exec = promisify(execFile);
const git = (...args: string[]) =>
  exec('git', ['-c', 'user.name=Test', '-c', 'user.email=t@example.com', ...args]);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: Record<string, unknown>) => S3rverInstance;

type TaskName = (typeof DEFAULT_TASKS)[number]['name'];
const ORDER: readonly TaskName[] = DEFAULT_TASKS.map((t) => t.name);

const BUCKET = 'models';
const MISSING_KEY = 'classifier/2/model.onnx';
const WRONG_SHA = 'f'.repeat(64);
const LFS_OID = '4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393';
const LFS_POINTER = `version https://git-lfs.github.com/spec/v1\noid sha256:${LFS_OID}\nsize 12345\n`;
const REFUSAL = 'pushes to this registry are closed';
const env = { S3_KEY: 'S3RVER', S3_SECRET: 'S3RVER' };

// The example classifier, version 1: features [1,2,3,4] → scores [10,20,30], label 2.
const request = { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] };
const expected = [
  { name: 'scores', datatype: 'FP32', shape: [1, 3], data: [10, 20, 30] },
  { name: 'label', datatype: 'INT64', shape: [1], data: [2] },
];
const wrongExpected = [{ ...expected[0]!, data: [10, 20, 31] }, expected[1]!];

let root: string;
let store: ContentStore;
let s3rver: S3rverInstance;
let s3Endpoint: string;
let http: Server;
let httpBase: string;
let lfsRepo: string;
let exampleDir: string;
let garbageDir: string;
let registry: RunningRegistry;
let refusing: RunningRegistry;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'aiedge-failures-'));
  store = await ContentStore.open(join(root, 'store'));
  const model = Buffer.from(exampleModel(1));

  // S3: the bucket holds version 1 only; the pipeline asks for a key that is not there.
  s3rver = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: join(root, 's3rver'),
    configureBuckets: [{ name: BUCKET }],
  });
  s3Endpoint = `http://127.0.0.1:${(await s3rver.run()).port}`;
  const s3 = new S3Client({
    endpoint: s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: env.S3_KEY, secretAccessKey: env.S3_SECRET },
  });
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'classifier/1/model.onnx', Body: model }));
  s3.destroy();

  // HTTP: serves the real model (its sha256 is not the one the pipeline pins).
  http = createServer((req, res) => {
    if (req.url === '/models/classifier.onnx') {
      res.writeHead(200, { 'content-length': model.length }).end(model);
    } else res.writeHead(404).end('not here');
  });
  await new Promise<void>((done) => http.listen(0, '127.0.0.1', done));
  httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  // Git: model.onnx committed as a Git LFS pointer (the object itself never pushed).
  lfsRepo = join(root, 'lfs.git');
  const work = join(root, 'lfs-work');
  await mkdir(work, { recursive: true });
  await git('init', '--bare', '-b', 'main', lfsRepo);
  await git('-C', work, 'init', '-b', 'main');
  await writeFile(join(work, 'model.onnx'), LFS_POINTER);
  await writeFile(join(work, '.gitattributes'), '*.onnx filter=lfs diff=lfs merge=lfs -text\n');
  await git('-C', work, 'add', '.');
  await git('-C', work, 'commit', '-m', 'model via LFS');
  await git('-C', work, 'push', lfsRepo, 'main');

  exampleDir = join(root, 'example');
  await writeExampleModelRepository(exampleDir, [1]);
  garbageDir = join(root, 'garbage');
  await mkdir(garbageDir);
  await writeFile(
    join(garbageDir, 'model.onnx'),
    Buffer.concat([Buffer.from('this is not an ONNX model\n'), Buffer.alloc(256, 0xff)]),
  );

  registry = await startRegistry({ data: join(root, 'registry'), host: '127.0.0.1', port: 0 });
  refusing = await startRegistry({
    data: join(root, 'refusing'),
    host: '127.0.0.1',
    port: 0,
    authorize: (r) => {
      if (r.action === 'push') throw new ForbiddenError(REFUSAL);
    },
  });
});

after(async () => {
  await s3rver?.close();
  if (http !== undefined) await new Promise((done) => http.close(done));
  await registry?.close();
  await refusing?.close();
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

interface Case {
  readonly name: string;
  readonly source: () => Record<string, unknown>;
  readonly test?: Record<string, unknown>;
  /** Push to the registry that refuses pushes. */
  readonly refusing?: boolean;
  /** The task that fails; undefined: the run succeeds. */
  readonly failsAt?: TaskName;
  /** What the failed task's reason must contain (`path`: the image repository's path). */
  readonly says?: (path: string) => readonly (string | RegExp)[];
  /** More checks of the failed task's reason. */
  readonly check?: (reason: string) => void;
}

const cases: readonly Case[] = [
  {
    name: 'missing S3 object → fetch',
    source: () => ({
      s3: {
        bucket: BUCKET,
        key: MISSING_KEY,
        endpoint: s3Endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        accessKeyIdEnv: 'S3_KEY',
        secretAccessKeyEnv: 'S3_SECRET',
      },
    }),
    failsAt: 'fetch',
    says: () => [`s3://${BUCKET}/${MISSING_KEY}`, 'no such object'],
  },
  {
    name: 'wrong sha256 over HTTP → fetch',
    source: () => ({ http: { url: `${httpBase}/models/classifier.onnx`, sha256: WRONG_SHA } }),
    failsAt: 'fetch',
    says: () => [
      `${httpBase}/models/classifier.onnx`,
      `downloaded content has sha256 ${sha(exampleModel(1))}`,
      `spec.source.http.sha256 is ${WRONG_SHA}`,
    ],
  },
  {
    name: 'Git LFS pointer → fetch',
    source: () => ({ git: { url: fileRemoteUrl(lfsRepo), path: 'model.onnx' } }),
    failsAt: 'fetch',
    says: () => [/model\.onnx at commit [0-9a-f]{12} is a Git LFS pointer, not the model/, LFS_OID],
  },
  {
    name: 'a model ONNX Runtime cannot load → inspect',
    source: () => ({ local: { path: garbageDir } }),
    failsAt: 'inspect',
    says: () => ['ONNX Runtime cannot load model.onnx'],
  },
  {
    name: 'wrong test output → stage',
    source: () => ({ local: { path: exampleDir } }),
    test: { requests: [{ name: 'one row', request, expected: wrongExpected }] },
    failsAt: 'stage',
    says: () => ['staging test failed', 'one row: outputs differ', 'scores[2]: expected 31, got 30'],
  },
  {
    name: 'latency gate missed → stage',
    source: () => ({ local: { path: exampleDir } }),
    test: { requests: [{ request, expected }], latency: { p95Ms: 0.001, requests: 5 } },
    failsAt: 'stage',
    says: () => [
      /latency gate missed: p95 \d+(\.\d+)? ms > p95Ms 0\.001 ms \(p50 [\d.]+ ms over 5 requests\)/,
    ],
    check: (reason) => {
      const p95 = Number(/p95 ([\d.]+) ms >/.exec(reason)?.[1]);
      assert.ok(p95 > 0.001, `the measured p95 (${p95} ms) is a real number over the gate`);
    },
  },
  {
    name: 'registry refusing the push → push',
    source: () => ({ local: { path: exampleDir } }),
    test: { requests: [{ request, expected }] },
    refusing: true,
    failsAt: 'push',
    says: (path) => [`to ${path} failed: DENIED: ${REFUSAL}`],
  },
  {
    name: 'success: local source → gitops commit pinning the pushed digest',
    source: () => ({ local: { path: exampleDir } }),
    test: { requests: [{ request, expected }] },
  },
];

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

/** Processes (other than this one) whose command line mentions `text`. */
async function processesMentioning(text: string): Promise<{ pid: number; cmdline: string }[]> {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!/^\d+$/.test(name) || pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(text)) found.push({ pid, cmdline: cmdline.replaceAll('\0', ' ') });
  }
  return found;
}

describe('the default pipeline: each failure stops at its step and leaves no GitOps change', () => {
  cases.forEach((c, i) => {
    test(c.name, { timeout: 60_000 }, async () => {
      const dir = join(root, `case-${i}`);
      const workspace = join(dir, 'ws');
      const bare = join(dir, 'gitops.git');
      await mkdir(dir, { recursive: true });
      await git('init', '--bare', '-b', 'main', bare);
      const target = c.refusing === true ? refusing : registry;
      const path = `failures/case-${i}`;
      const repository = `127.0.0.1:${target.port}/${path}`;
      const spec = parsePipeline({
        apiVersion: 'aiedge.io/v1alpha1',
        kind: 'Pipeline',
        metadata: { name: 'failures' },
        spec: {
          model: { name: EXAMPLE_MODEL_NAME, version: '1' },
          source: c.source(),
          image: { repository },
          ...(c.test !== undefined ? { test: c.test } : {}),
          gitops: { repo: fileRemoteUrl(bare) },
          deployment: { name: 'classifier', selector: { region: 'eu' } },
        },
      });
      const lines: { task: string | null; line: string }[] = [];
      const events: RunEvents = { task: () => {}, log: (task, _stream, line) => lines.push({ task, line }) };

      const result = await runPipeline(spec, { workspace, baseDir: dir, env, store, events });
      const shown = `${result.status}: ${result.reason ?? ''}\n${lines
        .map((l) => `[${l.task ?? 'run'}] ${l.line}`)
        .join('\n')}`;
      assert.deepEqual(
        result.tasks.map((t) => t.name),
        ORDER,
      );

      if (c.failsAt === undefined) {
        assert.equal(result.status, 'succeeded', shown);
        for (const t of result.tasks) assert.equal(t.state, 'succeeded', `${t.name}: ${t.reason ?? ''}`);
      } else {
        assert.equal(result.status, 'failed', shown);
        const at = ORDER.indexOf(c.failsAt);
        result.tasks.forEach((t, j) => {
          const want = j < at ? 'succeeded' : j === at ? 'failed' : 'skipped';
          assert.equal(t.state, want, `${t.name} is ${t.state} (${t.reason ?? ''}), expected ${want}`);
          if (j > at) assert.equal(t.attempts, 0, `${t.name} never started`);
        });
        const failed = result.tasks[at]!;
        assert.equal(result.reason, `task ${c.failsAt} failed: ${failed.reason ?? ''}`);
        for (const want of c.says?.(path) ?? []) {
          if (typeof want === 'string') assert.ok(failed.reason?.includes(want), `"${want}" in:\n${shown}`);
          else assert.match(failed.reason ?? '', want, shown);
        }
        c.check?.(failed.reason ?? '');
      }

      // GitOps: a commit only when the run succeeded; otherwise the repository stays empty.
      const { stdout: commits } = await git('--git-dir', bare, 'rev-list', '--all');
      if (c.failsAt === undefined) {
        assert.equal(commits.trim().split('\n').length, 1, 'one GitOps commit');
        const digest = result.results['push.digest'];
        assert.match(digest ?? '', /^sha256:[0-9a-f]{64}$/);
        assert.equal(digest, result.results['build.digest']);
        assert.equal(result.results['gitops.commit'], commits.trim());
        const { stdout: intent } = await git('--git-dir', bare, 'show', 'main:deployments/classifier.yaml');
        assert.ok(intent.includes(`image: ${repository}@${digest}`), intent);
        const head = await fetch(`${target.url}/v2/${path}/manifests/1`, {
          method: 'HEAD',
          headers: {
            accept: 'application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json',
          },
        });
        assert.equal(
          head.headers.get('docker-content-digest'),
          digest,
          'the registry serves the pinned digest',
        );
      } else {
        await assert.rejects(
          git('--git-dir', bare, 'rev-parse', '--verify', '-q', 'refs/heads/main'),
          'no main branch in the GitOps repository',
        );
        assert.equal(commits.trim(), '', 'no commit at all in the GitOps repository');
        const tags = await fetch(`${target.url}/v2/${path}/tags/list`);
        await tags.arrayBuffer();
        assert.equal(tags.status, 404, 'nothing was pushed');
      }

      // Staging: the server was started from the workspace, and is gone now.
      if (ORDER.indexOf(c.failsAt ?? 'gitops') >= ORDER.indexOf('stage')) {
        const stage = lines.filter((l) => l.task === 'stage').map((l) => l.line);
        const port = Number(
          /on 127\.0\.0\.1:(\d+)$/.exec(stage.find((l) => l.startsWith('staging ')) ?? '')?.[1],
        );
        assert.ok(port > 0, `the stage port is logged:\n${stage.join('\n')}`);
        assert.ok(
          stage.some((l) => l.startsWith('starting ') && l.includes(workspace)),
          'the staged server ran from the workspace',
        );
        const left = await processesMentioning(workspace);
        // A leftover (started by this run) would keep the test process alive: end it, then fail.
        for (const p of left) process.kill(p.pid, 'SIGKILL');
        assert.deepEqual(
          left.map((p) => p.cmdline),
          [],
          'no process runs from the workspace',
        );
        assert.equal(await accepts(port), false, `nothing listens on the stage port ${port} any more`);
      }
    });
  });
});
