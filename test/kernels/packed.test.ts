/**
 * Packed low-bit weights: layout, native kernels vs the reference (src/native/packed-ref.ts), argument
 * checks. Products are compared within PACKED_REL times the sum of the magnitudes the kernels add up
 * (|x| |s| (code + z), see magnitudes()): the native GEMV sums code * x per group and subtracts
 * z * Σx afterwards, in fp32, in chains of at most ~40 terms; the panel path is sgemm on exact
 * dequantized panels.
 */
import { describe, expect, it } from 'vitest';
import {
  PACKED_LAYOUT,
  dequantize,
  packCodes,
  packedBinding,
  packedBytes,
  packedMatmul,
  packedMatmulT,
  unpackCodes,
  validatePacked,
  weakGrad,
  type PackedBits,
  type PackedWeight,
} from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32 } from './helpers.js';
import { checkProducts, randomPacked } from './packed-helpers.js';

const BITS: PackedBits[] = [2, 3, 4, 8];

/** (cols, groupSize): per-row and grouped, with G % 16 == 8 for the AVX-512 half step. */
const LAYOUTS: [number, number][] = [
  [384, 384],
  [384, 8],
  [384, 32],
  [384, 128],
  [136, 136],
  [136, 8],
];

describe('packed layout', () => {
  it('TS constants equal the addon header', () => {
    expect(packedBinding().packedLayout()).toEqual(PACKED_LAYOUT);
  });

  it('places codes as documented (little-endian bit stream per row)', () => {
    const seq = Uint8Array.from({ length: 8 }, (_, i) => i);
    expect(Array.from(packCodes(seq, 1, 8, 4))).toEqual([0x10, 0x32, 0x54, 0x76]);
    expect(
      Array.from(
        packCodes(
          seq.map((c) => c & 3),
          1,
          8,
          2,
        ),
      ),
    ).toEqual([0b11100100, 0b11100100]);
    // 3-bit codes 0..7: bits 000 001 010 011 100 101 110 111 from bit 0 upwards
    expect(Array.from(packCodes(seq, 1, 8, 3))).toEqual([0b10001000, 0b11000110, 0b11111010]);
    expect(Array.from(packCodes(seq, 1, 8, 8))).toEqual(Array.from(seq));
    expect(packedBytes(11008, 4096, 3)).toBe((11008 * 4096 * 3) / 8);
  });

  for (const bits of BITS) {
    it(`${bits}-bit pack/unpack round-trips exactly and matches the reference`, () => {
      for (const rows of [1, 3, 7]) {
        for (const cols of [8, 24, 136, 1032]) {
          const { codes } = randomPacked({
            rows,
            cols,
            bits,
            groupSize: cols,
            perm: false,
            nOut: 0,
            seed: rows * cols,
          });
          const q = packCodes(codes, rows, cols, bits);
          expect(q).toEqual(pref.packCodes(codes, rows, cols, bits));
          expect(unpackCodes(q, rows, cols, bits)).toEqual(codes);
          expect(pref.unpackCodes(q, rows, cols, bits)).toEqual(codes);
        }
      }
    });
  }
});

describe('packed kernels vs reference', () => {
  it('dequantize is exact', () => {
    let seed = 1;
    for (const bits of BITS) {
      for (const [cols, groupSize] of LAYOUTS) {
        for (const perm of [false, true]) {
          const { w } = randomPacked({ rows: 13, cols, bits, groupSize, perm, nOut: seed % 8, seed: seed++ });
          expect(dequantize(w)).toEqual(pref.dequantize(w));
        }
      }
    }
  });

  for (const bits of BITS) {
    it(`${bits}-bit products (per-row and grouped, perm, nOut 0/1/2/7, m 1/2/3/17/64)`, () => {
      const ms = [2, 3, 17, 64];
      let seed = 100 * bits;
      for (const [cols, groupSize] of LAYOUTS) {
        for (const perm of [false, true]) {
          for (const nOut of [0, 1, 2, 7]) {
            const spec = { rows: 13, cols, bits, groupSize, perm, nOut, seed: seed++ };
            checkProducts(spec, 1);
            checkProducts(spec, ms[seed % ms.length]);
          }
        }
      }
    });
  }

  it('threads over many rows and several panels', () => {
    checkProducts({ rows: 129, cols: 1032, bits: 4, groupSize: 8, perm: true, nOut: 7, seed: 5 }, 1);
    checkProducts({ rows: 1100, cols: 1032, bits: 3, groupSize: 1032, perm: true, nOut: 3, seed: 6 }, 1);
    checkProducts({ rows: 1100, cols: 1032, bits: 3, groupSize: 1032, perm: true, nOut: 3, seed: 6 }, 17);
  });

  it('decode GEMV (m = 1) matches the reference at K = 4096, 4104, 8200, leftover rows, both group sizes', () => {
    // kernels/PACKED.md: several rows per pass, the rows left over one at a time (21 and 19 are no multiple of the
    // pass); whole-row groups at K = 4104 and 8200, and 8-column groups, end in the group-tail decode
    for (const [cols, seed] of [
      [4096, 7],
      [4104, 8],
      [8200, 9],
    ] as const) {
      for (const bits of [3, 4] as const) {
        checkProducts({ rows: 21, cols, bits, groupSize: cols, perm: false, nOut: 5, seed: seed * 10 + bits }, 1);
        checkProducts({ rows: 19, cols, bits, groupSize: 8, perm: true, nOut: 0, seed: seed * 10 + bits + 1 }, 1);
      }
    }
  });

  it('reads the weak columns on every call (no caching)', () => {
    const { w } = randomPacked({ rows: 7, cols: 24, bits: 4, groupSize: 8, perm: false, nOut: 2, seed: 9 });
    const x = rand32(24, 1);
    const [y0, y1] = [new Float32Array(7), new Float32Array(7)];
    packedMatmul(w, x, 1, y0);
    w.weak[0] += 1;
    packedMatmul(w, x, 1, y1);
    expect(y1[0] - y0[0]).toBeCloseTo(x[w.weakIdx[0]], 5);
    expect(Array.from(y1.subarray(1))).toEqual(Array.from(y0.subarray(1)));
  });
});

