/**
 * The decode GEMV's zero points' part, Σ_g s_g z_g xsum_g, taken once per row after the walk in vector steps of
 * W groups (16 on AVX-512, 8 on AVX2) and a scalar rest (kernels/src/packed_gemv_rows.inc, zero_dot): products
 * against the reference at group counts on either side of those steps (15, 16, 17 and 33 groups; a short last
 * group; K % 8 != 0), with perm, weak columns and outliers, on one input and on a 4 + 1 tile.
 */
import { describe, it } from 'vitest';
import type { PackedBits } from '../../src/native/packed.js';
import { checkProducts, type PackedSpec } from './packed-helpers.js';

/** [K, G]: 15 groups, 16 (the last one 40 codes), 17 (K % 8 != 0), 33 (G = 128, a short last group). */
const SHAPES: [number, number][] = [
  [960, 64],
  [1000, 64],
  [1029, 64],
  [4104, 128],
];

describe('decode GEMV zero points across vector steps of groups', () => {
  for (const bits of [3, 4] as PackedBits[]) {
    it(`${bits}-bit products match the reference at 15/16/17/33 groups, m 1 and 5`, () => {
      SHAPES.forEach(([cols, groupSize], i) => {
        const spec: PackedSpec = {
          rows: 21,
          cols,
          bits,
          groupSize,
          perm: i % 2 === 1,
          nOut: 3,
          seed: 200 + 10 * bits + i,
          outlierFrac: 0.01,
        };
        for (const m of [1, 5]) checkProducts(spec, m);
      });
    });
  }
});
