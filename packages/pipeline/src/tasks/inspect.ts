/**
 * `inspect`: finds the one ONNX model among the fetched files (a single `.onnx` file, the
 * OVMS/Triton `<version>/model.onnx` layout, or an MLflow model with an `onnx` flavor), proves
 * ONNX Runtime loads it, and records its signature, size, sha256 and opset.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import ort from 'onnxruntime-node';
import { parse as parseYaml } from 'yaml';
import { InputError, describeValue } from '@aiedge/protocol';
import { ortTypeOf, readModelInfo, type ValueInfoSpec } from '@aiedge/runtime';
import type { InspectedModel, SignatureTensor, TaskContext, TaskImplementation } from '../types.js';

const datatypeByOrt = new Map<string, string>(Object.entries(ortTypeOf).map(([oip, o]) => [o, oip]));
const TRITON = /^(?:(.+)\/)?([1-9]\d*)\/model\.onnx$/;

/** Which file of a fetched model is served, and in which layout it was found. */
export interface ModelLocation {
  /** Path relative to the fetched directory, `/`-separated. */
  readonly path: string;
  readonly layout: InspectedModel['layout'];
}

async function mlflowModel(dir: string, mlmodel: string): Promise<string> {
  let doc: unknown;
  try {
    doc = parseYaml(await readFile(join(dir, mlmodel), 'utf8'));
  } catch (error) {
    throw new InputError(`${mlmodel} is not valid YAML: ${(error as Error).message}`, { cause: error });
  }
  const data = (doc as { flavors?: { onnx?: { data?: unknown } } } | null)?.flavors?.onnx?.data;
  if (typeof data !== 'string' || data === '') {
    const flavors = Object.keys((doc as { flavors?: object } | null)?.flavors ?? {});
    throw new InputError(
      `${mlmodel} has no onnx flavor with a data file (flavors.onnx.data); flavors: ${flavors.join(', ') || 'none'}`,
    );
  }
  const path = posix.normalize(posix.join(posix.dirname(mlmodel), data));
  if (path.startsWith('../') || posix.isAbsolute(path)) {
    throw new InputError(`${mlmodel} flavors.onnx.data ${describeValue(data)} points outside the model`);
  }
  return path;
}

/** Finds the model file among `files` (paths relative to `dir`); `version` picks among Triton versions. */
export async function locateModel(
  dir: string,
  files: readonly string[],
  version: string,
): Promise<ModelLocation> {
  const mlmodels = files.filter((f) => f === 'MLmodel' || f.endsWith('/MLmodel'));
  if (mlmodels.length > 0) {
    const top = mlmodels.filter((f) => !f.includes('/'));
    const chosen = top[0] ?? (mlmodels.length === 1 ? mlmodels[0] : undefined);
    if (chosen === undefined) {
      throw new InputError(`the fetched model has several MLmodel files (${mlmodels.join(', ')}); fetch one`);
    }
    const path = await mlflowModel(dir, chosen);
    if (!files.includes(path)) {
      throw new InputError(`${chosen} names the onnx file ${path}, which was not fetched`);
    }
    return { path, layout: 'mlflow' };
  }
  const triton = files
    .map((f) => ({ f, m: TRITON.exec(f) }))
    .filter((x): x is { f: string; m: RegExpExecArray } => x.m !== null);
  if (triton.length > 0) {
    const match = triton.filter((t) => t.m[2] === version);
    if (match.length === 1) return { path: match[0]!.f, layout: 'triton' };
    if (match.length === 0 && triton.length === 1) return { path: triton[0]!.f, layout: 'triton' };
    throw new InputError(
      `the fetched model repository has ${match.length === 0 ? 'no' : 'several'} version ${version} (spec.model.version) among ${triton.map((t) => t.f).join(', ')}`,
    );
  }
  const onnx = files.filter((f) => f.endsWith('.onnx'));
  if (onnx.length === 1) return { path: onnx[0]!, layout: 'file' };
  if (onnx.length === 0) {
    throw new InputError(
      `the fetched model has no .onnx file, no <version>/model.onnx and no MLmodel; files: ${files.slice(0, 10).join(', ') || 'none'}`,
    );
  }
  throw new InputError(
    `the fetched model has ${onnx.length} .onnx files (${onnx.slice(0, 10).join(', ')}): use the <version>/model.onnx layout or fetch one`,
  );
}

function tensor(spec: ValueInfoSpec, what: string): SignatureTensor {
  const datatype = datatypeByOrt.get(spec.type);
  if (datatype === undefined) throw new InputError(`${what} has type ${spec.type}, which OIP cannot carry`);
  return {
    name: spec.name,
    datatype,
    shape: spec.shape === null ? [] : spec.shape.map((d) => (typeof d === 'number' ? d : -1)),
  };
}

/** Loads the model in ONNX Runtime; a model it cannot load fails with ONNX Runtime's message. */
async function loadInOrt(bytes: Uint8Array, what: string): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  } catch (error) {
    throw new InputError(`ONNX Runtime cannot load ${what}: ${(error as Error).message}`, { cause: error });
  }
  await session.release();
}

/** The `inspect` task. */
export const inspectTask: TaskImplementation = async (context: TaskContext) => {
  const fetched = context.state.fetched;
  if (fetched === undefined) throw new InputError('inspect needs a fetched model: run fetch first');
  const location = await locateModel(
    fetched.dir,
    fetched.files.map((f) => f.path),
    context.spec.spec.model.version,
  );
  const modelPath = join(fetched.dir, ...location.path.split('/'));
  context.log(`model ${location.path} (${location.layout} layout)`);
  const bytes = new Uint8Array(await readFile(modelPath));
  await loadInOrt(bytes, location.path);
  let info;
  try {
    info = readModelInfo(bytes);
  } catch (error) {
    throw new InputError(`${location.path}: ${(error as Error).message}`, { cause: error });
  }
  const inspected: InspectedModel = {
    modelPath,
    layout: location.layout,
    bytes: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    inputs: info.inputs.map((t, i) => tensor(t, `inputs[${i}] ${t.name}`)),
    outputs: info.outputs.map((t, i) => tensor(t, `outputs[${i}] ${t.name}`)),
    ...(info.opsetVersion > 0 ? { opset: info.opsetVersion } : {}),
  };
  context.state.inspected = inspected;
  const describe = (ts: readonly SignatureTensor[]): string =>
    ts.map((t) => `${t.name} ${t.datatype}[${t.shape.join(',')}]`).join(', ');
  context.log(`inputs ${describe(inspected.inputs)}; outputs ${describe(inspected.outputs)}`);
  context.log(`sha256 ${inspected.sha256}, ${inspected.bytes} bytes, opset ${info.opsetVersion}`);
  return {
    sha256: inspected.sha256,
    bytes: String(inspected.bytes),
    inputs: describe(inspected.inputs),
    outputs: describe(inspected.outputs),
  };
};
