/**
 * Half storage on the device (src/gpu/half.ts): f16 and bf16 values two to a u32 word, read back exactly, read
 * by the gemm as its B operand (a frozen weight: Y = X W^T, dX = dY W) and by the embedding lookup, against the
 * reference fed the same 16-bit values, on odd sizes; refused by every other kernel with an error naming the op.
 * The device's read path is whatever it offers: u32 words through unpack2x16float on llvmpipe (no 'shader-f16'),
 * native f16 on a device with 'shader-f16' (the same tests then run the native path; the path is asserted).
 * The packed kernels' f16 scales and weak columns: test/gpu/packed.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { bytesFor, type GpuArray, release } from '../../src/gpu/array.js';
import { gpuKernels } from '../../src/gpu/kernels.js';
import { embeddingForward } from '../../src/gpu/embedding.js';
import { exactHalf, type HalfFormat, loadWgsl, readPath, SHADER_F16 } from '../../src/gpu/half.js';
import { gemm } from '../../src/gpu/matmul.js';
import { widen } from '../../src/gpu/widen.js';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from '../../src/io/dtype.js';
import { gemmDims, type GemmDims } from '../../src/native/types.js';
import { assign } from '../../src/tensor/device.js';
import { expectClose, rand32, randInts, ref, SIZES, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/** The f32 gemm's bound (test/gpu/matmul.test.ts): the 16-bit B is widened exactly, so nothing is added. */
const GPU_GEMM_TOL = (k: number): Tol => ({ rtol: 1e-5, atol: 2e-6 * Math.max(1, k) });
/** The lookup moves values, widened exactly: bit-identical. */
const EXACT: Tol = { rtol: 0, atol: 0 };

const FORMATS: HalfFormat[] = ['f16', 'bf16'];
const gpu = useGpu();

/** `values` rounded to `format`: the 16-bit patterns and their exact f32 values. */
function rounded(values: Float32Array, format: HalfFormat): { bits: Uint16Array; values: Float32Array } {
  const bits = format === 'f16' ? f32ToF16Array(values) : f32ToBf16Array(values);
  return { bits, values: format === 'f16' ? f16ToF32Array(bits) : bf16ToF32Array(bits) };
}

function halfUp(values: Float32Array, format: HalfFormat): { arr: GpuArray; values: Float32Array } {
  const r = rounded(values, format);
  return { arr: gpu().ctx.uploadHalf(r.bits, format), values: r.values };
}

describe('half storage', () => {
  it(`reads as ${SHADER_F16} allows on this device, and the snippet differs only in the load function`, () => {
    const { device } = gpu();
    expect(readPath(device, 'f16')).toBe(device.features.has(SHADER_F16) ? 'f16-native' : 'f16-u32');
    expect(readPath(device, 'bf16')).toBe('bf16-u32');
    expect(readPath({ features: new Set([SHADER_F16]) } as unknown as GPUDevice, 'f16')).toBe('f16-native');
    expect(loadWgsl('f16-native', 3, 'W')).toContain('array<f16>');
    expect(loadWgsl('f16-u32', 3, 'W')).toContain('unpack2x16float(W[i >> 1u])[i & 1u]');
  });

  it('uploads two values a word (half the bytes) and reads back exactly, odd lengths', async () => {
    const { ctx } = gpu();
    for (const format of FORMATS) {
      for (const n of SIZES) {
        const before = ctx.stats.bytes;
        const { arr, values } = halfUp(rand32(n, n, -70000, 70000), format);
        expect(arr.format).toBe(format);
        expect(ctx.stats.bytes - before).toBeLessThanOrEqual(bytesFor(n, format));
        expect(bytesFor(n, format)).toBe(Math.max(16, Math.ceil((2 * n) / 16) * 16));
        expect(await down(arr)).toEqual(values);
        release(arr);
      }
    }
  });

  it('widen: an exact f32 copy on the device, odd lengths', async () => {
    for (const format of FORMATS) {
      for (const n of SIZES) {
        const { arr, values } = halfUp(rand32(n, n + 1, -3, 3), format);
        const w = widen(arr);
        expect(w.format).toBe('f32');
        expect(await down(w)).toEqual(values);
      }
    }
  });

  it('exactHalf: the patterns when every value is exact, else null', () => {
    const v = Float32Array.of(1, -2, 0.5, 65504, 0, -0);
    expect(f16ToF32Array(exactHalf(v, 'f16')!)).toEqual(v);
    const b = Float32Array.of(1, -2, 0.5, 2 ** 100, 0, -0);
    expect(bf16ToF32Array(exactHalf(b, 'bf16')!)).toEqual(b);
    expect(exactHalf(Float32Array.of(1, 1 + 2 ** -11), 'f16')).toBeNull();
    expect(exactHalf(Float32Array.of(1 + 2 ** -8), 'bf16')).toBeNull();
  });
});

