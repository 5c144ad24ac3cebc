import { mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { parse } from 'yaml';
import { InputError } from '@aiedge/protocol';
import { checkout, readFileAt, readSiteState, renderRepository, type GitRemote } from '@aiedge/gitops';
import { integer } from '@aiedge/runtime';

async function listFiles(root: string, under: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(relative(root, p).split('\\').join('/'));
    }
  };
  await walk(join(root, under));
  return out;
}

async function readYaml(path: string): Promise<unknown> {
  try {
    return parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new InputError(`${path}: ${(error as Error).message.split('\n')[0] ?? ''}`, { cause: error });
  }
}

/** Writes `files` under `out` atomically per file, removes stale rendered files; returns change lines. */
async function writeRendered(out: string, files: Map<string, string>): Promise<string[]> {
  const changes: string[] = [];
  for (const [path, content] of files) {
    const target = join(out, path);
    const old = await readFile(target, 'utf8').catch(() => undefined);
    if (old === content) continue;
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${process.pid}`;
    await writeFile(tmp, content);
    await rename(tmp, target);
    changes.push(`${old === undefined ? 'created' : 'updated'} ${path}`);
  }
  for (const under of ['sites', 'deployments']) {
    for (const path of await listFiles(out, under)) {
      if (files.has(path)) continue;
      await rm(join(out, path));
      changes.push(`removed ${path}`);
    }
  }
  return changes.sort((a, b) => (a.split(' ')[1] ?? '').localeCompare(b.split(' ')[1] ?? ''));
}

/** `aiedge gitops`: render the GitOps repository. */
export function gitopsCommand(): Command {
  const gitops = new Command('gitops').description('Work with the GitOps repository');
  gitops
    .command('render')
    .description('Render per-site manifests and the Argo CD ApplicationSet from deployment and site specs')
    .requiredOption('--deployments <dir>', 'directory of YAML files, one DeploymentSpec each')
    .requiredOption('--sites <file>', 'YAML list of SiteSpec')
    .requiredOption('--out <dir>', 'GitOps repository working tree to write into')
    .option(
      '--repo-url <url>',
      'Git URL Argo CD reads the repository from',
      'https://git.example.com/aiedge/gitops.git',
    )
    .option('--acm-pull-model', 'render the ACM pull-model ApplicationSet (placement decisions)')
    .addHelpText(
      'after',
      `
Writes deployments/<name>.yaml, sites/<site>/<name>.yaml (Deployment + Service [+ Route]),
sites/<site>/kustomization.yaml and argocd/applicationset.yaml; files under sites/ and
deployments/ that are no longer rendered are removed. Prints what changed.

Examples:
  $ aiedge gitops render --deployments ./deployments --sites ./sites.yaml --out ./gitops
  $ aiedge gitops render --deployments ./deployments --sites ./sites.yaml --out ./gitops \\
      --repo-url https://git.example.com/aiedge/gitops.git --acm-pull-model
`,
    )
    .action(
      async (flags: {
        deployments: string;
        sites: string;
        out: string;
        repoUrl: string;
        acmPullModel?: boolean;
      }) => {
        const dir = resolve(flags.deployments);
        const names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
        const deployments = await Promise.all(names.map((n) => readYaml(join(dir, n))));
        const sites = await readYaml(resolve(flags.sites));
        if (!Array.isArray(sites)) throw new InputError(`${flags.sites}: must be a YAML list of sites`);
        const files = renderRepository({
          deployments: deployments as never,
          sites: sites as never,
          repoUrl: flags.repoUrl,
          acmPullModel: flags.acmPullModel === true,
        });
        const changes = await writeRendered(resolve(flags.out), files);
        for (const line of changes) console.log(line);
        if (changes.length === 0) console.log('no changes');
      },
    );
  gitops
    .command('show')
    .description("Show a site's desired state as the agent reads it from the GitOps repository")
    .requiredOption('--repo <url>', 'Git URL (https://, file://, ssh:// or git@host:path)')
    .requiredOption('--site <name>', 'site name (directory sites/<name>)')
    .option('--revision <rev>', 'commit, branch or tag to read (default: the branch head)')
    .option('--branch <name>', 'branch to fetch', 'main')
    .option('--depth <n>', 'history to fetch, enough to reach --revision', '50')
    .addHelpText(
      'after',
      `
Credentials for https come from AIEDGE_GIT_TOKEN (or AIEDGE_GIT_USERNAME + AIEDGE_GIT_PASSWORD);
AIEDGE_GIT_CA names a PEM file to trust. Malformed manifests are reported with the file and field.

Examples:
  $ aiedge gitops show --repo https://git.example.com/aiedge/gitops.git --site edge-1
  $ aiedge gitops show --repo file:///srv/gitops.git --site edge-2 --revision 3f2c1a9
`,
    )
    .action(
      async (flags: { repo: string; site: string; revision?: string; branch: string; depth: string }) => {
        const env = process.env;
        const token = env['AIEDGE_GIT_TOKEN'];
        const username = env['AIEDGE_GIT_USERNAME'];
        const password = env['AIEDGE_GIT_PASSWORD'];
        const caFile = env['AIEDGE_GIT_CA'];
        const remote: GitRemote = {
          url: flags.repo,
          branch: flags.branch,
          ...(token !== undefined
            ? { auth: { token } }
            : username !== undefined && password !== undefined
              ? { auth: { username, password } }
              : {}),
          ...(caFile !== undefined ? { ca: await readFile(resolve(caFile)) } : {}),
        };
        const depth = integer(flags.depth);
        const dir = await mkdtemp(join(tmpdir(), 'aiedge-gitops-show-'));
        try {
          const { head } = await checkout(remote, dir, { depth });
          const revision = flags.revision ?? head;
          const state = await readSiteState((path) => readFileAt(remote, dir, revision, path), flags.site);
          console.log(JSON.stringify({ revision, ...state }, null, 2));
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      },
    );
  return gitops;
}
