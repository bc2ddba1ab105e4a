export { GGUF_MAGIC, GGUF_VERSION, ValueType, TENSOR_TYPES, FILE_TYPES } from './format.js';
export * from './reader.js';
export * from './writer.js';
export * from './tiny-llama.js';
export * from './memory-planner.js';
