// Public surface of the ONNX protobuf tooling (re-exported by the package entry).
export {
  OnnxDataType,
  decodeTensorProto,
  elementCount,
  encodeTensorProto,
  onnxDataTypeOf,
  ortTensorTypeOf,
  ortTensorTypeOfOnnx,
  type DecodedTensor,
  type DecodedTensorData,
  type OrtTensorType,
} from './tensor-proto.js';
export {
  DEFAULT_IR_VERSION,
  DEFAULT_OPSET,
  DEFAULT_PRODUCER_NAME,
  encodeModel,
  readModelInfo,
  type AttributeValue,
  type ModelInfo,
  type ModelSpec,
  type NodeSpec,
  type OpsetImport,
  type ValueInfoSpec,
} from './model-builder.js';
export {
  BENCH_MLP_SIZES,
  EXAMPLE_CLASSES,
  EXAMPLE_FEATURES,
  EXAMPLE_MAX_VERSION,
  EXAMPLE_MODEL_NAME,
  exampleModel,
  exampleReference,
  mlpModel,
  mulberry32,
  writeExampleModelRepository,
  type MlpModelOptions,
} from './generators.js';
