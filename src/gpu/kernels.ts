/**
 * The WebGPU backend's kernel table: `Kernels<GpuArray>`, the same contract as the native addon and the
 * reference (src/native/types.ts), one WGSL kernel family per file.
 */
import type { Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { adamwKernels } from './adamw.js';
import { attentionKernels } from './attention.js';
import { crossEntropyKernels } from './cross-entropy.js';
import { elementwiseKernels } from './elementwise.js';
import { embeddingKernels } from './embedding.js';
import { reduceKernels } from './reduce.js';
import { gemm, syrk } from './matmul.js';
import { normKernels } from './norm.js';
import { packedGpu } from './packed.js';
import { ropeKernels } from './rope.js';
import { softmaxKernels } from './softmax.js';

export const gpuKernels: Kernels<GpuArray> = {
  name: 'webgpu',
  gemm,
  syrk,
  ...normKernels,
  ...softmaxKernels,
  ...ropeKernels,
  ...attentionKernels,
  ...elementwiseKernels,
  ...reduceKernels,
  ...embeddingKernels,
  ...crossEntropyKernels,
  ...adamwKernels,
};

/** The packed-weight kernels on the GPU (src/gpu/packed.ts). */
export const gpuPackedKernels = packedGpu;
