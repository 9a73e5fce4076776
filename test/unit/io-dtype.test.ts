/**
 * fp32 <-> f16 / bf16 conversions: named IEEE edge cases, exhaustive round trips of all 65,536
 * 16-bit patterns, and random fp32 inputs checked against a brute-force nearest-value reference.
 */
import { describe, expect, it } from 'vitest';
import {
  bf16BitsToF32,
  bf16ToF32Array,
  f16BitsToF32,
  f16ToF32Array,
  f32ToBf16Array,
  f32ToBf16Bits,
  f32ToF16Array,
  f32ToF16Bits,
} from '../../src/io/dtype.js';

const f32FromBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];

/** Random fp32 values of every exponent (random bit patterns), NaNs dropped. */
function randomF32(n: number, seed: number): Float32Array {
  const bits = new Uint32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    bits[i] = s;
  }
  return new Float32Array(bits.buffer).filter((x) => !Number.isNaN(x));
}

/** Nearest representable value by search over the sorted finite values, ties to the even pattern. */
function nearestReference(x: number, sortedValues: number[], bitsOf: Map<number, number>, overflowAt: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= overflowAt) return sign | (bitsOf.get(Infinity) as number);
  let lo = 0;
  let hi = sortedValues.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (sortedValues[mid] <= a) lo = mid;
    else hi = mid;
  }
  const [below, above] = [sortedValues[lo], sortedValues[hi]];
  const dBelow = a - below; // exact in float64: both operands have at most 24 significant bits
  const dAbove = above - a;
  const pick = dBelow < dAbove ? below : dAbove < dBelow ? above : (bitsOf.get(below)! & 1) === 0 ? below : above;
  return sign | bitsOf.get(pick)!;
}

function positiveTable(toF32: (h: number) => number, maxBits: number) {
  const values: number[] = [];
  const bitsOf = new Map<number, number>();
  for (let h = 0; h <= maxBits; h++) {
    values.push(toF32(h));
    bitsOf.set(toF32(h), h);
  }
  return { values, bitsOf };
}

describe('f16', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff],
    [65519.99, 0x7bff],
    [65520, 0x7c00],
    [1e6, 0x7c00],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000],
    [1.5 * 2 ** -25, 0x0001],
    [3 * 2 ** -25, 0x0002],
    [1023 * 2 ** -24, 0x03ff],
    [2 ** -14, 0x0400],
    [1e-10, 0x0000],
    [-1e-10, 0x8000],
    [1 + 2 ** -11, 0x3c00],
    [1 + 3 * 2 ** -11, 0x3c02],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01],
  ])('f32ToF16Bits(%s) = %s', (x, bits) => {
    expect(f32ToF16Bits(x)).toBe(bits);
  });

  it('NaN stays NaN', () => {
    const h = f32ToF16Bits(NaN);
    expect((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0).toBe(true);
    expect(f16BitsToF32(h)).toBeNaN();
  });

  it('every f16 pattern survives f16 -> f32 -> f16', () => {
    for (let h = 0; h < 65536; h++) {
      const x = f16BitsToF32(h);
      if (Number.isNaN(x)) expect(f16BitsToF32(f32ToF16Bits(x))).toBeNaN();
      else expect(f32ToF16Bits(x)).toBe(h);
    }
  });

  it('decodes subnormals, inf and -0 exactly', () => {
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0x83ff)).toBe(-1023 * 2 ** -24);
    expect(f16BitsToF32(0x7c00)).toBe(Infinity);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
  });

  it('random fp32 values round to the nearest f16, ties to even', () => {
    const { values, bitsOf } = positiveTable(f16BitsToF32, 0x7c00);
    const inRange = randomF32(100_000, 2).map((x) => (x / 3.4e38) * 70000); // spread over the f16 range
    const xs = Float32Array.from([...randomF32(100_000, 1), ...inRange]);
    const got = f32ToF16Array(xs);
    // 65520 = halfway between 65504 and the next step 65536, which overflows to inf
    expect(xs.filter((x, i) => got[i] !== nearestReference(x, values, bitsOf, 65520))).toEqual(new Float32Array(0));
    expect(f16ToF32Array(got).every((y) => !Number.isNaN(y))).toBe(true);
  });
});

describe('bf16', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3f80],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [f32FromBits(0x7f7fffff), 0x7f80],
    [f32FromBits(0x7f7f0000), 0x7f7f],
    [f32FromBits(0x00000001), 0x0000],
    [f32FromBits(0x00018000), 0x0002],
    [f32FromBits(0x00008000), 0x0000],
    [f32FromBits(0x00008001), 0x0001],
    [1 + 2 ** -8, 0x3f80],
    [1 + 3 * 2 ** -8, 0x3f82],
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
  ])('f32ToBf16Bits(%s) = %s', (x, bits) => {
    expect(f32ToBf16Bits(x)).toBe(bits);
  });

  it('NaN stays NaN, including NaNs whose payload sits in the dropped bits', () => {
    expect(bf16BitsToF32(f32ToBf16Bits(NaN))).toBeNaN();
    expect(bf16BitsToF32(f32ToBf16Bits(f32FromBits(0x7f800001)))).toBeNaN();
    expect(bf16BitsToF32(f32ToBf16Bits(f32FromBits(0xffffffff)))).toBeNaN();
  });

  it('every bf16 pattern survives bf16 -> f32 -> bf16', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, h) => h);
    const back = f32ToBf16Array(bf16ToF32Array(all));
    all.forEach((h) => {
      if (Number.isNaN(bf16BitsToF32(h))) expect(bf16BitsToF32(back[h])).toBeNaN();
      else expect(back[h]).toBe(h);
    });
  });

  it('random fp32 values round to the nearest bf16, ties to even', () => {
    const { values, bitsOf } = positiveTable(bf16BitsToF32, 0x7f80);
    const xs = randomF32(200_000, 3);
    const got = f32ToBf16Array(xs);
    // halfway between the largest finite bf16 (0x7f7f) and 2^128 rounds to inf
    const overflowAt = (bf16BitsToF32(0x7f7f) + 2 ** 128) / 2;
    expect(xs.filter((x, i) => got[i] !== nearestReference(x, values, bitsOf, overflowAt))).toEqual(
      new Float32Array(0),
    );
  });
});
