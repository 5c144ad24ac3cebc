/**
 * Where the time of `aiedge image build` goes, measured in this process with the library's own
 * functions on the benchmark's model (nothing here is part of the timed comparison): the model's
 * sha256, the model layer (tar + gzip) at several gzip levels, the runtime bundle and the host base
 * that every build recomputes for its cache keys, the start-up of the CLI itself, and what other
 * zlib settings would cost on the same bytes.
 */

const gzip = promisify(gzipCallback);
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip, gzip as gzipCallback, type ZlibOptions } from 'node:zlib';
import { build } from 'esbuild';
import {
  ContentStore,
  Digester,
  buildLayer,
  hostBase,
  modelLayer,
  sortEntries,
  tarStream,
  withParents,
  type TarEntry,
} from '@aiedge/oci';
import { bundleRuntime } from '@aiedge/runtime';

/** One measured step. */
export interface ProfileStep {
  readonly step: string;
  /** Median seconds over the repeats. */
  readonly seconds: number;
  readonly repeats: number;
  /** Bytes written (layers) where that matters. */
  readonly bytes?: number;
  readonly note?: string;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { seconds: (performance.now() - started) / 1000, value };
}

/**
 * writeLayer's pipeline (tar → diffID hash → gzip → store, which hashes again) with zlib options
 * writeLayer does not expose; for timing only (the gzip header is not pinned).
 */
async function layerWith(store: ContentStore, entries: TarEntry[], options: ZlibOptions): Promise<number> {
  const diff = new Digester();
  const writer = store.writer();
  await pipeline(
    async function* hashTar() {
      for await (const chunk of tarStream(sortEntries(withParents(entries)))) {
        diff.update(chunk);
        yield chunk;
      }
    },
    createGzip(options),
    async (gzip: AsyncIterable<Buffer>) => {
      for await (const chunk of gzip) await writer.write(chunk);
    },
  );
  diff.digest();
  return (await writer.commit()).size;
}

