/**
 * A model with every linear replaced by a packed 3-bit layer with two weak columns (OWQ with H = I), for the
 * weak-column gradient checks: in float64 (the scales and weak columns as Float64Array, run by the packed
 * reference) or float32. Returns the weak tensors in the model's linear order.
 */
import type { DenseLinear } from '../../src/models/linear.js';
import type { CausalLM } from '../../src/models/model.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import type { PackedWeight } from '../../src/native/packed.js';
import { owq } from '../../src/quant/owq.js';
import { toPacked } from '../../src/quant/pack.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export function packEveryLinear(model: CausalLM, dtype: 'f32' | 'f64'): Tensor[] {
  for (const [name, layer] of [...model.linears()]) {
    const dense = layer as DenseLinear;
    const [rows, cols] = dense.weight.shape;
    const w = Float32Array.from(dense.weight.data);
    const identity = new Float32Array(cols * cols).map((_, i) => (i % (cols + 1) === 0 ? 1 : 0));
    const p = toPacked(
      owq(w, identity, rows, cols, { bits: 3, nOut: 2, tuning: 'minmax', groupSize: 0, actOrder: false }),
    );
    const packed =
      dtype === 'f32'
        ? p
        : ({ ...p, scales: Float64Array.from(p.scales), weak: Float64Array.from(p.weak) } as unknown as PackedWeight);
    model.setLinear(name, new PackedLinear(packed, dense.bias));
  }
  return [...model.linears().values()].map((l) => (l as PackedLinear).weak);
}
