import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse } from 'yaml';
import { runCli } from './_test-cli.js';

const examples = new URL('../../../examples/', import.meta.url).pathname;
const EXAMPLES = ['local-pipeline.yaml', 's3-pipeline.yaml', 'git-pipeline.yaml', 'registry-pipeline.yaml'];

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'aiedge-pipeline-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('aiedge pipeline validate', () => {
  for (const name of EXAMPLES) {
    test(`examples/${name} is valid`, async () => {
      const run = await runCli(['pipeline', 'validate', '-f', join(examples, name)]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /is valid: 6 tasks: fetch, inspect \(after fetch\)/);
    });
  }

  test('original ODH AI Edge param names are accepted', async () => {
    const run = await runCli([
      'pipeline',
      'validate',
      '-f',
      join(examples, 's3-pipeline.yaml'),
      '--param',
      's3-bucket-name=other',
      '--param',
      'model-relative-path=m',
    ]);
    assert.equal(run.code, 0, run.stderr);
  });

  test('bad input: exit 2 with the file and the path named', async () => {
    const missing = await runCli(['pipeline', 'validate', '-f', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nope\.yaml: cannot read the pipeline file \(no such file\)/);

    const unknownParam = await runCli([
      'pipeline',
      'validate',
      '-f',
      join(examples, 'local-pipeline.yaml'),
      '--param',
      'nope=1',
    ]);
    assert.equal(unknownParam.code, 2);
    assert.match(unknownParam.stderr, /--param\.nope: the pipeline declares no such parameter/);

    const badParam = await runCli([
      'pipeline',
      'validate',
      '-f',
      join(examples, 'local-pipeline.yaml'),
      '--param',
      'x',
    ]);
    assert.equal(badParam.code, 2);
    assert.match(badParam.stderr, /--param "x": expected NAME=VALUE/);

    const text = (await readFile(join(examples, 'local-pipeline.yaml'), 'utf8')).replace(
      'repository: $(params.repository)',
      'repository: 12',
    );
    const file = join(dir, 'bad.yaml');
    await writeFile(file, text.replace('kind: Pipeline', 'kind: Pipeline\nextra: 1'));
    const bad = await runCli(['pipeline', 'validate', '-f', file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /bad\.yaml: pipeline/);
    assert.match(bad.stderr, /extra/);

    const cycle = join(dir, 'cycle.yaml');
    await writeFile(
      cycle,
      `${await readFile(join(examples, 'local-pipeline.yaml'), 'utf8')}  tasks:\n    - { name: a, uses: fetch, runAfter: [b] }\n    - { name: b, uses: inspect, runAfter: [a] }\n`,
    );
    const cyc = await runCli(['pipeline', 'validate', '-f', cycle]);
    assert.equal(cyc.code, 2);
    assert.match(cyc.stderr, /cycle\.yaml: pipeline\.spec\.tasks: runAfter forms a cycle: a runs after b/);
  });
});

describe('aiedge pipeline export', () => {
  test('--format tekton --out writes the Pipeline, the Tasks, the ConfigMap and a PipelineRun', async () => {
    const out = join(dir, 'tekton');
    const run = await runCli([
      'pipeline',
      'export',
      '-f',
      join(examples, 's3-pipeline.yaml'),
      '--format',
      'tekton',
      '--out',
      out,
      '--image',
      'registry.example/aiedge:test',
      '--param',
      's3Bucket=prod-models',
    ]);
    assert.equal(run.code, 0, run.stderr);
    const files = (await readdir(out)).sort();
    assert.deepEqual(files, [
      'configmap.yaml',
      'pipeline.yaml',
      'pipelinerun.yaml',
      'task-build.yaml',
      'task-fetch.yaml',
      'task-gitops.yaml',
      'task-inspect.yaml',
      'task-push.yaml',
      'task-stage.yaml',
    ]);
    const pipeline = parse(await readFile(join(out, 'pipeline.yaml'), 'utf8'));
    assert.equal(pipeline.apiVersion, 'tekton.dev/v1');
    assert.equal(pipeline.kind, 'Pipeline');
    const bucket = pipeline.spec.params.find((p: { name: string }) => p.name === 's3Bucket');
    assert.equal(bucket.default, 'prod-models', '--param becomes the default');
    const fetch = pipeline.spec.tasks.find((t: { name: string }) => t.name === 'fetch');
    assert.equal(fetch.retries, 2);
    assert.equal(fetch.timeout, '600s');
    const task = parse(await readFile(join(out, 'task-fetch.yaml'), 'utf8'));
    assert.equal(task.spec.steps[0].image, 'registry.example/aiedge:test');
    const cm = parse(await readFile(join(out, 'configmap.yaml'), 'utf8'));
    assert.match(cm.data['pipeline.yaml'], /bucket: \$\(params\.s3Bucket\)/);
  });

  test('without --out all resources go to stdout; an unknown format is refused', async () => {
    const run = await runCli([
      'pipeline',
      'export',
      '-f',
      join(examples, 'local-pipeline.yaml'),
      '--format',
      'tekton',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.split('---\n').length, 9);
    const bad = await runCli([
      'pipeline',
      'export',
      '-f',
      join(examples, 'local-pipeline.yaml'),
      '--format',
      'argo',
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--format "argo": expected tekton/);
  });
});

describe('aiedge pipeline run / task: bad input', () => {
  test('an unknown task name, and --core without a token, exit 2', async () => {
    const ws = join(dir, 'ws');
    const task = await runCli([
      'pipeline',
      'task',
      'nope',
      '-f',
      join(examples, 'local-pipeline.yaml'),
      '--workspace',
      ws,
    ]);
    assert.equal(task.code, 2);
    assert.match(
      task.stderr,
      /task "nope" is not a task of .*local-pipeline\.yaml \(fetch, inspect, build, stage, push, gitops\)/,
    );
    const run = await runCli(
      ['pipeline', 'run', '-f', join(examples, 'local-pipeline.yaml'), '--core', 'http://127.0.0.1:1'],
      {
        AIEDGE_TOKEN: '',
      },
    );
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--core needs an admin token/);
  });

  test('a local run that fails prints the summary and exits 1', async () => {
    const run = await runCli(
      [
        'pipeline',
        'run',
        '-f',
        join(examples, 'local-pipeline.yaml'),
        '--param',
        'modelDir=./does-not-exist',
      ],
      { AIEDGE_TOKEN: 'x' },
    );
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stdout, /TASK\s+STATE\s+DURATION\s+RESULTS/);
    assert.match(run.stdout, /fetch\s+failed/);
    assert.match(run.stdout, /inspect\s+skipped\s+-\s+runAfter task fetch failed/);
    assert.match(run.stdout, /pipeline example-classifier-local failed in .*: task fetch failed/);
    assert.match(run.stderr, /\[fetch\] failed/);
  });
});

