/**
 * `npm run bench:serve`: the inference server against the physical limit of its runtime.
 *
 * For each model it measures, side by side and at several concurrencies:
 *  - raw:         one onnxruntime-node InferenceSession in this process (default session options),
 *                 `concurrency` loops of `await session.run(feeds)`;
 *  - REST JSON:   POST /v2/models/<m>/infer with JSON tensors in and out;
 *  - REST binary: the same with Triton's binary tensor extension in and out.
 * The server (`aiedge serve` with its default workers and intra-op threads) runs in a child
 * process; the load generator is undici with keep-alive connections and pre-encoded bodies.
 * Every response must be 200, and sampled responses must match raw's outputs within 1e-4, or the
 * benchmark fails (exit 1). Otherwise it exits 0 and prints whether the targets are MET.
 *
 * Usage: npm run bench:serve -- [--seconds N] [--warmup N] [--concurrency 1,8,32]
 *          [--models mnist,mlp] [--batches 1,8] [--workers N] [--intra-op-threads N]
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { Pool } from 'undici';
import { BENCH_MLP_SIZES, mlpModel, mulberry32 } from '@aiedge/runtime';
import { runSlice, summarize, type LoadResult, type Operation, type Slice } from './_load.js';
import { startServerProcess, type ServerProcess } from './_server-process.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MNIST_FIXTURE = resolve(REPO_ROOT, '../shared/fixtures/models/onnx-mnist/1/mnist.onnx');
/** Distinct inputs per model, sent round-robin (each checked against its own raw outputs). */
const INPUTS = 4;
/** Besides each input's first response, every SAMPLE-th response is checked against raw. */
const SAMPLE = 7;
/** Outputs may differ from raw by this much (absolute; relative for values above 1). */
const TOLERANCE = 1e-4;
/** Warmup before the second and later slices of a cell (the first gets --warmup). */
const REWARM_SECONDS = 0.25;
const MODES = ['raw', 'REST JSON', 'REST binary'] as const;
type Mode = (typeof MODES)[number];

const HELP = `Usage: npm run bench:serve -- [options]

  --seconds N            measurement seconds per cell (env BENCH_SECONDS; default 4)
  --rounds N             split each cell's measurement into N slices, interleaving raw, JSON and
                         binary slices round by round (env BENCH_ROUNDS; default 4)
  --warmup N             warmup seconds per cell before its first slice (env BENCH_WARMUP_SECONDS;
                         default 1); later slices get ${REWARM_SECONDS} s
  --concurrency LIST     comma-separated concurrencies (default 1,8,32)
  --models LIST          mnist and/or mlp (default mnist,mlp)
  --batches LIST         batch sizes of the mlp rows (default 1,8)
  --workers N            pass --workers N to aiedge serve (default: the server's default)
  --intra-op-threads N   pass --intra-op-threads N to aiedge serve (default: the server's default)
`;

interface Settings {
  readonly seconds: number;
  readonly rounds: number;
  readonly warmupSeconds: number;
  readonly concurrency: readonly number[];
  readonly models: readonly string[];
  readonly batches: readonly number[];
  readonly serverArgs: readonly string[];
}

function positive(name: string, text: string, integer: boolean, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || value > max || (integer && !Number.isInteger(value))) {
    throw new Error(`${name} is '${text}', expected ${integer ? 'an integer' : 'a number'} in (0, ${max}]`);
  }
  return value;
}

function list(name: string, text: string, max: number): number[] {
  return text.split(',').map((part) => positive(name, part.trim(), true, max));
}

