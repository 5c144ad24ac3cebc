/**
 * The serving runtime as it ships in inference images: `aiedge.js` and `_worker.js` bundled by
 * esbuild (deterministic output), plus onnxruntime-node's JavaScript and the native libraries of
 * one platform. Installed at /opt/aiedge in the image.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { InputError } from '@aiedge/protocol';
import { RUNTIME_VERSION } from './version.js';

/** One file of the bundle, relative to the install directory. */
export type BundleFile =
  | { readonly path: string; readonly mode: number; readonly content: Uint8Array }
  | { readonly path: string; readonly mode: number; readonly file: string; readonly size: number };

/** The runtime's files for one platform. */
export interface RuntimeBundle {
  readonly version: string;
  readonly files: readonly BundleFile[];
}

const ortArch: Readonly<Record<string, string>> = { amd64: 'x64', arm64: 'arm64' };

const here = dirname(fileURLToPath(import.meta.url));
const fromSource = import.meta.url.endsWith('.ts');
const packageRoot = dirname(here);

/** The directory of package `name` as resolved from `from` (works when package.json is not exported). */
async function packageDir(from: string, name: string): Promise<string> {
  let dir = dirname(createRequire(from).resolve(name));
  for (;;) {
    try {
      const text = await readFile(join(dir, 'package.json'), 'utf8');
      if ((JSON.parse(text) as { name?: string }).name === name) return dir;
    } catch {
      // keep walking up
    }
    const parent = dirname(dir);
    if (parent === dir) throw new InputError(`cannot find the directory of package ${name}`);
    dir = parent;
  }
}

/** Every file under `dir` whose relative path passes `keep`, sorted. */
async function listFiles(dir: string, keep: (rel: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && keep(relative(dir, path).split(sep).join('/'))) out.push(path);
    }
  };
  await walk(dir);
  return out.sort();
}

async function packageFiles(
  dir: string,
  installAs: string,
  keep: (rel: string) => boolean,
  mode = 0o644,
): Promise<BundleFile[]> {
  const files = await listFiles(dir, keep);
  return Promise.all(
    files.map(async (file) => ({
      path: `${installAs}/${relative(dir, file).split(sep).join('/')}`,
      mode,
      file,
      size: (await stat(file)).size,
    })),
  );
}

/** Bundles the runtime for `architecture` (OCI names: amd64, arm64) on Linux. */
export async function bundleRuntime(options: { readonly architecture: string }): Promise<RuntimeBundle> {
  const arch = ortArch[options.architecture];
  if (arch === undefined) {
    throw new InputError(
      `platform architecture '${options.architecture}' has no ONNX Runtime build in onnxruntime-node; expected amd64 or arm64`,
    );
  }
  const ext = fromSource ? 'ts' : 'js';
  const result = await build({
    entryPoints: { aiedge: join(here, `bin.${ext}`), _worker: join(here, `_worker.${ext}`) },
    absWorkingDir: packageRoot,
    outdir: 'bundle',
    write: false,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['onnxruntime-node'],
    conditions: fromSource ? ['@aiedge/source'] : [],
    minify: true,
    keepNames: true,
    legalComments: 'none',
    charset: 'utf8',
    logLevel: 'silent',
    // CommonJS dependencies call require() for Node built-ins; give the ESM bundle one.
    banner: {
      js: "import { createRequire as __aiedgeRequire } from 'node:module'; const require = __aiedgeRequire(import.meta.url);",
    },
  });
  const bundled: BundleFile[] = result.outputFiles
    .map((f) => ({
      path: relative(join(packageRoot, 'bundle'), f.path).split(sep).join('/'),
      mode: 0o644,
      content: f.contents,
    }))
    .sort((a, b) => (a.path < b.path ? -1 : 1));
  const ortDir = await packageDir(import.meta.url, 'onnxruntime-node');
  const commonDir = await packageDir(pathToFileURL(join(ortDir, 'package.json')).href, 'onnxruntime-common');
  const jsOnly = (rel: string): boolean =>
    rel === 'package.json' ||
    (rel.startsWith('dist/') && (rel.endsWith('.js') || rel.endsWith('/package.json')));
  const native = `bin/napi-v6/linux/${arch}/`;
  const ort = await packageFiles(
    ortDir,
    'node_modules/onnxruntime-node',
    (rel) => jsOnly(rel) || rel.startsWith(native),
  );
  if (!ort.some((f) => f.path.endsWith('onnxruntime_binding.node'))) {
    throw new InputError(`onnxruntime-node at ${ortDir} has no native binding for linux/${arch}`);
  }
  const common = await packageFiles(commonDir, 'node_modules/onnxruntime-common', jsOnly);
  const manifest = new TextEncoder().encode(
    `${JSON.stringify({ name: 'aiedge-runtime', version: RUNTIME_VERSION, type: 'module', private: true }, null, 2)}\n`,
  );
  return {
    version: RUNTIME_VERSION,
    files: [...bundled, { path: 'package.json', mode: 0o644, content: manifest }, ...common, ...ort],
  };
}