describe('aiedge pipeline run --core', () => {
  let server: Server;
  let core: string;
  const requests: { method: string; url: string; auth: string | undefined; body: string }[] = [];
  const body = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let text = '';
      req.on('data', (d: Buffer) => (text += d.toString()));
      req.on('end', () => resolve(text));
    });
  const summary = (status: string) => ({
    id: 'r1',
    pipeline: 'example-classifier-local',
    status,
    reason: status === 'failed' ? 'task build failed: boom' : null,
    params: {},
    results: {},
    requestedBy: null,
    createdAt: '2024-01-01T00:00:00Z',
    startedAt: null,
    finishedAt: null,
    queuedMs: null,
    durationMs: 1500,
  });
  const task = (name: string, state: string, extra: Record<string, unknown> = {}) => ({
    name,
    state,
    attempt: state === 'pending' ? 0 : 1,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    reason: null,
    results: {},
    ...extra,
  });
  let finalStatus = 'succeeded';

  before(async () => {
    server = createServer(async (req, res) => {
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        auth: req.headers.authorization,
        body: await body(req),
      });
      if (req.method === 'POST' && req.url === '/api/v1/pipelines/runs') {
        res.writeHead(201, { 'content-type': 'application/json' });
        return res.end(
          JSON.stringify({
            ...summary('queued'),
            spec: {},
            tasks: [task('fetch', 'pending'), task('build', 'pending')],
          }),
        );
      }
      if (req.url?.startsWith('/api/v1/pipelines/runs/r1/logs')) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const send = (event: string, data: unknown, id?: number) =>
          res.write(
            `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`,
          );
        res.write('retry: 2000\n\n: heartbeat\n\n');
        send('status', summary('running'));
        send('task', task('fetch', 'running'));
        send(
          'log',
          { seq: 1, task: 'fetch', stream: 'stdout', at: '2024-01-01T00:00:00Z', line: 'fetched 3 files' },
          1,
        );
        send('task', task('fetch', 'succeeded', { durationMs: 1200, results: { origin: 'local:/m' } }));
        send(
          'task',
          task(
            'build',
            finalStatus === 'succeeded' ? 'succeeded' : 'failed',
            finalStatus === 'succeeded' ? {} : { reason: 'boom' },
          ),
        );
        send('end', summary(finalStatus));
        return res.end();
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    core = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('posts the document and params, follows the log stream and exits per the final status', async () => {
    const file = join(examples, 'local-pipeline.yaml');
    const run = await runCli(['pipeline', 'run', '-f', file, '--core', core, '--param', 'modelVersion=2'], {
      AIEDGE_TOKEN: 'aie_test',
    });
    assert.equal(run.code, 0, run.stderr);
    const post = requests.find((r) => r.method === 'POST');
    assert.equal(post?.auth, 'Bearer aie_test');
    const sent = JSON.parse(post?.body ?? '{}');
    assert.equal(sent.spec, await readFile(file, 'utf8'));
    assert.deepEqual(sent.params, { modelVersion: '2' });
    assert.match(run.stderr, /\[fetch\] fetched 3 files/);
    assert.match(run.stdout, /fetch\s+succeeded\s+1\.2 s\s+origin=local:\/m/);
    assert.match(run.stdout, /run r1 succeeded/);

    finalStatus = 'failed';
    const failed = await runCli(['pipeline', 'run', '-f', file, '--core', core, '--token', 'aie_t2']);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /build\s+failed\s+-\s+boom/);
    assert.match(failed.stdout, /failed in 1\.5 s: task build failed: boom/);
  });
});
