/**
 * The WGSL GEMM (src/gpu/matmul.ts) against the reference gemm (src/native/ref.ts) on the process's WebGPU
 * device: llvmpipe through Dawn's OpenGL ES backend on machines without a GPU (src/gpu/device.ts sets the
 * environment). No adapter fails the suite with the packages to install; it is never skipped.
 */
import { describe, expect, it } from 'vitest';
import { gemm } from '../../src/gpu/matmul.js';
import { type GemmDims, gemmDims } from '../../src/native/types.js';
import { expectClose, rand32, ref, SIZES, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/**
 * f32 accumulation (fma, in K order per 16-wide tile) vs the reference's f64 accumulation: the same bound
 * as the native sgemm's (test/kernels/gemm.test.ts), the error growing with k.
 */
const GPU_GEMM_TOL = (k: number): Tol => ({ rtol: 1e-5, atol: 2e-6 * Math.max(1, k) });

const dims = gemmDims;

function extent(batch: number, stride: number, size: number): number {
  return batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size;
}

const gpu = useGpu();

async function compare(d: GemmDims, seed: number): Promise<void> {
  const a = rand32(extent(d.batch, d.strideA, d.m * d.k), seed);
  const b = rand32(extent(d.batch, d.strideB, d.k * d.n), seed + 1);
  const c0 = rand32(extent(d.batch, d.strideC, d.m * d.n), seed + 2);
  const cRef = Float32Array.from(c0);
  const cGpu = Float32Array.from(c0);
  ref.gemm(a, b, cRef, d);
  const { ctx } = gpu();
  const c = up(ctx, cGpu);
  gemm(up(ctx, a), up(ctx, b), c, d);
  expectClose(await down(c), cRef, GPU_GEMM_TOL(d.k), `gemm ${JSON.stringify(d)}`);
}

describe('gpu gemm (WGSL, tiled in workgroup memory)', () => {
  it('runs on an adapter with the limits the kernel needs', () => {
    expect(gpu().report.description.length).toBeGreaterThan(0);
    expect(gpu().report.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  });

  for (const m of SIZES) {
    for (const n of SIZES) {
      it(`m=${m} n=${n}, k in ${SIZES.join(',')}`, async () => {
        for (const k of SIZES) await compare(dims(m, n, k), m * 1000 + n * 10 + k);
      });
    }
  }

  it('transposes, alpha and beta', async () => {
    for (const [transA, transB] of [
      [true, false],
      [false, true],
      [true, true],
    ]) {
      await compare(dims(129, 7, 127, { transA, transB }), 11);
      await compare(dims(3, 129, 65, { transA, transB, alpha: -0.5, beta: 2 }), 12);
    }
  });

  it('batched with strides, a broadcast operand and gaps between C items', async () => {
    await compare(dims(7, 127, 3, { batch: 3, strideA: 7 * 3, strideB: 0, strideC: 7 * 127 + 5 }), 21);
    await compare(dims(129, 1, 129, { batch: 2, strideA: 0, strideB: 129, strideC: 129, transA: true }), 22);
  });

  it('a reduction longer than one dispatch walks (K_CHUNK): llvmpipe stopped a 50272-long loop at 45585', async () => {
    const { ctx } = gpu();
    const ones = new Float32Array(65536).fill(1);
    const c = ctx.zeros(1);
    gemm(up(ctx, ones), up(ctx, ones), c, dims(1, 1, 65536));
    expect((await down(c))[0]).toBe(65536);
    await compare(dims(3, 5, 50272, { beta: 0.5 }), 41); // OPT's vocabulary: the lm_head's dX = dY W
  });

  it('k = 0 gives alpha * 0 + beta C', async () => {
    await compare(dims(3, 7, 0, { beta: 0.5 }), 31);
  });
});
