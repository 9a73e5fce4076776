/**
 * The token embedding table of a model, and the lm_head it serves as when the model ties them: a dense
 * table (a Tensor, differentiable), or a packed one (a packed checkpoint made with --embed-bits: each
 * looked-up row is dequantized on its own by the packed kernels of the layer's device, the tied lm_head runs the
 * packed kernels; frozen).
 */
import { embedding } from '../autograd/index.js';
import { gpuPackedKernels } from '../gpu/kernels.js';
import { packedNative } from '../native/packed.js';
import { Tensor, type DType } from '../tensor/tensor.js';
import { DenseLinear, type LinearLayer } from './linear.js';
import { PackedLinear } from './packed-linear.js';

export interface TokenEmbedding {
  /** ids [N] -> [...shape, dim]. */
  lookup(ids: Int32Array, shape: readonly number[]): Tensor;
  /** The table as an output projection (the tied lm_head). */
  readonly head: LinearLayer;
  readonly dtype: DType;
}

/**
 * Rows `ids` of a packed table, dequantized on the layer's device: row r is Ŵ[r, :] exactly as the packed kernels
 * see it.
 */
export function packedRows(layer: PackedLinear, ids: Int32Array, shape: readonly number[]): Tensor {
  const n = ids.length * layer.inFeatures;
  const g = layer.gpuWeight;
  if (g === null) {
    const out = new Float32Array(n);
    packedNative.dequantizeRows(layer.packed, ids, out);
    return new Tensor(out, [...shape, layer.inFeatures]);
  }
  const out = g.ctx.zeros(n);
  gpuPackedKernels.dequantizeRows(g, ids, out);
  return new Tensor(out, [...shape, layer.inFeatures]);
}

/** The embedding `name` (module name, e.g. model.embed_tokens): packed when `given` holds it, else `<name>.weight`. */
export function tokenEmbedding(
  name: string,
  weights: ReadonlyMap<string, Tensor>,
  given: ReadonlyMap<string, LinearLayer>,
): TokenEmbedding {
  const packed = given.get(name);
  if (packed instanceof PackedLinear) {
    return { lookup: (ids, shape) => packedRows(packed, ids, shape), head: packed, dtype: 'f32' };
  }
  const table = weights.get(`${name}.weight`);
  if (table === undefined) throw new Error(`missing tensor ${name}.weight`);
  return { lookup: (ids, shape) => embedding(table, ids, shape), head: new DenseLinear(table), dtype: table.dtype };
}

/** The output projection `name` (module name): packed when `given` holds it, else its own dense weight, else (tied)
 * the token embedding. */
export function outputHead(
  name: string,
  weights: ReadonlyMap<string, Tensor>,
  given: ReadonlyMap<string, LinearLayer>,
  tokens: TokenEmbedding,
): LinearLayer {
  const own = weights.get(`${name}.weight`);
  return given.get(name) ?? (own !== undefined ? new DenseLinear(own) : tokens.head);
}
