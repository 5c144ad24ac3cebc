import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '@aiedge/protocol';
import { renderDeployment, renderRepository } from './render.js';
import { readSiteDir, readSiteState } from './read.js';
import type { DeploymentSpec } from './model.js';

const DIGEST = `sha256:${'c'.repeat(64)}`;
const mnist: DeploymentSpec = {
  name: 'mnist',
  namespace: 'models',
  model: { name: 'MNIST digits', version: '1.2+x', sha256: 'd'.repeat(64) },
  image: `quay.io/aiedge/mnist@${DIGEST}`,
  selector: { tier: 'edge' },
  port: 9000,
  replicas: 2,
  env: { LOG_LEVEL: 'debug' },
  resources: { limits: { memory: '2Gi' } },
  pipelineRun: 'run-7',
  route: { enabled: true },
};
const plain: DeploymentSpec = {
  name: 'plain',
  model: { name: 'plain', version: '3' },
  image: `registry.local:5000/plain@${DIGEST}`,
  selector: {},
};

function rendered(): Map<string, string> {
  return renderRepository({
    deployments: [mnist, plain],
    sites: [
      { name: 'edge-1', labels: { tier: 'edge' } },
      { name: 'empty', labels: {} },
    ],
    repoUrl: 'file:///repo',
  });
}

test('round trip: render → readSiteDir gives back the inputs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'aiedge-read-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (const [path, content] of rendered()) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  const state = await readSiteDir(dir, 'edge-1');
  // Each deployment carries its Deployment object as read (what the podman driver plays).
  const files = rendered();
  for (const d of state.deployments) {
    assert.deepEqual(
      d.manifest,
      renderDeployment(d.name === 'mnist' ? mnist : plain, { name: 'edge-1', labels: { tier: 'edge' } }),
    );
    assert.ok(files.get(`sites/edge-1/${d.name}.yaml`)?.includes(`name: ${d.name}`));
  }
  const withoutManifests = (ds: typeof state.deployments) =>
    ds.map(({ manifest: _manifest, ...rest }) => rest);
  assert.deepEqual(
    { ...state, deployments: withoutManifests(state.deployments) },
    {
      site: 'edge-1',
      deployments: [
        {
          name: 'mnist',
          namespace: 'models',
          model: { name: 'MNIST digits', version: '1.2+x' },
          image: mnist.image,
          imageDigest: DIGEST,
          port: 9000,
          replicas: 2,
          env: { LOG_LEVEL: 'debug' },
          resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '2Gi' } },
          probes: { liveness: '/v2/health/live', readiness: '/v2/models/MNIST digits/ready' },
          modelSha256: 'd'.repeat(64),
          pipelineRun: 'run-7',
        },
        {
          name: 'plain',
          namespace: 'aiedge',
          model: { name: 'plain', version: '3' },
          image: plain.image,
          imageDigest: DIGEST,
          port: 8080,
          replicas: 1,
          env: {},
          resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '1Gi' } },
          probes: { liveness: '/v2/health/live', readiness: '/v2/models/plain/ready' },
        },
      ],
    },
  );
  const empty = await readSiteDir(dir, 'empty');
  assert.deepEqual(
    { ...empty, deployments: withoutManifests(empty.deployments) },
    { site: 'empty', deployments: withoutManifests([state.deployments[1]!]) },
  );
});

const KUST = 'sites/edge-1/kustomization.yaml';
const FILE = 'sites/edge-1/mnist.yaml';

/** Replaces `from` by `to` in the rendered mnist manifest (asserting it occurs). */
function edit(from: string | RegExp, to: string): Record<string, string> {
  const text = rendered().get(FILE) ?? '';
  const next = text.replace(from, to);
  assert.notEqual(next, text, `edit ${String(from)} changed nothing`);
  return { [FILE]: next };
}
const kustomization = (resources: string): Record<string, string> => ({
  [KUST]: `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n${resources}`,
});

