// Models made by ai-edge's own code: the example classifier served by `npm start` and the
// benchmark multilayer perceptron.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '@aiedge/protocol';
import { encodeModel, type NodeSpec } from './model-builder.js';
import type { DecodedTensor } from './tensor-proto.js';

/** Name of the example model in a model repository. */
export const EXAMPLE_MODEL_NAME = 'example-classifier';
/** Number of features the example model reads per row. */
export const EXAMPLE_FEATURES = 4;
/** Number of classes the example model scores. */
export const EXAMPLE_CLASSES = 3;
/** Highest version {@link exampleModel} accepts (weights stay small exact integers up to it). */
export const EXAMPLE_MAX_VERSION = 1000;

// scores = features · W_v + b_v with W_v = W_1 + (v - 1)·dW and b_v = b_1 + (v - 1)·db, all small
// integers so float32 arithmetic is exact. For features [1, 2, 3, 4] this gives
// [10 + 30(v-1), 20, 30 - 20(v-1)]: v1 → [10, 20, 30] (label 2), v2 → [40, 20, 10] (label 0).
// Row-major [features][classes].
const W1 = [1, 1, 2, 0, 1, 2, 0, 2, 2, 2, 3, 4] as const;
const DW = [1, 1, -2, 2, -1, -1, 2, 1, -2, 5, 0, -2] as const;
const B1 = [1, -1, 2] as const;
const DB = [-1, -2, -2] as const;

function checkExampleVersion(version: number): number {
  if (!Number.isSafeInteger(version) || version < 1 || version > EXAMPLE_MAX_VERSION) {
    throw new InputError(
      `example model version is ${version}, expected an integer from 1 to ${EXAMPLE_MAX_VERSION}`,
    );
  }
  return version;
}

function exampleWeights(version: number): { w: Float32Array; b: Float32Array } {
  const k = checkExampleVersion(version) - 1;
  return {
    w: Float32Array.from(W1, (w, i) => w + k * (DW[i] ?? 0)),
    b: Float32Array.from(B1, (b, i) => b + k * (DB[i] ?? 0)),
  };
}

/**
 * The example classifier, version `version`: input `features` FP32 [batch, 4]; outputs `scores`
 * FP32 [batch, 3] = features · W_v + b_v and `label` INT64 [batch] = argmax of the scores.
 */
export function exampleModel(version: number): Uint8Array {
  const { w, b } = exampleWeights(version);
  return encodeModel({
    producerName: 'aiedge',
    producerVersion: `example-classifier/${version}`,
    graphName: EXAMPLE_MODEL_NAME,
    inputs: [{ name: 'features', type: 'float32', shape: ['batch', EXAMPLE_FEATURES] }],
    outputs: [
      { name: 'scores', type: 'float32', shape: ['batch', EXAMPLE_CLASSES] },
      { name: 'label', type: 'int64', shape: ['batch'] },
    ],
    initializers: [
      { name: 'W', dims: [EXAMPLE_FEATURES, EXAMPLE_CLASSES], type: 'float32', data: w },
      { name: 'b', dims: [EXAMPLE_CLASSES], type: 'float32', data: b },
    ],
    nodes: [
      { opType: 'MatMul', name: 'matmul', inputs: ['features', 'W'], outputs: ['logits'] },
      { opType: 'Add', name: 'add', inputs: ['logits', 'b'], outputs: ['scores'] },
      {
        opType: 'ArgMax',
        name: 'argmax',
        inputs: ['scores'],
        outputs: ['label'],
        attributes: { axis: { int: 1 }, keepdims: { int: 0 } },
      },
    ],
  });
}

/** The outputs {@link exampleModel}(version) computes for `features` (row-major, batch × 4), in float32. */
export function exampleReference(
  version: number,
  features: Float32Array,
): { scores: Float32Array; label: BigInt64Array } {
  if (features.length % EXAMPLE_FEATURES !== 0) {
    throw new InputError(
      `features has ${features.length} elements, expected a multiple of ${EXAMPLE_FEATURES} (batch × ${EXAMPLE_FEATURES})`,
    );
  }
  const { w, b } = exampleWeights(version);
  const batch = features.length / EXAMPLE_FEATURES;
  const scores = new Float32Array(batch * EXAMPLE_CLASSES);
  const label = new BigInt64Array(batch);
  for (let r = 0; r < batch; r++) {
    let best = 0;
    for (let c = 0; c < EXAMPLE_CLASSES; c++) {
      let acc = 0;
      for (let f = 0; f < EXAMPLE_FEATURES; f++) {
        const x = features[r * EXAMPLE_FEATURES + f] ?? 0;
        acc = Math.fround(acc + Math.fround(x * (w[f * EXAMPLE_CLASSES + c] ?? 0)));
      }
      const score = Math.fround(acc + (b[c] ?? 0));
      scores[r * EXAMPLE_CLASSES + c] = score;
      if (score > (scores[r * EXAMPLE_CLASSES + best] ?? -Infinity)) best = c;
    }
    label[r] = BigInt(best);
  }
  return { scores, label };
}

