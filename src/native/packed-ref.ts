/**
 * Reference of the packed-weight kernels (src/native/packed.ts): plain loops straight from the layout's
 * definition, bit by bit. They are the oracle of the native kernels in tests, and, over Float64Array
 * scales / weak / activations, the float64 engine of gradient checks. Products dequantize Ŵ first and
 * then multiply densely, summing in JS doubles; results are rounded once when stored.
 */
import {
  codeAt,
  dequantizeRowsWith,
  packedBytes,
  packedGroups,
  packedRowBytes,
  validatePacked,
  type PackedBits,
  type PackedKernels,
  type PackedWeight,
} from './packed.js';
import type { FloatArray } from './types.js';

/** Rows of `cols` codes, each a bit stream padded with 0 bits to whole 8-code blocks. */
export function packCodes(codes: Uint8Array, rows: number, cols: number, bits: PackedBits): Uint8Array {
  const q = new Uint8Array(packedBytes(rows, cols, bits));
  const rowBytes = packedRowBytes(cols, bits);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const c = codes[r * cols + k];
      if (c >> bits !== 0)
        throw new RangeError(`packCodes: codes[${r * cols + k}] = ${c} needs more than ${bits} bits`);
      for (let t = 0; t < bits; t++) {
        const bit = k * bits + t;
        if ((c >> t) & 1) q[r * rowBytes + (bit >> 3)] |= 1 << (bit & 7);
      }
    }
  }
  return q;
}

export function unpackCodes(qweight: Uint8Array, rows: number, cols: number, bits: PackedBits): Uint8Array {
  const codes = new Uint8Array(rows * cols);
  const rowBytes = packedRowBytes(cols, bits);
  for (let r = 0; r < rows; r++)
    for (let k = 0; k < cols; k++) codes[r * cols + k] = codeAt(qweight, r * rowBytes, k, bits);
  return codes;
}

/** out [N, K] = Ŵ in input-column order: s * (code - z) at input column perm[k], plus the weak columns and outliers. */
export function dequantizeInto(w: PackedWeight<FloatArray>, out: FloatArray): void {
  validatePacked(w, 'dequantize (reference)');
  const { rows, cols, bits, groupSize: g, weakIdx } = w;
  const rowBytes = packedRowBytes(cols, bits);
  const groups = packedGroups(cols, g);
  const nOut = weakIdx.length;
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const group = r * groups + Math.floor(k / g);
      const j = w.perm === null ? k : w.perm[k];
      out[r * cols + j] = w.scales[group] * (codeAt(w.qweight, r * rowBytes, k, bits) - w.zeros[group]);
    }
    for (let i = 0; i < nOut; i++) out[r * cols + weakIdx[i]] += w.weak[r * nOut + i];
    const o = w.outliers;
    if (o !== undefined) for (let p = o.rowPtr[r]; p < o.rowPtr[r + 1]; p++) out[r * cols + o.colIdx[p]] += o.values[p];
  }
}

/** Ŵ as an array of the weight's float type. */
export function dequantize<F extends FloatArray>(w: PackedWeight<F>): F {
  const out = new (w.scales.constructor as new (n: number) => F)(w.rows * w.cols);
  dequantizeInto(w, out);
  return out;
}

/** y [m, N] = x [m, K] Ŵᵀ */
export function packedMatmul(w: PackedWeight<FloatArray>, x: FloatArray, m: number, y: FloatArray): void {
  const W = dequantize(w);
  const { rows: n, cols: k } = w;
  for (let i = 0; i < m; i++) {
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let c = 0; c < k; c++) s += x[i * k + c] * W[r * k + c];
      y[i * n + r] = s;
    }
  }
}

/** dx [m, K] = dy [m, N] Ŵ */
export function packedMatmulT(w: PackedWeight<FloatArray>, dy: FloatArray, m: number, dx: FloatArray): void {
  const W = dequantize(w);
  const { rows: n, cols: k } = w;
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < k; c++) {
      let s = 0;
      for (let r = 0; r < n; r++) s += dy[i * n + r] * W[r * k + c];
      dx[i * k + c] = s;
    }
  }
}

/** dweak [N, nOut] += dyᵀ X[:, weakIdx] */
export function weakGrad(
  w: PackedWeight<FloatArray>,
  dy: FloatArray,
  x: FloatArray,
  m: number,
  dweak: FloatArray,
): void {
  const { rows: n, cols: k, weakIdx } = w;
  const nOut = weakIdx.length;
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < nOut; j++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += dy[i * n + r] * x[i * k + weakIdx[j]];
      dweak[r * nOut + j] += s;
    }
  }
}

/** dvalues [nnz] += Σ_i dy[i, row_p] x[i, colIdx[p]] */
export function outlierGrad(
  w: PackedWeight<FloatArray>,
  dy: FloatArray,
  x: FloatArray,
  m: number,
  dvalues: FloatArray,
): void {
  const o = w.outliers;
  if (o === undefined) return;
  const { rows: n, cols: k } = w;
  for (let r = 0; r < n; r++) {
    for (let p = o.rowPtr[r]; p < o.rowPtr[r + 1]; p++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += dy[i * n + r] * x[i * k + o.colIdx[p]];
      dvalues[p] += s;
    }
  }
}

export const packedReference: PackedKernels<FloatArray> = {
  name: 'reference',
  dequantizeInto,
  dequantizeRows: (w, ids, out) => dequantizeRowsWith(dequantizeInto, w, ids, out),
  packedMatmul,
  packedMatmulT,
  weakGrad,
  outlierGrad,
};

/** Packed columns per exponent block of the integer decode GEMV (kernels/src/packed_gemv_int.cc). */
export const INT_GEMV_BLOCK = 1024;
/** Fraction bits of its block floating point: x~ = X 2^(E - 22), |X| <= 2^22, 2^E > the block's largest |x|. */
export const INT_GEMV_FRACTION_BITS = 22;

/** Round half to even (the native walk's nearbyint under the default rounding mode). */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * x [K] as the integer decode GEMV sees it (one input, 3-bit codes, one group per row, AVX-512 VNNI CPUs): in
 * packed order, per block of INT_GEMV_BLOCK packed columns, every non-weak x_k rounded to a multiple of
 * 2^(E - 22), E the smallest integer with 2^E > the block's largest non-weak |x| (the weak columns keep their
 * value: they are added in fp32 beside the walk, and their codes dequantize to 0). packedMatmul of the result
 * is what the walk computes, up to fp32 rounding of its per-block sums.
 */
export function intGemvInput(w: PackedWeight<FloatArray>, x: FloatArray): Float32Array {
  const k = w.cols;
  const weak = new Set(w.weakIdx);
  const col = (p: number) => (w.perm === null ? p : w.perm[p]);
  const out = Float32Array.from(x.subarray(0, k));
  for (let p0 = 0; p0 < k; p0 += INT_GEMV_BLOCK) {
    const cols: number[] = [];
    for (let p = p0; p < Math.min(k, p0 + INT_GEMV_BLOCK); p++) if (!weak.has(col(p))) cols.push(col(p));
    const top = Math.max(0, ...cols.map((c) => Math.abs(x[c])));
    if (top === 0) continue;
    let e = Math.ceil(Math.log2(top));
    while (2 ** e <= top) e++;
    while (2 ** (e - 1) > top) e--;
    const unit = 2 ** (e - INT_GEMV_FRACTION_BITS);
    for (const c of cols) out[c] = roundHalfEven(x[c] / unit) * unit;
  }
  return out;
}
