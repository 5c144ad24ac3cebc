/**
 * Export of a pipeline to Tekton (OpenShift Pipelines): a `Pipeline` (`tekton.dev/v1`) and one
 * `Task` per pipeline task whose single step runs `aiedge pipeline task <name>` in the ai-edge
 * image against a `run` workspace shared by all tasks; the pipeline document comes from a ConfigMap
 * bound as the `pipeline` workspace. Params, results, `runAfter`, retries and timeouts are mapped;
 * secrets named by `…Env` fields come from a Secret (its name a param) through `secretKeyRef`.
 */
import { stringify } from 'yaml';
import { InputError } from '@aiedge/protocol';
import type { PipelineSpec } from './spec.js';
import { planTasks } from './runner.js';
import type { RunState, TaskKind } from './types.js';

/** Where the step finds the pipeline document (the `pipeline` workspace, from the ConfigMap). */
export const TEKTON_PIPELINE_FILE = '/workspace/pipeline/pipeline.yaml';
/** Where Tekton collects step results. */
export const TEKTON_RESULTS_DIR = '/tekton/results';
/** Name of the Tekton param holding the Secret name. */
export const TEKTON_SECRET_PARAM = 'secret-name';

/** Results each kind of task declares in Tekton, read from the run state after the task. */
const RESULTS: Record<TaskKind, Record<string, (state: RunState) => string | undefined>> = {
  fetch: { origin: (s) => s.fetched?.origin },
  inspect: { 'model-sha256': (s) => s.inspected?.sha256 },
  build: { 'image-digest': (s) => s.built?.digest },
  stage: {
    passed: (s) => (s.staged !== undefined ? `${s.staged.passed}/${s.staged.requests}` : undefined),
  },
  push: { 'image-reference': (s) => s.pushed?.reference, 'image-digest': (s) => s.pushed?.digest },
  gitops: { commit: (s) => s.gitops?.commit },
};

/** Sections of the spec whose `…Env` secrets each kind of task gets. */
const SECRET_SECTIONS: Record<TaskKind, readonly string[]> = {
  fetch: ['source'],
  inspect: [],
  build: ['image'],
  stage: [],
  push: ['image', 'registry'],
  gitops: ['gitops', 'registry'],
};

/** The Tekton results of a task of kind `kind` (declared names; `''` for what the state lacks). */
export function tektonResults(kind: TaskKind, state: RunState): Record<string, string> {
  return Object.fromEntries(Object.entries(RESULTS[kind]).map(([name, read]) => [name, read(state) ?? '']));
}

/** Options of {@link exportTekton}. */
export interface TektonExportOptions {
  /** The ai-edge image the steps run (it has the `aiedge` command). */
  readonly image: string;
  /** The pipeline document as written (with its `$(params.x)`), put in the ConfigMap. Default: the spec as YAML. */
  readonly document?: string;
  /** Default of the `secret-name` param. Default `aiedge-secrets`. */
  readonly secretName?: string;
  /** Values that become the defaults of the Tekton params (what `--param` gave at export). */
  readonly params?: Readonly<Record<string, string>>;
  /** Storage requested by the example PipelineRun's `run` workspace. Default `5Gi`. */
  readonly workspaceSize?: string;
}

/** Every `…Env` field under `value`: the environment variable names it refers to. */
function envNames(value: unknown, out: Set<string>): Set<string> {
  if (Array.isArray(value)) for (const v of value) envNames(v, out);
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      if (k.endsWith('Env') && typeof v === 'string') out.add(v);
      else envNames(v, out);
    }
  }
  return out;
}

