/**
 * Native GPTQ (kernels/src/gptq.cc) against the fp32 TS reference (gptq-ref.ts), with and without fixed elements
 * (GWQ-style outliers), and its invariants: Q on each row's grid, round-to-nearest when H = I, the returned loss
 * equal to the quadratic proxy error it minimizes, below round-to-nearest's on a strongly correlated H, and fixed
 * elements that neither quantize nor influence anything else.
 */
import { describe, expect, it } from 'vitest';
import { gptq, type GptqOptions, type GptqResult } from '../../src/quant/gptq.js';
import { refCholeskyInverse, refCholeskyLower, refCholeskyUpper, refGptq } from '../../src/quant/gptq-ref.js';
import { fakeQuantize, findParams, type Tuning } from '../../src/quant/quantizer.js';
import { maxqOf } from '../../src/quant/quantizer-ref.js';
import { expectClose, rng } from '../kernels/helpers.js';

/**
 * Native vs reference. The two compute Hinv differently in the last ulps (blocked LAPACK vs textbook
 * loops) and sum Err1 @ Hinv in another order, so the working weights differ by ~1e-7 relative. A code
 * flips only when a working weight lands that close to a rounding boundary (rare: CODE_AGREEMENT), but
 * then that row's error feedback differs by a whole step and its later codes may differ too, so codes
 * are compared in aggregate. Where codes agree, Q = s * (code - z) differs only through the params:
 * per-row params come from the untouched W (identical), group params from updated columns (ulps), hence
 * Q_RTOL relative to the row's step. The weak columns accumulate every update: WEAK_TOL against their
 * magnitude, on rows whose codes all agree.
 */
const CODE_AGREEMENT = 0.99;
const Q_RTOL = 1e-5;
const WEAK_TOL = { rtol: 1e-4, atol: 1e-5 };

/** Random W [rows, cols] and H = 2/N X^T X from N correlated samples (mixing makes H far from diagonal). */
function problem(
  rows: number,
  cols: number,
  seed: number,
  opts: { dead?: number[]; corr?: number; n?: number } = {},
): { w: Float32Array; h: Float32Array } {
  const r = rng(seed);
  const gauss = (): number => r() + r() + r() + r() - 2;
  const w = Float32Array.from({ length: rows * cols }, () => gauss() * 0.1 * (r() < 0.01 ? 8 : 1));
  const n = opts.n ?? cols + 64;
  const corr = opts.corr ?? 0.5;
  const x = new Float64Array(n * cols);
  for (let s = 0; s < n; s++) {
    const common = gauss();
    let prev = gauss();
    for (let j = 0; j < cols; j++) {
      prev = corr * prev + gauss(); // neighbouring inputs correlate
      x[s * cols + j] = (prev + corr * common) * (1 + (j % 5));
    }
  }
  for (const j of opts.dead ?? []) for (let s = 0; s < n; s++) x[s * cols + j] = 0;
  const h = new Float32Array(cols * cols);
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j <= i; j++) {
      let acc = 0;
      for (let s = 0; s < n; s++) acc += x[s * cols + i] * x[s * cols + j];
      h[i * cols + j] = h[j * cols + i] = (2 / n) * acc;
    }
  }
  return { w, h };
}

interface Run {
  res: GptqResult;
  w: Float32Array;
}

function runBoth(w0: Float32Array, h0: Float32Array, rows: number, cols: number, opts: GptqOptions): [Run, Run] {
  const [wN, wR] = [w0.slice(), w0.slice()];
  const resN = gptq(wN, h0.slice(), rows, cols, opts);
  const resR = refGptq(wR, h0.slice(), rows, cols, opts);
  return [
    { res: resN, w: wN },
    { res: resR, w: wR },
  ];
}

/** Every quantized entry of w equals s * (code - z) for its row's (group's) params, codes in [0, maxq]. */
function expectOnGrid(run: Run, rows: number, cols: number, opts: GptqOptions): void {
  const maxq = maxqOf(opts.bits);
  const G = opts.groupSize ?? 0;
  const { codes, scale, zero, nGroups } = run.res;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < opts.nQuant; c++) {
      const g = G > 0 ? Math.floor(c / G) : 0;
      const code = codes[r * opts.nQuant + c];
      expect(code).toBeLessThanOrEqual(maxq);
      const s = scale[r * nGroups + g];
      const z = zero[r * nGroups + g];
      expect(run.w[r * cols + c]).toBe(Math.fround(s * Math.fround(code - z)));
    }
  }
}