function parseSettings(argv: readonly string[]): Settings | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      models: { type: 'string' },
      batches: { type: 'string' },
      workers: { type: 'string' },
      'intra-op-threads': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) return undefined;
  const models = (values.models ?? 'mnist,mlp').split(',').map((m) => m.trim());
  for (const m of models) {
    if (m !== 'mnist' && m !== 'mlp') throw new Error(`--models has '${m}', expected mnist or mlp`);
  }
  const serverArgs: string[] = [];
  if (values.workers !== undefined) {
    serverArgs.push('--workers', String(positive('--workers', values.workers, true, 256)));
  }
  if (values['intra-op-threads'] !== undefined) {
    const n = positive('--intra-op-threads', values['intra-op-threads'], true, 256);
    serverArgs.push('--intra-op-threads', String(n));
  }
  return {
    seconds: positive('--seconds', values.seconds ?? process.env['BENCH_SECONDS'] ?? '4', false, 60),
    rounds: positive('--rounds', values.rounds ?? process.env['BENCH_ROUNDS'] ?? '4', true, 20),
    warmupSeconds: positive(
      '--warmup',
      values.warmup ?? process.env['BENCH_WARMUP_SECONDS'] ?? '1',
      false,
      30,
    ),
    concurrency: list('--concurrency', values.concurrency ?? '1,8,32', 256),
    models,
    batches: list('--batches', values.batches ?? '1,8', 64),
    serverArgs,
  };
}

interface Output {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/** One model (and batch size) with its inputs, raw reference outputs and pre-encoded bodies. */
interface Group {
  readonly id: string;
  readonly title: string;
  readonly model: string;
  readonly batch: number;
  readonly session: ort.InferenceSession;
  readonly feeds: Record<string, ort.Tensor>[];
  readonly references: Output[][];
  readonly json: Buffer[];
  readonly binary: { readonly body: Buffer; readonly headerLength: number }[];
}

async function makeGroup(
  id: string,
  title: string,
  model: string,
  batch: number,
  session: ort.InferenceSession,
  inputName: string,
  shape: readonly number[],
  seed: number,
): Promise<Group> {
  if (!session.inputNames.includes(inputName)) {
    throw new Error(`${model} has inputs ${session.inputNames.join(', ')}, expected '${inputName}'`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  const next = mulberry32(seed);
  const group: Group = {
    id,
    title,
    model,
    batch,
    session,
    feeds: [],
    references: [],
    json: [],
    binary: [],
  };
  for (let k = 0; k < INPUTS; k++) {
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = next();
    const feeds = { [inputName]: new ort.Tensor('float32', data, [...shape]) };
    group.feeds.push(feeds);
    const results = await session.run(feeds);
    group.references.push(
      session.outputNames.map((name) => {
        const tensor = results[name]!;
        if (tensor.type !== 'float32')
          throw new Error(`${model} output '${name}' is ${tensor.type}, not float32`);
        return { name, shape: [...tensor.dims], data: Float32Array.from(tensor.data as Float32Array) };
      }),
    );
    const tensor = { name: inputName, datatype: 'FP32', shape: [...shape] };
    group.json.push(Buffer.from(JSON.stringify({ inputs: [{ ...tensor, data: Array.from(data) }] })));
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ ...tensor, parameters: { binary_data_size: data.byteLength } }],
        parameters: { binary_data_output: true },
      }),
    );
    group.binary.push({
      body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
      headerLength: header.length,
    });
  }
  return group;
}

/** Throws unless `got` has raw's outputs (names, shapes, values within TOLERANCE). */
function checkOutputs(got: readonly Output[], expected: readonly Output[], where: string): void {
  if (got.length !== expected.length) {
    throw new Error(`${where}: ${got.length} outputs, raw has ${expected.length}`);
  }
  for (const want of expected) {
    const out = got.find((o) => o.name === want.name);
    if (out === undefined) throw new Error(`${where}: no output '${want.name}'`);
    if (out.shape.join(',') !== want.shape.join(',')) {
      throw new Error(`${where}: output '${want.name}' shape [${out.shape}], raw has [${want.shape}]`);
    }
    if (out.data.length !== want.data.length) {
      throw new Error(
        `${where}: output '${want.name}' has ${out.data.length} values, raw ${want.data.length}`,
      );
    }
    for (let i = 0; i < want.data.length; i++) {
      const a = out.data[i]!;
      const b = want.data[i]!;
      if (!(Math.abs(a - b) <= TOLERANCE * Math.max(1, Math.abs(b)))) {
        throw new Error(`${where}: output '${want.name}'[${i}] is ${a}, raw gives ${b}`);
      }
    }
  }
}

interface OipOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: number[];
  parameters?: { binary_data_size?: number };
}

