/**
 * The input Hessian accumulated on the GPU (src/quant/hessian.ts over the WebGPU kernels) against the host one
 * (native kernels), on odd sizes with several add() calls of one or more sequences each.
 */
import { describe, expect, it } from 'vitest';
import { GpuArray } from '../../src/gpu/array.js';
import { Hessian } from '../../src/quant/hessian.js';
import { Rng } from '../../src/util/rng.js';
import { up, useGpu } from './helpers.js';

const gpu = useGpu();

/**
 * |H_gpu - H_host| <= HESSIAN_TOL * max|H_host|, entrywise. Both accumulate in f32, but the GPU GEMM sums the
 * T products of each entry in another order (tiles of 16) than the host's ssyrk, and the running rescale
 * n/(n+1) compounds those rounding differences over the sequences: a few ulps of f32 (1.2e-7) per add,
 * times the add count, relative to the largest entry; measured up to ~3e-7 here.
 */
const HESSIAN_TOL = 2e-6;

function randn(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.next() - 0.5) * 4);
}

describe('Hessian on the GPU', () => {
  const cases = [
    { k: 1, seq: 1, adds: [1, 1] },
    { k: 3, seq: 7, adds: [1, 2, 1] },
    { k: 7, seq: 3, adds: [3, 1] },
    { k: 127, seq: 5, adds: [1, 2, 3] },
    { k: 129, seq: 33, adds: [2, 1, 1, 2] },
    { k: 131, seq: 512, adds: [2, 1] },
  ];
  for (const { k, seq, adds } of cases) {
    it(`K ${k}, T ${seq}, adds of ${adds.join('+')} sequences: equals the host's within ${HESSIAN_TOL} of max|H|`, async () => {
      const { ctx } = gpu();
      const rng = new Rng(k * 1000 + seq);
      const host = new Hessian(k);
      const device = new Hessian(k, ctx.zeros(0));
      expect(device.h).toBeInstanceOf(GpuArray);
      for (const count of adds) {
        const x = randn(rng, count * seq * k);
        host.add(x, seq);
        device.add(up(ctx, x), seq);
      }
      expect(device.samples).toBe(host.samples);
      const want = await host.values();
      const got = await device.values();
      device.free();
      let scale = 0;
      for (const v of want) scale = Math.max(scale, Math.abs(v));
      let worst = 0;
      for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      expect(worst / scale).toBeLessThanOrEqual(HESSIAN_TOL);
    });
  }

  it('refuses activations on another device than H', () => {
    const device = new Hessian(3, gpu().ctx.zeros(0));
    expect(() => device.add(new Float32Array(9), 3)).toThrow(/another device/);
    device.free();
  });
});
