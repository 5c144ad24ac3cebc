import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { parsePipeline } from './spec.js';
import { exportTekton, tektonResults } from './tekton.js';

const DOCUMENT = `
apiVersion: aiedge.io/v1alpha1
kind: Pipeline
metadata: { name: classifier }
spec:
  params:
    - { name: bucket, default: models }
    - { name: repository, default: 127.0.0.1:8080/models/classifier }
    - { name: modelVersion }
  model: { name: classifier, version: $(params.modelVersion) }
  source:
    s3: { bucket: $(params.bucket), key: m.onnx, accessKeyIdEnv: AWS_ACCESS_KEY_ID, secretAccessKeyEnv: AWS_SECRET_ACCESS_KEY }
  image: { repository: $(params.repository), passwordEnv: REGISTRY_PASSWORD }
  gitops:
    core: { url: http://127.0.0.1:8080, tokenEnv: AIEDGE_TOKEN }
  tasks:
    - { name: fetch, uses: fetch, retries: 2, timeoutSeconds: 600 }
    - { name: inspect, uses: inspect, runAfter: [fetch] }
    - { name: build, uses: build, runAfter: [inspect] }
    - { name: stage, uses: stage, runAfter: [build] }
    - { name: push, uses: push, runAfter: [stage, build] }
    - { name: gitops, uses: gitops, runAfter: [push] }
`;

interface K8s {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; generateName?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
  data?: Record<string, string>;
}
interface ParamSpec {
  name: string;
  default?: string;
}
interface Step {
  image: string;
  command: string[];
  args: string[];
  env: { name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }[];
}
interface TaskSpec {
  params: ParamSpec[];
  workspaces: { name: string }[];
  results: { name: string }[];
  steps: Step[];
}
interface PipelineTask {
  name: string;
  taskRef: { name: string };
  runAfter?: string[];
  retries?: number;
  timeout?: string;
  params: { name: string; value: string }[];
  workspaces: { name: string; workspace: string }[];
}
interface PipelineSpecDoc {
  params: ParamSpec[];
  workspaces: { name: string }[];
  tasks: PipelineTask[];
  results: { name: string; value: string }[];
}

/** `$(params.x)` names used in `value`. */
function paramRefs(value: unknown): string[] {
  return [...JSON.stringify(value).matchAll(/\$\(params\.([A-Za-z0-9_-]+)\)/g)].map((m) => m[1] as string);
}

