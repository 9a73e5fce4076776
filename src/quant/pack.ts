/**
 * From a quantizer's result to the packed layout of src/native/packed.ts (kernels/include/wct_packed.h):
 * codes in packed-column order, per-row or per-group scales and zero points, sorted weak-column indices
 * with their full-precision columns. Weak positions hold their group's zero point (dequantize to 0).
 *
 * Packed column order: the input order, except when groups meet a reordering (act-order or OWQ with
 * groups): then the packed columns follow the quantizer's order (perm) so that each group stays
 * contiguous, as the quantizer formed it.
 */
import { packCodes, packedGroups, type PackedBits, type PackedOutliers, type PackedWeight } from '../native/packed.js';
import type { QuantizedColumns } from './quantized.js';

/** Sorted flat indices r * cols + c and their values -> CSR (row pointers, input columns, values). */
function outlierCsr(rows: number, cols: number, o: { index: Int32Array; values: Float32Array }): PackedOutliers {
  const rowPtr = new Int32Array(rows + 1);
  for (const i of o.index) rowPtr[Math.floor(i / cols) + 1] += 1;
  for (let r = 0; r < rows; r++) rowPtr[r + 1] += rowPtr[r];
  return { rowPtr, colIdx: o.index.map((i) => i % cols), values: Float32Array.from(o.values) };
}

/** Packs a quantized linear; `q.dequantized` supplies the weak columns' values. */
export function toPacked(q: QuantizedColumns): PackedWeight {
  const { rows, cols, nQuant } = q;
  const order = q.order ?? Int32Array.from({ length: cols }, (_, j) => j);
  const usePerm = q.groupSize > 0 && q.order !== null;
  const g = q.groupSize === 0 ? cols : q.groupSize;
  const nPacked = packedGroups(cols, g);
  // packed column k holds input column column[k]; code position (in `order`) of packed column k:
  const column = usePerm ? order : Int32Array.from({ length: cols }, (_, j) => j);
  const position = new Int32Array(cols);
  order.forEach((j, p) => (position[j] = p));
  const scales = new Float32Array(rows * nPacked).fill(1);
  const zeros = new Uint8Array(rows * nPacked);
  for (let r = 0; r < rows; r++) {
    for (let grp = 0; grp < Math.min(q.nGroups, nPacked); grp++) {
      scales[r * nPacked + grp] = q.scale[r * q.nGroups + grp];
      zeros[r * nPacked + grp] = q.zero[r * q.nGroups + grp];
    }
  }
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const p = usePerm ? k : position[column[k]];
      codes[r * cols + k] = p < nQuant ? q.codes[r * nQuant + p] : zeros[r * nPacked + Math.floor(k / g)];
    }
  }
  const weakIdx = Int32Array.from(order.subarray(nQuant)).sort();
  const weak = new Float32Array(rows * weakIdx.length);
  for (let r = 0; r < rows; r++)
    weakIdx.forEach((j, i) => (weak[r * weakIdx.length + i] = q.dequantized[r * cols + j]));
  return {
    rows,
    cols,
    bits: q.bits as PackedBits,
    groupSize: g,
    qweight: packCodes(codes, rows, cols, q.bits as PackedBits),
    scales,
    zeros,
    perm: usePerm ? Int32Array.from(order) : null,
    weakIdx,
    weak,
    ...(q.outliers === undefined ? {} : { outliers: outlierCsr(rows, cols, q.outliers) }),
  };
}
