/**
 * The packed low-bit weight of a linear layer (layout: kernels/include/wct_packed.h, kernels/PACKED.md)
 * and its native kernels. Glossary: N rows (= out_features), K cols (= in_features, any K >= 1), b bits,
 * G group size (any G >= 1), M batch rows.
 *
 *   qweight u8 [N, ceil(K/8)*b]: row r is a little-endian bit stream of whole 8-code blocks, packed column k in
 *     bits [k*b, (k+1)*b); the pad codes past K (K % 8 != 0) are 0. K % 8 == 0: exactly K*b/8 bytes per row.
 *   scales f32 [N, ceil(K/G)], zeros u8 [N, ceil(K/G)]: group g is packed columns [g*G, min((g+1)*G, K))
 *   (the last is shorter when G does not divide K); perm i32 [K] | null (packed column k = input column perm[k])
 *   weakIdx i32 [nOut] sorted unique input columns; weak f32 [N, nOut]; weak codes hold the zero point.
 *   outliers (optional) CSR: rowPtr i32 [N+1], colIdx i32 [nnz] (input columns, ascending within a row, none a
 *     weak column), values f32 [nnz]; the codes at outlier positions hold the zero point (GWQ-style outliers).
 *   Ŵ[r, perm[k]] = scales[r, k/G] * (code[r, k] - zeros[r, k/G]), plus weak[r, j] at column weakIdx[j],
 *     plus values[p] at column colIdx[p] for p in [rowPtr[r], rowPtr[r+1]).
 *
 * validatePacked checks everything once (loaders and layers call it); every native call re-checks in C++
 * what indexing depends on (sizes, index ranges), so a bad call throws instead of crashing. The kernels
 * read `weak` on every call (it is a trainable tensor's buffer in Weak Column Tuning).
 */
import { loadAddonModule } from './addon.js';
import type { PackedArgs, PackedBinding } from './binding.js';
import type { FloatArray } from './types.js';

export type PackedBits = 2 | 3 | 4 | 8;

/** A packed linear; F is the float type of scales and weak (Float64Array only for reference gradient checks). */
export interface PackedWeight<F extends FloatArray = Float32Array> {
  rows: number;
  cols: number;
  bits: PackedBits;
  groupSize: number;
  qweight: Uint8Array;
  scales: F;
  zeros: Uint8Array;
  perm: Int32Array | null;
  weakIdx: Int32Array;
  weak: F;
  /** Unstructured full-precision elements (GWQ-style outliers); absent = none. */
  outliers?: PackedOutliers<F>;
}

/**
 * Sparse outliers of a packed weight in CSR form: row r's outliers are p in [rowPtr[r], rowPtr[r+1]), at
 * input column colIdx[p] with value values[p] (fp16 on disk; a trainable tensor's buffer in outlier tuning).
 */
export interface PackedOutliers<F extends FloatArray = Float32Array> {
  rowPtr: Int32Array;
  colIdx: Int32Array;
  values: F;
}

/** The number of outliers of w (0 when it has none). */
export function outlierCount(w: PackedWeight<FloatArray>): number {
  return w.outliers === undefined ? 0 : w.outliers.colIdx.length;
}

/** Layout constants, equal to the addon's packedLayout() (a test checks). */
export const PACKED_LAYOUT = {
  /** Codes per block: 8 codes of b bits are exactly b bytes; a row is whole blocks (the last one padded). */
  blockCodes: 8,
  bits: [2, 3, 4, 8] as PackedBits[],
  version: 1,
};

/** Bytes of one packed row of `cols` codes: ceil(cols / 8) blocks of `bits` bytes. */
export function packedRowBytes(cols: number, bits: PackedBits): number {
  return Math.ceil(cols / PACKED_LAYOUT.blockCodes) * bits;
}

export function packedBytes(rows: number, cols: number, bits: PackedBits): number {
  return rows * packedRowBytes(cols, bits);
}

/** Groups of `groupSize` columns along a row of `cols` (the last one shorter when groupSize does not divide cols). */
export function packedGroups(cols: number, groupSize: number): number {
  return Math.ceil(cols / groupSize);
}

/**
 * The kernels over a packed weight W whose float arrays are A: implemented natively (below), by the reference
 * (packed-ref.ts, Float64Array for gradient checks) and in WGSL (src/gpu/packed.ts, W its device copy).
 */
