/** The gradient checks' packed models: every linear 3-bit with two weak columns (bench/pack-every-linear.ts). */
import { packEveryLinear as packEvery } from '../../bench/pack-every-linear.js';
import type { CausalLM } from '../../src/models/model.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export function packEveryLinear(model: CausalLM, dtype: 'f32' | 'f64'): Tensor[] {
  return packEvery(model, { bits: 3, weak: 2, dtype });
}
