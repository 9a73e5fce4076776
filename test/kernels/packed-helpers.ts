/** Random packed weights for the packed-kernel tests, built with the reference packer. */
import { expect } from 'vitest';
import {
  outlierGrad,
  packedGroups,
  packedMatmul,
  packedMatmulT,
  weakGrad,
  type PackedBits,
  type PackedWeight,
} from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32, rng } from './helpers.js';

export interface PackedSpec {
  rows: number;
  cols: number;
  bits: PackedBits;
  groupSize: number;
  perm: boolean;
  nOut: number;
  seed: number;
  /** CSR outliers (GWQ-style): this fraction of every row's non-weak positions, chosen at random; absent = none. */
  outlierFrac?: number;
  /** And this fraction of the non-weak positions of one row (row floor(rows / 2)): GWQ's outliers crowd into rows. */
  outlierCrowd?: number;
}

/** Fisher-Yates permutation of 0..n-1. */
function permutation(n: number, next: () => number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** Uniform random codes and zero points, scales in ±[0.02, 0.1], weak columns at random sorted columns. */
export function randomPacked(s: PackedSpec): { w: PackedWeight; codes: Uint8Array } {
  const next = rng(s.seed);
  const levels = 2 ** s.bits;
  const groups = packedGroups(s.cols, s.groupSize);
  const perm = s.perm ? permutation(s.cols, next) : null;
  const weakIdx = permutation(s.cols, next).subarray(0, s.nOut).sort();
  const zeros = Uint8Array.from({ length: s.rows * groups }, () => Math.floor(next() * levels));
  const scales = Float32Array.from({ length: s.rows * groups }, () => (next() < 0.2 ? -1 : 1) * (0.02 + 0.08 * next()));
  const codes = Uint8Array.from({ length: s.rows * s.cols }, () => Math.floor(next() * levels));
  const packedCol = new Int32Array(s.cols).map((_, k) => k);
  perm?.forEach((j, k) => (packedCol[j] = k));
  for (let r = 0; r < s.rows; r++) {
    for (const j of weakIdx) {
      const k = packedCol[j];
      codes[r * s.cols + k] = zeros[r * groups + Math.floor(k / s.groupSize)];
    }
  }
  const w: PackedWeight = {
    rows: s.rows,
    cols: s.cols,
    bits: s.bits,
    groupSize: s.groupSize,
    qweight: pref.packCodes(codes, s.rows, s.cols, s.bits),
    scales,
    zeros,
    perm,
    weakIdx: Int32Array.from(weakIdx),
    weak: rand32(s.rows * s.nOut, s.seed + 1),
  };
  if (s.outlierFrac !== undefined || s.outlierCrowd !== undefined) {
    w.outliers = randomOutliers(s, weakIdx, rng(s.seed + 5));
    // an outlier's code holds its group's zero point (the packed part is 0 there)
    const { rowPtr, colIdx } = w.outliers;
    for (let r = 0; r < s.rows; r++) {
      for (let p = rowPtr[r]; p < rowPtr[r + 1]; p++) {
        const k = packedCol[colIdx[p]];
        codes[r * s.cols + k] = zeros[r * groups + Math.floor(k / s.groupSize)];
      }
    }
    w.qweight = pref.packCodes(codes, s.rows, s.cols, s.bits);
  }
  return { w, codes };
}

/**
 * CSR outliers off the weak columns: per row, round(outlierFrac * free) of its `free` non-weak columns at random
 * (row floor(rows / 2): outlierCrowd of them when larger), ascending; values ±[0.2, 1], larger than the packed
 * part's steps, as outliers are.
 */
function randomOutliers(s: PackedSpec, weakIdx: Int32Array, next: () => number): NonNullable<PackedWeight['outliers']> {
  const weak = new Set(weakIdx);
  const free = Int32Array.from({ length: s.cols }, (_, j) => j).filter((j) => !weak.has(j));
  const rowPtr = new Int32Array(s.rows + 1);
  const cols: number[] = [];
  for (let r = 0; r < s.rows; r++) {
    let frac = s.outlierFrac ?? 0;
    if (r === Math.floor(s.rows / 2)) frac = Math.max(frac, s.outlierCrowd ?? 0);
    const n = Math.round(frac * free.length);
    const chosen = permutation(free.length, next)
      .subarray(0, n)
      .map((i) => free[i])
      .sort();
    cols.push(...chosen);
    rowPtr[r + 1] = cols.length;
  }
  const values = Float32Array.from(cols, () => (next() < 0.5 ? -1 : 1) * (0.2 + 0.8 * next()));
  return { rowPtr, colIdx: Int32Array.from(cols), values };
}

/** |Ŵ| with |s| (code + z) in place of s (code - z): the magnitudes the kernels' partial sums see. */
export function magnitudes(w: PackedWeight, codes: Uint8Array): Float64Array {
  const { rows, cols, groupSize: g } = w;
  const groups = packedGroups(cols, g);
  const a = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const grp = r * groups + Math.floor(k / g);
      a[r * cols + (w.perm === null ? k : w.perm[k])] = Math.abs(w.scales[grp]) * (codes[r * cols + k] + w.zeros[grp]);
    }
    w.weakIdx.forEach((j, i) => (a[r * cols + j] += Math.abs(w.weak[r * w.weakIdx.length + i])));
    const o = w.outliers;
    if (o !== undefined)
      for (let p = o.rowPtr[r]; p < o.rowPtr[r + 1]; p++) a[r * cols + o.colIdx[p]] += Math.abs(o.values[p]);
  }
  return a;
}

