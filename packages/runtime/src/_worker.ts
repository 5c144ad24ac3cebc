/**
 * Inference worker thread: holds one ONNX Runtime session per loaded model version, and decodes,
 * runs and encodes inference requests so that the main thread's event loop never blocks.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { isAiEdgeError } from '@aiedge/protocol';
import {
  decodeRequest,
  encodeResponse,
  errorBody,
  type ModelIO,
  type ResponseTensor,
  type TensorSpec,
} from './codec.js';
import { datatypeOfOrt, ortTypeOf, type TensorArray } from './datatypes.js';
import type { FromWorker, ToWorker, WorkerSettings } from './_worker-protocol.js';

interface Loaded {
  readonly session: ort.InferenceSession;
  readonly io: ModelIO;
}

const port = parentPort;
if (port === null) throw new Error('_worker.ts must run in a worker thread');
const settings = workerData as WorkerSettings;
const sessions = new Map<string, Loaded>();

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

/** Model inputs and outputs from ONNX Runtime's metadata; fails for what OIP cannot carry. */
function ioOf(session: ort.InferenceSession): ModelIO {
  const convert = (list: readonly ort.InferenceSession.ValueMetadata[], kind: string): TensorSpec[] =>
    list.map((m) => {
      if (!m.isTensor) {
        throw new Error(
          `${kind} '${m.name}' is not a tensor (a sequence or map); the Open Inference Protocol carries tensors only`,
        );
      }
      const datatype = datatypeOfOrt(m.type);
      if (datatype === undefined) {
        throw new Error(
          `${kind} '${m.name}' has element type ${m.type}, which has no Open Inference Protocol datatype`,
        );
      }
      return { name: m.name, datatype, shape: m.shape.map((d) => (typeof d === 'number' ? d : -1)) };
    });
  return {
    inputs: convert(session.inputMetadata, 'input'),
    outputs: convert(session.outputMetadata, 'output'),
  };
}

async function load(key: string, path: string): Promise<ModelIO> {
  const session = await ort.InferenceSession.create(path, {
    intraOpNumThreads: settings.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // Idle ONNX Runtime threads sleep instead of spinning: in a server they share the cores with
    // the HTTP event loop and the other workers, and spinning would take their time.
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  let io: ModelIO;
  try {
    io = ioOf(session);
  } catch (error) {
    await session.release();
    throw error;
  }
  const previous = sessions.get(key);
  sessions.set(key, { session, io });
  if (previous !== undefined) await previous.session.release();
  return io;
}

function transferOf(body: Uint8Array): ArrayBuffer[] {
  return body.byteOffset === 0 && body.byteLength === body.buffer.byteLength
    ? [body.buffer as ArrayBuffer]
    : [];
}

async function infer(message: Extract<ToWorker, { type: 'infer' }>): Promise<void> {
  const started = performance.now();
  const reply = (
    status: number,
    body: Uint8Array,
    contentType: string,
    headerLength: number | undefined,
  ): void => {
    const owned = transferOf(body).length > 0 ? body : new Uint8Array(body);
    send(
      {
        type: 'inferred',
        requestId: message.requestId,
        status,
        body: owned,
        contentType,
        headerLength,
        workMs: performance.now() - started,
      },
      transferOf(owned),
    );
  };
  const loaded = sessions.get(message.key);
  if (loaded === undefined) {
    reply(
      503,
      errorBody(`model '${message.modelName}' version ${message.modelVersion} is not loaded`),
      'application/json',
      undefined,
    );
    return;
  }
  let request;
  try {
    request = decodeRequest(message.body, message.headerLength, loaded.io);
  } catch (error) {
    const status = isAiEdgeError(error) ? error.status : 400;
    reply(status, errorBody((error as Error).message), 'application/json', undefined);
    return;
  }
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of request.inputs) {
    feeds[input.name] = new ort.Tensor(ortTypeOf[input.datatype], input.data as never, [...input.shape]);
  }
  let results: ort.InferenceSession.ReturnType;
  try {
    results = await loaded.session.run(
      feeds,
      request.outputs.map((o) => o.name),
    );
  } catch (error) {
    reply(400, errorBody(`inference failed: ${(error as Error).message}`), 'application/json', undefined);
    return;
  }
  try {
    const outputs: ResponseTensor[] = request.outputs.map((o) => {
      const tensor = results[o.name];
      if (tensor === undefined) throw new Error(`ONNX Runtime returned no output '${o.name}'`);
      const datatype = datatypeOfOrt(tensor.type);
      if (datatype === undefined)
        throw new Error(`output '${o.name}' has element type ${tensor.type}, which OIP cannot carry`);
      return {
        name: o.name,
        datatype,
        shape: tensor.dims,
        data: tensor.data as TensorArray,
        binary: o.binary,
      };
    });
    const encoded = encodeResponse({
      modelName: message.modelName,
      modelVersion: message.modelVersion,
      id: request.id,
      outputs,
    });
    reply(200, encoded.body, encoded.contentType, encoded.headerLength);
  } catch (error) {
    reply(500, errorBody((error as Error).message), 'application/json', undefined);
  } finally {
    for (const t of Object.values(results)) t.dispose();
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'load':
      load(message.key, message.path).then(
        (io) => send({ type: 'loaded', requestId: message.requestId, io }),
        (error: unknown) =>
          send({
            type: 'loadFailed',
            requestId: message.requestId,
            message: (error instanceof Error ? error.message : String(error)).replace(/\s+$/, ''),
          }),
      );
      break;
    case 'unload': {
      const loaded = sessions.get(message.key);
      sessions.delete(message.key);
      if (loaded !== undefined) void loaded.session.release();
      break;
    }
    case 'infer':
      void infer(message);
      break;
  }
});
