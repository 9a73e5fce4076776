/**
 * Safetensors element types and exact conversions between fp32 and the 16-bit float formats.
 *
 * All f32 -> 16-bit conversions round to nearest, ties to even (what PyTorch's `.half()` and
 * `.bfloat16()` do); 16-bit -> f32 is exact. NaN stays NaN (quiet), ±0 and ±inf keep their sign.
 */

/** Element types we read and write; `rank` is the position in the safetensors Rust `Dtype` enum,
 * whose order the HF writer uses to lay tensors out (descending rank keeps every tensor aligned). */
export const DTYPES = {
  U8: { bytes: 1, rank: 1 },
  I8: { bytes: 1, rank: 2 },
  F16: { bytes: 2, rank: 7 },
  BF16: { bytes: 2, rank: 8 },
  I32: { bytes: 4, rank: 9 },
  F32: { bytes: 4, rank: 11 },
  F64: { bytes: 8, rank: 12 },
  I64: { bytes: 8, rank: 13 },
} as const;

export type Dtype = keyof typeof DTYPES;

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && Object.hasOwn(DTYPES, s);
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

/** Rounds `value >>> shift` to nearest even, `value` < 2^31, 1 <= shift <= 30. */
function shiftRoundEven(value: number, shift: number): number {
  const q = value >>> shift;
  const rem = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return rem > half || (rem === half && (q & 1) === 1) ? q + 1 : q;
}

/** fp32 -> IEEE binary16 bits. A carry out of the mantissa correctly bumps the exponent
 * (and 65520 and above become inf, as in IEEE round-to-nearest). */
export function f32ToF16Bits(x: number): number {
  const b = f32Bits(x);
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e16 = exp - 112; // f16 biased exponent: exp - 127 + 15
  if (e16 >= 0x1f) return sign | 0x7c00;
  if (e16 >= 1) return sign | shiftRoundEven((e16 << 23) | mant, 13);
  // Subnormal f16, counted in units of 2^-24: |x| / 2^-24 = (2^23 | mant) * 2^(exp - 126).
  const shift = 126 - exp;
  if (shift > 24) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
  return sign | shiftRoundEven(0x800000 | mant, shift);
}

/** IEEE binary16 bits -> fp32 value (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** fp32 -> bfloat16 bits (the top 16 bits of the fp32, rounded to nearest even). */
export function f32ToBf16Bits(x: number): number {
  const b = f32Bits(x);
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN: keep sign, force quiet
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** bfloat16 bits -> fp32 value (exact). */
export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

const F16_TABLE = buildF16Table();

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = f16BitsToF32(h);
  return table;
}

export function f32ToF16Array(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

export function f32ToBf16Array(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}

export function f16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = F16_TABLE[src[i]];
  return out;
}

/** bf16 -> fp32 is a 16-bit left shift of the bit pattern, done on a u32 view of the output. */
export function bf16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