describe('gptq native vs reference', () => {
  const cases: {
    rows: number;
    cols: number;
    nQuant: number;
    bits: number;
    tuning: Tuning;
    groupSize: number;
    dead?: number[];
    blockSize?: number;
    /** Fraction of elements fixed (kept out of the quantization). */
    fixed?: number;
  }[] = [
    { rows: 5, cols: 8, nQuant: 8, bits: 4, tuning: 'minmax', groupSize: 0 },
    { rows: 9, cols: 40, nQuant: 36, bits: 3, tuning: 'minmax', groupSize: 0, dead: [3, 38] },
    { rows: 17, cols: 64, nQuant: 64, bits: 3, tuning: 'mse', groupSize: 8, blockSize: 16 },
    { rows: 33, cols: 150, nQuant: 146, bits: 4, tuning: 'mse', groupSize: 0, dead: [10] },
    { rows: 12, cols: 200, nQuant: 200, bits: 2, tuning: 'minmax', groupSize: 32 },
    { rows: 20, cols: 300, nQuant: 292, bits: 3, tuning: 'mse', groupSize: 0 },
    { rows: 16, cols: 260, nQuant: 256, bits: 4, tuning: 'minmax', groupSize: 32, dead: [0, 257] },
    { rows: 7, cols: 140, nQuant: 137, bits: 8, tuning: 'minmax', groupSize: 0 },
    // groups that neither divide nQuant nor start on block edges (20 across blocks of 32), the last one shorter
    { rows: 11, cols: 129, nQuant: 125, bits: 3, tuning: 'mse', groupSize: 20, blockSize: 32 },
    { rows: 9, cols: 40, nQuant: 40, bits: 3, tuning: 'minmax', groupSize: 0, fixed: 0.05 },
    { rows: 17, cols: 129, nQuant: 129, bits: 3, tuning: 'minmax', groupSize: 20, blockSize: 32, fixed: 0.01 },
    { rows: 12, cols: 200, nQuant: 200, bits: 4, tuning: 'mse', groupSize: 64, fixed: 0.05 },
  ];
  for (const c of cases) {
    const name = `${c.rows}x${c.cols}, nQuant ${c.nQuant}, ${c.bits} bits, ${c.tuning}, group ${c.groupSize}${c.dead ? `, dead ${c.dead}` : ''}${c.fixed ? `, ${100 * c.fixed}% fixed` : ''}`;
    it(name, () => {
      const { w, h } = problem(c.rows, c.cols, c.rows * 131 + c.cols, { dead: c.dead });
      const opts: GptqOptions = {
        bits: c.bits,
        nQuant: c.nQuant,
        tuning: c.tuning,
        groupSize: c.groupSize,
        blockSize: c.blockSize,
        ...(c.fixed === undefined ? {} : { fixed: fixedMask(c.rows * c.cols, c.fixed, c.cols) }),
      };
      const [nat, ref] = runBoth(w, h, c.rows, c.cols, opts);
      expectOnGrid(nat, c.rows, c.cols, opts);
      expectOnGrid(ref, c.rows, c.cols, opts);
      expect(nat.res.nGroups).toBe(ref.res.nGroups);
      let agree = 0;
      const rowAgrees = new Array<boolean>(c.rows).fill(true);
      for (let r = 0; r < c.rows; r++) {
        for (let j = 0; j < c.nQuant; j++) {
          const k = r * c.nQuant + j;
          if (nat.res.codes[k] === ref.res.codes[k]) {
            agree++;
            const g = c.groupSize > 0 ? Math.floor(j / c.groupSize) : 0;
            const step = ref.res.scale[r * ref.res.nGroups + g];
            expect(Math.abs(nat.w[r * c.cols + j] - ref.w[r * c.cols + j]), `Q[${r}, ${j}]`).toBeLessThanOrEqual(
              Q_RTOL * step * maxqOf(c.bits),
            );
          } else {
            rowAgrees[r] = false;
          }
        }
      }
      expect(agree / (c.rows * c.nQuant)).toBeGreaterThanOrEqual(CODE_AGREEMENT);
      if (c.groupSize === 0 && c.tuning === 'minmax') {
        expect(nat.res.scale).toEqual(ref.res.scale); // from the untouched W: identical
        expect(nat.res.zero).toEqual(ref.res.zero);
      }
      // dead columns: quantized to the code of 0 (W[:, j] = 0) or, if weak, exactly 0
      for (const j of c.dead ?? [])
        for (let r = 0; r < c.rows; r++) if (j >= c.nQuant) expect(nat.w[r * c.cols + j]).toBe(0);
      const weakN: number[] = [];
      const weakR: number[] = [];
      for (let r = 0; r < c.rows; r++) {
        if (!rowAgrees[r]) continue;
        for (let j = c.nQuant; j < c.cols; j++) {
          weakN.push(nat.w[r * c.cols + j]);
          weakR.push(ref.w[r * c.cols + j]);
        }
      }
      expectClose(weakN, weakR, WEAK_TOL, 'weak columns');
      expect(Math.abs(nat.res.loss - ref.res.loss)).toBeLessThanOrEqual(0.02 * ref.res.loss + 1e-12);
    });
  }
});

