/**
 * The packed-weight kernels on the GPU (src/gpu/packed*.ts) against the reference (src/native/packed-ref.ts):
 * random weights built by the project's packer (randomPacked: pref.packCodes over random codes, scales and zero
 * points, weak codes at their zero point) at every bit width, odd K and N, group sizes that do and do not divide
 * K, with and without perm, 0 / 1 / a few weak columns, M across the GEMV (M <= 4) and the tiled GEMM.
 * Products are compared within a bound proportional to the sum of the magnitudes the kernels add up
 * (magnitudes(): |x| |s| (code + z), plus |weak|), as the native kernels' tests do. With scales and weak
 * columns exact in f16 (as a packed checkpoint stores them) they go to the device as f16 half storage
 * (src/gpu/half.ts), read as u32 words here (llvmpipe has no 'shader-f16') and as native f16 where the device has
 * it; the reference is fed the same f16 values and the tolerances are the f32 ones.
 */
import { describe, expect, it } from 'vitest';
import type { GpuArray } from '../../src/gpu/array.js';
import { release } from '../../src/gpu/array.js';
import { GEMV_MAX_M, type GpuPackedWeight, packedGpu, packedToGpu, releasePacked } from '../../src/gpu/packed.js';
import { f16ToF32Array, f32ToF16Array } from '../../src/io/dtype.js';
import type { PackedBits, PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32 } from '../kernels/helpers.js';
import { absProduct, expectWithin, magnitudes, type PackedSpec, randomPacked } from '../kernels/packed-helpers.js';
import { down, up, useGpu } from './helpers.js';

const U = 2 ** -24;
/**
 * Dequantization follows the reference's formula and order (s * (code - z) rounded, then + weak): equal but for
 * a possible fma contraction of the weak add, which changes the result by at most one rounding, 2^-24 of the
 * magnitudes (taken twice as a margin).
 */
const GPU_DEQUANT_REL = 2 * U;
/**
 * Products: f32 sums over an inner dimension of n terms (K for y, N for dx, M for dweak) against the reference's
 * f64 sum of the same f32-rounded terms. The GEMM's fma chain along n and the GEMV's chains (a unit's codes,
 * then the invocation's units, then a 6-level tree) are all at most n long: the worst-case bound of f32
 * recursive summation, (n - 1) 2^-24 of the sum of magnitudes, plus a few roundings per term (the dequantized
 * element, the scale applied per unit instead of per code, the reference's final rounding): (n + 8) 2^-24.
 * A wrong code, scale or zero point moves an output by one term, about 1/n of that sum: far outside the bound.
 */
const GPU_PACKED_REL = (n: number): number => (n + 8) * U;

const gpu = useGpu();
const BITS: PackedBits[] = [2, 3, 4, 8];
const KS = [1, 3, 7, 127, 129];
const NS = [1, 3, 129];
const MS = [1, 2, 3, 4, 5, 65];

/** Arrays uploaded by one check, released at its end. */
class Uploads {
  private readonly arrays: GpuArray[] = [];
  up(data: ArrayLike<number>): GpuArray {
    const a = up(gpu().ctx, data);
    this.arrays.push(a);
    return a;
  }
  done(): void {
    for (const a of this.arrays) release(a);
  }
}

async function checkDequantize(w: PackedWeight, g: GpuPackedWeight, codes: Uint8Array, label: string): Promise<void> {
  const u = new Uploads();
  const out = u.up(new Float32Array(w.rows * w.cols).fill(Number.NaN));
  packedGpu.dequantizeInto(g, out);
  expectWithin(await down(out), pref.dequantize(w), magnitudes(w, codes), `dequantize ${label}`, GPU_DEQUANT_REL);
  // rows in any order, repeated, the last row included (a packed embedding's lookup)
  const ids = Int32Array.from([w.rows - 1, 0, Math.floor(w.rows / 2), w.rows - 1, 0].filter((r) => r < w.rows));
  const rows = u.up(new Float32Array(ids.length * w.cols).fill(Number.NaN));
  packedGpu.dequantizeRows(g, ids, rows);
  const rowsRef = new Float32Array(ids.length * w.cols);
  pref.packedReference.dequantizeRows(w, ids, rowsRef);
  const rowMags = new Float64Array(ids.length * w.cols);
  const mags = magnitudes(w, codes);
  ids.forEach((r, i) => rowMags.set(mags.subarray(r * w.cols, (r + 1) * w.cols), i * w.cols));
  expectWithin(await down(rows), rowsRef, rowMags, `dequantizeRows ${label}`, GPU_DEQUANT_REL);
  u.done();
}

