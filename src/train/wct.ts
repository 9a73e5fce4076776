/**
 * Weak Column Tuning's trainable set (docs/ARCHITECTURE.md section 6), train.trainable of the recipe:
 * - weak_columns (the default): the weak columns of every packed linear ([out, n_out] fp32 each), named by the
 *   linear (`model.layers.0.self_attn.q_proj`, as checkpoints have always named them);
 * - outliers: the values of every packed linear's sparse GWQ-style outliers ([nnz] fp32 each), named
 *   `<linear>.outliers`; their positions (CSR row pointers and columns) and the weak columns stay frozen;
 * - both: each linear's weak columns, then its outliers.
 * Packed codes, scales, zero points, embeddings, norms and lm_head stay frozen. The backward through a packed
 * linear is dX = dY Ŵ (packed kernels, outliers included), dWeak = dYᵀ X[:, weak] and dValues[p] =
 * Σ_i dY[i, row_p] X[i, colIdx[p]].
 */
import type { CausalLM } from '../models/model.js';
import { packedLinearsOf } from '../models/weak-deltas.js';
import type { Recipe, TrainableSet } from '../recipe/schema.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Trainable } from './trainer.js';
import { OptionError } from '../errors.js';

/** The suffix of an outlier parameter's name (a weak one is the linear's own name). */
export const OUTLIERS_SUFFIX = '.outliers';

/** A recipe's trainable set (train.trainable, weak_columns when it is left out). */
export function trainableSetOf(r: Recipe): TrainableSet {
  return r.train.trainable ?? 'weak_columns';
}

export const trainsWeak = (set: TrainableSet): boolean => set !== 'outliers';
export const trainsOutliers = (set: TrainableSet): boolean => set !== 'weak_columns';

/** The tensors WCT trains on `model` for `set`, named as above. */
export function wctParameters(model: CausalLM, set: TrainableSet = 'weak_columns'): Trainable {
  const names: string[] = [];
  const params: Tensor[] = [];
  let [weak, outliers] = [0, 0];
  for (const [name, layer] of packedLinearsOf(model)) {
    if (trainsWeak(set) && layer.weak.size > 0) {
      names.push(name);
      params.push(layer.weak);
      weak++;
    }
    if (trainsOutliers(set) && layer.outliers !== null && layer.outliers.size > 0) {
      names.push(`${name}${OUTLIERS_SUFFIX}`);
      params.push(layer.outliers);
      outliers++;
    }
  }
  const hasOutliers = [...packedLinearsOf(model).values()].some((l) => l.outliers !== null);
  if (set === 'weak_columns' && weak === 0 && hasOutliers)
    throw new OptionError(
      'train.trainable',
      'weak_columns (the default): the base has no weak columns but sparse outliers (set train.trainable: outliers)',
    );
  if (set === 'weak_columns' && weak === 0)
    throw new OptionError(
      'model.quantize',
      'the model has no weak columns to train (quantize with OWQ target_bit or target_rank)',
    );
  if (set !== 'weak_columns' && outliers === 0)
    throw new OptionError(
      'train.trainable',
      `${set}: the base has no outliers to train (quantize it with sparse outliers, or train weak_columns)`,
    );
  if (set === 'both' && weak === 0)
    throw new OptionError('train.trainable', 'both: the base has no weak columns to train (train outliers)');
  return { names, params, setTraining: () => undefined };
}

/** The weak columns of every packed linear (train.trainable weak_columns). */
export function weakParameters(model: CausalLM): Trainable {
  return wctParameters(model, 'weak_columns');
}