/** Writes `bytes` to `path` through a temporary file and a rename, so readers never see a partial file. */
async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temp, bytes);
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/**
 * Writes `dir/example-classifier/<v>/model.onnx` for each version (atomically) and returns the
 * paths written.
 */
export async function writeExampleModelRepository(dir: string, versions: number[] = [1]): Promise<string[]> {
  versions.forEach(checkExampleVersion);
  const seen = new Set<number>();
  const paths: string[] = [];
  for (const version of versions) {
    if (seen.has(version)) throw new InputError(`versions lists ${version} twice`);
    seen.add(version);
    const versionDir = join(dir, EXAMPLE_MODEL_NAME, String(version));
    await mkdir(versionDir, { recursive: true });
    const path = join(versionDir, 'model.onnx');
    await writeFileAtomic(path, exampleModel(version));
    paths.push(path);
  }
  return paths;
}

/** Layer sizes of the benchmark MLP (about 50 MB of FP32 weights). */
export const BENCH_MLP_SIZES: readonly number[] = Object.freeze([1024, 2048, 2048, 2048, 1024, 16]);

/** Options of {@link mlpModel}. */
export interface MlpModelOptions {
  /** Widths from input to output; at least two, each an integer >= 1. */
  readonly sizes: readonly number[];
  /** Seed of the weight generator (an integer; same seed, same model). */
  readonly seed: number;
}

/** mulberry32: a tiny, fast 32-bit PRNG returning floats in [0, 1) (reproducible weights and inputs). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A multilayer perceptron: input `input` FP32 [batch, sizes[0]], per layer MatMul + Add (+ Relu
 * except after the last), output `output` FP32 [batch, sizes.at(-1)]; Xavier-uniform weights from
 * a seeded PRNG.
 */
export function mlpModel(options: MlpModelOptions): Uint8Array {
  const { sizes, seed } = options;
  if (sizes.length < 2) {
    throw new InputError(`sizes has ${sizes.length} entries, expected at least 2 (input and output widths)`);
  }
  sizes.forEach((s, i) => {
    if (!Number.isSafeInteger(s) || s < 1)
      throw new InputError(`sizes[${i}] is ${s}, expected an integer >= 1`);
  });
  if (!Number.isSafeInteger(seed)) throw new InputError(`seed is ${seed}, expected an integer`);

  const random = mulberry32(seed);
  const initializers: DecodedTensor[] = [];
  const nodes: NodeSpec[] = [];
  const layers = sizes.length - 1;
  let current = 'input';
  for (let l = 0; l < layers; l++) {
    const fanIn = sizes[l] as number;
    const fanOut = sizes[l + 1] as number;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    // Weights go straight into the Float32Array that becomes raw_data (no intermediate copies).
    const weight = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < weight.length; i++) weight[i] = (2 * random() - 1) * limit;
    const bias = new Float32Array(fanOut);
    for (let i = 0; i < bias.length; i++) bias[i] = (2 * random() - 1) * 0.01;
    const prefix = `layer${l}`;
    initializers.push(
      { name: `${prefix}.weight`, dims: [fanIn, fanOut], type: 'float32', data: weight },
      { name: `${prefix}.bias`, dims: [fanOut], type: 'float32', data: bias },
    );
    const last = l === layers - 1;
    const added = last ? 'output' : `${prefix}.add`;
    nodes.push(
      {
        opType: 'MatMul',
        name: `${prefix}.matmul`,
        inputs: [current, `${prefix}.weight`],
        outputs: [`${prefix}.matmul`],
      },
      {
        opType: 'Add',
        name: `${prefix}.add`,
        inputs: [`${prefix}.matmul`, `${prefix}.bias`],
        outputs: [added],
      },
    );
    current = added;
    if (!last) {
      nodes.push({ opType: 'Relu', name: `${prefix}.relu`, inputs: [added], outputs: [`${prefix}.relu`] });
      current = `${prefix}.relu`;
    }
  }
  return encodeModel({
    producerName: 'aiedge',
    producerVersion: `mlp/${sizes.join('x')}/seed${seed}`,
    graphName: 'mlp',
    inputs: [{ name: 'input', type: 'float32', shape: ['batch', sizes[0] as number] }],
    outputs: [{ name: 'output', type: 'float32', shape: ['batch', sizes.at(-1) as number] }],
    initializers,
    nodes,
  });
}
