/**
 * The linear layers of a model, behind one interface so that later quantized (packed) and adapted
 * (weak-column, LoRA) layers replace the dense one without touching the model code.
 */
import { linear } from '../autograd/index.js';
import type { GpuContext } from '../gpu/array.js';
import type { Tensor } from '../tensor/tensor.js';
import { moveFrozenWeight, moveTensor } from './move.js';

export interface LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** x [..., in] -> [..., out] */
  forward(x: Tensor): Tensor;
  /** Moves the layer's weights to the GPU of `ctx`, or back to the host (null); a no-op where they are. */
  toDevice(ctx: GpuContext | null): Promise<void>;
}

/**
 * y = x W^T + b with W [out, in] as stored by Hugging Face. A frozen W of an F16/BF16 checkpoint is stored in that
 * format on the GPU (moveFrozenWeight); the gemm reads it as its weight operand forward and backward.
 */
export class DenseLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(
    readonly weight: Tensor,
    readonly bias: Tensor | null = null,
  ) {
    [this.outFeatures, this.inFeatures] = weight.shape;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }

  async toDevice(ctx: GpuContext | null): Promise<void> {
    await moveFrozenWeight(this.weight, ctx);
    if (this.bias !== null) await moveTensor(this.bias, ctx);
  }
}

/** `layer` as the full-precision linear it must still be (`name` for the error: a bug, not bad input). */
export function asDense(name: string, layer: LinearLayer | undefined): DenseLinear {
  if (!(layer instanceof DenseLinear)) throw new Error(`${name} is not a full-precision linear`);
  return layer;
}
