/**
 * Checks of GGUF exports written from ggml's block layouts, shared by the GGUF export tests: the block types' ids
 * and sizes, a decoder of Q8_0 / Q4_0 / Q4_1 blocks with the bound on each element's rounding, llama.cpp's Q/K row
 * order, Ŵ of a packed checkpoint's linears (the reference dequantization src/native/packed-ref.ts), and a parsed
 * file's tensor data by name.
 */
import fs from 'node:fs';
import { gguf } from '@huggingface/gguf';
import { f16BitsToF32 } from '../../src/io/dtype.js';
import { loadModel } from '../../src/models/load.js';
import { applyWeakDeltas, packedLinearsOf } from '../../src/models/weak-deltas.js';
import * as pref from '../../src/native/packed-ref.js';

export const GGUF_TYPES = ['Q8_0', 'Q4_0', 'Q4_1'] as const;
export type Type = (typeof GGUF_TYPES)[number];

/** ggml type ids (ggml.h) and block bytes. */
export const GGML = { F32: 0, Q4_0: 2, Q4_1: 3, Q8_0: 8 } as const;
export const BLOCK_BYTES: Record<Type, number> = { Q8_0: 34, Q4_0: 18, Q4_1: 20 };

/** Ŵ [rows, cols] of every packed linear of `dir` (with `deltas` applied when given), by module name. */
export function dequantizedOf(
  dir: string,
  withDeltas?: string,
): Map<string, { w: Float32Array; rows: number; cols: number }> {
  const model = loadModel(dir);
  if (withDeltas !== undefined) applyWeakDeltas(model, withDeltas, dir);
  return new Map(
    [...packedLinearsOf(model)].map(([n, l]) => [
      n,
      { w: pref.dequantize(l.packed), rows: l.packed.rows, cols: l.packed.cols },
    ]),
  );
}

const f16 = (b: Uint8Array, at: number) => f16BitsToF32(b[at] | (b[at + 1] << 8));

/** Element j of a block: its decoded value and the bound on |x - value| for the block's source values x. */
function decodeBlock(type: Type, b: Uint8Array, x: Float32Array): { value: Float32Array; bound: Float32Array } {
  const value = new Float32Array(32);
  const bound = new Float32Array(32);
  const qs = type === 'Q4_1' ? 4 : 2; // the codes follow d (and m): byte j holds codes j (low nibble) and j + 16
  const nibble = (j: number) => (j < 16 ? b[qs + j] & 15 : b[qs + j - 16] >> 4);
  const d = f16(b, 0);
  const eps = 1e-6 * Math.max(...x.map(Math.abs));
  if (type === 'Q8_0') {
    const d32 = Math.fround(Math.max(...x.map(Math.abs)) / 127);
    for (let j = 0; j < 32; j++) {
      const q = (b[2 + j] << 24) >> 24;
      value[j] = d * q;
      bound[j] = d32 / 2 + Math.abs(q) * Math.abs(d - d32) + eps;
    }
  } else if (type === 'Q4_0') {
    const m = x.reduce((a, v) => (Math.abs(v) > Math.abs(a) ? v : a), 0);
    const d32 = Math.fround(m / -8);
    for (let j = 0; j < 32; j++) {
      const q = nibble(j);
      value[j] = d * (q - 8);
      // the top code 15 also holds x = -m (x / d = 8), clipped from 16: off by up to a whole step
      bound[j] = (q === 15 ? 1 : 0.5) * Math.abs(d32) + 8 * Math.abs(d - d32) + eps;
    }
  } else {
    const [min, max] = [Math.min(...x), Math.max(...x)];
    const d32 = Math.fround((max - min) / 15);
    const m = f16(b, 2);
    for (let j = 0; j < 32; j++) {
      const q = nibble(j);
      value[j] = d * q + m;
      bound[j] = d32 / 2 + 15 * Math.abs(d - d32) + Math.abs(m - min) + eps;
    }
  }
  return { value, bound };
}

/** The elements of `x` [rows, cols] whose decoded value in `data` is outside the format's rounding. */
export function outOfRounding(type: Type, data: Uint8Array, x: Float32Array): number {
  let bad = 0;
  for (let blk = 0; blk < x.length / 32; blk++) {
    const xs = x.subarray(blk * 32, (blk + 1) * 32);
    const { value, bound } = decodeBlock(type, data.subarray(blk * BLOCK_BYTES[type]), xs);
    for (let j = 0; j < 32; j++) if (!(Math.abs(xs[j] - value[j]) <= bound[j])) bad++;
  }
  return bad;
}

/**
 * x [rows, cols] (Hugging Face's Q or K rows) in llama.cpp's row order: within each head of headDim rows, HF row t
 * goes to row 2t for t < headDim/2 and to row 2(t - headDim/2) + 1 after (rotate-half pairs made adjacent).
 */
export function ggufRowOrder(x: Float32Array, rows: number, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let s = 0; s < rows; s++) {
    const [h, t] = [Math.floor(s / headDim), s % headDim];
    const r = h * headDim + (t < headDim / 2 ? 2 * t : 2 * (t - headDim / 2) + 1);
    out.set(x.subarray(s * cols, (s + 1) * cols), r * cols);
  }
  return out;
}

/** A GGUF file parsed, with each tensor's info and bytes by name. */
export async function readGguf(file: string) {
  const parsed = await gguf(file, { allowLocalFile: true });
  const bytes = new Uint8Array(fs.readFileSync(file));
  const tensor = (name: string) => {
    const info = parsed.tensorInfos.find((t) => t.name === name);
    if (info === undefined) throw new Error(`${file} has no tensor ${name}`);
    return { info, data: bytes.subarray(Number(parsed.tensorDataOffset + info.offset)) };
  };
  /** The F32 tensor `name` as numbers. */
  const f32 = (name: string) => {
    const { info, data } = tensor(name);
    const n = info.shape.reduce((a, b) => a * Number(b), 1);
    return Array.from(new Float32Array(data.slice(0, n * 4).buffer));
  };
  return { parsed, metadata: parsed.metadata as unknown as Record<string, unknown>, bytes, tensor, f32 };
}
