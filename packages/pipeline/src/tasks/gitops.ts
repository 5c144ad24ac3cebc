/**
 * `gitops`: publishes the deployment intent (the pushed image by digest + the site selector),
 * either to a core (`POST /api/v1/deployments`: the core commits and wakes its agents) or straight
 * to a GitOps repository (rendered with @aiedge/gitops; nothing changed → no commit).
 */
import { readFile, readdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  checkout,
  parseDeploymentSpec,
  parseSiteSpec,
  publishRepository,
  type DeploymentSpec,
  type GitRemote,
  type SiteSpec,
} from '@aiedge/gitops';
import { InputError, UnavailableError, type Deployment, type DeploymentRequest } from '@aiedge/protocol';
import type { GitOpsReport, TaskContext, TaskImplementation } from '../types.js';

/** Author of the commits the pipeline makes. */
export const PIPELINE_AUTHOR = { name: 'aiedge pipeline', email: 'pipeline@aiedge.invalid' } as const;

function secret(context: TaskContext, name: string, what: string): string {
  const value = context.env[name];
  if (value === undefined || value === '') {
    throw new InputError(`${what} names the environment variable ${name}, which is not set`);
  }
  return value;
}

/** The deployment request this run publishes. */
function deploymentRequest(context: TaskContext): DeploymentRequest {
  const spec = context.spec.spec;
  const pushed = context.state.pushed;
  if (pushed === undefined) throw new InputError('gitops needs a pushed image: run push first');
  const deployment = spec.deployment;
  if (deployment === undefined) {
    throw new InputError('spec.deployment (name and selector) is required to publish a deployment');
  }
  const sha256 = context.state.inspected?.sha256;
  return {
    name: deployment.name,
    image: pushed.reference,
    model: {
      name: spec.model.name,
      version: spec.model.version,
      ...(sha256 !== undefined ? { sha256 } : {}),
    },
    selector: { ...deployment.selector },
    ...(deployment.port !== undefined ? { port: deployment.port } : {}),
    ...(deployment.replicas !== undefined ? { replicas: deployment.replicas } : {}),
    ...(deployment.env !== undefined ? { env: { ...deployment.env } } : {}),
    pipelineRun: context.runId,
  };
}

async function publishToCore(
  context: TaskContext,
  core: { url: string; tokenEnv: string },
  request: DeploymentRequest,
): Promise<GitOpsReport> {
  const url = `${core.url.replace(/\/+$/, '')}/api/v1/deployments`;
  const token = secret(context, core.tokenEnv, 'spec.gitops.core.tokenEnv');
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(request),
      signal: AbortSignal.any([context.signal, AbortSignal.timeout(120_000)]),
    });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message;
    throw new UnavailableError(`cannot reach the core at ${url}: ${cause}`, { cause: error });
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const message = (body as { message?: unknown } | undefined)?.message;
    throw new (res.status >= 500 ? UnavailableError : InputError)(
      `the core refused the deployment: POST ${url}: HTTP ${res.status}: ${typeof message === 'string' ? message : text.slice(0, 300)}`,
    );
  }
  const commit = (body as Partial<Deployment> | undefined)?.commit ?? undefined;
  context.log(`core accepted deployment ${request.name}${commit ? ` (commit ${commit})` : ''}`);
  return { ...(commit ? { commit } : {}), branch: 'core', changed: [] };
}

async function readSites(path: string, what: string): Promise<SiteSpec[]> {
  const doc: unknown = parseYaml(await readFile(path, 'utf8'));
  const list = Array.isArray(doc) ? doc : (doc as { sites?: unknown } | null)?.sites;
  if (!Array.isArray(list)) throw new InputError(`${what} ${path} is not a YAML list of {name, labels}`);
  return list.map((s: unknown, i) => parseSiteSpec(s, `${what}[${i}]`));
}

async function existingDeployments(dir: string): Promise<DeploymentSpec[]> {
  let names: string[];
  try {
    names = (await readdir(join(dir, 'deployments'))).filter((n) => n.endsWith('.yaml')).sort();
  } catch {
    return [];
  }
  const out: DeploymentSpec[] = [];
  for (const name of names) {
    const text = await readFile(join(dir, 'deployments', name), 'utf8');
    out.push(parseDeploymentSpec(parseYaml(text), `deployments/${name}`));
  }
  return out;
}

function sameIntent(a: DeploymentSpec, b: DeploymentSpec): boolean {
  const strip = ({ pipelineRun: _, ...rest }: DeploymentSpec): string =>
    JSON.stringify(rest, Object.keys(rest).sort());
  return strip(a) === strip(b) && JSON.stringify(a.model) === JSON.stringify(b.model);
}

async function publishToRepository(context: TaskContext, request: DeploymentRequest): Promise<GitOpsReport> {
  const gitops = context.spec.spec.gitops!;
  const url = gitops.repo!;
  const remote: GitRemote = {
    url,
    branch: gitops.branch ?? 'main',
    ...(gitops.tokenEnv !== undefined
      ? { auth: { token: secret(context, gitops.tokenEnv, 'spec.gitops.tokenEnv') } }
      : {}),
  };
  const workDir = join(context.workspace, 'gitops');
  const { dir } = await checkout(remote, workDir);
  const existing = await existingDeployments(dir);
  let intent = parseDeploymentSpec(request, 'deployment');
  const previous = existing.find((d) => d.name === intent.name);
  // Re-running for the same image is not a change: keep the run that first published it.
  if (previous !== undefined && sameIntent(previous, intent)) intent = previous;
  const deployments = [...existing.filter((d) => d.name !== intent.name), intent];
  let sites: SiteSpec[];
  if (gitops.sites !== undefined) {
    sites = await readSites(
      isAbsolute(gitops.sites) ? gitops.sites : resolve(context.baseDir, gitops.sites),
      'spec.gitops.sites',
    );
  } else {
    const inRepo = await readSites(join(dir, 'sites.yaml'), 'sites.yaml').catch(() => undefined);
    if (inRepo !== undefined) sites = inRepo;
    else {
      const siteDirs = await readdir(join(dir, 'sites')).catch(() => [] as string[]);
      if (siteDirs.length > 0) {
        throw new InputError(
          `the repository has site directories (${siteDirs.slice(0, 5).join(', ')}) but no sites list: set spec.gitops.sites (a YAML list of {name, labels})`,
        );
      }
      context.log('no sites configured: publishing the deployment intent only');
      sites = [];
    }
  }
  const result = await publishRepository({
    remote,
    workDir,
    input: { deployments, sites, repoUrl: url },
    author: PIPELINE_AUTHOR,
    runId: context.runId,
    ...(gitops.review === true ? { review: true } : {}),
  });
  context.log(
    result.commit === undefined
      ? `no change in ${url} (${result.branch} at ${result.head || 'an empty repository'}): no commit`
      : `committed ${result.commit} to ${result.branch} of ${url}: ${result.changed.join(', ')}`,
  );
  return {
    ...(result.commit !== undefined ? { commit: result.commit } : {}),
    branch: result.branch,
    changed: result.changed,
  };
}

/** The `gitops` task. */
export const gitopsTask: TaskImplementation = async (context: TaskContext) => {
  const gitops = context.spec.spec.gitops;
  if (gitops?.core === undefined && gitops?.repo === undefined) {
    throw new InputError('spec.gitops needs core (a core URL) or repo (a Git repository URL)');
  }
  const request = deploymentRequest(context);
  const report =
    gitops.core !== undefined
      ? await publishToCore(context, gitops.core, request)
      : await publishToRepository(context, request);
  context.state.gitops = report;
  return { commit: report.commit ?? '', branch: report.branch };
};