/** A mask with about `fraction` of n elements set, and one row (the first) with half of its `cols` set. */
function fixedMask(n: number, fraction: number, cols: number): Uint8Array {
  const r = rng(n);
  const mask = Uint8Array.from({ length: n }, () => (r() < fraction ? 1 : 0));
  for (let j = 0; j < cols; j += 2) mask[j] = 1;
  return mask;
}

describe('gptq with fixed elements', () => {
  const [rows, cols] = [14, 96];
  const { w, h } = problem(rows, cols, 21);
  const fixed = fixedMask(rows * cols, 0.05, cols);
  const opts: GptqOptions = { bits: 3, nQuant: cols, tuning: 'minmax', groupSize: 32, fixed };
  const run = (w0: Float32Array) => {
    const wq = w0.slice();
    return { res: gptq(wq, h.slice(), rows, cols, opts), w: wq };
  };

  it('a fixed element gets its group zero point as code and 0 in Q', () => {
    const { res, w: q } = run(w);
    for (let i = 0; i < rows * cols; i++) {
      if (!fixed[i]) continue;
      const [r, c] = [Math.floor(i / cols), i % cols];
      expect(res.codes[i]).toBe(res.zero[r * res.nGroups + Math.floor(c / 32)]);
      expect(q[i]).toBe(0);
    }
  });

  it('the values at fixed elements change nothing else (no error propagates from them, the params ignore them)', () => {
    const moved = w.map((v, i) => (fixed[i] ? v * 7 + 1 : v));
    const [a, b] = [run(w), run(moved)];
    expect(b.w).toEqual(a.w);
    expect(b.res.codes).toEqual(a.res.codes);
    expect(b.res.scale).toEqual(a.res.scale);
    expect(b.res.zero).toEqual(a.res.zero);
  });
});

describe('gptq invariants', () => {
  it('with H = I it is round-to-nearest with the same params, weak columns untouched', () => {
    const rows = 13;
    const cols = 70;
    const nQuant = 64;
    for (const tuning of ['minmax', 'mse'] as const) {
      const { w } = problem(rows, cols, 5);
      const h = new Float32Array(cols * cols);
      for (let j = 0; j < cols; j++) h[j * cols + j] = 1;
      const q = w.slice();
      const res = gptq(q, h, rows, cols, { bits: 3, nQuant, tuning });
      const p = findParams(w, rows, nQuant, cols, { bits: 3, tuning });
      expect(res.scale).toEqual(p.scale);
      expect(res.zero).toEqual(p.zero);
      const dense = new Float32Array(rows * nQuant);
      for (let r = 0; r < rows; r++) dense.set(w.subarray(r * cols, r * cols + nQuant), r * nQuant);
      const rtn = new Float32Array(rows * nQuant);
      const codes = new Uint8Array(rows * nQuant);
      fakeQuantize(dense, rows, nQuant, p, 3, rtn, codes);
      expect(res.codes).toEqual(codes);
      for (let r = 0; r < rows; r++) {
        expect(q.subarray(r * cols, r * cols + nQuant)).toEqual(rtn.subarray(r * nQuant, (r + 1) * nQuant));
        expect(q.subarray(r * cols + nQuant, (r + 1) * cols)).toEqual(w.subarray(r * cols + nQuant, (r + 1) * cols));
      }
    }
  });

  it('returns loss = tr((W - Q) Hd (W - Q)^T) / 2 and beats round-to-nearest on a correlated H', () => {
    const rows = 24;
    const cols = 96;
    const { w, h } = problem(rows, cols, 11, { corr: 0.95 });
    // the damped H the sweep works with (percdamp 0.01)
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += h[j * cols + j] / cols;
    const hd = Float64Array.from(h);
    for (let j = 0; j < cols; j++) hd[j * cols + j] += 0.01 * mean;
    const proxy = (q: Float32Array): number => {
      let total = 0;
      for (let r = 0; r < rows; r++) {
        for (let i = 0; i < cols; i++) {
          const di = w[r * cols + i] - q[r * cols + i];
          let acc = 0;
          for (let j = 0; j < cols; j++) acc += hd[i * cols + j] * (w[r * cols + j] - q[r * cols + j]);
          total += di * acc;
        }
      }
      return total;
    };
    const q = w.slice();
    const res = gptq(q, h.slice(), rows, cols, { bits: 3, nQuant: cols, tuning: 'minmax' });
    const gptqProxy = proxy(q);
    expect(Math.abs(gptqProxy - 2 * res.loss)).toBeLessThanOrEqual(1e-3 * gptqProxy);
    const rtn = new Float32Array(rows * cols);
    fakeQuantize(w, rows, cols, findParams(w, rows, cols, cols, { bits: 3, tuning: 'minmax' }), 3, rtn);
    const rtnProxy = proxy(rtn);
    expect(gptqProxy).toBeLessThan(0.8 * rtnProxy);
  });

  it('runs blocks: the answer does not depend on blockSize beyond rounding', () => {
    const rows = 10;
    const cols = 100;
    const { w, h } = problem(rows, cols, 17);
    const a = w.slice();
    const b = w.slice();
    const ra = gptq(a, h.slice(), rows, cols, { bits: 4, nQuant: cols, tuning: 'minmax', blockSize: 128 });
    const rb = gptq(b, h.slice(), rows, cols, { bits: 4, nQuant: cols, tuning: 'minmax', blockSize: 7 });
    let agree = 0;
    for (let k = 0; k < ra.codes.length; k++) agree += ra.codes[k] === rb.codes[k] ? 1 : 0;
    expect(agree / ra.codes.length).toBeGreaterThanOrEqual(CODE_AGREEMENT);
    expect(Math.abs(ra.loss - rb.loss)).toBeLessThanOrEqual(0.02 * ra.loss);
  });

  it('reports where its time went: every part finite, >= 0, and together within the call', () => {
    const rows = 64;
    const cols = 300;
    const { w, h } = problem(rows, cols, 5);
    const t0 = performance.now();
    const { timing } = gptq(w, h, rows, cols, { bits: 3, nQuant: cols, tuning: 'mse', groupSize: 64 });
    const wall = (performance.now() - t0) / 1000;
    const parts = [timing.paramsS, timing.hinvS, timing.sweepS, timing.updateS];
    for (const s of parts) expect(Number.isFinite(s) && s >= 0, `${parts}`).toBe(true);
    expect(parts.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(wall);
    expect(timing.paramsS, 'the mse group searches take measurable time').toBeGreaterThan(0);
  });

  it('reference Cholesky pieces: U^T U = (L L^T)^-1', () => {
    const n = 12;
    const { h } = problem(1, n, 3);
    const L = refCholeskyLower(h, n);
    const U = refCholeskyUpper(refCholeskyInverse(L, n), n);
    // (U^T U) H = I
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let k = 0; k < n; k++) {
          let uu = 0;
          for (let m = 0; m <= Math.min(i, k); m++) uu += U[m * n + i] * U[m * n + k];
          acc += uu * h[k * n + j];
        }
        expect(Math.abs(acc - (i === j ? 1 : 0))).toBeLessThan(1e-3);
      }
    }
  });
});