/** y, dx (outputs prefilled with NaN: every entry must be written) and dweak (accumulating into random values). */
async function checkProducts(w: PackedWeight, g: GpuPackedWeight, codes: Uint8Array, m: number, label: string) {
  const { rows: n, cols: k } = w;
  const nOut = w.weakIdx.length;
  const mag = magnitudes(w, codes);
  const u = new Uploads();
  const x = rand32(m * k, m + 2);
  const yRef = new Float32Array(m * n);
  pref.packedMatmul(w, x, m, yRef);
  const y = u.up(new Float32Array(m * n).fill(Number.NaN));
  packedGpu.packedMatmul(g, u.up(x), m, y);
  expectWithin(await down(y), yRef, absProduct(x, mag, m, n, k, true), `packedMatmul ${label}`, GPU_PACKED_REL(k));

  const dy = rand32(m * n, m + 3);
  const dxRef = new Float32Array(m * k);
  pref.packedMatmulT(w, dy, m, dxRef);
  const dx = u.up(new Float32Array(m * k).fill(Number.NaN));
  packedGpu.packedMatmulT(g, u.up(dy), m, dx);
  expectWithin(await down(dx), dxRef, absProduct(dy, mag, m, k, n, false), `packedMatmulT ${label}`, GPU_PACKED_REL(n));

  const dweak0 = rand32(n * nOut, m + 4);
  const dweakRef = dweak0.slice();
  pref.weakGrad(w, dy, x, m, dweakRef);
  const dweak = u.up(dweak0);
  packedGpu.weakGrad(g, u.up(dy), u.up(x), m, dweak);
  const xw = Float64Array.from({ length: m * nOut }, (_, t) =>
    Math.abs(x[Math.floor(t / nOut) * k + w.weakIdx[t % nOut]]),
  );
  const dyT = Float64Array.from({ length: n * m }, (_, t) => dy[(t % m) * n + Math.floor(t / m)]);
  const bound = absProduct(dyT, xw, n, nOut, m, false).map((b, t) => b + Math.abs(dweak0[t]));
  expectWithin(await down(dweak), dweakRef, bound, `weakGrad ${label}`, GPU_PACKED_REL(m));
  u.done();
}

/** Values rounded to f16 (what an F16 tensor of a packed checkpoint holds). */
const toF16 = (v: Float32Array): Float32Array => f16ToF32Array(f32ToF16Array(v));

/**
 * Every kernel on one random weight. `half`: scales and weak columns rounded to f16 first, uploaded as f16 (the
 * weak columns frozen, or f32 trainable ones beside f16 scales as in Weak Column Tuning).
 */
async function checkAll(spec: PackedSpec, ms: readonly number[], half: 'frozen' | 'trainable' | null = null) {
  const { w, codes } = randomPacked(spec);
  if (half !== null) {
    w.scales = toF16(w.scales);
    w.weak = toF16(w.weak);
  }
  const g = packedToGpu(gpu().ctx, w, { frozenWeak: half === 'frozen' });
  expect([g.scales.format, g.weak.format]).toEqual(
    half === null ? ['f32', 'f32'] : half === 'frozen' ? ['f16', 'f16'] : ['f16', 'f32'],
  );
  try {
    const label = JSON.stringify(spec);
    await checkDequantize(w, g, codes, label);
    for (const m of ms) await checkProducts(w, g, codes, m, `${label} m=${m}`);
  } finally {
    releasePacked(g);
  }
}

