/**
 * The native quantizer grid (kernels/src/quant_params.cc) against the fp32 TS reference (quantizer-ref.ts):
 * min-max parameters and fake quantization bit-exact, rounding ties included; OWQ's "mse" clipping search
 * equal on nearly every row and never worse than the reference's choice by more than MSE_SCORE_RTOL.
 */
import { describe, expect, it } from 'vitest';
import { fakeQuantize, findParams, type RowParams } from '../../src/quant/quantizer.js';
import { maxqOf, refFakeQuantize, refFindParams, refLpScore, roundHalfEven } from '../../src/quant/quantizer-ref.js';
import { rand32, rng } from '../kernels/helpers.js';

const f = Math.fround;

/**
 * The native search computes |e|^2.4 in double and sums by another order than the reference (prefix
 * sums over the sorted row); a score can move by ~1e-7 relative, which can swap two near-equal
 * candidates. Whatever it picks must score within this of the reference's pick (torch's own powf is
 * within 1 ulp of either).
 */
const MSE_SCORE_RTOL = 1e-5;
/** Rows on which the native search may pick other params than the reference (expected: none). */
const MSE_MAX_DIFFERENT_ROWS = 0.02;

/** Values on a bf16-like grid (8 significant bits), as in the golden checkpoint, where .5 ties are common. */
function bf16Like(n: number, seed: number, scale = 0.1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => {
    const x = (r() * 2 - 1) * scale;
    const e = Math.floor(Math.log2(Math.abs(x) || 1)) - 7;
    return f(Math.round(x / 2 ** e) * 2 ** e);
  });
}

/**
 * Rows built so that -xmin / s is exactly k + 0.5 (s = 2^-e, xmin = -(k + 0.5) s, xmax = (maxq - k - 0.5) s)
 * and the other elements sit on (m + 0.5) s: zero points and codes both hit exact ties.
 */
function tieRows(rows: number, cols: number, bits: number, seed: number): Float32Array {
  const maxq = maxqOf(bits);
  const r = rng(seed);
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const s = 2 ** -(2 + Math.floor(r() * 6));
    const k = i % maxq; // k + 0.5 in [0.5, maxq - 0.5]
    w[i * cols] = -(k + 0.5) * s;
    if (cols > 1) w[i * cols + 1] = (maxq - k - 0.5) * s;
    for (let c = 2; c < cols; c++) w[i * cols + c] = (Math.floor(r() * maxq) - k + 0.5) * s;
  }
  return w;
}

function params(rows: number): RowParams {
  return { scale: new Float32Array(rows), zero: new Float32Array(rows) };
}

describe('roundHalfEven', () => {
  it('rounds ties to even, like torch.round', () => {
    const cases: [number, number][] = [
      [0.5, 0],
      [1.5, 2],
      [2.5, 2],
      [-0.5, -0],
      [-1.5, -2],
      [-2.5, -2],
      [7.5, 8],
      [6.5, 6],
      [2.4999998, 2],
      [3.7, 4],
      [-3.7, -4],
    ];
    for (const [x, y] of cases) expect(roundHalfEven(x)).toBe(y);
  });
});

