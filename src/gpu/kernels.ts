/**
 * The WebGPU backend's kernel table: `Kernels<GpuArray>`, the same contract as the native addon and the
 * reference (src/native/types.ts), one WGSL kernel family per file.
 */
import type { Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { gemm } from './matmul.js';

const missing = (name: string) => () => {
  throw new Error(`gpu: kernel ${name} is not built yet`);
};

export const gpuKernels: Kernels<GpuArray> = {
  name: 'webgpu',
  gemm,
  binary: missing('binary'),
  affine: missing('affine'),
  sumTo: missing('sumTo'),
  sumInto: missing('sumInto'),
  sumSquaresInto: missing('sumSquaresInto'),
  broadcastScalar: missing('broadcastScalar'),
  fill: missing('fill'),
  copy: missing('copy'),
  accumulate: missing('accumulate'),
  scaleBy: missing('scaleBy'),
  adamw: missing('adamw'),
  unaryForward: missing('unaryForward'),
  unaryBackward: missing('unaryBackward'),
  rmsnormForward: missing('rmsnormForward'),
  rmsnormBackward: missing('rmsnormBackward'),
  layernormForward: missing('layernormForward'),
  layernormBackward: missing('layernormBackward'),
  softmaxForward: missing('softmaxForward'),
  softmaxBackward: missing('softmaxBackward'),
  rope: missing('rope'),
  attentionForward: missing('attentionForward'),
  attentionBackward: missing('attentionBackward'),
  crossEntropyForward: missing('crossEntropyForward'),
  crossEntropyBackward: missing('crossEntropyBackward'),
  embeddingForward: missing('embeddingForward'),
  embeddingBackward: missing('embeddingBackward'),
  dropout: missing('dropout'),
};

/** The packed-weight kernels on the GPU (src/gpu/packed.ts). */
export const gpuPackedKernels = {
  name: 'webgpu',
  dequantizeInto: missing('dequantizeInto'),
  packedMatmul: missing('packedMatmul'),
  packedMatmulT: missing('packedMatmulT'),
  weakGrad: missing('weakGrad'),
};
