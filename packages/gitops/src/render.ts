/** Renders the GitOps repository (intents, per-site manifests, Argo CD ApplicationSet) from specs. */
import { stringify } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import {
  DEFAULT_NAMESPACE,
  DEFAULT_OTLP_ENDPOINT,
  DEFAULT_PORT,
  DEFAULT_RESOURCES,
  parseInputs,
  sanitizeLabelValue,
  selectorMatches,
  type DeploymentSpec,
  type SiteSpec,
} from './model.js';

/** Input of renderRepository. */
export interface RenderInput {
  /** What to deploy. */
  readonly deployments: readonly DeploymentSpec[];
  /** Where: every site gets a directory, even with nothing to run. */
  readonly sites: readonly SiteSpec[];
  /** URL of the Git repository Argo CD reads. */
  readonly repoUrl: string;
  /** Git revision Argo CD follows (default HEAD). */
  readonly revision?: string;
  /** Render the ACM pull-model ApplicationSet (placement decisions) instead of the git directory generator. */
  readonly acmPullModel?: boolean;
}

/** Namespace of the Argo CD instance the ApplicationSet is applied to. */
export const ARGOCD_NAMESPACE = 'openshift-gitops';
/** Name of the rendered ApplicationSet. */
export const APPLICATIONSET_NAME = 'aiedge-sites';
/** Name of the ACM Placement the pull-model ApplicationSet follows. */
export const ACM_PLACEMENT_NAME = 'aiedge-sites';
/** Name of the inference container in rendered Deployments. */
export const CONTAINER_NAME = 'inference';

type Obj = Record<string, unknown>;

const YAML_OPTIONS = {
  lineWidth: 0,
  indent: 2,
  sortMapEntries: false,
  aliasDuplicateObjects: false,
} as const;

/** Serializes one object as YAML with the fixed options every rendered file uses. */
export function toYaml(value: unknown): string {
  return stringify(value, YAML_OPTIONS);
}

function sorted(map: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(map ?? {}).sort()) out[key] = (map ?? {})[key] ?? '';
  return out;
}

/** Removes keys whose value is undefined (so YAML output has no nulls). */
function compact<T extends Obj>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

/** Labels of every object rendered for `d`. */
export function workloadLabels(d: DeploymentSpec): Record<string, string> {
  return {
    'app.kubernetes.io/name': d.name,
    'app.kubernetes.io/instance': d.name,
    'app.kubernetes.io/version': sanitizeLabelValue(d.model.version),
    'app.kubernetes.io/component': 'inference',
    'app.kubernetes.io/part-of': 'aiedge',
    'app.kubernetes.io/managed-by': 'aiedge',
    'aiedge.io/model': sanitizeLabelValue(d.model.name),
    'aiedge.io/model-version': sanitizeLabelValue(d.model.version),
  };
}

function workloadAnnotations(d: DeploymentSpec): Record<string, string> {
  // Labels are sanitized; the annotations keep the exact model name and version for readers.
  const a: Record<string, string> = {
    'aiedge.io/model': d.model.name,
    'aiedge.io/model-version': d.model.version,
  };
  if (d.model.sha256 !== undefined) a['aiedge.io/model-sha256'] = d.model.sha256;
  if (d.pipelineRun !== undefined) a['aiedge.io/pipeline-run'] = d.pipelineRun;
  return a;
}

function selectorLabels(d: DeploymentSpec): Record<string, string> {
  return { 'app.kubernetes.io/name': d.name, 'app.kubernetes.io/instance': d.name };
}

function resourcesOf(d: DeploymentSpec): { requests: Obj; limits: Obj } {
  return {
    requests: { ...DEFAULT_RESOURCES.requests, ...d.resources?.requests },
    limits: { ...DEFAULT_RESOURCES.limits, ...d.resources?.limits },
  };
}