describe('packed argument checks', () => {
  const { w } = randomPacked({ rows: 5, cols: 16, bits: 3, groupSize: 8, perm: true, nOut: 2, seed: 3 });
  const x = new Float32Array(16);
  const y = new Float32Array(5);

  it('native calls throw RangeError / TypeError naming the argument', () => {
    expect(() => packedMatmul({ ...w, bits: 5 as PackedBits }, x, 1, y)).toThrow(
      /^packedMatmul: bits must be 2, 3, 4 or 8, got 5$/,
    );
    expect(() => packedMatmul({ ...w, cols: 0 }, x, 1, y)).toThrow(/cols must be at least 1, got 0/);
    expect(() => packedMatmul({ ...w, groupSize: 0 }, x, 1, y)).toThrow(/groupSize must be at least 1, got 0/);
    expect(() => packedMatmul({ ...w, groupSize: 5 }, x, 1, y)).toThrow(/scales has 10 elements, needs at least 20/);
    expect(() => packedMatmul({ ...w, qweight: w.qweight.subarray(1) }, x, 1, y)).toThrow(
      /qweight has 29 elements, needs at least 30/,
    );
    expect(() => packedMatmul({ ...w, perm: Int32Array.from(w.perm!).fill(16, 3, 4) }, x, 1, y)).toThrow(
      /perm\[3\] = 16 is outside \[0, 16\)/,
    );
    expect(() => packedMatmul({ ...w, weakIdx: Int32Array.from([3, 3]) }, x, 1, y)).toThrow(/weakIdx must be sorted/);
    expect(() => packedMatmul({ ...w, weakIdx: Int32Array.from([-1, 3]) }, x, 1, y)).toThrow(/weakIdx\[0\] = -1/);
    expect(() => packedMatmul(w, x, 2, y)).toThrow(/x has 16 elements, needs at least 32/);
    expect(() => packedMatmul(w, new Float64Array(16) as unknown as Float32Array, 1, y)).toThrow(TypeError);
    expect(() => packedMatmulT(w, y, 1, x.subarray(1))).toThrow(/packedMatmulT: dx has 15 elements/);
    expect(() => weakGrad(w, y, x, 1, new Float32Array(9))).toThrow(
      /weakGrad: dweak has 9 elements, needs at least 10/,
    );
    expect(() => packCodes(Uint8Array.from([0, 8, 0, 0, 0, 0, 0, 0]), 1, 8, 3)).toThrow(
      /codes\[1\] = 8 needs more than 3 bits/,
    );
    expect(() => pref.packCodes(Uint8Array.from([0, 8, 0, 0, 0, 0, 0, 0]), 1, 8, 3)).toThrow(
      /codes\[1\] = 8 needs more than 3 bits/,
    );
  });

  it('validatePacked names the inconsistent field', () => {
    expect(() => validatePacked(w, 'layer.q_proj')).not.toThrow();
    const bad = (over: Partial<PackedWeight>) => () => validatePacked({ ...w, ...over }, 'layer.q_proj');
    expect(bad({ bits: 5 as PackedBits })).toThrow(/^layer\.q_proj: bits must be one of 2, 3, 4, 8, got 5$/);
    expect(bad({ groupSize: 0 })).toThrow(/^layer\.q_proj: groupSize must be a positive integer, got 0$/);
    expect(bad({ cols: 15 })).toThrow(/^layer\.q_proj: perm has 16 elements, expected 15$/);
    expect(bad({ scales: new Float32Array(3) })).toThrow(/^layer\.q_proj: scales has 3 elements, expected 10$/);
    expect(bad({ zeros: new Uint8Array(10).fill(9) })).toThrow(/zeros \[0\] = 9 does not fit in 3 bits/);
    expect(bad({ weak: new Float32Array(3) })).toThrow(/weak has 3 elements/);
    expect(bad({ weakIdx: Int32Array.from([4, 2]) })).toThrow(/weakIdx must be sorted/);
    expect(bad({ perm: Int32Array.from({ length: 16 }, () => 0) })).toThrow(/perm is not a permutation/);
    const q = w.qweight.slice();
    const wrong = randomPacked({ rows: 5, cols: 16, bits: 3, groupSize: 8, perm: true, nOut: 0, seed: 4 }).w.qweight;
    expect(bad({ qweight: wrong })).toThrow(/qweight code of weak column \d+ in row \d+ is \d+, not its zero point/);
    expect(q).toEqual(w.qweight);
  });
});