/** Outputs of a JSON or binary-extension response body. */
function parseResponse(bytes: Buffer, headerLength: number | undefined): Output[] {
  const jsonEnd = headerLength ?? bytes.length;
  const header = JSON.parse(bytes.subarray(0, jsonEnd).toString('utf8')) as { outputs?: OipOutput[] };
  let at = jsonEnd;
  return (header.outputs ?? []).map((o) => {
    if (o.datatype !== 'FP32') throw new Error(`output '${o.name}' is ${o.datatype}, expected FP32`);
    const size = o.parameters?.binary_data_size;
    if (size === undefined) return { name: o.name, shape: o.shape, data: o.data ?? [] };
    const copy = new Uint8Array(size);
    copy.set(bytes.subarray(at, at + size));
    at += size;
    return { name: o.name, shape: o.shape, data: new Float32Array(copy.buffer) };
  });
}

/** An operation sending one pre-encoded request; checks status always and outputs when sampled. */
function restOperation(pool: Pool, group: Group, binary: boolean, checked: { count: number }): Operation {
  const path = `/v2/models/${group.model}/infer`;
  const requests = Array.from({ length: INPUTS }, (_, k) =>
    binary
      ? {
          body: group.binary[k]!.body,
          headers: {
            'content-type': 'application/octet-stream',
            'inference-header-content-length': String(group.binary[k]!.headerLength),
          },
        }
      : { body: group.json[k]!, headers: { 'content-type': 'application/json' } },
  );
  return async (seq) => {
    const k = seq % INPUTS;
    const request = requests[k]!;
    const response = await pool.request({
      path,
      method: 'POST',
      headers: request.headers,
      body: request.body,
    });
    const bytes = Buffer.from(await response.body.arrayBuffer());
    const where = `${group.title} ${binary ? 'REST binary' : 'REST JSON'} request ${seq}`;
    if (response.statusCode !== 200) {
      throw new Error(`${where}: status ${response.statusCode}: ${bytes.toString('utf8').slice(0, 300)}`);
    }
    if (seq < INPUTS || seq % SAMPLE === 0) {
      const h = response.headers['inference-header-content-length'];
      if (binary && typeof h !== 'string') throw new Error(`${where}: no Inference-Header-Content-Length`);
      checkOutputs(
        parseResponse(bytes, typeof h === 'string' ? Number(h) : undefined),
        group.references[k]!,
        where,
      );
      checked.count++;
    }
  };
}

interface Cell extends LoadResult {
  readonly mode: Mode;
  readonly concurrency: number;
  /** Throughput over raw's at the same concurrency. */
  readonly ratioToRaw: number;
  /** Responses compared with raw's outputs. */
  readonly checked: number;
  /** Throughput of each slice, in order (shows how much the machine drifted). */
  readonly sliceThroughputs: readonly number[];
}

interface Target {
  readonly description: string;
  readonly group: string;
  readonly mode: Mode;
  readonly concurrency: number;
  readonly minRatio: number;
  ratio?: number | undefined;
  met?: boolean | undefined;
}

