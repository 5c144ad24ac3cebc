import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createToken, resolveCoreConfig, startCore, type RunningCore } from '@aiedge/core';
import type { ModelArtifact, ModelVersion, RegisteredModel, RegistryArtifact } from '@aiedge/protocol';
import { runCli, type CliRun } from './_test-cli.js';

let data: string;
let core: RunningCore;
let admin: string;
let siteToken: string;

/** No registry settings leak in from the environment running the tests. */
const CLEAN = { AIEDGE_REGISTRY_URL: '', AIEDGE_CORE_URL: '', AIEDGE_TOKEN: '' };

before(async () => {
  data = await mkdtemp(join(tmpdir(), 'aiedge-cli-registry-'));
  const config = resolveCoreConfig({ values: { data, host: '127.0.0.1', port: 0, logLevel: 'silent' } });
  core = await startCore({ config });
  admin = (await createToken(core.context.store.db, { kind: 'admin' })).token;
  siteToken = (await createToken(core.context.store.db, { kind: 'site', site: 'edge-1' })).token;
});
after(async () => {
  await core.close();
  await rm(data, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runCli(args, { ...CLEAN, ...env });
}

function succeeded(run: CliRun): CliRun {
  assert.equal(run.code, 0, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run;
}

function refused(run: CliRun, message: RegExp): void {
  assert.equal(run.code, 2, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);
  assert.match(run.stderr, message);
  assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
}

describe('aiedge model register / list / show against a real core', () => {
  test('register creates the model once, then versions with their artifacts', async () => {
    const first = succeeded(
      await cli([
        'model',
        'register',
        'mnist',
        '--version',
        '1',
        '--uri',
        's3://models/mnist/1',
        '--format',
        'onnx',
        '--format-version',
        '1.15',
        '--description',
        'handwritten digits',
        '--registry',
        core.url,
        '--token',
        admin,
      ]),
    );
    assert.match(first.stdout, /^registered model mnist \(id (\d+)\) created$/m);
    assert.match(first.stdout, /^model version 1 \(id \d+\) created$/m);
    assert.match(first.stdout, /^model artifact \d+ created: onnx s3:\/\/models\/mnist\/1$/m);

    // Defaults from the environment; the model is found, not created again.
    const second = succeeded(
      await cli(
        ['model', 'register', 'mnist', '--version', '2', '--uri', 'oci://r/mnist:2', '--format', 'onnx'],
        {
          AIEDGE_REGISTRY_URL: core.url,
          AIEDGE_TOKEN: admin,
        },
      ),
    );
    assert.match(second.stdout, /^registered model mnist \(id \d+\)$/m);
    assert.match(second.stdout, /^model version 2 \(id \d+\) created$/m);

    // AIEDGE_CORE_URL is the fallback; the URL may already carry the API path.
    succeeded(
      await cli(
        ['model', 'register', 'fraud', '--version', 'a', '--uri', 'https://x/fraud.onnx', '--format', 'onnx'],
        {
          AIEDGE_CORE_URL: `${core.url}/api/model_registry/v1alpha3/`,
          AIEDGE_TOKEN: admin,
        },
      ),
    );

    // What the registry holds, read over its API.
    const api = (path: string) =>
      fetch(`${core.url}/api/model_registry/v1alpha3${path}`, {
        headers: { authorization: `Bearer ${admin}` },
      }).then((r) => r.json());
    const model = (await api('/registered_model?name=mnist')) as RegisteredModel;
    assert.equal(model.description, 'handwritten digits');
    const versions = (await api(`/registered_models/${model.id}/versions`)) as { items: ModelVersion[] };
    assert.deepEqual(
      versions.items.map((v) => [v.name, v.state]),
      [
        ['1', 'LIVE'],
        ['2', 'LIVE'],
      ],
    );
    const artifacts = (await api(`/model_versions/${versions.items[0]!.id}/artifacts`)) as {
      items: ModelArtifact[];
    };
    assert.equal(artifacts.items.length, 1);
    const artifact = artifacts.items[0]!;
    assert.equal(artifact.uri, 's3://models/mnist/1');
    assert.equal(artifact.modelFormatName, 'onnx');
    assert.equal(artifact.modelFormatVersion, '1.15');
    assert.equal(artifact.state, 'LIVE');
  });

  test('registering an existing version is a clear conflict', async () => {
    const env = { AIEDGE_REGISTRY_URL: core.url, AIEDGE_TOKEN: admin };
    succeeded(
      await cli(['model', 'register', 'dup', '--version', '1', '--uri', 's3://a', '--format', 'onnx'], env),
    );
    const again = await cli(
      ['model', 'register', 'dup', '--version', '1', '--uri', 's3://b', '--format', 'onnx'],
      env,
    );
    refused(
      again,
      /model dup already has version 1 \(model version \d+\): versions are immutable; register another --version/,
    );
  });

  test('list prints a table, or JSON', async () => {
    const env = { AIEDGE_REGISTRY_URL: core.url, AIEDGE_TOKEN: siteToken };
    const [listed, listedJson] = await Promise.all([
      cli(['model', 'list'], env),
      cli(['model', 'list', '--json'], env),
    ]);
    const table = succeeded(listed).stdout;
    const lines = table.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME\s+LATEST VERSION\s+VERSIONS\s+STATE\s+UPDATED$/);
    const mnist = lines.find((l) => l.startsWith('mnist '));
    assert.ok(mnist, table);
    assert.match(mnist, /^mnist\s+2\s+2\s+LIVE\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    const json = JSON.parse(succeeded(listedJson).stdout) as {
      registeredModel: RegisteredModel;
      latestVersion: ModelVersion | null;
      versionCount: number;
    }[];
    const entry = json.find((e) => e.registeredModel.name === 'mnist');
    assert.equal(entry?.versionCount, 2);
    assert.equal(entry?.latestVersion?.name, '2');
  });

  test('show prints the model, its versions and their artifacts', async () => {
    const env = { AIEDGE_REGISTRY_URL: core.url, AIEDGE_TOKEN: siteToken };
    const [shown, shownJson, unknown] = await Promise.all([
      cli(['model', 'show', 'mnist'], env),
      cli(['model', 'show', 'mnist', '--json'], env),
      cli(['model', 'show', 'no-such-model'], env),
    ]);
    const text = succeeded(shown).stdout;
    assert.match(text, /^mnist \(registered model \d+, LIVE\)$/m);
    assert.match(text, /^ {2}description: handwritten digits$/m);
    assert.match(text, /^ {2}1 \(model version \d+, LIVE, created \d{4}-.*\)$/m);
    assert.match(text, /^ {4}model-artifact \d+ mnist: onnx 1\.15 s3:\/\/models\/mnist\/1$/m);
    assert.match(text, /^ {4}model-artifact \d+ mnist: onnx oci:\/\/r\/mnist:2$/m);

    const json = JSON.parse(succeeded(shownJson).stdout) as {
      registeredModel: RegisteredModel;
      versions: { modelVersion: ModelVersion; artifacts: RegistryArtifact[] }[];
    };
    assert.equal(json.registeredModel.name, 'mnist');
    assert.deepEqual(
      json.versions.map((v) => [v.modelVersion.name, v.artifacts.map((a) => a.uri)]),
      [
        ['1', ['s3://models/mnist/1']],
        ['2', ['oci://r/mnist:2']],
      ],
    );

    refused(unknown, /no registered model named "no-such-model"/);
  });

  test('missing or wrong settings and tokens are reported plainly', async () => {
    const env = { AIEDGE_REGISTRY_URL: core.url, AIEDGE_TOKEN: siteToken };
    const [none, ftp, anonymous, site, missingFlag] = await Promise.all([
      cli(['model', 'list']),
      cli(['model', 'list', '--registry', 'ftp://x']),
      cli(['model', 'list', '--registry', core.url]),
      cli(['model', 'register', 'site-made', '--version', '1', '--uri', 's3://x', '--format', 'onnx'], env),
      cli(['model', 'register', 'x', '--version', '1', '--uri', 's3://x']),
    ]);
    refused(
      none,
      /no model registry given: pass --registry URL, or set AIEDGE_REGISTRY_URL or AIEDGE_CORE_URL/,
    );
    refused(ftp, /registry URL is "ftp:\/\/x": expected an http\(s\) URL/);
    refused(anonymous, /bearer token is required.*\(pass --token or set AIEDGE_TOKEN\)/);
    refused(site, /needs an admin token/);
    assert.notEqual(missingFlag.code, 0);
    assert.match(missingFlag.stderr, /--format/);
  });

  test('every verb has help with examples', async () => {
    const verbs = ['register', 'list', 'show'];
    const helps = await Promise.all(verbs.map((verb) => cli(['model', verb, '--help'])));
    helps.forEach((help, i) => {
      succeeded(help);
      assert.match(help.stdout, /Examples:\n\s+\$ aiedge model /, `model ${verbs[i]} --help`);
      assert.match(help.stdout, /--registry <url>/);
      assert.match(help.stdout, /AIEDGE_REGISTRY_URL/);
    });
  });
});