async function compareGemm(d: GemmDims, format: HalfFormat, seed: number): Promise<void> {
  const { ctx } = gpu();
  const a = rand32(d.m * d.k, seed);
  const b = halfUp(rand32(d.k * d.n, seed + 1), format);
  const c0 = rand32(d.m * d.n, seed + 2);
  const cRef = Float32Array.from(c0);
  ref.gemm(a, b.values, cRef, d);
  const c = up(ctx, c0);
  gemm(up(ctx, a), b.arr, c, d);
  expectClose(await down(c), cRef, GPU_GEMM_TOL(d.k), `gemm, ${format} B ${JSON.stringify(d)}`);
}

describe('gemm with a half B (the weight operand)', () => {
  for (const format of FORMATS) {
    it(`${format}: Y = X W^T and dX = dY W, m, n, k in 1, 7, 129`, async () => {
      for (const m of [1, 7, 129])
        for (const n of [1, 7, 129])
          for (const k of [1, 7, 129]) {
            await compareGemm(gemmDims(m, n, k, { transB: true }), format, m + 10 * n + 100 * k);
            await compareGemm(gemmDims(m, n, k), format, m + 10 * n + 100 * k + 5);
          }
    });
    it(`${format}: odd sizes 3, 127, 1023 and alpha, beta`, async () => {
      await compareGemm(gemmDims(3, 1023, 127, { transB: true }), format, 1);
      await compareGemm(gemmDims(127, 3, 1023, { alpha: -0.5, beta: 2 }), format, 2);
    });
  }
});

describe('embedding lookup from a half table', () => {
  for (const format of FORMATS) {
    it(`${format}: odd rows, dims and vocab sizes, bit-identical to the reference`, async () => {
      const { ctx } = gpu();
      for (const [rows, dim, vocab] of [
        [1, 1, 1],
        [7, 3, 127],
        [129, 7, 3],
        [1023, 129, 7],
      ]) {
        const d = { rows, dim, vocab };
        const table = halfUp(rand32(vocab * dim, rows + dim), format);
        const ids = randInts(rows, rows, vocab);
        const expected = new Float32Array(rows * dim);
        ref.embeddingForward(table.values, ids, expected, d);
        const out = ctx.zeros(rows * dim);
        embeddingForward(table.arr, ids, out, d);
        expectClose(await down(out), expected, EXACT, `embeddingForward ${format} ${JSON.stringify(d)}`);
      }
    });
  }
});

describe('every other kernel refuses half storage, naming the op', () => {
  it('elementwise, rows, copy, assign, the gemm A operand and the embedding backward', () => {
    const { ctx } = gpu();
    const h = halfUp(rand32(6, 1), 'f16').arr;
    const f = up(ctx, rand32(6, 2));
    const out = ctx.zeros(6);
    // a row kernel's label names its workgroup width too ("rmsnormForward (32 lanes)")
    const msg = (op: string) => new RegExp(`^${op}( \\(\\d+ lanes\\))?: .*f16 half storage \\(a frozen weight\\)`);
    expect(() => gpuKernels.unaryForward('relu', h, out)).toThrow(msg('unaryForward'));
    expect(() => gpuKernels.binary('add', f, h, out, { shape: [6], stridesA: [1], stridesB: [1] })).toThrow(
      msg('binary'),
    );
    expect(() => gpuKernels.rmsnormForward(h, f, out, ctx.zeros(1), { rows: 1, cols: 6, eps: 1e-5 })).toThrow(
      msg('rmsnormForward'),
    );
    expect(() => gpuKernels.copy(h, 0, out, 0, 6)).toThrow(msg('copy'));
    expect(() => assign(h, new Float32Array(6))).toThrow(msg('assign'));
    expect(() => gemm(h, f, out, gemmDims(2, 2, 3))).toThrow(msg('gemm'));
    expect(() => gpuKernels.embeddingBackward(f, Int32Array.of(0), h, { rows: 1, dim: 6, vocab: 1 })).toThrow(
      msg('embeddingBackward'),
    );
  });
});
