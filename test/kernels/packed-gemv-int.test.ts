/**
 * The decode GEMV's integer walk (kernels/src/packed_gemv_int.cc: one input, 3-bit codes, one group per row, on
 * CPUs with AVX-512 VNNI and VBMI) against the reference: x rounded to 24-bit block floating point exactly as the
 * walk rounds it (intGemvInput), then the plain product. Where the CPU lacks those instructions the same
 * weights run the floating-point walk, which must match the reference on x itself; each check below says
 * which it expects from native.buildInfo().cpuFeatures.
 */
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native/addon.js';
import { packedMatmul } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32, rng } from './helpers.js';
import { absProduct, expectWithin, magnitudes, PACKED_REL, randomPacked, type PackedSpec } from './packed-helpers.js';

const native = loadNative();
const features = native.buildInfo().cpuFeatures.split(' ');
const intWalk =
  native.cpuPath() === 'avx512' &&
  process.env.WCT_CPU_PATH !== 'avx512' &&
  ['avx512vnni', 'avx512vbmi'].every((f) => features.includes(f));

const spec = (rows: number, cols: number, perm: boolean, nOut: number, seed: number): PackedSpec => ({
  rows,
  cols,
  bits: 3,
  groupSize: cols,
  perm,
  nOut,
  seed,
});

/** y = x Ŵᵀ natively and by the reference on x~ (what the integer walk computes) and on x; and the bound. */
function products(s: PackedSpec, x: Float32Array, outlierFrac?: number) {
  const { w, codes } = randomPacked({ ...s, outlierFrac });
  const y = new Float32Array(w.rows);
  packedMatmul(w, x, 1, y);
  const onRounded = new Float32Array(w.rows);
  pref.packedMatmul(w, pref.intGemvInput(w, x), 1, onRounded);
  const onX = new Float32Array(w.rows);
  pref.packedMatmul(w, x, 1, onX);
  return { w, y, onRounded, onX, bound: absProduct(x, magnitudes(w, codes), 1, w.rows, w.cols, true) };
}

/**
 * x whose first block of INT_GEMV_BLOCK packed columns (no perm) holds one element of magnitude 1 and every
 * other element 1e-4 (full mantissas): rounding to 2^-22 of the first block's largest |x| moves the product far
 * more than fp32's rounding of x would, and an exponent per row instead of per block would round all of x so.
 */
function spiky(k: number, seed: number): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: k }, (_, c) => (next() < 0.5 ? -1 : 1) * (c === 5 ? 1 : 1e-4 * (0.5 + next())));
}

/** Whether some |a - b| exceeds rel times its bound. */
function anyOutside(a: Float32Array, b: Float32Array, bound: Float64Array, rel: number): boolean {
  return a.some((v, i) => Math.abs(v - b[i]) > rel * bound[i]);
}

/**
 * The integer walk's own rounding beyond x~ (fp32 combinations of exact integer sums): a few ulps of the bound,
 * against PACKED_REL for the floating-point walk's fp32 sums.
 */
const WALK_REL = 8 * 2 ** -24;
const REL = intWalk ? WALK_REL : PACKED_REL;

describe('integer decode GEMV (3-bit, per row, m = 1)', () => {
  const shapes: [number, number, boolean, number][] = [
    [37, 1032, false, 2], // one block, a partial last step (1032 = 16 x 64 + 8)
    [37, 1029, true, 5], // K % 8 != 0: the last block padded; perm
    [9, 3080, false, 40], // three blocks, the last partial; rows not a multiple of 4
    [5, 8, false, 0], // one step of 8 codes
    [6, 2048, true, 0], // whole blocks, no weak columns
  ];
  for (const [rows, cols, perm, nOut] of shapes) {
    it(`${rows}x${cols}${perm ? ' perm' : ''}, ${nOut} weak columns: ${intWalk ? 'x~' : 'x'} exactly`, () => {
      const x = rand32(cols, rows + cols, -3, 3);
      const { y, onRounded, onX, bound } = products(spec(rows, cols, perm, nOut, 3), x);
      expectWithin(y, intWalk ? onRounded : onX, bound, `${rows}x${cols}`, REL);
    });
  }

  it('keeps an exponent per block: a large input rounds its own block only', () => {
    const cols = 6144;
    const x = spiky(cols, 11);
    const { y, onRounded, onX, bound } = products(spec(24, cols, false, 0, 5), x);
    // the check tells the walks apart: x~ is far from x at this tolerance
    expect(anyOutside(onRounded, onX, bound, WALK_REL)).toBe(true);
    expectWithin(y, intWalk ? onRounded : onX, bound, 'spiky x', REL);
  });

  it('zeroes x at the weak columns before choosing exponents: a huge weak input costs no precision', () => {
    const cols = 2048;
    const x = rand32(cols, 21);
    const { w, codes } = randomPacked({ ...spec(16, cols, true, 4, 9) });
    for (const j of w.weakIdx) x[j] = 1e30;
    const y = new Float32Array(w.rows);
    packedMatmul(w, x, 1, y);
    const expected = new Float32Array(w.rows);
    pref.packedMatmul(w, intWalk ? pref.intGemvInput(w, x) : x, 1, expected);
    const bound = absProduct(x, magnitudes(w, codes), 1, w.rows, cols, true);
    expectWithin(y, expected, bound, 'huge weak inputs', REL);
    if (intWalk) expect(Array.from(pref.intGemvInput(w, x).subarray(0, 64))).not.toEqual(Array(64).fill(0));
  });

  it('adds the CSR outliers beside the walk', () => {
    const x = rand32(1032, 31);
    const { y, onRounded, onX, bound } = products(spec(37, 1032, true, 3, 13), x, 0.02);
    expectWithin(y, intWalk ? onRounded : onX, bound, 'outliers', REL);
  });

  it('leaves NaN and infinite inputs to the floating-point walk, which propagates them', () => {
    const { w } = randomPacked(spec(8, 1032, false, 2, 17));
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const x = rand32(1032, 41);
      x[500] = bad;
      const y = new Float32Array(w.rows);
      packedMatmul(w, x, 1, y);
      for (const v of y) expect(Number.isNaN(v) || !Number.isFinite(v)).toBe(true);
    }
  });

  it('gives the same bits on 1 and 2 threads', () => {
    const { w } = randomPacked(spec(300, 4096, true, 60, 19));
    const x = rand32(4096, 43);
    const before = native.threads();
    const run = (t: number) => {
      native.setThreads(t);
      const y = new Float32Array(w.rows);
      packedMatmul(w, x, 1, y);
      return Array.from(y);
    };
    try {
      expect(run(1)).toEqual(run(2));
    } finally {
      native.setThreads(before);
    }
  });
});
