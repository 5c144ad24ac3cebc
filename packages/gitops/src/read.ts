/** Reads what a site should run from the GitOps repository (used by site agents). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { InputError, describeValue } from '@aiedge/protocol';
import { DNS_LABEL_PATTERN, PINNED_IMAGE, RESERVED_ENV } from './model.js';
import { CONTAINER_NAME } from './render.js';

/** One deployment as a site agent needs it. */
export interface SiteDeployment {
  readonly name: string;
  readonly namespace: string;
  readonly model: { readonly name: string; readonly version: string };
  /** Image reference, pinned by digest. */
  readonly image: string;
  /** The `sha256:…` digest of `image`. */
  readonly imageDigest: string;
  readonly port: number;
  readonly replicas: number;
  /** Environment set by the deployment spec (without the variables aiedge sets itself). */
  readonly env: Record<string, string>;
  readonly resources: { requests: Record<string, string>; limits: Record<string, string> };
  /** HTTP paths of the liveness and readiness probes. */
  readonly probes: { readonly liveness: string; readonly readiness: string };
  readonly modelSha256?: string;
  readonly pipelineRun?: string;
  /** The Deployment object as read from the repository (what `podman kube play` runs). */
  readonly manifest?: Readonly<Record<string, unknown>>;
}

/** What one site should run. */
export interface SiteState {
  readonly site: string;
  /** Sorted by name. */
  readonly deployments: SiteDeployment[];
}

