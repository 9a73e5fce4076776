/**
 * The panel GEMM (m > 16: y = x Ŵᵀ, dx = dy Ŵ; kernels/src/packed_gemm.cc) against the reference
 * (src/native/packed-ref.ts) where its panels cut the weight: outputs wider than one chunk (2048), contractions
 * deeper than one slice (4 MiB / chunk width), weak columns and outliers spread over several slices, K % 8 != 0
 * and K % G != 0, groups cut by a slice edge, G % 8 != 0 (the scalar dequantization), odd m up to 600; y the
 * same bits for any thread count, dx on every call at one thread count.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../../src/native/addon.js';
import { packedMatmul, packedMatmulT } from '../../src/native/packed.js';
import { rand32 } from './helpers.js';
import { checkProducts, randomPacked } from './packed-helpers.js';

const native = loadNative();
const threadsBefore = native.threads();
afterAll(() => native.setThreads(threadsBefore));

describe('packed panel GEMM vs reference', () => {
  it('several chunks and slices (2100 x 2060 4-bit G = 128, perm, weak, outliers; 2100 x 603 3-bit per row)', () => {
    // y: 2 chunks of 1056 rows, slices of 992 columns (3, the last cutting a group); dx: 2 chunks of 1032
    // columns, slices of 1016 rows (3)
    const big = { rows: 2100, cols: 2060, nOut: 7 };
    checkProducts({ ...big, bits: 4, groupSize: 128, perm: true, seed: 31, outlierFrac: 0.002 }, 17);
    // 3-bit per row at K = 603: y in 2 chunks, 1 slice; dx in 1 chunk, slices of 1736 rows (2)
    checkProducts({ ...big, cols: 603, bits: 3, groupSize: 603, perm: false, seed: 32 }, 19);
  });

  it('odd m and sizes, group sizes 64 / 20 / per row, 2 and 8 bits', () => {
    const cases = [
      [{ rows: 45, cols: 1029, bits: 4, groupSize: 64, perm: true, nOut: 5, seed: 41, outlierFrac: 0.01 }, 600],
      [{ rows: 37, cols: 300, bits: 3, groupSize: 64, perm: true, nOut: 3, seed: 42 }, 63],
      [{ rows: 61, cols: 517, bits: 4, groupSize: 20, perm: false, nOut: 2, seed: 43, outlierFrac: 0.02 }, 18],
      [{ rows: 29, cols: 205, bits: 2, groupSize: 205, perm: true, nOut: 4, seed: 44 }, 101],
      [{ rows: 23, cols: 141, bits: 8, groupSize: 64, perm: false, nOut: 1, seed: 45 }, 17],
    ] as const;
    for (const [spec, m] of cases) checkProducts(spec, m);
  });
});

describe('packed panel GEMM determinism', () => {
  it('y is the same bits on 1, 2 and 3 threads; dx on every call at a given thread count', () => {
    // dx is not the same bits across thread counts: OpenBLAS's threaded dy P (no transpose) rounds differently
    const { w } = randomPacked({
      rows: 2100,
      cols: 1100,
      bits: 4,
      groupSize: 128,
      perm: true,
      nOut: 5,
      seed: 51,
      outlierFrac: 0.005,
    });
    const m = 33;
    const x = rand32(m * w.cols, 52);
    const dy = rand32(m * w.rows, 53);
    const run = () => {
      const y = new Float32Array(m * w.rows);
      const dx = new Float32Array(m * w.cols);
      packedMatmul(w, x, m, y);
      packedMatmulT(w, dy, m, dx);
      return { y, dx };
    };
    const runs = [1, 2, 3].map((threads) => {
      native.setThreads(threads);
      const [a, b] = [run(), run()];
      expect(b.dx, `threads=${threads}`).toEqual(a.dx);
      return a;
    });
    for (const r of runs.slice(1)) expect(r.y).toEqual(runs[0].y);
  });
});
