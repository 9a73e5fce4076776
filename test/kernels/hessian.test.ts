/**
 * The symmetric rank-k update (syrk: cblas_ssyrk) against the reference kernel on odd sizes, and the input
 * Hessian built on it (src/quant/hessian.ts) against H = (2/N) Σ X_n^T X_n written out here in float64.
 */
import { describe, expect, it } from 'vitest';
import { gemmDims, type SyrkDims } from '../../src/native/types.js';
import { Hessian } from '../../src/quant/hessian.js';
import { expectClose, native, rand32, ref, SIZES, type Tol } from './helpers.js';

/** fp32 accumulation over k products of values in [-1, 1] (as the gemm test's tolerance). */
const syrkTol = (k: number): Tol => ({ rtol: 1e-5, atol: 2e-6 * Math.max(1, k) });

/**
 * |H - H_f64| <= HESSIAN_REL * max|H_f64|: the f32 running average rounds the rescale n/(n+1), the scaled copy
 * sqrt(2/n) X and each product sum, a few ulps (1.2e-7) per sequence added.
 */
const HESSIAN_REL = 2e-6;

describe('syrk', () => {
  const ks = [0, 1, 5, 33, 130];
  for (const n of SIZES) {
    for (const k of ks) {
      for (const [alpha, beta] of [
        [1, 1],
        [0.75, 0],
        [-2, 0.5],
      ]) {
        it(`n ${n}, k ${k}, alpha ${alpha}, beta ${beta}: upper triangle as the reference, lower untouched`, () => {
          const d: SyrkDims = { n, k, alpha, beta };
          const a = rand32(k * n, n * 100 + k);
          const c0 = rand32(n * n, n * 100 + k + 1);
          const cn = c0.slice();
          const cr = c0.slice();
          native.syrk(a, cn, d);
          ref.syrk(a, cr, d);
          const t = syrkTol(k);
          expectClose(cn, cr, { rtol: t.rtol, atol: t.atol * (Math.abs(alpha) + Math.abs(beta)) }, 'syrk');
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < i; j++) {
              expect(cn[i * n + j]).toBe(c0[i * n + j]);
              expect(cr[i * n + j]).toBe(c0[i * n + j]);
            }
          }
        });
      }
    }
  }

  it('the reference equals the upper triangle of the full product a^T a', () => {
    const n = 7;
    const k = 5;
    const a = rand32(k * n, 3);
    const c = new Float32Array(n * n);
    ref.syrk(a, c, { n, k, alpha: 1, beta: 0 });
    const full = new Float32Array(n * n);
    ref.gemm(a, a, full, gemmDims(n, n, k, { transA: true }));
    for (let i = 0; i < n; i++) for (let j = i; j < n; j++) expect(c[i * n + j]).toBe(full[i * n + j]);
  });

  it('refuses buffers too short for n and k', () => {
    expect(() => native.syrk(new Float32Array(5), new Float32Array(9), { n: 3, k: 2, alpha: 1, beta: 0 })).toThrow(
      /syrk: a/,
    );
    expect(() => native.syrk(new Float32Array(6), new Float32Array(8), { n: 3, k: 2, alpha: 1, beta: 0 })).toThrow(
      /syrk: c/,
    );
  });
});

/** (2/N) Σ_n X_n^T X_n in float64 over sequences x [N, T, K]. */
function hessianF64(x: Float32Array, seq: number, k: number): Float64Array {
  const count = x.length / (seq * k);
  const h = new Float64Array(k * k);
  for (let s = 0; s < count; s++) {
    const o = s * seq * k;
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        let acc = 0;
        for (let t = 0; t < seq; t++) acc += x[o + t * k + i] * x[o + t * k + j];
        h[i * k + j] += (2 / count) * acc;
      }
    }
  }
  return h;
}

describe('Hessian (syrk, mirrored when read)', () => {
  const cases = [
    { k: 1, seq: 1, adds: [1, 1] },
    { k: 3, seq: 7, adds: [1, 2, 1] },
    { k: 127, seq: 5, adds: [2, 1] },
    { k: 129, seq: 33, adds: [1, 1, 2] },
  ];
  for (const { k, seq, adds } of cases) {
    it(`K ${k}, T ${seq}, adds of ${adds.join('+')}: symmetric, within ${HESSIAN_REL} of max|H| of the float64 sum`, async () => {
      const total = adds.reduce((a, b) => a + b, 0);
      const x = rand32(total * seq * k, k * 31 + seq, -2, 2);
      const h = new Hessian(k);
      let off = 0;
      for (const count of adds) {
        h.add(x.subarray(off, off + count * seq * k), seq);
        off += count * seq * k;
      }
      expect(h.samples).toBe(total);
      const got = await h.values();
      const want = hessianF64(x, seq, k);
      for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) expect(got[i * k + j]).toBe(got[j * k + i]);
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(got, want, { rtol: 0, atol: HESSIAN_REL * scale }, 'H');
    });
  }

  it('values() after more sequences mirrors the new upper triangle again', async () => {
    const k = 9;
    const seq = 4;
    const x = rand32(3 * seq * k, 77);
    const h = new Hessian(k);
    h.add(x.subarray(0, seq * k), seq);
    await h.values();
    h.add(x.subarray(seq * k), seq);
    const got = await h.values();
    const want = hessianF64(x, seq, k);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expectClose(got, want, { rtol: 0, atol: HESSIAN_REL * scale }, 'H');
  });
});