async function measureGroup(
  group: Group,
  server: ServerProcess,
  settings: Settings,
  progress: () => string,
): Promise<Cell[]> {
  const cells: Cell[] = [];
  for (const concurrency of settings.concurrency) {
    const runs = MODES.map((mode) => {
      const checked = { count: 0 };
      const pool =
        mode === 'raw'
          ? undefined
          : new Pool(server.url, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
      const operation: Operation =
        pool === undefined
          ? async (seq) => {
              await group.session.run(group.feeds[seq % INPUTS]!);
            }
          : restOperation(pool, group, mode === 'REST binary', checked);
      return { mode, checked, pool, operation, seq: { next: 0 }, slices: [] as Slice[] };
    });
    try {
      // Rounds of raw → JSON → binary slices, so the machine's drifts hit every mode alike.
      for (let round = 0; round < settings.rounds; round++) {
        for (const run of runs) {
          const common = { concurrency, operation: run.operation, seq: run.seq, serverPid: server.pid };
          const warmup =
            round === 0 ? settings.warmupSeconds : Math.min(REWARM_SECONDS, settings.warmupSeconds);
          await runSlice({ ...common, seconds: warmup, record: false });
          run.slices.push(
            await runSlice({ ...common, seconds: settings.seconds / settings.rounds, record: true }),
          );
        }
      }
    } finally {
      await Promise.all(runs.map((r) => r.pool?.close()));
    }
    const raw = summarize(runs[0]!.slices);
    for (const run of runs) {
      const result = summarize(run.slices);
      const cell: Cell = {
        mode: run.mode,
        concurrency,
        ...result,
        ratioToRaw: result.throughput / raw.throughput,
        checked: run.checked.count,
        sliceThroughputs: run.slices.map((slice) => Math.round(slice.count / slice.seconds)),
      };
      cells.push(cell);
      console.log(
        `  ${progress()} ${group.title.padEnd(14)} ${run.mode.padEnd(11)} c=${String(concurrency).padEnd(3)} ` +
          `${result.throughput.toFixed(0).padStart(6)} req/s  p50 ${result.p50Ms.toFixed(2)} ms  ` +
          `p99 ${result.p99Ms.toFixed(2)} ms  ${cell.ratioToRaw.toFixed(2)}× raw` +
          (run.mode === 'raw' ? '' : `  (${run.checked.count} responses checked)`),
      );
    }
  }
  return cells;
}

function cores(value: number | undefined): string {
  return value === undefined ? 'n/a' : value.toFixed(2);
}

function table(cells: readonly Cell[]): string {
  const rows = [
    '| mode | concurrency | req/s | p50 ms | p99 ms | × raw | bench CPU (cores) | server CPU (cores) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of cells) {
    rows.push(
      `| ${c.mode} | ${c.concurrency} | ${c.throughput.toFixed(0)} | ${c.p50Ms.toFixed(2)} | ${c.p99Ms.toFixed(2)} | ` +
        `${c.ratioToRaw.toFixed(2)} | ${cores(c.clientCpuCores)} | ${cores(c.serverCpuCores)} |`,
    );
  }
  return rows.join('\n');
}

async function run(settings: Settings): Promise<void> {
  const cpuModel = cpus()[0]?.model ?? 'unknown CPU';
  const machine = {
    cpus: availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    onnxruntimeNode: ort.env.versions.node ?? 'unknown',
  };
  console.log(
    `aiedge serve benchmark: ${machine.cpus} CPUs (${cpuModel}), Node ${machine.node}, onnxruntime-node ${machine.onnxruntimeNode}`,
  );

  const tmp = await mkdtemp(join(tmpdir(), 'aiedge-bench-serve-'));
  let server: ServerProcess | undefined;
  const sessions: ort.InferenceSession[] = [];
  try {
    // The model repository, and one raw session per model with default session options.
    const groups: Group[] = [];
    if (settings.models.includes('mnist')) {
      if (existsSync(MNIST_FIXTURE)) {
        await mkdir(join(tmp, 'mnist', '1'), { recursive: true });
        await copyFile(MNIST_FIXTURE, join(tmp, 'mnist', '1', 'model.onnx'));
        const session = await ort.InferenceSession.create(join(tmp, 'mnist', '1', 'model.onnx'));
        sessions.push(session);
        groups.push(await makeGroup('mnist', 'mnist', 'mnist', 1, session, 'Input3', [1, 1, 28, 28], 11));
      } else {
        console.log(`SKIPPED mnist: the fixture ${MNIST_FIXTURE} is missing`);
      }
    }
    if (settings.models.includes('mlp')) {
      const bytes = mlpModel({ sizes: BENCH_MLP_SIZES, seed: 1 });
      const file = join(tmp, 'mlp', '1', 'model.onnx');
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, bytes);
      console.log(`generated mlp ${BENCH_MLP_SIZES.join('x')} (${(bytes.length / 1e6).toFixed(1)} MB)`);
      const session = await ort.InferenceSession.create(file);
      sessions.push(session);
      for (const batch of settings.batches) {
        groups.push(
          await makeGroup(
            `mlp-b${batch}`,
            `mlp batch ${batch}`,
            'mlp',
            batch,
            session,
            'input',
            [batch, BENCH_MLP_SIZES[0]!],
            100 + batch,
          ),
        );
      }
    }
    if (groups.length === 0) throw new Error('no model to benchmark');

    server = await startServerProcess({
      cwd: REPO_ROOT,
      modelRepository: tmp,
      extraArgs: settings.serverArgs,
      readyTimeoutSeconds: 180,
    });
    const chosen = settings.serverArgs.length === 0 ? "the server's defaults" : settings.serverArgs.join(' ');
    console.log(
      `server: ${server.url} pid ${server.pid}, workers=${server.workers} intraOpThreads=${server.intraOpThreads} (${chosen})`,
    );
    const total = groups.length * settings.concurrency.length * MODES.length;
    const rewarm = Math.min(REWARM_SECONDS, settings.warmupSeconds);
    const estimate = total * (settings.seconds + settings.warmupSeconds + (settings.rounds - 1) * rewarm);
    console.log(
      `${total} cells × (${settings.warmupSeconds} s warmup + ${settings.seconds} s in ${settings.rounds} interleaved slices) ≈ ${Math.ceil(estimate)} s`,
    );
    const loadBefore = loadavg()[0]!;
    if (loadBefore > 0.5) {
      console.log(
        `WARNING: load average ${loadBefore.toFixed(2)} before the run; other processes skew results`,
      );
    }
    console.log('');

    let done = 0;
    const progress = (): string => `[${String(++done).padStart(String(total).length)}/${total}]`;
    const results: { group: Group; cells: Cell[] }[] = [];
    for (const group of groups) {
      results.push({ group, cells: await measureGroup(group, server, settings, progress) });
    }

    const targets: Target[] = [
      {
        description: 'REST binary ≥ 0.9× raw at concurrency 8 on the mlp (batch 1)',
        group: 'mlp-b1',
        mode: 'REST binary',
        concurrency: 8,
        minRatio: 0.9,
      },
      {
        description: 'REST JSON ≥ 0.7× raw at concurrency 8 on the mlp (batch 1)',
        group: 'mlp-b1',
        mode: 'REST JSON',
        concurrency: 8,
        minRatio: 0.7,
      },
    ];
    for (const target of targets) {
      const cell = results
        .find((r) => r.group.id === target.group)
        ?.cells.find((c) => c.mode === target.mode && c.concurrency === target.concurrency);
      target.ratio = cell?.ratioToRaw;
      target.met = cell === undefined ? undefined : cell.ratioToRaw >= target.minRatio;
    }

    console.log(
      `\nResults (${settings.seconds} s per cell in ${settings.rounds} interleaved slices after ${settings.warmupSeconds} s warmup; server workers=${server.workers}, intraOpThreads=${server.intraOpThreads}; raw = one InferenceSession, default options)`,
    );
    for (const { group, cells } of results) {
      console.log(`\n### ${group.title}\n\n${table(cells)}`);
    }
    console.log('\nTargets:');
    for (const t of targets) {
      const verdict = t.met === undefined ? 'NOT MEASURED' : t.met ? 'MET' : 'NOT MET';
      const ratio = t.ratio === undefined ? '' : ` (measured ${t.ratio.toFixed(2)}×)`;
      console.log(`  ${verdict.padEnd(12)} ${t.description}${ratio}`);
    }

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const out = join(REPO_ROOT, 'bench-results', `serve-${stamp}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(
      out,
      `${JSON.stringify(
        {
          benchmark: 'serve',
          time: new Date().toISOString(),
          command: ['npm run bench:serve --', ...process.argv.slice(2)].join(' '),
          machine,
          loadAverageBefore: loadBefore,
          settings,
          server: { workers: server.workers, intraOpThreads: server.intraOpThreads, args: server.args },
          groups: results.map(({ group, cells }) => ({
            id: group.id,
            model: group.model,
            batch: group.batch,
            cells,
          })),
          targets,
        },
        null,
        2,
      )}\n`,
    );
    console.log(`\nwrote ${out}`);
  } finally {
    await server?.stop();
    for (const s of sessions) await s.release();
    await rm(tmp, { recursive: true, force: true });
  }
}

try {
  const settings = parseSettings(process.argv.slice(2));
  if (settings === undefined) console.log(HELP);
  else await run(settings);
} catch (error) {
  console.error(`\nbench:serve FAILED: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