/** The Deployment object for `d` at `site`. */
export function renderDeployment(d: DeploymentSpec, site: SiteSpec): Obj {
  const port = d.port ?? DEFAULT_PORT;
  const labels = workloadLabels(d);
  const annotations = workloadAnnotations(d);
  const env = [
    { name: 'AIEDGE_SERVE_PORT', value: String(port) },
    { name: 'OTEL_EXPORTER_OTLP_ENDPOINT', value: site.otlpEndpoint ?? DEFAULT_OTLP_ENDPOINT },
    { name: 'OTEL_SERVICE_NAME', value: d.name },
    ...Object.entries(sorted(d.env)).map(([name, value]) => ({ name, value })),
  ];
  const probe = (path: string, initialDelaySeconds: number): Obj => ({
    httpGet: { path, port: 'http' },
    initialDelaySeconds,
    periodSeconds: 10,
    timeoutSeconds: 2,
    failureThreshold: 3,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: d.name, namespace: d.namespace ?? DEFAULT_NAMESPACE, labels, annotations },
    spec: {
      replicas: d.replicas ?? 1,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selectorLabels(d) },
      template: {
        metadata: { labels, annotations },
        spec: {
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: CONTAINER_NAME,
              image: d.image,
              imagePullPolicy: 'IfNotPresent',
              ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
              env,
              livenessProbe: probe('/v2/health/live', 5),
              readinessProbe: probe(`/v2/models/${d.model.name}/ready`, 2),
              resources: resourcesOf(d),
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          volumes: [{ name: 'tmp', emptyDir: {} }],
        },
      },
    },
  };
}