export interface PackedKernels<A = Float32Array, W = [A] extends [FloatArray] ? PackedWeight<A> : never> {
  readonly name: 'native' | 'reference' | 'webgpu';
  /** out [N, K] = Ŵ in input-column order, weak columns included. */
  dequantizeInto(w: W, out: A): void;
  /** out [ids.length, K] = rows `ids` of Ŵ (a packed embedding's lookup); an id outside [0, N) throws. */
  dequantizeRows(w: W, ids: Int32Array, out: A): void;
  /** y [M, N] = x [M, K] Ŵᵀ (M = 1 is the decode GEMV). */
  packedMatmul(w: W, x: A, m: number, y: A): void;
  /** dx [M, K] = dy [M, N] Ŵ (overwrites). */
  packedMatmulT(w: W, dy: A, m: number, dx: A): void;
  /** dweak [N, nOut] += dyᵀ X[:, weakIdx]. */
  weakGrad(w: W, dy: A, x: A, m: number, dweak: A): void;
  /** dvalues [nnz] += Σ_i dy[i, row_p] · x[i, colIdx[p]] for each outlier p (row_p its CSR row). */
  outlierGrad(w: W, dy: A, x: A, m: number, dvalues: A): void;
}

/** Throws the embedding's RangeError for the first id outside [0, rows). */
export function checkRowIds(ids: Int32Array, rows: number): void {
  ids.forEach((id, i) => {
    if (!(id >= 0 && id < rows))
      throw new RangeError(`embedding: token id ${id} at position ${i} is outside the vocabulary [0, ${rows})`);
  });
}

/**
 * dequantizeRows on the host: each row r of `ids` is the one-row weight over w's arrays at r (codes, scales,
 * zeros and weak columns of that row; the same perm), dequantized by `dequantizeInto`.
 */
export function dequantizeRowsWith<F extends FloatArray>(
  dequantizeInto: (w: PackedWeight<F>, out: F) => void,
  w: PackedWeight<F>,
  ids: Int32Array,
  out: F,
): void {
  checkRowIds(ids, w.rows);
  const [rowBytes, groups, nOut] = [
    packedRowBytes(w.cols, w.bits),
    packedGroups(w.cols, w.groupSize),
    w.weakIdx.length,
  ];
  ids.forEach((id, i) => {
    const row: PackedWeight<F> = {
      ...w,
      rows: 1,
      qweight: w.qweight.subarray(id * rowBytes, (id + 1) * rowBytes),
      scales: w.scales.subarray(id * groups, (id + 1) * groups) as F,
      zeros: w.zeros.subarray(id * groups, (id + 1) * groups),
      weak: w.weak.subarray(id * nOut, (id + 1) * nOut) as F,
      outliers: w.outliers === undefined ? undefined : outlierRow(w.outliers, id),
    };
    dequantizeInto(row, out.subarray(i * w.cols, (i + 1) * w.cols) as F);
  });
}

/** Row r of a CSR outlier set as a one-row set (views of the same buffers, row pointers rebased). */
function outlierRow<F extends FloatArray>(o: PackedOutliers<F>, r: number): PackedOutliers<F> {
  const [p0, p1] = [o.rowPtr[r], o.rowPtr[r + 1]];
  return {
    rowPtr: Int32Array.of(0, p1 - p0),
    colIdx: o.colIdx.subarray(p0, p1),
    values: o.values.subarray(p0, p1) as F,
  };
}

/** The code of packed column k of a row: bits [k*b, (k+1)*b) of the row's little-endian bit stream. */
export function codeAt(q: Uint8Array, rowStart: number, k: number, bits: number): number {
  let code = 0;
  for (let t = 0; t < bits; t++) {
    const bit = k * bits + t;
    code |= ((q[rowStart + (bit >> 3)] >> (bit & 7)) & 1) << t;
  }
  return code;
}

// ---- validation ----

function fail(where: string, field: string, msg: string): never {
  throw new Error(`${where}: ${field} ${msg}`);
}

function checkLength(where: string, field: string, arr: { length: number }, n: number): void {
  if (arr.length !== n) fail(where, field, `has ${arr.length} elements, expected ${n}`);
}

function checkShape(w: PackedWeight<FloatArray>, where: string): void {
  const { rows, cols, bits, groupSize: g } = w;
  if (!PACKED_LAYOUT.bits.includes(bits))
    fail(where, 'bits', `must be one of ${PACKED_LAYOUT.bits.join(', ')}, got ${bits}`);
  if (!Number.isInteger(rows) || rows < 0) fail(where, 'rows', `must be a non-negative integer, got ${rows}`);
  if (!Number.isInteger(cols) || cols <= 0) fail(where, 'cols', `must be a positive integer, got ${cols}`);
  if (!Number.isInteger(g) || g <= 0) fail(where, 'groupSize', `must be a positive integer, got ${g}`);
}

function checkIndices(w: PackedWeight<FloatArray>, where: string): void {
  const { cols, perm, weakIdx } = w;
  if (perm !== null) {
    checkLength(where, 'perm', perm, cols);
    const seen = new Uint8Array(cols);
    perm.forEach((p, k) => {
      if (!(p >= 0 && p < cols) || seen[p])
        fail(where, 'perm', `is not a permutation of 0..${cols - 1} (perm[${k}] = ${p})`);
      seen[p] = 1;
    });
  }
  weakIdx.forEach((j, i) => {
    if (!(j >= 0 && j < cols)) fail(where, 'weakIdx', `[${i}] = ${j} is outside [0, ${cols})`);
    if (i > 0 && j <= weakIdx[i - 1]) fail(where, 'weakIdx', `must be sorted ascending without repeats (at ${i})`);
  });
}

