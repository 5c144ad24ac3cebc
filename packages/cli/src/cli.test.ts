import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { writeExampleModelRepository } from '@aiedge/runtime';
import { freePort, runCli, startCli } from './_test-cli.js';

const start = startCli;
const run = runCli;

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/v2/health/ready`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('server did not become ready');
}

describe('aiedge command', () => {
  test('--help lists the verbs and every verb has help with examples', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    assert.match(top.stdout, /serve/);
    assert.match(top.stdout, /model/);
    for (const verb of ['image', 'registry', 'gitops']) assert.match(top.stdout, new RegExp(verb));
    for (const verb of [
      ['serve'],
      ['model', 'example'],
      ['image', 'build'],
      ['image', 'push'],
      ['image', 'pull'],
      ['image', 'inspect'],
      ['image', 'save'],
      ['image', 'load'],
      ['registry'],
      ['gitops', 'render'],
      ['gitops', 'show'],
    ]) {
      const help = await run([...verb, '--help']);
      assert.equal(help.code, 0, help.stderr);
      assert.match(help.stdout, /Examples:\n\s+\$ aiedge /, `${verb.join(' ')} --help shows examples`);
    }
    const serve = await run(['serve', '--help']);
    for (const flag of [
      '--model-repository',
      '--host',
      '--port',
      '--workers',
      '--intra-op-threads',
      '--max-body-bytes',
      '--repository-poll-seconds',
      '--model ',
    ]) {
      assert.ok(serve.stdout.includes(flag), `serve --help mentions ${flag}`);
    }
    assert.match(serve.stdout, /AIEDGE_SERVE_PORT/);
  });

  test('bad flags and values are refused with a message naming them, before anything starts', async () => {
    const port = await run(['serve', '--model-repository', '.', '--port', 'http']);
    assert.equal(port.code, 1);
    assert.match(port.stderr, /--port <n>.*'http' is not a non-negative integer/);
    const none = await run(['serve']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /give --model-repository DIR or at least one --model NAME:PATH/);
    const workers = await run(['serve', '--model-repository', '.', '--workers', '0']);
    assert.equal(workers.code, 2);
    assert.match(workers.stderr, /serve options workers is 0: must be >= 1/);
    const model = await run(['serve', '--model', 'no-colon']);
    assert.equal(model.code, 2);
    assert.match(model.stderr, /--model is 'no-colon', expected NAME:PATH/);
    const unknown = await run(['serve', '--bogus']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown option '--bogus'/);
    const envPort = await run(['serve', '--model-repository', '.'], { AIEDGE_SERVE_PORT: '99999' });
    assert.equal(envPort.code, 2);
    assert.match(envPort.stderr, /serve options port is 99999: must be <= 65535/);
  });

  test('model example writes the versions asked for', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-cli-'));
    try {
      const res = await run([
        'model',
        'example',
        '--out',
        dir,
        '--model-version',
        '1',
        '--model-version',
        '2',
      ]);
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual((await readdir(join(dir, 'example-classifier'))).sort(), ['1', '2']);
      assert.equal(res.stdout.trim().split('\n').length, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('serve takes its settings from AIEDGE_SERVE_* and on SIGTERM finishes in-flight requests, then exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'aiedge-cli-'));
    try {
      await writeExampleModelRepository(dir, [1]);
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const server = start(['serve'], {
        AIEDGE_SERVE_MODEL_REPOSITORY: dir,
        AIEDGE_SERVE_HOST: '127.0.0.1',
        AIEDGE_SERVE_PORT: String(port),
        AIEDGE_SERVE_WORKERS: '1',
      });
      await waitReady(url, server.child);
      // A request is in flight when SIGTERM arrives: half its body is sent, the rest follows after.
      const body = JSON.stringify({
        inputs: [{ name: 'features', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }],
      });
      const half = Math.floor(body.length / 2);
      const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = request(
          `${url}/v2/models/example-classifier/infer`,
          { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': body.length } },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.write(body.slice(0, half));
        setTimeout(() => {
          server.child.kill('SIGTERM');
          setTimeout(() => req.end(body.slice(half)), 300);
        }, 100);
      });
      const response = await inFlight;
      assert.equal(response.status, 200, `the in-flight request completed: ${response.text}`);
      assert.match(response.text, /"model_name":"example-classifier"/);
      const result = await server.done;
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { level: string; msg: string });
      assert.ok(
        lines.every((l) => typeof l.level === 'string' && typeof l.msg === 'string'),
        'JSON log lines',
      );
      assert.ok(lines.some((l) => l.msg === 'shutting down: finishing in-flight requests'));
      assert.equal(lines.at(-1)?.msg, 'stopped');
      await assert.rejects(fetch(`${url}/v2/health/live`), 'nothing listens after exit');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
