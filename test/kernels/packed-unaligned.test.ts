/**
 * Packed weights of any in_features K and any group size G (kernels/PACKED.md): rows padded to whole 8-code
 * blocks with 0 codes, the last group shorter when G does not divide K, groups that start inside a block
 * (G % 8 != 0: the decode GEMV's dequantized-rows path). Native kernels vs the reference
 * (src/native/packed-ref.ts) on K in {1, 3, 7, 127, 129, 172}, every width, per row and grouped, with and
 * without perm and weak columns, on the decode GEMV (m = 1), the small-m GEMV loop and the panel GEMM, the
 * transposed product and weakGrad, each within PACKED_REL (packed-helpers.ts) as for aligned K.
 */
import { describe, expect, it } from 'vitest';
import {
  dequantize,
  packCodes,
  packedBytes,
  packedGroups,
  packedMatmul,
  packedRowBytes,
  unpackCodes,
  validatePacked,
  type PackedBits,
} from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32 } from './helpers.js';
import { checkProducts, randomPacked } from './packed-helpers.js';

const BITS: PackedBits[] = [2, 3, 4, 8];

/**
 * Group sizes per K: per row (G = K); 8 (on the blocks, dividing K or not); 32 (not dividing); a divisor of K
 * that is no multiple of 8 (43 | 129, 172; 2 | ...); 12 (neither); one above K (a single group).
 */
const GROUPS: [number, number[]][] = [
  [1, [1, 8]],
  [3, [3, 2, 8]],
  [7, [7, 3, 8]],
  [127, [127, 8, 32, 12, 128]],
  [129, [129, 8, 32, 43, 12]],
  [172, [172, 8, 32, 43, 12, 64]],
];

describe('packed layout of unaligned rows', () => {
  it('pads each row to whole blocks of 0 codes; aligned rows keep K*b/8 bytes', () => {
    expect(packedRowBytes(172, 3)).toBe(66);
    expect(packedRowBytes(1, 4)).toBe(4);
    expect(packedRowBytes(4096, 3)).toBe(1536);
    expect(packedBytes(11008, 4096, 3)).toBe((11008 * 4096 * 3) / 8);
    expect(packedGroups(172, 32)).toBe(6);
    // 3 codes of 3 bits: 0b111 0b101 0b011 from bit 0, then 15 zero bits
    expect(Array.from(packCodes(Uint8Array.from([7, 5, 3]), 1, 3, 3))).toEqual([0b11101111, 0b00000000, 0b00000000]);
    const nine = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(packCodes(nine, 1, 9, 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0]);
  });

  for (const bits of BITS) {
    it(`${bits}-bit pack/unpack of odd rows round-trips exactly and matches the reference`, () => {
      for (const rows of [1, 3, 7]) {
        for (const [cols] of GROUPS) {
          const { codes } = randomPacked({
            rows,
            cols,
            bits,
            groupSize: cols,
            perm: false,
            nOut: 0,
            seed: rows * cols + bits,
          });
          const q = packCodes(codes, rows, cols, bits);
          expect(q).toEqual(pref.packCodes(codes, rows, cols, bits));
          expect(unpackCodes(q, rows, cols, bits)).toEqual(codes);
          expect(pref.unpackCodes(q, rows, cols, bits)).toEqual(codes);
        }
      }
    });
  }

  it('validatePacked refuses a pad code that is not 0', () => {
    const { w } = randomPacked({ rows: 3, cols: 13, bits: 3, groupSize: 13, perm: false, nOut: 0, seed: 1 });
    expect(() => validatePacked(w, 'mlp.down_proj')).not.toThrow();
    const q = w.qweight.slice();
    q[2 * 6 + 5] |= 0x80; // row 2 (6 bytes), bit 47: the top bit of pad code 15
    expect(() => validatePacked({ ...w, qweight: q }, 'mlp.down_proj')).toThrow(
      /^mlp\.down_proj: qweight pad code 15 of row 2 is not 0 \(in_features 13\)$/,
    );
  });
});

describe('packed kernels vs reference on unaligned K', () => {
  it('dequantize is exact (every K, width, group size, with and without perm)', () => {
    let seed = 1;
    for (const bits of BITS) {
      for (const [cols, groupSizes] of GROUPS) {
        for (const groupSize of groupSizes) {
          for (const perm of [false, true]) {
            const { w } = randomPacked({
              rows: 13,
              cols,
              bits,
              groupSize,
              perm,
              nOut: seed % Math.min(cols + 1, 6),
              seed: seed++,
            });
            expect(dequantize(w), `${cols} cols, ${bits} bits, G ${groupSize}`).toEqual(pref.dequantize(w));
          }
        }
      }
    }
  });

  for (const bits of BITS) {
    it(`${bits}-bit products (every K and group size, perm, weak columns, m 1 and 3 or 17)`, () => {
      let seed = 1000 * bits;
      for (const [cols, groupSizes] of GROUPS) {
        for (const groupSize of groupSizes) {
          for (const perm of [false, true]) {
            for (const nOut of [0, Math.min(cols, 5)]) {
              const spec = { rows: 13, cols, bits, groupSize, perm, nOut, seed: seed++ };
              checkProducts(spec, 1);
              checkProducts(spec, seed % 2 === 0 ? 3 : 17);
            }
          }
        }
      }
    });
  }

  it('decode GEMV on both row schedules and several panels at unaligned K', () => {
    for (const [cols, seed] of [
      [4100, 1],
      [8197, 2],
    ] as const) {
      for (const bits of [3, 4] as const) {
        checkProducts({ rows: 21, cols, bits, groupSize: cols, perm: false, nOut: 5, seed: seed * 10 + bits }, 1);
        checkProducts({ rows: 19, cols, bits, groupSize: 128, perm: true, nOut: 3, seed: seed * 10 + bits + 1 }, 1);
      }
    }
    checkProducts({ rows: 1100, cols: 1029, bits: 3, groupSize: 1029, perm: true, nOut: 3, seed: 6 }, 17);
    checkProducts({ rows: 1100, cols: 1029, bits: 4, groupSize: 20, perm: false, nOut: 2, seed: 7 }, 1);
  });

  it('reads x only at its K entries', () => {
    // x is a view into a larger buffer whose next entries are NaN: any read past K would poison y
    const { w } = randomPacked({ rows: 9, cols: 13, bits: 4, groupSize: 13, perm: false, nOut: 1, seed: 3 });
    for (const m of [1, 2, 17]) {
      const buf = new Float32Array(m * 13 + 8).fill(NaN);
      buf.set(rand32(m * 13, m));
      const x = buf.subarray(0, m * 13);
      const y = new Float32Array(m * 9);
      packedMatmul(w, x, m, y);
      expect(y.every(Number.isFinite), `m=${m}`).toBe(true);
    }
  });
});