/** Throws an Error starting with `where` and naming the first inconsistent field. */
export function validatePacked(w: PackedWeight<FloatArray>, where: string): void {
  checkShape(w, where);
  const { rows, cols, bits, groupSize: g } = w;
  const groups = rows * packedGroups(cols, g);
  checkLength(where, 'qweight', w.qweight, packedBytes(rows, cols, bits));
  checkLength(where, 'scales', w.scales, groups);
  checkLength(where, 'zeros', w.zeros, groups);
  checkLength(where, 'weak', w.weak, rows * w.weakIdx.length);
  const badZero = w.zeros.findIndex((z) => z >> bits !== 0);
  if (badZero >= 0) fail(where, 'zeros', `[${badZero}] = ${w.zeros[badZero]} does not fit in ${bits} bits`);
  checkIndices(w, where);
  checkPadCodes(w, where);
  checkWeakCodes(w, where);
  checkOutliers(w, where);
}

/** The pad codes of a partial last block (K % 8 != 0) must be 0, so that a packed row has one byte form. */
function checkPadCodes(w: PackedWeight<FloatArray>, where: string): void {
  const { rows, cols, bits } = w;
  const rowBytes = packedRowBytes(cols, bits);
  const padded = (rowBytes / bits) * PACKED_LAYOUT.blockCodes;
  for (let r = 0; r < rows; r++) {
    for (let k = cols; k < padded; k++) {
      if (codeAt(w.qweight, r * rowBytes, k, bits) !== 0)
        fail(where, 'qweight', `pad code ${k} of row ${r} is not 0 (in_features ${cols})`);
    }
  }
}

/** Every weak column's code must be its group's zero point (so it dequantizes to exactly 0). */
function checkWeakCodes(w: PackedWeight<FloatArray>, where: string): void {
  if (w.weakIdx.length === 0) return;
  const { rows, cols, groupSize: g } = w;
  const packedCol = packedColumns(w);
  const rowBytes = packedRowBytes(cols, w.bits);
  const groups = packedGroups(cols, g);
  for (let r = 0; r < rows; r++) {
    for (const j of w.weakIdx) {
      const k = packedCol[j];
      const code = codeAt(w.qweight, r * rowBytes, k, w.bits);
      const z = w.zeros[r * groups + Math.floor(k / g)];
      if (code !== z)
        fail(where, 'qweight', `code of weak column ${j} in row ${r} is ${code}, not its zero point ${z}`);
    }
  }
}

/** Input column -> packed column. */
function packedColumns(w: PackedWeight<FloatArray>): Int32Array {
  const packedCol = new Int32Array(w.cols).map((_, k) => k);
  if (w.perm !== null) w.perm.forEach((j, k) => (packedCol[j] = k));
  return packedCol;
}

/** The first fault of a weight's CSR outliers: the field at fault (qweight: an outlier's code) and what is wrong. */
export interface OutlierFault {
  field: 'rowPtr' | 'colIdx' | 'values' | 'qweight';
  problem: string;
}

/**
 * The CSR outliers: N+1 row pointers from 0, non-decreasing, ending at nnz = colIdx.length = values.length;
 * column indices in [0, K), strictly ascending within a row, none a weak column; each outlier's code its
 * group's zero point (so the packed part dequantizes to 0 there). Null when they are fine (or absent). The rest
 * of w must be valid (validatePacked's other checks).
 */