describe('findParams minmax', () => {
  for (const bits of [2, 3, 4, 8]) {
    for (const [rows, cols] of [
      [1, 1],
      [3, 7],
      [17, 127],
      [9, 129],
      [40, 300],
    ]) {
      it(`equals the reference bit for bit, ${bits} bits, ${rows}x${cols}`, () => {
        const w = rand32(rows * cols, bits * 1000 + cols, -0.3, 0.2);
        const got = findParams(w, rows, cols, cols, { bits, tuning: 'minmax' });
        const want = refFindParams(w, rows, cols, cols, { bits, tuning: 'minmax' });
        expect(got.scale).toEqual(want.scale);
        expect(got.zero).toEqual(want.zero);
      });
    }
  }

  it('uses [-1, 1] for a row of zeros and includes 0 in one-signed rows', () => {
    const w = new Float32Array([0, 0, 0, 0.5, 1, 2, -3, -1, -2]);
    const got = findParams(w, 3, 3, 3, { bits: 4, tuning: 'minmax' });
    const want = refFindParams(w, 3, 3, 3, { bits: 4, tuning: 'minmax' });
    expect(got).toEqual(want);
    expect(got.scale[0]).toBe(f(2 / 15));
    expect(got.zero[0]).toBe(7); // 1 / f(2/15) = 7.4999996 in fp32
    expect(Object.is(got.zero[1], 0)).toBe(true); // xmin = 0: round(-0 / s) stored as +0
    expect(got.zero[2]).toBe(15);
  });

  for (const bits of [2, 3, 4]) {
    it(`rounds exact .5 zero points half to even, ${bits} bits`, () => {
      const rows = 24;
      const cols = 33;
      const w = tieRows(rows, cols, bits, 7 + bits);
      const got = findParams(w, rows, cols, cols, { bits, tuning: 'minmax' });
      const want = refFindParams(w, rows, cols, cols, { bits, tuning: 'minmax' });
      expect(got.scale).toEqual(want.scale);
      expect(got.zero).toEqual(want.zero);
      // every row is a tie by construction, and half of them round down (Math.round would differ)
      let down = 0;
      for (let r = 0; r < rows; r++) {
        const t = f(-w[r * cols] / got.scale[r]);
        expect(t - Math.floor(t)).toBe(0.5);
        if (got.zero[r] < t) down++;
      }
      expect(down).toBeGreaterThan(0);
    });
  }

  it('reads rows with a stride (ld > cols)', () => {
    const w = rand32(5 * 20, 3);
    const got = findParams(w, 5, 12, 20, { bits: 3, tuning: 'minmax' });
    expect(got).toEqual(refFindParams(w, 5, 12, 20, { bits: 3, tuning: 'minmax' }));
  });
});

describe('fakeQuantize', () => {
  for (const bits of [2, 3, 4, 8]) {
    it(`equals the reference bit for bit, codes and ties included, ${bits} bits`, () => {
      const rows = 21;
      const cols = 129;
      const ties = tieRows(rows, cols, bits, bits);
      const rand = rand32(rows * cols, 50 + bits, -2, 1);
      for (const w of [ties, rand]) {
        // params that put some elements outside the grid too (clamped codes)
        const p = findParams(w, rows, Math.min(cols, 40), cols, { bits, tuning: 'minmax' });
        const [out, outRef] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
        const [codes, codesRef] = [new Uint8Array(rows * cols), new Uint8Array(rows * cols)];
        fakeQuantize(w, rows, cols, p, bits, out, codes);
        refFakeQuantize(w, rows, cols, p, bits, outRef, codesRef);
        expect(out).toEqual(outRef);
        expect(codes).toEqual(codesRef);
        const out2 = new Float32Array(rows * cols);
        fakeQuantize(w, rows, cols, p, bits, out2); // codes optional
        expect(out2).toEqual(outRef);
      }
    });
  }
});

