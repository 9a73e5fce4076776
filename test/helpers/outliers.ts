/**
 * GWQ-style outliers added by hand to a packed model (until `wct quantize --method gwq` writes them): in every
 * packed linear, `perRow` unstructured positions per row (seeded, never a weak column), whose codes are set to
 * their group's zero point and whose dense values are stored in CSR form: the weight's old dequantized value
 * there plus a spike of half the row's largest magnitude (so the outliers matter to the output). The layers
 * are replaced by new PackedLinears over the changed weights; returns their outlier tensors in linear order.
 */
import type { CausalLM } from '../../src/models/model.js';
import { PackedLinear } from '../../src/models/packed-linear.js';
import { packedLinearsOf } from '../../src/models/weak-deltas.js';
import { packedGroups, type PackedWeight } from '../../src/native/packed.js';
import { dequantize, packCodes, unpackCodes } from '../../src/native/packed-ref.js';
import type { FloatArray } from '../../src/native/types.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/util/rng.js';

export interface AddOutliers {
  /** Outliers per row (at most the row's non-weak columns). */
  perRow: number;
  seed?: number;
}

/** `w` with `perRow` outliers in every row (a new weight; `w`'s arrays are not changed). */
export function withOutliers<F extends FloatArray>(w: PackedWeight<F>, o: AddOutliers, rng: Rng): PackedWeight<F> {
  const { rows, cols, bits, groupSize: g } = w;
  const groups = packedGroups(cols, g);
  const codes = unpackCodes(w.qweight, rows, cols, bits);
  const packedCol = new Int32Array(cols).map((_, k) => k);
  if (w.perm !== null) w.perm.forEach((j, k) => (packedCol[j] = k));
  const dense = dequantize(w);
  const weak = new Set(w.weakIdx);
  const candidates = Array.from({ length: cols }, (_, j) => j).filter((j) => !weak.has(j));
  const perRow = Math.min(o.perRow, candidates.length);
  const F = w.scales.constructor as new (n: number) => F;
  const rowPtr = new Int32Array(rows + 1);
  const colIdx = new Int32Array(rows * perRow);
  const values = new F(rows * perRow);
  for (let r = 0; r < rows; r++) {
    const pool = candidates.slice();
    for (let i = 0; i < perRow; i++) {
      const t = i + Math.floor(rng.next() * (pool.length - i));
      [pool[i], pool[t]] = [pool[t], pool[i]];
    }
    const chosen = pool.slice(0, perRow).sort((a, b) => a - b);
    let peak = 0;
    for (let j = 0; j < cols; j++) peak = Math.max(peak, Math.abs(dense[r * cols + j]));
    chosen.forEach((j, i) => {
      const k = packedCol[j];
      codes[r * cols + k] = w.zeros[r * groups + Math.floor(k / g)];
      colIdx[r * perRow + i] = j;
      values[r * perRow + i] = dense[r * cols + j] + (rng.next() < 0.5 ? -0.5 : 0.5) * (peak || 1);
    });
    rowPtr[r + 1] = (r + 1) * perRow;
  }
  return { ...w, qweight: packCodes(codes, rows, cols, bits), outliers: { rowPtr, colIdx, values } };
}

/** Adds outliers to every packed linear of `model` (f32 or f64 weights); returns the outlier tensors. */
export function addOutliers(model: CausalLM, o: AddOutliers): Tensor[] {
  const rng = new Rng(o.seed ?? 1);
  const out: Tensor[] = [];
  for (const [name, layer] of packedLinearsOf(model)) {
    const next = new PackedLinear(withOutliers(layer.packed, o, rng), layer.bias);
    model.setLinear(name, next);
    out.push(next.outliers!);
  }
  return out;
}
