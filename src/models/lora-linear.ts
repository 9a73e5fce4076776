/**
 * A LoRA adapter over any linear layer (Hu et al. 2021; PEFT's `lora.Linear`):
 *   y = base(x) + (alpha / r) · dropout(x) Aᵀ Bᵀ,   x [..., in], A [r, in], B [out, r], y [..., out]
 * Over a DenseLinear this is LoRA; over a PackedLinear (a packed low-bit base) it is QLoRA. The base is
 * frozen; `a` and `b` are the trainable tensors. PEFT's init: A ~ kaiming_uniform(a = sqrt(5)), which for
 * fan_in = in is U(-1/sqrt(in), 1/sqrt(in)) (gain sqrt(2 / (1 + 5)) times sqrt(3 / in)), and B = 0, so the
 * adapted layer starts equal to its base. Dropout acts on the adapter's input only, and only while
 * `training` is set.
 */
import { add, affine, dropout, linear } from '../autograd/index.js';
import type { FloatArray } from '../native/types.js';
import { type Tensor, zeros, type DType } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { PackedLinear } from './packed-linear.js';
import { moveTensor } from './move.js';
import type { GpuContext } from '../gpu/array.js';

export interface LoraLinearOptions {
  rank: number;
  alpha: number;
  /** Dropout probability on the adapter's input while training, in [0, 1). */
  dropout: number;
  /** Seeds A's init, then every dropout mask (the layer keeps the generator: `rng.state` checkpoints it). */
  seed: number;
  /** Start from these weights (A [r, in], B [out, r], e.g. read from an adapter file) instead of PEFT's init. */
  weights?: { a: FloatArray; b: FloatArray };
  /** Whether `a` and `b` require gradients (default true; false for inference over a loaded adapter). */
  trainable?: boolean;
}

/** The dtype of a base layer's weights: float64 only for the reference (gradient check) models. */
function baseDtype(base: LinearLayer): DType {
  if (base instanceof DenseLinear) return base.weight.dtype;
  if (base instanceof PackedLinear) return base.packed.scales instanceof Float64Array ? 'f64' : 'f32';
  return 'f32';
}

export class LoraLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;
  readonly alpha: number;
  readonly dropout: number;
  /** alpha / r, PEFT's `scaling` (without rsLoRA). */
  readonly scale: number;
  /** A [r, in] */
  readonly a: Tensor;
  /** B [out, r] */
  readonly b: Tensor;
  readonly rng: Rng;
  /** Dropout is applied only while this is set (a trainer sets it; inference leaves it off). */
  training = false;

  constructor(
    readonly base: LinearLayer,
    o: LoraLinearOptions,
  ) {
    const { inFeatures: k, outFeatures: n } = base;
    if (!(Number.isInteger(o.rank) && o.rank >= 1 && o.rank <= Math.min(k, n))) {
      throw new RangeError(
        `LoRA rank ${o.rank}: expected an integer in [1, ${Math.min(k, n)}] for a [${n}, ${k}] layer`,
      );
    }
    if (!(o.alpha > 0 && Number.isFinite(o.alpha)))
      throw new RangeError(`LoRA alpha ${o.alpha}: expected a positive number`);
    if (!(o.dropout >= 0 && o.dropout < 1))
      throw new RangeError(`LoRA dropout ${o.dropout}: expected a number in [0, 1)`);
    this.inFeatures = k;
    this.outFeatures = n;
    this.rank = o.rank;
    this.alpha = o.alpha;
    this.dropout = o.dropout;
    this.scale = o.alpha / o.rank;
    this.rng = new Rng(o.seed);
    const dtype = baseDtype(base);
    this.a = zeros([o.rank, k], dtype);
    this.b = zeros([n, o.rank], dtype);
    if (o.weights !== undefined) {
      if (o.weights.a.length !== this.a.size || o.weights.b.length !== this.b.size) {
        throw new RangeError(
          `LoRA weights: A has ${o.weights.a.length} elements, B ${o.weights.b.length}; expected ${this.a.size} and ${this.b.size}`,
        );
      }
      this.a.data.set(o.weights.a);
      this.b.data.set(o.weights.b);
    } else {
      const bound = 1 / Math.sqrt(k);
      for (let i = 0; i < this.a.size; i++) this.a.data[i] = (this.rng.next() * 2 - 1) * bound;
    }
    this.a.requiresGrad = this.b.requiresGrad = o.trainable ?? true;
  }

  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    const xd = this.training ? dropout(x, this.dropout, this.rng) : x;
    const h = affine(linear(xd, this.a), this.scale); // [..., r], scaled here where it is smallest
    return add(y, linear(h, this.b));
  }

  async toDevice(ctx: GpuContext | null): Promise<void> {
    await this.base.toDevice(ctx);
    await moveTensor(this.a, ctx);
    await moveTensor(this.b, ctx);
  }
}