/** Reads a repository file by its path from the root (`sites/a/x.yaml`); undefined when absent. */
export type FileReader = (path: string) => Promise<string | undefined> | string | undefined;

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseYaml(text: string, file: string): unknown[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new InputError(`${file}: not YAML`);
  const out: unknown[] = [];
  for (const doc of docs) {
    const error = doc.errors[0];
    if (error !== undefined)
      throw new InputError(`${file}: invalid YAML: ${error.message.split('\n')[0] ?? ''}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

function checkResourcePath(resource: unknown, file: string, i: number): string {
  const at = `${file}: resources[${i}]`;
  if (typeof resource !== 'string' || resource === '')
    throw new InputError(`${at} is ${describeValue(resource)}: must be a file name`);
  if (
    /^[a-z][a-z0-9+.-]*:\/\//i.test(resource) ||
    /^(github\.com|gitlab\.com|bitbucket\.org)\//.test(resource)
  ) {
    throw new InputError(
      `${at} "${resource}" is a remote resource; only files inside the site directory are allowed`,
    );
  }
  if (resource.startsWith('/') || resource.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new InputError(`${at} "${resource}" is outside the site directory`);
  }
  return resource;
}

/** Reads and checks one Deployment object; `what` prefixes error messages. */
function readDeployment(obj: Obj, file: string): SiteDeployment {
  const meta = isObj(obj['metadata']) ? obj['metadata'] : {};
  const name = meta['name'];
  if (typeof name !== 'string' || !new RegExp(DNS_LABEL_PATTERN).test(name)) {
    throw new InputError(
      `${file}: Deployment metadata.name is ${describeValue(name)}: must be a DNS-1123 label`,
    );
  }
  const at = `${file}: Deployment ${name}`;
  const bad = (path: string, value: unknown, problem: string): never => {
    throw new InputError(`${at} ${path} ${describeValue(value)} ${problem}`);
  };
  const namespace = meta['namespace'];
  if (typeof namespace !== 'string' || !new RegExp(DNS_LABEL_PATTERN).test(namespace)) {
    bad('metadata.namespace', namespace, 'must be a DNS-1123 label');
  }
  const labels = isObj(meta['labels']) ? meta['labels'] : {};
  const annotations = isObj(meta['annotations']) ? meta['annotations'] : {};
  for (const key of ['aiedge.io/model', 'aiedge.io/model-version']) {
    if (typeof labels[key] !== 'string' || labels[key] === '')
      bad(`metadata.labels["${key}"]`, labels[key], 'is required');
  }
  const exact = (key: string): string => {
    const a = annotations[key];
    return typeof a === 'string' && a !== '' ? a : (labels[key] as string);
  };
  const spec = isObj(obj['spec']) ? obj['spec'] : bad('spec', obj['spec'], 'must be an object');
  const replicas = spec['replicas'] ?? 1;
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    bad('spec.replicas', replicas, 'must be a non-negative integer');
  }
  const template = isObj(spec['template'])
    ? spec['template']
    : bad('spec.template', spec['template'], 'must be an object');
  const podSpec = isObj(template['spec'])
    ? template['spec']
    : bad('spec.template.spec', template['spec'], 'must be an object');
  const containers = podSpec['containers'];
  if (!Array.isArray(containers) || containers.length === 0) {
    bad('spec.template.spec.containers', containers, 'must list at least one container');
  }
  const list = containers as unknown[];
  const index = Math.max(
    0,
    list.findIndex((c) => isObj(c) && c['name'] === CONTAINER_NAME),
  );
  const cpath = `spec.template.spec.containers[${index}]`;
  const c = isObj(list[index]) ? (list[index] as Obj) : bad(cpath, list[index], 'must be an object');
  const image = c['image'];
  if (typeof image !== 'string' || !PINNED_IMAGE.test(image))
    bad(`${cpath}.image`, image, 'is not pinned by digest');
  const img = image as string;
  const ports = Array.isArray(c['ports']) ? (c['ports'] as unknown[]) : [];
  const pi = ports.findIndex((p) => isObj(p) && p['name'] === 'http');
  if (pi < 0) bad(`${cpath}.ports`, c['ports'], "must have a port named 'http'");
  const port = (ports[pi] as Obj)['containerPort'];
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    bad(`${cpath}.ports[${pi}].containerPort`, port, 'must be an integer in 1..65535');
  }
  const env: Record<string, string> = {};
  const envList = c['env'] ?? [];
  if (!Array.isArray(envList)) bad(`${cpath}.env`, envList, 'must be a list');
  (envList as unknown[]).forEach((e, i) => {
    if (
      !isObj(e) ||
      typeof e['name'] !== 'string' ||
      (e['value'] !== undefined && typeof e['value'] !== 'string')
    ) {
      bad(`${cpath}.env[${i}]`, e, 'must have a name and a string value');
    }
    const { name: key, value } = e as { name: string; value?: string };
    if (!(RESERVED_ENV as readonly string[]).includes(key)) env[key] = value ?? '';
  });
  const probePath = (key: string): string => {
    const probe = c[key];
    const path = isObj(probe) && isObj(probe['httpGet']) ? probe['httpGet']['path'] : undefined;
    return typeof path === 'string' && path.startsWith('/')
      ? path
      : bad(`${cpath}.${key}.httpGet.path`, path, 'must be an absolute HTTP path');
  };
  const resources = isObj(c['resources']) ? c['resources'] : {};
  const quantities = (key: string): Record<string, string> => {
    const q = resources[key] ?? {};
    if (!isObj(q)) return bad(`${cpath}.resources.${key}`, q, 'must be an object');
    return Object.fromEntries(Object.entries(q).map(([k, v]) => [k, String(v)]));
  };
  const result: SiteDeployment = {
    name,
    namespace: namespace as string,
    model: { name: exact('aiedge.io/model'), version: exact('aiedge.io/model-version') },
    image: img,
    imageDigest: img.slice(img.indexOf('@') + 1),
    port: port as number,
    replicas: replicas as number,
    env,
    resources: { requests: quantities('requests'), limits: quantities('limits') },
    probes: { liveness: probePath('livenessProbe'), readiness: probePath('readinessProbe') },
  };
  const sha = annotations['aiedge.io/model-sha256'];
  const run = annotations['aiedge.io/pipeline-run'];
  return {
    ...result,
    ...(typeof sha === 'string' ? { modelSha256: sha } : {}),
    ...(typeof run === 'string' ? { pipelineRun: run } : {}),
    manifest: obj,
  };
}

const ALLOWED: Readonly<Record<string, string>> = {
  Deployment: 'apps/v1',
  Service: 'v1',
  Route: 'route.openshift.io/v1',
};

/** Reads `sites/<site>/kustomization.yaml` and the files it lists; throws InputError naming file and field. */
export async function readSiteState(files: FileReader, site: string): Promise<SiteState> {
  if (!new RegExp(DNS_LABEL_PATTERN).test(site)) {
    throw new InputError(`site ${describeValue(site)} must be a DNS-1123 label`);
  }
  const dir = `sites/${site}`;
  const kfile = `${dir}/kustomization.yaml`;
  const ktext = await files(kfile);
  if (ktext === undefined) throw new InputError(`${kfile}: not found`);
  const kdocs = parseYaml(ktext, kfile);
  const k = kdocs[0];
  if (kdocs.length !== 1 || !isObj(k)) throw new InputError(`${kfile}: must hold one Kustomization object`);
  if (k['kind'] !== 'Kustomization' || k['apiVersion'] !== 'kustomize.config.k8s.io/v1beta1') {
    throw new InputError(
      `${kfile}: apiVersion/kind is ${describeValue(k['apiVersion'])}/${describeValue(k['kind'])}, expected kustomize.config.k8s.io/v1beta1/Kustomization`,
    );
  }
  const resources = k['resources'] ?? [];
  if (!Array.isArray(resources))
    throw new InputError(`${kfile}: resources is ${describeValue(resources)}: must be a list`);
  const deployments = new Map<string, SiteDeployment>();
  const listed = (resources as unknown[]).map((r, i) => checkResourcePath(r, kfile, i));
  for (const resource of listed) {
    const file = `${dir}/${resource}`;
    const text = await files(file);
    if (text === undefined) throw new InputError(`${file}: not found (listed in ${kfile})`);
    parseYaml(text, file).forEach((doc, i) => {
      if (!isObj(doc))
        throw new InputError(`${file}: document ${i} is ${describeValue(doc)}: must be an object`);
      const kind = doc['kind'];
      const expected = typeof kind === 'string' ? ALLOWED[kind] : undefined;
      if (expected === undefined) {
        throw new InputError(
          `${file}: document ${i} kind ${describeValue(kind)} is not one of Deployment, Service, Route`,
        );
      }
      if (doc['apiVersion'] !== expected) {
        throw new InputError(
          `${file}: ${String(kind)} apiVersion ${describeValue(doc['apiVersion'])} must be ${expected}`,
        );
      }
      if (kind !== 'Deployment') return;
      const d = readDeployment(doc, file);
      if (deployments.has(d.name)) throw new InputError(`${file}: Deployment ${d.name} is defined twice`);
      deployments.set(d.name, d);
    });
  }
  return {
    site,
    deployments: [...deployments.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

/** readSiteState over a checked-out repository directory `dir`. */
export async function readSiteDir(dir: string, site: string): Promise<SiteState> {
  return readSiteState(async (path) => {
    try {
      return await readFile(join(dir, path), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }, site);
}