test('malformed manifests are rejected with precise messages', async () => {
  const cases: Array<[string, Record<string, string | undefined>, string]> = [
    ['missing kustomization', { [KUST]: undefined }, `${KUST}: not found`],
    ['bad YAML', { [KUST]: 'resources: [a\n' }, `${KUST}: invalid YAML:`],
    [
      'wrong kustomization kind',
      { [KUST]: 'apiVersion: v1\nkind: ConfigMap\n' },
      `${KUST}: apiVersion/kind is "v1"/"ConfigMap", expected kustomize.config.k8s.io/v1beta1/Kustomization`,
    ],
    [
      'resource outside the dir',
      kustomization('  - ../edge-2/mnist.yaml\n'),
      `${KUST}: resources[0] "../edge-2/mnist.yaml" is outside the site directory`,
    ],
    [
      'absolute resource',
      kustomization('  - /etc/passwd\n'),
      `${KUST}: resources[0] "/etc/passwd" is outside the site directory`,
    ],
    [
      'remote resource',
      kustomization('  - https://github.com/x/y//base\n'),
      `${KUST}: resources[0] "https://github.com/x/y//base" is a remote resource; only files inside the site directory are allowed`,
    ],
    [
      'listed file missing',
      kustomization('  - gone.yaml\n'),
      `sites/edge-1/gone.yaml: not found (listed in ${KUST})`,
    ],
    ['bad YAML in manifest', { [FILE]: 'kind: [\n' }, `${FILE}: invalid YAML:`],
    [
      'wrong kind',
      edit('kind: Service', 'kind: ConfigMap'),
      `${FILE}: document 1 kind "ConfigMap" is not one of Deployment, Service, Route`,
    ],
    [
      'wrong apiVersion',
      edit('apiVersion: apps/v1', 'apiVersion: apps/v1beta1'),
      `${FILE}: Deployment apiVersion "apps/v1beta1" must be apps/v1`,
    ],
    [
      'no containers',
      edit(/containers:\n[\s\S]*?\n( +)volumes:/, 'containers: []\n$1volumes:'),
      `${FILE}: Deployment mnist spec.template.spec.containers [] must list at least one container`,
    ],
    [
      'image not by digest',
      edit(`quay.io/aiedge/mnist@${DIGEST}`, 'quay.io/x:latest'),
      `${FILE}: Deployment mnist spec.template.spec.containers[0].image "quay.io/x:latest" is not pinned by digest`,
    ],
    [
      'bad port',
      edit('containerPort: 9000', 'containerPort: 0'),
      `${FILE}: Deployment mnist spec.template.spec.containers[0].ports[0].containerPort 0 must be an integer in 1..65535`,
    ],
    [
      'missing label aiedge.io/model',
      edit(/\n {4}aiedge\.io\/model: MNIST-digits/, ''),
      `${FILE}: Deployment mnist metadata.labels["aiedge.io/model"] missing is required`,
    ],
    [
      'duplicate names',
      kustomization('  - mnist.yaml\n  - copy.yaml\n'),
      'sites/edge-1/copy.yaml: Deployment mnist is defined twice',
    ],
    [
      'bad replicas',
      edit('replicas: 2', 'replicas: -1'),
      `${FILE}: Deployment mnist spec.replicas -1 must be a non-negative integer`,
    ],
  ];
  for (const [name, overrides, message] of cases) {
    const files = new Map(rendered());
    files.set('sites/edge-1/copy.yaml', files.get(FILE) ?? '');
    for (const [path, content] of Object.entries(overrides)) {
      if (content === undefined) files.delete(path);
      else files.set(path, content);
    }
    await assert.rejects(
      readSiteState((p) => files.get(p), 'edge-1'),
      (e: unknown) => {
        assert.ok(e instanceof InputError, name);
        assert.ok(e.message.startsWith(message), `${name}: got ${e.message}`);
        return true;
      },
      name,
    );
  }
});

test('site name must be a DNS-1123 label', async () => {
  await assert.rejects(
    readSiteState(() => undefined, '../x'),
    /site "\.\.\/x" must be a DNS-1123 label/,
  );
});