/** Products agree within PACKED_REL times the sum of the magnitudes the kernels add up. */
export const PACKED_REL = 64 * 2 ** -24;
/** |actual - expected| <= rel * bound, elementwise (rel: PACKED_REL for the native kernels). */
export function expectWithin(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  bound: ArrayLike<number>,
  label: string,
  rel = PACKED_REL,
): void {
  expect(actual.length, label).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= rel * bound[i] + 1e-30)) {
      expect.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]} (bound ${rel * bound[i]})`);
    }
  }
}

/** c [m, n] = |a| [m, k] b [k, n] (b given as [n, k] when bT). */
export function absProduct(
  a: ArrayLike<number>,
  b: Float64Array,
  m: number,
  n: number,
  k: number,
  bT: boolean,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let t = 0; t < k; t++) s += Math.abs(a[i * k + t]) * (bT ? b[j * k + t] : b[t * n + j]);
      c[i * n + j] = s;
    }
  }
  return c;
}

/**
 * Every product of a random packed weight on m random rows (m = 1: the decode GEMV; m > 16: the panel GEMM)
 * against the reference: packedMatmul, packedMatmulT (dx prefilled with NaN: every entry must be written),
 * weakGrad (accumulating into a random dweak) and outlierGrad (into random dvalues), each within PACKED_REL
 * times its magnitudes.
 */
export function checkProducts(spec: PackedSpec, m: number): void {
  const { w, codes } = randomPacked(spec);
  const { rows: n, cols: k } = w;
  const label = `${JSON.stringify(spec)} m=${m}`;
  const mag = magnitudes(w, codes);
  const x = rand32(m * k, spec.seed + 2);
  const y = new Float32Array(m * n);
  const yRef = new Float32Array(m * n);
  packedMatmul(w, x, m, y);
  pref.packedMatmul(w, x, m, yRef);
  expectWithin(y, yRef, absProduct(x, mag, m, n, k, true), `packedMatmul ${label}`);

  const dy = rand32(m * n, spec.seed + 3);
  const dx = new Float32Array(m * k).fill(NaN);
  const dxRef = new Float32Array(m * k);
  packedMatmulT(w, dy, m, dx);
  pref.packedMatmulT(w, dy, m, dxRef);
  expectWithin(dx, dxRef, absProduct(dy, mag, m, k, n, false), `packedMatmulT ${label}`);

  const nOut = w.weakIdx.length;
  const dweak0 = rand32(n * nOut, spec.seed + 4);
  const [dweak, dweakRef] = [dweak0.slice(), dweak0.slice()];
  weakGrad(w, dy, x, m, dweak);
  pref.weakGrad(w, dy, x, m, dweakRef);
  const xw = Float64Array.from({ length: m * nOut }, (_, t) =>
    Math.abs(x[Math.floor(t / nOut) * k + w.weakIdx[t % nOut]]),
  );
  const dyT = Float64Array.from({ length: n * m }, (_, t) => dy[(t % m) * n + Math.floor(t / m)]);
  const bound = absProduct(dyT, xw, n, nOut, m, false).map((b, t) => b + Math.abs(dweak0[t]));
  expectWithin(dweak, dweakRef, bound, `weakGrad ${label}`);

  const o = w.outliers;
  const nnz = o === undefined ? 0 : o.colIdx.length;
  const dv0 = rand32(nnz, spec.seed + 6);
  const [dv, dvRef] = [dv0.slice(), dv0.slice()];
  outlierGrad(w, dy, x, m, dv);
  pref.outlierGrad(w, dy, x, m, dvRef);
  const dvBound = new Float64Array(nnz);
  for (let r = 0; o !== undefined && r < n; r++) {
    for (let p = o.rowPtr[r]; p < o.rowPtr[r + 1]; p++) {
      let b = Math.abs(dv0[p]);
      for (let i = 0; i < m; i++) b += Math.abs(dy[i * n + r] * x[i * k + o.colIdx[p]]);
      dvBound[p] = b;
    }
  }
  expectWithin(dv, dvRef, dvBound, `outlierGrad ${label}`);
}
