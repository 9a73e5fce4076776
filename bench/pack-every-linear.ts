/**
 * A model with every linear replaced by a packed layer (OWQ with an identity Hessian: no calibration, the same
 * shapes and kernels as a calibrated model), for the benchmarks and the weak-column gradient checks: in float32,
 * or float64 (the scales and weak columns as Float64Array, run by the packed reference). Returns the weak
 * tensors in the model's linear order.
 */
import type { DenseLinear } from '../src/models/linear.js';
import type { CausalLM } from '../src/models/model.js';
import { PackedLinear } from '../src/models/packed-linear.js';
import type { PackedBits, PackedWeight } from '../src/native/packed.js';
import { owq } from '../src/quant/owq.js';
import { toPacked } from '../src/quant/pack.js';
import type { Tensor } from '../src/tensor/tensor.js';

export interface PackEvery {
  bits: PackedBits;
  /** Weak columns per linear. */
  weak: number;
  dtype: 'f32' | 'f64';
}

export function packEveryLinear(model: CausalLM, o: PackEvery): Tensor[] {
  for (const [name, layer] of [...model.linears()]) {
    const dense = layer as DenseLinear;
    const [rows, cols] = dense.weight.shape;
    const w = Float32Array.from(dense.weight.data);
    const identity = new Float32Array(cols * cols).map((_, i) => (i % (cols + 1) === 0 ? 1 : 0));
    const p = toPacked(
      owq(w, identity, rows, cols, { bits: o.bits, nOut: o.weak, tuning: 'minmax', groupSize: 0, actOrder: false }),
    );
    const packed =
      o.dtype === 'f32'
        ? p
        : ({ ...p, scales: Float64Array.from(p.scales), weak: Float64Array.from(p.weak) } as unknown as PackedWeight);
    model.setLinear(name, new PackedLinear(packed, dense.bias));
  }
  return [...model.linears().values()].map((l) => (l as PackedLinear).weak);
}
