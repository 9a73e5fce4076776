/**
 * The batched decode GEMV (2 <= m <= 16 input rows in one call, kernels/src/packed_gemv.cc: each packed row read
 * once for all m inputs, in tiles of up to 4): every product against the reference (checkProducts) at
 * m = 2, 3, 8, 16 over an odd K, group sizes that are not multiples of 8 (the dequantized-rows GEMV) and
 * multiples of 8 that end inside a lane block, perm, weak columns and CSR outliers; and y bit-identical whatever
 * the thread count.
 */
import { describe, expect, it } from 'vitest';
import { packedMatmul, type PackedBits } from '../../src/native/packed.js';
import { native, rand32 } from './helpers.js';
import { checkProducts, randomPacked, type PackedSpec } from './packed-helpers.js';

const BITS: PackedBits[] = [2, 3, 4, 8];

/** Weights of an odd K: per row with perm, G = 40 with outliers crowding a row, G = 12 with perm and outliers. */
function specs(bits: PackedBits): [PackedSpec, number[]][] {
  const base = { rows: 37, cols: 1029, bits };
  return [
    [{ ...base, groupSize: 1029, perm: true, nOut: 3, seed: 100 + bits }, [2, 16]],
    [{ ...base, groupSize: 40, perm: false, nOut: 5, seed: 110 + bits, outlierFrac: 0.01, outlierCrowd: 0.5 }, [3, 8]],
    [{ ...base, groupSize: 12, perm: true, nOut: 2, seed: 120 + bits, outlierFrac: 0.02 }, [3, 16]],
  ];
}

describe('batched decode GEMV (2 <= m <= 16)', () => {
  for (const bits of BITS) {
    it(`${bits}-bit products match the reference at m 2/3/8/16 (odd K, G 1029/40/12, perm, weak, outliers)`, () => {
      for (const [spec, ms] of specs(bits)) for (const m of ms) checkProducts(spec, m);
    });
  }

  it('gives the same bits on 1, 2 and 3 threads', () => {
    const { w } = randomPacked({
      rows: 1100,
      cols: 1032,
      bits: 4,
      groupSize: 128,
      perm: true,
      nOut: 7,
      seed: 130,
      outlierFrac: 0.01,
    });
    const before = native.threads();
    try {
      for (const m of [5, 16]) {
        const x = rand32(m * w.cols, 131 + m);
        const ys = [1, 2, 3].map((t) => {
          native.setThreads(t);
          const y = new Float32Array(m * w.rows);
          packedMatmul(w, x, m, y);
          return y;
        });
        expect(ys[1], `m = ${m}, 2 threads`).toEqual(ys[0]);
        expect(ys[2], `m = ${m}, 3 threads`).toEqual(ys[0]);
      }
    } finally {
      native.setThreads(before);
    }
  });
});