/** Group sizes per K: 1, 7, 32, 128 (most of them not dividing K, 128 > K is one group) and K. */
const groupSizes = (k: number): number[] => [...new Set([1, 7, 32, 128, k])];

describe('gpu packed kernels vs the reference', () => {
  for (const bits of BITS) {
    for (const [ki, cols] of KS.entries()) {
      it(`${bits}-bit K=${cols}: G in ${groupSizes(cols).join(',')}, N in ${NS.join(',')}, perm, nOut, m in ${MS.join(',')}`, async () => {
        // every (bits, K) meets every N, both perm settings and nOut 0 / 1 / a few across its group sizes
        for (const [gi, groupSize] of groupSizes(cols).entries()) {
          const t = ki + gi;
          const spec: PackedSpec = {
            rows: NS[t % NS.length],
            cols,
            bits,
            groupSize,
            perm: (t + bits) % 2 === 0,
            nOut: Math.min(cols, [0, 1, 5][(t + Math.floor(t / 3)) % 3]),
            seed: bits * 1000 + cols * 10 + gi,
          };
          await checkAll(spec, MS);
        }
      });
    }
    it(`${bits}-bit K=1023 N=129, G=128 (not dividing K) with perm and weak columns, m in 1, 65`, async () => {
      await checkAll({ rows: 129, cols: 1023, bits, groupSize: 128, perm: true, nOut: 7, seed: bits }, [1, 65]);
    });
  }

  for (const half of ['frozen', 'trainable'] as const) {
    it(`f16 scales, ${half === 'frozen' ? 'f16 frozen' : 'f32 trainable'} weak columns: 2/3/4/8-bit, odd K and N, m in 1, 3, 65`, async () => {
      for (const [t, bits] of BITS.entries()) {
        for (const cols of [3, 129, 1023]) {
          const rows = NS[(t + cols) % NS.length];
          const spec = { rows, cols, bits, groupSize: 7 + 25 * t, perm: t % 2 === 0, nOut: 3, seed: t * 10 + cols };
          await checkAll(spec, [1, 3, 65], half);
        }
      }
    });
  }

  it('scales not exact in f16 stay f32 on the device (f16 never changes a value)', () => {
    const { w } = randomPacked({ rows: 3, cols: 7, bits: 4, groupSize: 3, perm: false, nOut: 1, seed: 6 });
    const g = packedToGpu(gpu().ctx, w, { frozenWeak: true });
    expect([g.scales.format, g.weak.format]).toEqual(['f32', 'f32']);
    releasePacked(g);
  });

  it('N = 0 rows: nothing to compute, dx is zeros', async () => {
    const { w } = randomPacked({ rows: 0, cols: 7, bits: 4, groupSize: 3, perm: false, nOut: 1, seed: 5 });
    const g = packedToGpu(gpu().ctx, w);
    const dx = up(gpu().ctx, new Float32Array(14).fill(Number.NaN));
    packedGpu.packedMatmulT(g, up(gpu().ctx, []), 2, dx);
    expect(Array.from(await down(dx))).toEqual(new Array(14).fill(0));
    releasePacked(g);
  });
});

