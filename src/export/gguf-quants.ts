/**
 * ggml's block-32 quantizers, as llama.cpp's gguf-py (gguf/quants.py) computes them, bit for bit: every row of
 * `cols` floats (cols a multiple of 32) is cut into blocks of 32 and each block written as
 *   Q8_0 (34 bytes, 8.5 bits/weight): f16 d = max|x| / 127, then 32 int8 q = round(x / d), halves away from zero;
 *   Q4_0 (18 bytes, 4.5 bits/weight): f16 d = m / -8 where m is the element of largest |x| (the first one), then
 *     32 codes q = trunc(x / d + 8.5) clipped to [0, 15], value d (q - 8);
 *   Q4_1 (20 bytes, 5 bits/weight): f16 d = (max - min) / 15, f16 m = min, then 32 codes
 *     q = trunc((x - min) / d + 0.5) clipped to [0, 15], value d q + m.
 * A 4-bit block's bytes hold codes j (low nibble) and j + 16 (high nibble) in byte j. The arithmetic is fp32 as
 * numpy's is (the reciprocal 1/d in fp32 and multiplied, not divided), except Q4_0's x * (1/d) + 8.5, which gguf-py
 * computes in fp64 and then rounds to fp32 before truncating. The scale written is the fp32 d rounded to f16 (nearest
 * even); the codes come from the fp32 d, as in ggml's reference quantize_row_*_ref.
 */
import { f32ToF16Bits } from '../io/dtype.js';

/** Elements per block of every ggml block type here. */
export const GGML_BLOCK = 32;

/** The ggml tensor types the GGUF export writes: the file's type id and, for the block types, bytes per block. */
export const GGML_TYPES = {
  F32: { id: 0, blockBytes: 4, blockSize: 1 },
  F16: { id: 1, blockBytes: 2, blockSize: 1 },
  Q4_0: { id: 2, blockBytes: 18, blockSize: GGML_BLOCK },
  Q4_1: { id: 3, blockBytes: 20, blockSize: GGML_BLOCK },
  Q8_0: { id: 8, blockBytes: 34, blockSize: GGML_BLOCK },
} as const;
export type GgmlType = keyof typeof GGML_TYPES;
export type GgmlBlockType = 'Q8_0' | 'Q4_0' | 'Q4_1';

const f32 = Math.fround;

/** Bytes of `n` elements (n a multiple of the type's block size) in `type`. */
export function ggmlBytes(type: GgmlType, n: number): number {
  const t = GGML_TYPES[type];
  return (n / t.blockSize) * t.blockBytes;
}

/** fp32 1/d, 0 for d = 0 (a block of zeros gets codes of zero). */
const reciprocal = (d: number) => (d === 0 ? 0 : f32(1 / d));

/** Rounds half away from zero (gguf-py's np_roundf, ggml's roundf). */
const roundAway = (v: number) => Math.sign(v) * Math.floor(Math.abs(v) + 0.5);

function writeF16(out: Uint8Array, at: number, v: number): void {
  const h = f32ToF16Bits(v);
  out[at] = h & 0xff;
  out[at + 1] = h >>> 8;
}

function packNibbles(q: Uint8Array, out: Uint8Array, at: number): void {
  for (let j = 0; j < GGML_BLOCK / 2; j++) out[at + j] = q[j] | (q[j + GGML_BLOCK / 2] << 4);
}

type BlockQuantizer = (x: Float32Array, out: Uint8Array, at: number, q: Uint8Array) => void;

function q8_0Block(x: Float32Array, out: Uint8Array, at: number): void {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const d = f32(amax / 127);
  const id = reciprocal(d);
  writeF16(out, at, d);
  for (let j = 0; j < GGML_BLOCK; j++) out[at + 2 + j] = roundAway(f32(x[j] * id)) & 0xff;
}

function q4_0Block(x: Float32Array, out: Uint8Array, at: number, q: Uint8Array): void {
  let m = 0;
  for (const v of x) if (Math.abs(v) > Math.abs(m)) m = v;
  const d = f32(m / -8);
  const id = reciprocal(d);
  writeF16(out, at, d);
  for (let j = 0; j < GGML_BLOCK; j++) q[j] = Math.min(15, Math.trunc(f32(x[j] * id + 8.5)));
  packNibbles(q, out, at + 2);
}

function q4_1Block(x: Float32Array, out: Uint8Array, at: number, q: Uint8Array): void {
  let [min, max] = [x[0], x[0]];
  for (const v of x) [min, max] = [Math.min(min, v), Math.max(max, v)];
  const d = f32(f32(max - min) / 15);
  const id = reciprocal(d);
  writeF16(out, at, d);
  writeF16(out, at + 2, min);
  for (let j = 0; j < GGML_BLOCK; j++) q[j] = Math.min(15, Math.trunc(f32(f32(f32(x[j] - min) * id) + 0.5)));
  packNibbles(q, out, at + 4);
}

const BLOCK_QUANTIZERS: Record<GgmlBlockType, BlockQuantizer> = { Q8_0: q8_0Block, Q4_0: q4_0Block, Q4_1: q4_1Block };

/** `x` (whole rows; length a multiple of 32, finite) in `type`'s blocks, in order. */
export function ggmlQuantize(x: Float32Array, type: GgmlBlockType): Uint8Array {
  if (x.length % GGML_BLOCK !== 0) throw new RangeError(`ggmlQuantize: ${x.length} elements, not whole blocks of 32`);
  const blockBytes = GGML_TYPES[type].blockBytes;
  const out = new Uint8Array(ggmlBytes(type, x.length));
  const codes = new Uint8Array(GGML_BLOCK);
  const quantizeBlock = BLOCK_QUANTIZERS[type];
  for (let b = 0; b < x.length / GGML_BLOCK; b++) {
    quantizeBlock(x.subarray(b * GGML_BLOCK, (b + 1) * GGML_BLOCK), out, b * blockBytes, codes);
  }
  return out;
}
