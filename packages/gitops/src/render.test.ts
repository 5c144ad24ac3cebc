/* eslint-disable @typescript-eslint/no-explicit-any -- assertions walk parsed YAML */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { InputError } from '@aiedge/protocol';
import { renderRepository, type RenderInput } from './render.js';
import type { DeploymentSpec, SiteSpec } from './model.js';

const run = promisify(execFile);
const DIGEST = `sha256:${'a'.repeat(64)}`;

/** A deployment spec for tests. */
function deployment(over: Partial<DeploymentSpec> = {}): DeploymentSpec {
  return {
    name: 'mnist',
    model: { name: 'mnist', version: '1', sha256: 'b'.repeat(64) },
    image: `quay.io/aiedge/mnist@${DIGEST}`,
    selector: { tier: 'edge' },
    pipelineRun: 'run-42',
    ...over,
  };
}

const sites: SiteSpec[] = [
  { name: 'edge-1', labels: { tier: 'edge', region: 'eu' } },
  { name: 'edge-2', labels: { tier: 'edge', region: 'us' }, otlpEndpoint: 'http://collector:4318' },
  { name: 'core', labels: { tier: 'core' } },
];

const input = (over: Partial<RenderInput> = {}): RenderInput => ({
  deployments: [
    deployment(),
    deployment({
      name: 'fraud',
      model: { name: 'Fraud Model', version: 'v2+build/7' },
      selector: { region: 'us' },
      route: { enabled: true, host: 'fraud.example.com' },
      env: { Z: '1', A: '2' },
    }),
  ],
  sites,
  repoUrl: 'https://git.example.com/aiedge/gitops.git',
  ...over,
});

test('renders exactly the layout files', () => {
  const files = renderRepository(input());
  assert.deepEqual(
    [...files.keys()],
    [
      'argocd/applicationset.yaml',
      'deployments/fraud.yaml',
      'deployments/mnist.yaml',
      'sites/core/kustomization.yaml',
      'sites/edge-1/kustomization.yaml',
      'sites/edge-1/mnist.yaml',
      'sites/edge-2/fraud.yaml',
      'sites/edge-2/kustomization.yaml',
      'sites/edge-2/mnist.yaml',
    ],
  );
  assert.deepEqual(parse(files.get('sites/core/kustomization.yaml') ?? ''), {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [],
  });
  assert.deepEqual(
    (parse(files.get('sites/edge-2/kustomization.yaml') ?? '') as { resources: string[] }).resources,
    ['fraud.yaml', 'mnist.yaml'],
  );
  assert.deepEqual(parse(files.get('deployments/mnist.yaml') ?? ''), deployment());
});

test('same input gives the same bytes', () => {
  const a = renderRepository(input());
  const b = renderRepository(
    input({ deployments: [...input().deployments].reverse(), sites: [...sites].reverse() }),
  );
  assert.deepEqual([...a.entries()], [...b.entries()]);
  for (const [path, text] of a) assert.doesNotMatch(text, /[&*]a\d/, `${path} has YAML aliases`);
});