describe('gpu packed kernels: weak columns and accumulation', () => {
  const spec: PackedSpec = { rows: 7, cols: 129, bits: 3, groupSize: 32, perm: true, nOut: 3, seed: 77 };

  it('weakGrad accumulates: two calls add twice', async () => {
    const { w } = randomPacked(spec);
    const g = packedToGpu(gpu().ctx, w);
    const m = 5;
    const dy = rand32(m * w.rows, 1);
    const x = rand32(m * w.cols, 2);
    const once = new Float32Array(w.rows * 3);
    pref.weakGrad(w, dy, x, m, once);
    const dweak = up(gpu().ctx, new Float32Array(w.rows * 3));
    packedGpu.weakGrad(g, up(gpu().ctx, dy), up(gpu().ctx, x), m, dweak);
    packedGpu.weakGrad(g, up(gpu().ctx, dy), up(gpu().ctx, x), m, dweak);
    const twice = once.map((v) => 2 * v);
    const bound = twice.map((v) => Math.abs(v) + 1);
    expectWithin(await down(dweak), twice, bound, 'weakGrad twice', GPU_PACKED_REL(2 * m));
    releasePacked(g);
  });

  for (const m of [1, GEMV_MAX_M + 1]) {
    it(`a change to the weak array is seen by the next call (m=${m}: ${m <= GEMV_MAX_M ? 'GEMV' : 'GEMM'})`, async () => {
      const { w, codes } = randomPacked(spec);
      const { ctx } = gpu();
      const g = packedToGpu(ctx, w);
      const x = rand32(m * w.cols, 3);
      const xs = up(ctx, x);
      const expectY = async (label: string) => {
        const yRef = new Float32Array(m * w.rows);
        pref.packedMatmul(w, x, m, yRef);
        const y = up(ctx, new Float32Array(m * w.rows));
        packedGpu.packedMatmul(g, xs, m, y);
        const bound = absProduct(x, magnitudes(w, codes), m, w.rows, w.cols, true);
        expectWithin(await down(y), yRef, bound, label, GPU_PACKED_REL(w.cols));
        return y;
      };
      const y0 = await down(await expectY('before'));
      // in place, as an optimizer step writes the trainable tensor's storage
      w.weak = rand32(w.weak.length, 4, -3, 3);
      ctx.device.queue.writeBuffer(g.weak.buffer, 0, w.weak);
      const y1 = await down(await expectY('after an in-place write'));
      expect(y1).not.toEqual(y0);
      // replaced by another array of the same length
      w.weak = rand32(w.weak.length, 5, -3, 3);
      g.weak = up(ctx, w.weak);
      await expectY('after replacing the array');
      releasePacked(g);
    });
  }
});

describe('gpu packed kernels: argument checks', () => {
  const spec: PackedSpec = { rows: 3, cols: 7, bits: 2, groupSize: 7, perm: false, nOut: 1, seed: 9 };

  it('refuses short arrays, a bad m, an output aliasing an input and a released weight', () => {
    const { w } = randomPacked(spec);
    const { ctx } = gpu();
    const g = packedToGpu(ctx, w);
    const x = up(ctx, new Float32Array(2 * 7));
    const y = up(ctx, new Float32Array(2 * 3));
    expect(() => packedGpu.packedMatmul(g, x, 3, y)).toThrow('packedMatmul: x has 14 elements, needs at least 21');
    expect(() => packedGpu.packedMatmul(g, x, 2, up(ctx, [0]))).toThrow('packedMatmul: y has 1 elements');
    expect(() => packedGpu.packedMatmul(g, x, 1.5, y)).toThrow('m must be a non-negative integer');
    expect(() => packedGpu.packedMatmulT(g, y, 2, up(ctx, [0]))).toThrow('packedMatmulT: dx has 1 elements');
    expect(() => packedGpu.weakGrad(g, y, x, 2, up(ctx, []))).toThrow(
      'weakGrad: dweak has 0 elements, needs at least 3',
    );
    expect(() => packedGpu.dequantizeInto(g, up(ctx, new Float32Array(20)))).toThrow('dequantize: out has 20');
    expect(() => packedGpu.dequantizeRows(g, Int32Array.of(0, 1), up(ctx, new Float32Array(13)))).toThrow(
      'dequantizeRows: out has 13 elements, needs at least 14',
    );
    expect(() => packedGpu.dequantizeRows(g, Int32Array.of(2, 3), up(ctx, new Float32Array(14)))).toThrow(
      /token id 3 at position 1 is outside the vocabulary \[0, 3\)/,
    );
    expect(() => packedGpu.packedMatmul(g, x, 2, x)).toThrow('shares its buffer');
    releasePacked(g);
    expect(() => packedGpu.packedMatmul(g, x, 2, y)).toThrow('the packed weight was released');
  });

  it('packedToGpu validates the weight as loaders do', () => {
    const { w } = randomPacked(spec);
    expect(() => packedToGpu(gpu().ctx, { ...w, scales: new Float32Array(2) })).toThrow('packedToGpu: scales has 2');
  });
});