/** The ClusterIP Service object for `d`. */
export function renderService(d: DeploymentSpec): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: d.name, namespace: d.namespace ?? DEFAULT_NAMESPACE, labels: workloadLabels(d) },
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(d),
      ports: [{ name: 'http', port: d.port ?? DEFAULT_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

/** The OpenShift Route object for `d` (edge TLS). */
export function renderRoute(d: DeploymentSpec): Obj {
  return {
    apiVersion: 'route.openshift.io/v1',
    kind: 'Route',
    metadata: { name: d.name, namespace: d.namespace ?? DEFAULT_NAMESPACE, labels: workloadLabels(d) },
    spec: compact({
      host: d.route?.host,
      to: { kind: 'Service', name: d.name, weight: 100 },
      port: { targetPort: 'http' },
      tls: { termination: 'edge', insecureEdgeTerminationPolicy: 'Redirect' },
      wildcardPolicy: 'None',
    }),
  };
}

function fail(what: string, message: string): never {
  throw new Error(`rendered ${what} is invalid: ${message}`);
}

/** Route has no class in kubernetes-models (it is OpenShift's API): checked structurally here. */
function validateRoute(route: Obj, what: string): void {
  const spec = route['spec'] as Obj | undefined;
  const to = spec?.['to'] as Obj | undefined;
  if (route['apiVersion'] !== 'route.openshift.io/v1' || route['kind'] !== 'Route') fail(what, 'not a Route');
  if (to?.['kind'] !== 'Service' || typeof to['name'] !== 'string') fail(what, 'spec.to must name a Service');
}

/** Checks every rendered object; Deployment and Service with kubernetes-models' JSON schemas. */
function validateObject(obj: Obj, what: string): void {
  if (obj['kind'] === 'Deployment') new Deployment(obj as never).validate();
  else if (obj['kind'] === 'Service') new Service(obj as never).validate();
  else if (obj['kind'] === 'Route') validateRoute(obj, what);
  else fail(what, `unexpected kind ${String(obj['kind'])}`);
}

/** The `sites/<site>/kustomization.yaml` object. Kustomization has no class in kubernetes-models; its shape is fixed here. */
export function renderKustomization(resources: readonly string[]): Obj {
  return {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: [...resources].sort(),
  };
}

/**
 * The Argo CD ApplicationSet: one Application per site directory. ApplicationSet has no class in
 * kubernetes-models (it is Argo CD's CRD); its shape is fixed here and checked by the tests.
 */
export function renderApplicationSet(repoUrl: string, revision: string, acmPullModel: boolean): Obj {
  const syncPolicy = { automated: { prune: true, selfHeal: true }, syncOptions: ['CreateNamespace=true'] };
  const metadata = { name: APPLICATIONSET_NAME, namespace: ARGOCD_NAMESPACE };
  if (!acmPullModel) {
    return {
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'ApplicationSet',
      metadata,
      spec: {
        generators: [{ git: { repoURL: repoUrl, revision, directories: [{ path: 'sites/*' }] } }],
        template: {
          metadata: { name: 'aiedge-{{path.basename}}', labels: { 'app.kubernetes.io/part-of': 'aiedge' } },
          spec: {
            project: 'default',
            source: { repoURL: repoUrl, targetRevision: revision, path: '{{path}}' },
            destination: { name: '{{path.basename}}', namespace: DEFAULT_NAMESPACE },
            syncPolicy,
          },
        },
      },
    };
  }
  // ACM pull model: Applications carry the pull label and the managed-cluster annotation, ACM's
  // propagation controller ships them to each managed cluster whose Argo CD syncs in-cluster.
  return {
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'ApplicationSet',
    metadata,
    spec: {
      generators: [
        {
          clusterDecisionResource: {
            configMapRef: 'acm-placement',
            labelSelector: {
              matchLabels: { 'cluster.open-cluster-management.io/placement': ACM_PLACEMENT_NAME },
            },
            requeueAfterSeconds: 180,
          },
        },
      ],
      template: {
        metadata: {
          name: 'aiedge-{{name}}',
          labels: {
            'app.kubernetes.io/part-of': 'aiedge',
            'apps.open-cluster-management.io/pull-to-ocm-managed-cluster': 'true',
          },
          annotations: {
            'argocd.argoproj.io/skip-reconcile': 'true',
            'apps.open-cluster-management.io/ocm-managed-cluster': '{{name}}',
            'apps.open-cluster-management.io/ocm-managed-cluster-app-namespace': ARGOCD_NAMESPACE,
          },
        },
        spec: {
          project: 'default',
          source: { repoURL: repoUrl, targetRevision: revision, path: 'sites/{{name}}' },
          destination: { server: 'https://kubernetes.default.svc', namespace: DEFAULT_NAMESPACE },
          syncPolicy,
        },
      },
    },
  };
}

/** Renders the whole repository: path → file content, in sorted path order; same input, same bytes. */
export function renderRepository(input: RenderInput): Map<string, string> {
  const { deployments, sites } = parseInputs(input.deployments, input.sites);
  const files = new Map<string, string>();
  for (const d of deployments) {
    files.set(`deployments/${d.name}.yaml`, toYaml(normalizeSpec(d)));
  }
  // A deployment's manifest depends on the site only through its OTLP endpoint: render (and
  // validate) it once per endpoint, not once per site, so thousands of sites cost one render.
  const manifests = new Map<string, string>();
  const kustomizations = new Map<string, string>();
  for (const site of sites) {
    const resources: string[] = [];
    for (const d of deployments) {
      if (!selectorMatches(d.selector, site.labels)) continue;
      const path = `sites/${site.name}/${d.name}.yaml`;
      const key = `${d.name}\0${site.otlpEndpoint ?? ''}`;
      let manifest = manifests.get(key);
      if (manifest === undefined) {
        const objects = [renderDeployment(d, site), renderService(d)];
        if (d.route?.enabled === true) objects.push(renderRoute(d));
        for (const obj of objects) validateObject(obj, `${path} ${String(obj['kind'])}`);
        manifest = objects.map((o) => toYaml(o)).join('---\n');
        manifests.set(key, manifest);
      }
      files.set(path, manifest);
      resources.push(`${d.name}.yaml`);
    }
    const key = resources.join('\0');
    let kustomization = kustomizations.get(key);
    if (kustomization === undefined) {
      kustomization = toYaml(renderKustomization(resources));
      kustomizations.set(key, kustomization);
    }
    files.set(`sites/${site.name}/kustomization.yaml`, kustomization);
  }
  files.set(
    'argocd/applicationset.yaml',
    toYaml(renderApplicationSet(input.repoUrl, input.revision ?? 'HEAD', input.acmPullModel === true)),
  );
  return new Map([...files.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The spec with keys in a fixed order and maps sorted, for the intent file. */
function normalizeSpec(d: DeploymentSpec): Obj {
  return compact({
    name: d.name,
    namespace: d.namespace,
    model: compact({ name: d.model.name, version: d.model.version, sha256: d.model.sha256 }),
    image: d.image,
    selector: sorted(d.selector),
    port: d.port,
    replicas: d.replicas,
    resources: d.resources,
    env: d.env === undefined ? undefined : sorted(d.env),
    route: d.route,
    pipelineRun: d.pipelineRun,
  });
}