test('the Deployment is what production wants', () => {
  const files = renderRepository(input());
  const docs = parseAllDocuments(files.get('sites/edge-2/fraud.yaml') ?? '').map(
    (d) => d.toJS() as Record<string, any>,
  );
  assert.deepEqual(
    docs.map((d) => d['kind']),
    ['Deployment', 'Service', 'Route'],
  );
  const [dep, svc, route] = docs as [Record<string, any>, Record<string, any>, Record<string, any>];
  assert.equal(dep['metadata'].namespace, 'aiedge');
  assert.equal(dep['metadata'].labels['aiedge.io/model'], 'Fraud-Model');
  assert.equal(dep['metadata'].labels['app.kubernetes.io/version'], 'v2-build-7');
  assert.equal(dep['metadata'].labels['app.kubernetes.io/component'], 'inference');
  const pod = dep['spec'].template.spec;
  const c = pod.containers[0];
  assert.match(c.image, /@sha256:/);
  assert.deepEqual(c.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(
    c.env.map((e: { name: string }) => e.name),
    ['AIEDGE_SERVE_PORT', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_SERVICE_NAME', 'A', 'Z'],
  );
  assert.equal(c.env[1].value, 'http://collector:4318');
  assert.equal(c.livenessProbe.httpGet.path, '/v2/health/live');
  assert.equal(c.readinessProbe.httpGet.path, '/v2/models/Fraud Model/ready');
  assert.deepEqual(c.resources, {
    requests: { cpu: '100m', memory: '256Mi' },
    limits: { cpu: '1', memory: '1Gi' },
  });
  assert.deepEqual(c.securityContext, {
    runAsNonRoot: true,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(c.volumeMounts, [{ name: 'tmp', mountPath: '/tmp' }]);
  assert.deepEqual(pod.volumes, [{ name: 'tmp', emptyDir: {} }]);
  assert.equal(svc['spec'].type, 'ClusterIP');
  assert.deepEqual(svc['spec'].ports, [{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
  assert.equal(route['spec'].host, 'fraud.example.com');
  const mnist = parseAllDocuments(files.get('sites/edge-1/mnist.yaml') ?? '')[0]?.toJS() as Record<
    string,
    any
  >;
  assert.equal(mnist['metadata'].annotations['aiedge.io/pipeline-run'], 'run-42');
  assert.equal(mnist['metadata'].annotations['aiedge.io/model-sha256'], 'b'.repeat(64));
  assert.equal(mnist['spec'].template.spec.containers[0].env[1].value, 'http://aiedge-agent.aiedge.svc:4318');
});

test('ApplicationSet: git directory generator, or the ACM pull model', () => {
  const git = parse(renderRepository(input()).get('argocd/applicationset.yaml') ?? '') as Record<string, any>;
  assert.equal(git['apiVersion'], 'argoproj.io/v1alpha1');
  assert.equal(git['kind'], 'ApplicationSet');
  assert.deepEqual(git['spec'].generators[0].git.directories, [{ path: 'sites/*' }]);
  assert.equal(git['spec'].generators[0].git.revision, 'HEAD');
  assert.equal(git['spec'].template.spec.destination.name, '{{path.basename}}');
  assert.deepEqual(git['spec'].template.spec.syncPolicy, {
    automated: { prune: true, selfHeal: true },
    syncOptions: ['CreateNamespace=true'],
  });
  const acm = parse(
    renderRepository(input({ acmPullModel: true, revision: 'main' })).get('argocd/applicationset.yaml') ?? '',
  ) as Record<string, any>;
  assert.ok(acm['spec'].generators[0].clusterDecisionResource);
  const meta = acm['spec'].template.metadata;
  assert.equal(meta.labels['apps.open-cluster-management.io/pull-to-ocm-managed-cluster'], 'true');
  assert.equal(meta.annotations['apps.open-cluster-management.io/ocm-managed-cluster'], '{{name}}');
  assert.equal(acm['spec'].template.spec.source.targetRevision, 'main');
});

test('input errors name the path', () => {
  const cases: Array<[Partial<RenderInput>, RegExp]> = [
    [
      { deployments: [deployment({ name: 'Bad_Name' })] },
      /^deployments\[0\]\.name is "Bad_Name": must match pattern/,
    ],
    [
      { deployments: [deployment({ image: 'repo:tag' })] },
      /^deployments\[0\]\.image: image "repo:tag" must be pinned by digest \(repo@sha256:\.\.\.\)$/,
    ],
    [
      { deployments: [deployment(), deployment()] },
      /^deployments\[1\]\.name "mnist" duplicates deployments\[0\]\.name$/,
    ],
    [
      { deployments: [{ ...deployment(), extra: 1 } as DeploymentSpec] },
      /^deployments\[0\]: unknown key 'extra'$/,
    ],
    [
      { deployments: [deployment({ model: { name: 'm', version: '1', bogus: 2 } as never })] },
      /^deployments\[0\]\.model: unknown key 'bogus'$/,
    ],
    [{ sites: [{ name: 'EDGE', labels: {} }] }, /^sites\[0\]\.name is "EDGE"/],
    [
      { deployments: [deployment({ env: { OTEL_SERVICE_NAME: 'x' } })] },
      /^deployments\[0\]\.env\.OTEL_SERVICE_NAME is set by aiedge/,
    ],
    [{ deployments: [deployment({ port: 70000 })] }, /^deployments\[0\]\.port is 70000/],
  ];
  for (const [over, message] of cases) {
    assert.throws(
      () => renderRepository(input(over)),
      (e: unknown) => e instanceof InputError && message.test(e.message),
      String(message),
    );
  }
});

test('kubectl kustomize builds every site', async (t) => {
  try {
    await run('kubectl', ['version', '--client']);
  } catch (error) {
    if (process.env['CI'] === 'true') throw error;
    t.skip(`kubectl not installed: ${(error as Error).message}`);
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'aiedge-gitops-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = renderRepository(input());
  for (const [path, content] of files) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  for (const site of sites) {
    const { stdout } = await run('kubectl', ['kustomize', join(dir, 'sites', site.name)]);
    if (site.name === 'core') assert.equal(stdout.trim(), '');
    else assert.match(stdout, /kind: Deployment\n/);
  }
});
