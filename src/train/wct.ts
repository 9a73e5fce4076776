/**
 * Weak Column Tuning's trainable set (docs/ARCHITECTURE.md section 6): the weak columns of every packed linear
 * ([out, n_out] fp32 each); packed codes, scales, embeddings, norms and lm_head stay frozen. The backward
 * through a packed linear is dX = dY Ŵ (packed kernels) and dWeak = dYᵀ X[:, weak].
 */
import type { CausalLM } from '../models/model.js';
import { packedLinearsOf } from '../models/weak-deltas.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Trainable } from './trainer.js';
import { OptionError } from '../errors.js';

export function weakParameters(model: CausalLM): Trainable {
  const names: string[] = [];
  const params: Tensor[] = [];
  for (const [name, layer] of packedLinearsOf(model)) {
    if (layer.weak.size === 0) continue;
    names.push(name);
    params.push(layer.weak);
  }
  if (params.length === 0)
    throw new OptionError(
      'model.quantize',
      'the model has no weak columns to train (quantize with OWQ target_bit or target_rank)',
    );
  return { names, params, setTraining: () => undefined };
}
