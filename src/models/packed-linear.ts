/**
 * A linear layer over a packed low-bit weight with fp32 weak columns (OWQ's layout, WCT's trainable part) and,
 * when the weight has them, sparse fp32 outliers (GWQ-style: CSR positions frozen, values trainable). On the GPU
 * the layer holds the weight's device copy (src/gpu/packed.ts) and `weak` / `outliers` are tensors over the
 * device's arrays; moving back reads them into the host weight, so that exports see what was trained. Weak
 * columns that are frozen when the layer moves (`weak.requiresGrad` false: evaluation, generation, QLoRA) go to
 * the device in f16 when exact in it (a packed checkpoint's always are); trainable ones are f32, and f16 ones
 * that become trainable later (a trainer sets requiresGrad after the move) are widened to f32 at the next
 * forward (thawWeak). Outlier values are f32 on the device.
 */
import { packedLinear } from '../autograd/index.js';
import type { GpuContext } from '../gpu/array.js';
import { type GpuPackedWeight, packedToGpu, releasePacked, thawWeak } from '../gpu/packed.js';
import { outlierCount, validatePacked, type PackedWeight } from '../native/packed.js';
import { hostValues } from '../tensor/device.js';
import { Tensor } from '../tensor/tensor.js';
import type { LinearLayer } from './linear.js';
import { moveTensor } from './move.js';

/**
 * y = x Ŵᵀ + b; `weak` [out, nOut] is a tensor over packed.weak and `outliers` [nnz] one over
 * packed.outliers.values (null without outliers, nnz 0 included), both frozen until a trainer sets requiresGrad.
 */
export class PackedLinear implements LinearLayer {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly weak: Tensor;
  readonly outliers: Tensor | null;
  /** The device copy while the layer is on the GPU. */
  private gpu: GpuPackedWeight | null = null;

  constructor(
    readonly packed: PackedWeight,
    readonly bias: Tensor | null = null,
  ) {
    validatePacked(packed, 'PackedLinear');
    this.outFeatures = packed.rows;
    this.inFeatures = packed.cols;
    this.weak = new Tensor(packed.weak, [packed.rows, packed.weakIdx.length]);
    const nnz = outlierCount(packed);
    this.outliers = nnz === 0 ? null : new Tensor(packed.outliers!.values, [nnz]);
    if (bias !== null && (bias.shape.length !== 1 || bias.shape[0] !== packed.rows)) {
      throw new RangeError(`PackedLinear: bias ${bias} does not match out_features ${packed.rows}`);
    }
  }

  forward(x: Tensor): Tensor {
    if (this.gpu !== null && this.weak.requiresGrad && this.gpu.weak.format !== 'f32') {
      this.weak.replaceStorage(thawWeak(this.gpu));
    }
    return packedLinear(x, this.gpu ?? this.packed, this.weak, this.bias, this.outliers);
  }

  /** The weight's device copy while the layer is on the GPU, else null. */
  get gpuWeight(): GpuPackedWeight | null {
    return this.gpu;
  }

  /** The GPU the layer is on, or null on the host. */
  get gpuContext(): GpuContext | null {
    return this.gpu?.weak.ctx ?? null;
  }

  async toDevice(ctx: GpuContext | null): Promise<void> {
    if (this.bias !== null) await moveTensor(this.bias, ctx);
    if (ctx !== null && this.gpu === null) {
      const gpu = packedToGpu(ctx, this.packed, { frozenWeak: !this.weak.requiresGrad });
      this.gpu = gpu;
      this.weak.replaceStorage(gpu.weak);
      if (this.outliers !== null && gpu.outlierValues !== null) this.outliers.replaceStorage(gpu.outlierValues);
    } else if (ctx === null && this.gpu !== null) {
      this.packed.weak.set(await hostValues(this.gpu.weak));
      this.weak.replaceStorage(this.packed.weak);
      const values = this.gpu.outlierValues;
      if (this.outliers !== null && this.packed.outliers !== undefined && values !== null) {
        this.packed.outliers.values.set(await hostValues(values));
        this.outliers.replaceStorage(this.packed.outliers.values);
      }
      releasePacked(this.gpu);
      this.gpu = null;
    }
  }
}