describe('tekton export', () => {
  const spec = parsePipeline(DOCUMENT, { modelVersion: '1' });
  const files = exportTekton(spec, { image: 'quay.io/aiedge/aiedge:0.1.0', document: DOCUMENT });
  const docs = new Map([...files].map(([name, text]) => [name, parse(text) as K8s]));
  const pipeline = docs.get('pipeline.yaml')!;
  const pspec = pipeline.spec as unknown as PipelineSpecDoc;
  const tasks = new Map(
    [...docs.values()]
      .filter((d) => d.kind === 'Task')
      .map((d) => [d.metadata.name!, d.spec as unknown as TaskSpec]),
  );

  test('files: a Pipeline, one Task per task, the ConfigMap and an example PipelineRun', () => {
    assert.deepEqual([...files.keys()].sort(), [
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
    assert.equal(pipeline.apiVersion, 'tekton.dev/v1');
    assert.equal(pipeline.kind, 'Pipeline');
    assert.equal(pipeline.metadata.name, 'classifier');
    assert.equal(pipeline.metadata.labels?.['app.kubernetes.io/managed-by'], 'aiedge');
    for (const [name, doc] of docs) {
      if (name.startsWith('task-')) {
        assert.equal(doc.apiVersion, 'tekton.dev/v1');
        assert.equal(doc.kind, 'Task');
        assert.match(doc.metadata.name ?? '', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      }
    }
    const cm = docs.get('configmap.yaml')!;
    assert.equal(cm.kind, 'ConfigMap');
    assert.equal(cm.data?.['pipeline.yaml'], DOCUMENT, 'the document keeps its $(params.x)');
    const run = docs.get('pipelinerun.yaml')!;
    assert.equal(run.kind, 'PipelineRun');
    assert.deepEqual(run.spec['pipelineRef'], { name: 'classifier' });
    assert.deepEqual(
      (run.spec['params'] as { name: string }[]).map((p) => p.name),
      ['modelVersion'],
    );
    assert.deepEqual(
      (run.spec['workspaces'] as { name: string; configMap?: { name: string } }[]).map((w) => w.name),
      ['run', 'pipeline'],
    );
  });

  test('every task referenced exists; runAfter, retries and timeout match the spec', () => {
    for (const t of pspec.tasks) assert.ok(tasks.has(t.taskRef.name), `Task ${t.taskRef.name} exported`);
    const graph = Object.fromEntries(pspec.tasks.map((t) => [t.name, t.runAfter ?? []]));
    const expected = Object.fromEntries((spec.spec.tasks ?? []).map((t) => [t.name, t.runAfter ?? []]));
    assert.deepEqual(graph, expected);
    const fetch = pspec.tasks.find((t) => t.name === 'fetch')!;
    assert.equal(fetch.retries, 2);
    assert.equal(fetch.timeout, '600s');
    assert.equal(pspec.tasks.find((t) => t.name === 'build')?.retries, undefined);
  });

  test('params are declared before use, in the Pipeline and in every Task', () => {
    const declared = new Set(pspec.params.map((p) => p.name));
    assert.deepEqual([...declared], ['bucket', 'repository', 'modelVersion', 'secret-name']);
    assert.equal(pspec.params.find((p) => p.name === 'modelVersion')?.default, undefined);
    for (const t of pspec.tasks) {
      for (const ref of paramRefs(t.params)) assert.ok(declared.has(ref), `${t.name} uses declared ${ref}`);
      const taskSpec = tasks.get(t.taskRef.name)!;
      const taskParams = new Set(taskSpec.params.map((p) => p.name));
      for (const p of t.params)
        assert.ok(taskParams.has(p.name), `Task ${t.taskRef.name} declares ${p.name}`);
      for (const ref of paramRefs(taskSpec.steps))
        assert.ok(taskParams.has(ref), `${t.name} step uses ${ref}`);
    }
  });

  test('workspaces are declared and bound', () => {
    const declared = new Set(pspec.workspaces.map((w) => w.name));
    assert.deepEqual([...declared], ['run', 'pipeline']);
    for (const t of pspec.tasks) {
      const taskWs = new Set(tasks.get(t.taskRef.name)!.workspaces.map((w) => w.name));
      for (const b of t.workspaces) {
        assert.ok(declared.has(b.workspace));
        assert.ok(taskWs.has(b.name));
      }
      assert.equal(t.workspaces.length, taskWs.size, `${t.name} binds every workspace of its Task`);
    }
  });

  test('the step runs aiedge pipeline task with the document, the workspace and every param', () => {
    const step = tasks.get('classifier-push')!.steps[0]!;
    assert.equal(step.image, 'quay.io/aiedge/aiedge:0.1.0');
    assert.deepEqual(step.command, ['aiedge']);
    assert.deepEqual(step.args.slice(0, 9), [
      'pipeline',
      'task',
      'push',
      '-f',
      '/workspace/pipeline/pipeline.yaml',
      '--workspace',
      '$(workspaces.run.path)',
      '--results-dir',
      '/tekton/results',
    ]);
    assert.deepEqual(step.args.slice(9), [
      '--param',
      'bucket=$(params.bucket)',
      '--param',
      'repository=$(params.repository)',
      '--param',
      'modelVersion=$(params.modelVersion)',
    ]);
  });

  test('secrets come by name from the Secret param, only to the tasks that use them', () => {
    const secrets = (task: string) =>
      tasks
        .get(`classifier-${task}`)!
        .steps[0]!.env.filter((e) => e.valueFrom !== undefined)
        .map((e) => {
          assert.equal(e.valueFrom?.secretKeyRef.name, '$(params.secret-name)');
          assert.equal(e.valueFrom?.secretKeyRef.key, e.name);
          return e.name;
        });
    assert.deepEqual(secrets('fetch'), ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    assert.deepEqual(secrets('inspect'), []);
    assert.deepEqual(secrets('push'), ['REGISTRY_PASSWORD']);
    assert.deepEqual(secrets('gitops'), ['AIEDGE_TOKEN']);
    const all = new Set([...tasks.values()].flatMap((t) => t.steps[0]!.env.map((e) => e.name)));
    for (const env of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'REGISTRY_PASSWORD', 'AIEDGE_TOKEN'])
      assert.ok(all.has(env), `${env} is referenced`);
  });

  test('results are declared per task and the Pipeline results reference existing ones', () => {
    for (const r of pspec.results) {
      const m = /^\$\(tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_.-]+)\)$/.exec(r.value);
      assert.ok(m !== null, r.value);
      const t = pspec.tasks.find((x) => x.name === m[1]);
      assert.ok(t !== undefined, `task ${m[1]} exists`);
      assert.ok(
        tasks.get(t.taskRef.name)!.results.some((x) => x.name === m[2]),
        `${m[1]} declares ${m[2]}`,
      );
    }
    assert.ok(pspec.results.some((r) => r.name === 'push-image-reference'));
  });

  test('tektonResults reads the declared results from the run state', () => {
    assert.deepEqual(tektonResults('push', {}), { 'image-reference': '', 'image-digest': '' });
    assert.deepEqual(
      tektonResults('push', { pushed: { reference: 'r@sha256:1', digest: 'sha256:1', tags: [] } }),
      { 'image-reference': 'r@sha256:1', 'image-digest': 'sha256:1' },
    );
  });

  test('a param named secret-name or an empty image is refused', () => {
    const clash = parsePipeline(
      DOCUMENT.replace('- { name: bucket, default: models }', '- { name: secret-name, default: x }').replace(
        '$(params.bucket)',
        'models',
      ),
      { modelVersion: '1' },
    );
    assert.throws(() => exportTekton(clash, { image: 'x' }), /declares "secret-name"/);
    assert.throws(() => exportTekton(spec, { image: '' }), /image is empty/);
  });
});