function dnsName(name: string, what: string): string {
  if (name.length > 63 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
    throw new InputError(`${what} "${name}" is not a valid Kubernetes name (at most 63 characters)`);
  return name;
}

/**
 * Renders the Tekton resources of a pipeline: `pipeline.yaml` (the Pipeline), `task-<name>.yaml`
 * (one Task each), `configmap.yaml` (the document) and `pipelinerun.yaml` (an example run).
 */
export function exportTekton(spec: PipelineSpec, options: TektonExportOptions): Map<string, string> {
  if (options.image === '') throw new InputError('image is empty: give the ai-edge image the steps run');
  const name = spec.metadata.name;
  const tasks = planTasks(spec);
  const params = spec.spec.params ?? [];
  if (params.some((p) => p.name === TEKTON_SECRET_PARAM)) {
    throw new InputError(
      `pipeline.spec.params declares "${TEKTON_SECRET_PARAM}", which the Tekton export uses for the Secret name`,
    );
  }
  const labels = { ...(spec.metadata.labels ?? {}), 'app.kubernetes.io/managed-by': 'aiedge' };
  const configMap = dnsName(`${name}-pipeline`, 'ConfigMap name');
  const paramSpecs = [
    ...params.map((p) => {
      const value = options.params?.[p.name] ?? p.default;
      return {
        name: p.name,
        type: 'string',
        ...(p.description !== undefined ? { description: p.description } : {}),
        ...(value !== undefined ? { default: value } : {}),
      };
    }),
    {
      name: TEKTON_SECRET_PARAM,
      type: 'string',
      description: 'Secret holding the environment variables the pipeline names (…Env fields), by name',
      default: options.secretName ?? 'aiedge-secrets',
    },
  ];
  const sections = spec.spec as Record<string, unknown>;
  const files = new Map<string, string>();

  for (const task of tasks) {
    const env = new Set<string>();
    for (const section of SECRET_SECTIONS[task.uses]) envNames(sections[section], env);
    const taskDoc = {
      apiVersion: 'tekton.dev/v1',
      kind: 'Task',
      metadata: { name: dnsName(`${name}-${task.name}`, `Task name for ${task.name}`), labels },
      spec: {
        description: `ai-edge task ${task.name} (${task.uses}) of pipeline ${name}`,
        params: paramSpecs,
        workspaces: [
          { name: 'run', description: 'The run workspace, shared by every task' },
          { name: 'pipeline', description: 'The pipeline document (pipeline.yaml)', readOnly: true },
        ],
        results: Object.keys(RESULTS[task.uses]).map((r) => ({ name: r, type: 'string' })),
        steps: [
          {
            name: 'run',
            image: options.image,
            command: ['aiedge'],
            args: [
              'pipeline',
              'task',
              task.name,
              '-f',
              TEKTON_PIPELINE_FILE,
              '--workspace',
              '$(workspaces.run.path)',
              '--results-dir',
              TEKTON_RESULTS_DIR,
              ...params.flatMap((p) => ['--param', `${p.name}=$(params.${p.name})`]),
            ],
            env: [
              { name: 'HOME', value: '$(workspaces.run.path)' },
              ...[...env].sort().map((e) => ({
                name: e,
                valueFrom: { secretKeyRef: { name: `$(params.${TEKTON_SECRET_PARAM})`, key: e } },
              })),
            ],
          },
        ],
      },
    };
    files.set(`task-${task.name}.yaml`, stringify(taskDoc));
  }

  const pipelineDoc = {
    apiVersion: 'tekton.dev/v1',
    kind: 'Pipeline',
    metadata: { name, labels },
    spec: {
      description: `ai-edge pipeline ${name} (exported by aiedge pipeline export)`,
      params: paramSpecs,
      workspaces: [
        { name: 'run', description: 'The run workspace (a PersistentVolumeClaim), shared by every task' },
        { name: 'pipeline', description: `The pipeline document: ConfigMap ${configMap}` },
      ],
      tasks: tasks.map((t) => ({
        name: t.name,
        taskRef: { kind: 'Task', name: `${name}-${t.name}` },
        ...(t.runAfter.length > 0 ? { runAfter: t.runAfter } : {}),
        ...(t.retries > 0 ? { retries: t.retries } : {}),
        ...(t.timeoutSeconds !== undefined ? { timeout: `${t.timeoutSeconds}s` } : {}),
        params: paramSpecs.map((p) => ({ name: p.name, value: `$(params.${p.name})` })),
        workspaces: [
          { name: 'run', workspace: 'run' },
          { name: 'pipeline', workspace: 'pipeline' },
        ],
      })),
      results: tasks.flatMap((t) =>
        Object.keys(RESULTS[t.uses]).map((r) => ({
          name: `${t.name}-${r}`,
          type: 'string',
          value: `$(tasks.${t.name}.results.${r})`,
        })),
      ),
    },
  };
  files.set('pipeline.yaml', stringify(pipelineDoc));

  files.set(
    'configmap.yaml',
    stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: configMap, labels },
      data: { 'pipeline.yaml': options.document ?? stringify(spec) },
    }),
  );

  files.set(
    'pipelinerun.yaml',
    stringify({
      apiVersion: 'tekton.dev/v1',
      kind: 'PipelineRun',
      metadata: { generateName: `${name}-`, labels },
      spec: {
        pipelineRef: { name },
        params: paramSpecs.filter((p) => p.default === undefined).map((p) => ({ name: p.name, value: '' })),
        workspaces: [
          {
            name: 'run',
            volumeClaimTemplate: {
              spec: {
                accessModes: ['ReadWriteOnce'],
                resources: { requests: { storage: options.workspaceSize ?? '5Gi' } },
              },
            },
          },
          { name: 'pipeline', configMap: { name: configMap } },
        ],
      },
    }),
  );
  return files;
}
