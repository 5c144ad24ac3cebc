export {
  decodeRequest,
  encodeResponse,
  dataToBinary,
  dataToJson,
  type DecodedRequest,
  type EncodedBody,
  type ModelIO,
  type Tensor,
  type TensorSpec,
} from './codec.js';
export { fromFloat16Bits, ortTypeOf, toFloat16Bits, type OrtType, type TensorArray } from './datatypes.js';
export { RuntimeMetrics, type InferenceOutcome } from './metrics.js';
export {
  ServeOptionsSchema,
  parseModelFlag,
  resolveServeOptions,
  type ServeOptions,
  type ServeOptionsInput,
} from './options.js';
export {
  ModelConfigSchema,
  ModelRepository,
  parseModelConfig,
  selectVersions,
  type ExplicitModel,
  type VersionPolicy,
} from './repository.js';
export { startServer, type RunningServer, type ServeDependencies } from './serve.js';
export { RUNTIME_NAME, RUNTIME_VERSION } from './version.js';
export {
  BENCH_MLP_SIZES,
  EXAMPLE_MODEL_NAME,
  OnnxDataType,
  decodeTensorProto,
  encodeModel,
  encodeTensorProto,
  exampleModel,
  exampleReference,
  mlpModel,
  mulberry32,
  readModelInfo,
  writeExampleModelRepository,
  type DecodedTensor,
  type ModelInfo,
  type ModelSpec,
  type NodeSpec,
  type ValueInfoSpec,
} from './onnx/index.js';
export { byteSize, collect, integer, nonNegativeNumber } from './cli-flags.js';
export { serveCommand } from './serve-command.js';
export { bundleRuntime, type RuntimeBundle } from './bundle.js';