function spawnSeconds(command: string, args: readonly string[], cwd: string): number {
  const started = performance.now();
  const r = spawnSync(command, [...args], { cwd, stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${r.status}`);
  return (performance.now() - started) / 1000;
}

/** Measures the parts of a model build on `modelDir` (a directory with model.onnx). */
export async function profileBuild(options: {
  readonly repoRoot: string;
  readonly modelDir: string;
  readonly scratch: string;
  readonly log: (line: string) => void;
}): Promise<ProfileStep[]> {
  const { repoRoot, modelDir, scratch, log } = options;
  const steps: ProfileStep[] = [];
  const add = (step: ProfileStep): void => {
    steps.push(step);
    log(
      `  ${step.step.padEnd(72)} ${step.seconds.toFixed(2).padStart(6)} s` +
        (step.bytes !== undefined ? `  ${(step.bytes / 1e6).toFixed(1)} MB` : '') +
        (step.note !== undefined ? `  (${step.note})` : ''),
    );
  };

  // Start-up: node alone, node + tsx, and the CLI loaded through tsx (as the benchmark runs it).
  const startup = (args: readonly string[]): number =>
    median([0, 1, 2].map(() => spawnSeconds(process.execPath, args, repoRoot)));
  add({ step: 'node -e 0', seconds: startup(['-e', '0']), repeats: 3 });
  add({ step: 'node --import tsx -e 0', seconds: startup(['--import', 'tsx', '-e', '0']), repeats: 3 });
  add({
    step: 'aiedge --version (CLI modules through tsx)',
    seconds: startup([
      '--conditions=@aiedge/source',
      '--import',
      'tsx',
      'packages/cli/src/_test-bin.ts',
      '--version',
    ]),
    repeats: 3,
  });
  // The same CLI bundled into one file (what a compiled CLI could start in; not runnable for builds,
  // since bundleRuntime finds the runtime's sources next to its own module).
  const bundleDir = join(scratch, 'cli-bundle');
  await mkdir(bundleDir, { recursive: true });
  await symlink(join(repoRoot, 'node_modules'), join(bundleDir, 'node_modules'));
  await build({
    entryPoints: [join(repoRoot, 'packages/cli/src/_test-bin.ts')],
    outfile: join(bundleDir, 'aiedge.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    conditions: ['@aiedge/source'],
    external: ['onnxruntime-node', 'esbuild'],
    logLevel: 'error',
    banner: {
      js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);",
    },
  });
  add({
    step: 'aiedge --version, the CLI bundled by esbuild (no tsx)',
    seconds: startup([join(bundleDir, 'aiedge.mjs'), '--version']),
    repeats: 3,
  });

  // Fixed work every build repeats to compute the cache keys of the base and runtime layers.
  const bundles = [];
  for (let i = 0; i < 3; i++) bundles.push(await timed(() => bundleRuntime({ architecture: 'amd64' })));
  add({
    step: 'bundleRuntime (esbuild of aiedge.js + _worker.js)',
    seconds: median(bundles.map((b) => b.seconds)),
    repeats: 3,
  });
  const natives = bundles[0]!.value.files
    .filter(
      (f): f is Extract<typeof f, { file: string }> => 'file' in f && /\.(node|so(\.\d+)*)$/.test(f.path),
    )
    .map((f) => f.file);
  const bases = [];
  for (let i = 0; i < 3; i++) bases.push(await timed(() => hostBase(natives)));
  add({
    step: `hostBase (ldd of node + ${natives.length} native libraries)`,
    seconds: median(bases.map((b) => b.seconds)),
    repeats: 3,
  });

  // The model: hashing, and the layer at gzip levels 6 (the default), 1 and 0.
  const model = join(modelDir, 'model.onnx');
  const hashes = [];
  for (let i = 0; i < 3; i++) {
    hashes.push(
      await timed(async () => {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(model)) hash.update(chunk as Buffer);
        return hash.digest('hex');
      }),
    );
  }
  add({
    step: 'sha256 of model.onnx (read + hash)',
    seconds: median(hashes.map((h) => h.seconds)),
    repeats: 3,
  });
  const layerInput = await timed(() => modelLayer(modelDir, 'bench', '99'));
  add({
    step: 'modelLayer (entries + sha256 of the .onnx)',
    seconds: layerInput.seconds,
    repeats: 1,
    note: 'the model is read once here and again for the tar',
  });
  const store = await ContentStore.open(join(scratch, 'profile-store'));
  try {
    for (const level of [6, 1, 0]) {
      const runs = [];
      for (let i = 0; i < 2; i++) {
        runs.push(
          await timed(() =>
            buildLayer(store, { entries: layerInput.value.entries, createdBy: 'profile', gzipLevel: level }),
          ),
        );
      }
      add({
        step: `model layer: tar + sha256 + gzip level ${level} + store`,
        seconds: median(runs.map((r) => r.seconds)),
        repeats: 2,
        bytes: runs[0]!.value.descriptor.size,
        ...(level === 6 ? { note: 'what image build uses' } : {}),
      });
    }
    // writeLayer's pipeline with zlib options it does not expose: zlib's default 16 KiB output
    // chunks each cost an awaited store write (~6,000 per 100 MB); 1 MiB chunks batch them.
    const MiB = 1024 * 1024;
    const piped: Array<[string, ZlibOptions]> = [
      ['level 6, chunkSize 1 MiB', { level: 6, chunkSize: MiB }],
      ['Z_HUFFMAN_ONLY', { level: 6, strategy: zlibConstants.Z_HUFFMAN_ONLY }],
      [
        'Z_HUFFMAN_ONLY, chunkSize 1 MiB',
        { level: 6, strategy: zlibConstants.Z_HUFFMAN_ONLY, chunkSize: MiB },
      ],
      ['level 0, chunkSize 1 MiB', { level: 0, chunkSize: MiB }],
    ];
    for (const [name, options] of piped) {
      const runs = [];
      for (let i = 0; i < 2; i++)
        runs.push(await timed(() => layerWith(store, layerInput.value.entries, options)));
      add({
        step: `model layer, same pipeline with zlib ${name}`,
        seconds: median(runs.map((r) => r.seconds)),
        repeats: 2,
        bytes: runs[0]!.value,
        note: 'not possible through writeLayer',
      });
    }
  } finally {
    await rm(join(scratch, 'profile-store'), { recursive: true, force: true });
  }

  // zlib alone on the model's bytes in memory: which settings would pay off for FP32 weights.
  const bytes = await readFile(model);
  const variants: Array<[string, ZlibOptions, number]> = [
    ['level 6 (the default)', { level: 6 }, 1],
    ['level 1', { level: 1 }, 1],
    ['level 6, strategy Z_HUFFMAN_ONLY', { level: 6, strategy: zlibConstants.Z_HUFFMAN_ONLY }, 1],
    [
      'level 6, strategy Z_HUFFMAN_ONLY, 2 members in parallel',
      { level: 6, strategy: zlibConstants.Z_HUFFMAN_ONLY },
      2,
    ],
    ['level 6, 2 members in parallel', { level: 6 }, 2],
    ['level 0 (stored)', { level: 0 }, 1],
  ];
  for (const [name, options, parts] of variants) {
    const runs = [];
    for (let i = 0; i < 2; i++) {
      runs.push(
        await timed(async () => {
          const size = Math.ceil(bytes.length / parts);
          const out = await Promise.all(
            Array.from({ length: parts }, (_, k) => gzip(bytes.subarray(k * size, (k + 1) * size), options)),
          );
          return out.reduce((n, b) => n + b.length, 0);
        }),
      );
    }
    add({
      step: `zlib gzip of model.onnx in memory: ${name}`,
      seconds: median(runs.map((r) => r.seconds)),
      repeats: 2,
      bytes: runs[0]!.value,
    });
  }
  return steps;
}