export function outlierFault(w: PackedWeight<FloatArray>): OutlierFault | null {
  const o = w.outliers;
  if (o === undefined) return null;
  const { rows, cols, groupSize: g } = w;
  const nnz = o.colIdx.length;
  const length = (field: OutlierFault['field'], n: number, expected: number): OutlierFault | null =>
    n === expected ? null : { field, problem: `has ${n} elements, expected ${expected}` };
  const bad = length('rowPtr', o.rowPtr.length, rows + 1) ?? length('values', o.values.length, nnz);
  if (bad !== null) return bad;
  if (o.rowPtr[0] !== 0) return { field: 'rowPtr', problem: `[0] = ${o.rowPtr[0]}, expected 0` };
  for (let r = 0; r < rows; r++) {
    if (o.rowPtr[r + 1] < o.rowPtr[r])
      return { field: 'rowPtr', problem: `decreases at row ${r} (${o.rowPtr[r]} then ${o.rowPtr[r + 1]})` };
  }
  if (o.rowPtr[rows] !== nnz)
    return { field: 'rowPtr', problem: `[${rows}] = ${o.rowPtr[rows]}, expected the outlier count ${nnz}` };
  const weak = new Uint8Array(cols);
  for (const j of w.weakIdx) weak[j] = 1;
  const packedCol = packedColumns(w);
  const [rowBytes, groups] = [packedRowBytes(cols, w.bits), packedGroups(cols, g)];
  for (let r = 0; r < rows; r++) {
    const [p0, p1] = [o.rowPtr[r], o.rowPtr[r + 1]];
    for (let p = p0; p < p1; p++) {
      const j = o.colIdx[p];
      const at = `[${p}] = ${j} (row ${r})`;
      if (!(j >= 0 && j < cols)) return { field: 'colIdx', problem: `${at} is outside [0, ${cols})` };
      if (p > p0 && j <= o.colIdx[p - 1]) {
        const problem = `${at} is not above the previous ${o.colIdx[p - 1]} (unsorted or duplicated)`;
        return { field: 'colIdx', problem };
      }
      if (weak[j]) return { field: 'colIdx', problem: `${at} is a weak column` };
      const k = packedCol[j];
      const code = codeAt(w.qweight, r * rowBytes, k, w.bits);
      const z = w.zeros[r * groups + Math.floor(k / g)];
      if (code !== z)
        return { field: 'qweight', problem: `code of outlier (${r}, ${j}) is ${code}, not its zero point ${z}` };
    }
  }
  return null;
}

function checkOutliers(w: PackedWeight<FloatArray>, where: string): void {
  const f = outlierFault(w);
  if (f !== null) fail(where, f.field === 'qweight' ? 'qweight' : `outliers.${f.field}`, f.problem);
}

// ---- native kernels ----

/** The addon's packed functions. */
export function packedBinding(): PackedBinding {
  return loadAddonModule();
}

/** w as the addon's positional arguments (its outliers as three nulls when it has none). */
function args(w: PackedWeight): PackedArgs {
  const o = w.outliers;
  return [
    w.rows,
    w.cols,
    w.bits,
    w.groupSize,
    w.qweight,
    w.scales,
    w.zeros,
    w.perm,
    w.weakIdx,
    w.weak,
    o?.rowPtr ?? null,
    o?.colIdx ?? null,
    o?.values ?? null,
  ];
}

/** codes u8 [rows, cols] (packed-column order, each < 2^bits) -> qweight (pad codes 0). */
export function packCodes(codes: Uint8Array, rows: number, cols: number, bits: PackedBits): Uint8Array {
  const q = new Uint8Array(packedBytes(rows, cols, bits));
  packedBinding().packCodes(codes, q, rows, cols, bits);
  return q;
}

export function unpackCodes(qweight: Uint8Array, rows: number, cols: number, bits: PackedBits): Uint8Array {
  const codes = new Uint8Array(rows * cols);
  packedBinding().unpackCodes(qweight, codes, rows, cols, bits);
  return codes;
}

/** Ŵ [rows, cols] in input-column order, weak columns included. */
export function dequantize(w: PackedWeight): Float32Array {
  const out = new Float32Array(w.rows * w.cols);
  dequantizeIntoNative(w, out);
  return out;
}

/** y [m, rows] = x [m, cols] Ŵᵀ (m = 1 is the decode GEMV). */
export function packedMatmul(w: PackedWeight, x: Float32Array, m: number, y: Float32Array): void {
  packedBinding().packedMatmul(...args(w), x, m, y);
}

/** dx [m, cols] = dy [m, rows] Ŵ (overwrites). */
export function packedMatmulT(w: PackedWeight, dy: Float32Array, m: number, dx: Float32Array): void {
  packedBinding().packedMatmulT(...args(w), dy, m, dx);
}

/** dvalues [nnz] += Σ_i dy[i, row_p] x[i, colIdx[p]]. */
export function outlierGrad(w: PackedWeight, dy: Float32Array, x: Float32Array, m: number, dv: Float32Array): void {
  packedBinding().packedOutlierGrad(...args(w), dy, x, m, dv);
}

/** dweak [rows, nOut] += dyᵀ X[:, weakIdx]. */
export function weakGrad(w: PackedWeight, dy: Float32Array, x: Float32Array, m: number, dweak: Float32Array): void {
  packedBinding().packedWeakGrad(...args(w), dy, x, m, dweak);
}

function dequantizeIntoNative(w: PackedWeight, out: Float32Array): void {
  packedBinding().packedDequantize(...args(w), out);
}

export const packedNative: PackedKernels = {
  name: 'native',
  dequantizeInto: dequantizeIntoNative,
  dequantizeRows: (w, ids, out) => dequantizeRowsWith(dequantizeIntoNative, w, ids, out),
  packedMatmul,
  packedMatmulT,
  weakGrad,
  outlierGrad,
};
