/**
 * The token embedding table of a model, and the lm_head it serves as when the model ties them: a dense
 * table (a Tensor, differentiable), or a packed one (a packed checkpoint made with --embed-bits: each
 * looked-up row is dequantized on its own, the tied lm_head runs the packed kernels; frozen). The packed rows are
 * dequantized on the host and uploaded when the model is on the GPU (a [tokens, C] upload per forward).
 */
import { embedding } from '../autograd/index.js';
import { dequantize, packedGroups, packedRowBytes, type PackedWeight } from '../native/packed.js';
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

/** Rows `ids` of a packed table, dequantized: row r is Ŵ[r, :] exactly as the packed kernels see it. */
export function packedRows(w: PackedWeight, ids: Int32Array, shape: readonly number[]): Tensor {
  const { cols, bits } = w;
  const rowBytes = packedRowBytes(cols, bits);
  const groups = packedGroups(cols, w.groupSize);
  const nOut = w.weakIdx.length;
  const out = new Float32Array(ids.length * cols);
  ids.forEach((id, i) => {
    if (!(id >= 0 && id < w.rows))
      throw new RangeError(`embedding: token id ${id} at position ${i} is outside the vocabulary [0, ${w.rows})`);
    const row: PackedWeight = {
      ...w,
      rows: 1,
      qweight: w.qweight.subarray(id * rowBytes, (id + 1) * rowBytes),
      scales: w.scales.subarray(id * groups, (id + 1) * groups),
      zeros: w.zeros.subarray(id * groups, (id + 1) * groups),
      weak: w.weak.subarray(id * nOut, (id + 1) * nOut),
    };
    out.set(dequantize(row), i * cols);
  });
  return new Tensor(out, [...shape, cols]);
}

/** The embedding `name` (module name, e.g. model.embed_tokens): packed when `given` holds it, else `<name>.weight`. */
export function tokenEmbedding(
  name: string,
  weights: ReadonlyMap<string, Tensor>,
  given: ReadonlyMap<string, LinearLayer>,
): TokenEmbedding {
  const packed = given.get(name);
  if (packed instanceof PackedLinear) {
    const lookup = (ids: Int32Array, shape: readonly number[]) => {
      const rows = packedRows(packed.packed, ids, shape);
      const ctx = packed.gpuContext;
      return ctx === null ? rows : new Tensor(ctx.upload(rows.data as Float32Array), rows.shape);
    };
    return { lookup, head: packed, dtype: 'f32' };
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