describe('gptq validation and errors', () => {
  const w = new Float32Array(4 * 6);
  const h = new Float32Array(36);
  it('names the bad option', () => {
    expect(() => gptq(w, h, 4, 6, { bits: 5, nQuant: 6, tuning: 'minmax' })).toThrow(/bits/);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 7, tuning: 'minmax' })).toThrow(/nQuant/);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 0, tuning: 'minmax' })).toThrow(/nQuant/);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax', groupSize: 2.5 })).toThrow(/groupSize/);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax', groupSize: -1 })).toThrow(RangeError);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax', blockSize: 0 })).toThrow(/blockSize/);
    expect(() => gptq(w, h, 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax', percdamp: -1 })).toThrow(/percdamp/);
    expect(() => gptq(w, new Float32Array(35), 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax' })).toThrow(/h has 35/);
    expect(() => gptq(w.subarray(1), h, 4, 6, { bits: 4, nQuant: 6, tuning: 'minmax' })).toThrow(/w has 23/);
  });

  it('rejects an indefinite H with a clear error and leaves W untouched', () => {
    const n = 6;
    const hBad = new Float32Array(n * n);
    for (let j = 0; j < n; j++) hBad[j * n + j] = 1;
    hBad[1] = hBad[n] = 3; // [[1, 3], [3, 1]] block: eigenvalue -2
    const w0 = Float32Array.from({ length: 4 * n }, (_, k) => (k % 7) * 0.1 - 0.3);
    const wc = w0.slice();
    expect(() => gptq(wc, hBad, 4, n, { bits: 4, nQuant: n, tuning: 'minmax', percdamp: 0 })).toThrow(
      /not positive definite/,
    );
    expect(wc).toEqual(w0);
  });

  it('handles an all-dead H (no calibration signal): W quantizes to the codes of 0', () => {
    const n = 5;
    const wc = Float32Array.from({ length: 3 * n }, (_, k) => k * 0.1 - 0.7);
    const res = gptq(wc, new Float32Array(n * n), 3, n, { bits: 4, nQuant: n, tuning: 'minmax' });
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < n; c++) expect(res.codes[r * n + c]).toBe(res.zero[r]);
    }
    expect(res.loss).toBe(0);
  });
});
