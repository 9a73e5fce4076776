/** A linear layer over a packed low-bit weight with fp32 weak columns (OWQ's layout, WCT's trainable part). */
import { packedLinear } from '../autograd/index.js';
import { validatePacked, type PackedWeight } from '../native/packed.js';
import { Tensor } from '../tensor/tensor.js';
import type { LinearLayer } from './linear.js';

/** y = x Ŵᵀ + b; `weak` [out, nOut] is a tensor over packed.weak (frozen until a trainer sets requiresGrad). */
export class PackedLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weak: Tensor;

  constructor(
    readonly packed: PackedWeight,
    readonly bias: Tensor | null = null,
  ) {
    validatePacked(packed, 'PackedLinear');
    this.outFeatures = packed.rows;
    this.inFeatures = packed.cols;
    this.weak = new Tensor(packed.weak, [packed.rows, packed.weakIdx.length]);
    if (bias !== null && (bias.shape.length !== 1 || bias.shape[0] !== packed.rows)) {
      throw new RangeError(`PackedLinear: bias ${bias} does not match out_features ${packed.rows}`);
    }
  }

  forward(x: Tensor): Tensor {
    return packedLinear(x, this.packed, this.weak, this.bias);
  }
}
