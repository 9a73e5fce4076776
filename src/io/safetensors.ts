/** The safetensors API: streaming reader, HF-identical writer, and (sharded) checkpoint view. */
export { openSafetensors, type SafetensorsFile, type TensorInfo, type TensorReader } from './safetensors-read.js';
export { writeSafetensors, type TensorToWrite } from './safetensors-write.js';
export { openCheckpoint, type Checkpoint } from './checkpoint.js';