describe('findParams mse (OWQ tuned clipping)', () => {
  const cases: { bits: number; rows: number; cols: number; grid?: number; data: 'uniform' | 'bf16' | 'heavy' }[] = [
    { bits: 4, rows: 8, cols: 1, data: 'uniform' },
    { bits: 3, rows: 16, cols: 7, data: 'uniform' },
    { bits: 4, rows: 12, cols: 127, data: 'bf16' },
    { bits: 3, rows: 12, cols: 129, data: 'heavy' },
    { bits: 2, rows: 10, cols: 129, data: 'uniform' },
    { bits: 4, rows: 6, cols: 300, grid: 40, data: 'heavy' },
    { bits: 3, rows: 8, cols: 128, grid: 40, data: 'bf16' },
    { bits: 8, rows: 2, cols: 33, grid: 20, data: 'uniform' },
    { bits: 3, rows: 64, cols: 200, data: 'heavy' },
  ];
  for (const { bits, rows, cols, grid, data } of cases) {
    it(`matches the reference's choice, ${bits} bits, ${rows}x${cols}, grid ${grid ?? 100}, ${data}`, () => {
      const seed = bits * 7919 + cols;
      let w: Float32Array;
      if (data === 'bf16') w = bf16Like(rows * cols, seed);
      else if (data === 'uniform') w = rand32(rows * cols, seed, -0.5, 0.3);
      else {
        // heavy tails: a Gaussian-ish bulk and a few outliers, the case clipping is for
        const r = rng(seed);
        w = Float32Array.from({ length: rows * cols }, () => {
          const g = (r() + r() + r() + r() - 2) * 0.05;
          return r() < 0.02 ? g * 12 : g;
        });
      }
      const maxq = maxqOf(bits);
      const opts = { bits, tuning: 'mse' as const, grid };
      const got = findParams(w, rows, cols, cols, opts);
      const want = refFindParams(w, rows, cols, cols, opts);
      let different = 0;
      for (let r = 0; r < rows; r++) {
        expect(Number.isInteger(got.zero[r]) && got.zero[r] >= 0 && got.zero[r] <= maxq).toBe(true);
        const sGot = refLpScore(w, r * cols, cols, got.scale[r], got.zero[r], maxq);
        const sWant = refLpScore(w, r * cols, cols, want.scale[r], want.zero[r], maxq);
        expect(sGot, `row ${r}`).toBeLessThanOrEqual(sWant * (1 + MSE_SCORE_RTOL) + 1e-30);
        if (got.scale[r] !== want.scale[r] || got.zero[r] !== want.zero[r]) different++;
      }
      expect(different).toBeLessThanOrEqual(Math.floor(rows * MSE_MAX_DIFFERENT_ROWS));
    });
  }

  it('handles a row of zeros and constant rows like the reference', () => {
    const w = new Float32Array([0, 0, 0, 0, 0.25, 0.25, 0.25, 0.25, -1, -1, -1, -1]);
    const got = findParams(w, 3, 4, 4, { bits: 3, tuning: 'mse' });
    const want = refFindParams(w, 3, 4, 4, { bits: 3, tuning: 'mse' });
    expect(got).toEqual(want);
    expect(got.scale[0]).toBe(f(1e-8));
  });

  it('survives non-finite input (unspecified params, no crash)', () => {
    const w = new Float32Array([0.1, Number.NaN, -0.2, 0.3, Number.POSITIVE_INFINITY, 0.1, 0.2, 0.4]);
    expect(() => findParams(w, 2, 4, 4, { bits: 4, tuning: 'mse' })).not.toThrow();
  });

  it('clips outliers: its params score no worse than min-max', () => {
    const w = rand32(4 * 256, 99, -0.1, 0.1);
    for (let r = 0; r < 4; r++) w[r * 256 + 3] = 1.5; // one outlier per row
    const mse = findParams(w, 4, 256, 256, { bits: 3, tuning: 'mse' });
    const mm = findParams(w, 4, 256, 256, { bits: 3, tuning: 'minmax' });
    for (let r = 0; r < 4; r++) {
      expect(refLpScore(w, r * 256, 256, mse.scale[r], mse.zero[r], 7)).toBeLessThan(
        refLpScore(w, r * 256, 256, mm.scale[r], mm.zero[r], 7),
      );
      expect(mse.scale[r]).toBeLessThan(mm.scale[r]);
    }
  });
});

describe('validation', () => {
  const w = new Float32Array(12);
  it('names the bad field', () => {
    expect(() => findParams(w, 3, 4, 4, { bits: 5, tuning: 'minmax' })).toThrow(/bits/);
    expect(() => findParams(w, 3, 4, 4, { bits: 4, tuning: 'l2' as never })).toThrow(/tuning/);
    expect(() => findParams(w, 3, 4, 4, { bits: 4, tuning: 'mse', grid: 0 })).toThrow(/grid/);
    expect(() => findParams(w, 3, 0, 4, { bits: 4, tuning: 'mse' })).toThrow(/cols/);
    expect(() => findParams(w, 3, 4, 3, { bits: 4, tuning: 'mse' })).toThrow(/ld/);
    expect(() => findParams(w, 4, 4, 4, { bits: 4, tuning: 'mse' })).toThrow(/w has 12 elements/);
    expect(() => fakeQuantize(w, 3, 4, params(2), 4, new Float32Array(12))).toThrow(/scale/);
    expect(() => fakeQuantize(w, 3, 4, params(3), 4, new Float32Array(11))).toThrow(/out/);
    expect(() => fakeQuantize(w, 3, 4, params(3), 4, new Float32Array(12), new Uint8Array(3))).toThrow(/codes/);
    expect(() => fakeQuantize(w, 3, 4, params(3), 4, new Float32Array(12))).not.toThrow();
  });
  it('throws RangeError', () => {
    expect(() => findParams(w, 3, 4, 4, { bits: 1, tuning: 'minmax' })).toThrow(RangeError);
  });
});
