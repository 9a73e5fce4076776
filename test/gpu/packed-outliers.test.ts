/**
 * The packed-weight kernels on the GPU with sparse outliers (GWQ-style CSR: src/native/packed.ts PackedOutliers;
 * device layout src/gpu/packed-weight.ts, kernels src/gpu/packed-outliers.ts and the GEMV's sparse variant)
 * against the reference (src/native/packed-ref.ts): random packed weights (randomPacked) given outliers at random
 * non-weak positions, their codes set to the zero point as the format requires. Sets: none (no `outliers`), an
 * empty CSR, one outlier, 1% and 5% of the elements, and 5% with one row holding most of its elements as outliers.
 * Odd K (not a multiple of 8), group sizes not dividing K, with and without perm and weak columns, M = 1..4 (the
 * GEMV) and M > GEMV_MAX_M (the GEMM). Tolerances are those of test/gpu/packed.test.ts, on magnitudes()
 * (test/kernels/packed-helpers.ts), which counts the outliers' |values|.
 */
import { describe, expect, it } from 'vitest';
import type { GpuArray, GpuContext } from '../../src/gpu/array.js';
import { release } from '../../src/gpu/array.js';
import { GEMV_MAX_M, type GpuPackedWeight, packedGpu, packedToGpu, releasePacked } from '../../src/gpu/packed.js';
import { f16ToF32Array, f32ToF16Array } from '../../src/io/dtype.js';
import { type PackedBits, packedGroups, type PackedWeight } from '../../src/native/packed.js';
import * as pref from '../../src/native/packed-ref.js';
import { rand32, rng } from '../kernels/helpers.js';
import { absProduct, expectWithin, magnitudes, type PackedSpec, randomPacked } from '../kernels/packed-helpers.js';
import { down, up, useGpu } from './helpers.js';

const U = 2 ** -24;
/** As test/gpu/packed.test.ts: dequantization equal but for an fma contraction of the weak add. */
const GPU_DEQUANT_REL = 2 * U;
/** As test/gpu/packed.test.ts: f32 sums of n terms, (n + 8) 2^-24 of the sum of magnitudes. */
const GPU_PACKED_REL = (n: number): number => (n + 8) * U;

const gpu = useGpu();

/** Which outliers a weight gets. */
type OutlierKind = 'none' | 'empty' | 'one' | '1%' | '5%' | 'heavy row';
const KINDS: OutlierKind[] = ['none', 'empty', 'one', '5%', 'heavy row'];

/**
 * Outliers on w (in place: codes at the outlier positions set to their zero point, qweight repacked): `frac` of
 * the non-weak elements of every row at random (and the last one of the last row), or exactly one element
 * (`one`), and with `heavy row` one row (the middle one) with 90% of its non-weak elements as outliers. Values ±[0.5, 4] (outliers are large).
 */
function addOutliers(w: PackedWeight, codes: Uint8Array, kind: OutlierKind, seed: number): void {
  if (kind === 'none') return;
  const next = rng(seed);
  const { rows, cols, groupSize: g } = w;
  const groups = packedGroups(cols, g);
  const packedCol = new Int32Array(cols).map((_, k) => k);
  w.perm?.forEach((j, k) => (packedCol[j] = k));
  const weak = new Set(w.weakIdx);
  const frac = kind === '1%' ? 0.01 : kind === '5%' || kind === 'heavy row' ? 0.05 : 0;
  const heavy = kind === 'heavy row' ? Math.floor(rows / 2) : -1;
  const free = Array.from({ length: cols }, (_, j) => j).filter((j) => !weak.has(j));
  const one = kind === 'one' ? [Math.floor(next() * rows), free[Math.floor(next() * free.length)]] : null;
  const rowPtr = new Int32Array(rows + 1);
  const colIdx: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      if (weak.has(j)) continue;
      const f = free.indexOf(j);
      // one: that element; frac: at random, and always the last free element (so a small weight has one);
      // the heavy row: all its free elements but every tenth
      const pick =
        one !== null
          ? one[0] === r && one[1] === j
          : next() < frac || (frac > 0 && r === rows - 1 && f === free.length - 1) || (r === heavy && f % 10 !== 9);
      if (!pick) continue;
      colIdx.push(j);
      const k = packedCol[j];
      codes[r * cols + k] = w.zeros[r * groups + Math.floor(k / g)];
    }
    rowPtr[r + 1] = colIdx.length;
  }
  const values = Float32Array.from(colIdx, () => (next() < 0.5 ? -1 : 1) * (0.5 + 3.5 * next()));
  w.qweight = pref.packCodes(codes, rows, cols, w.bits);
  w.outliers = { rowPtr, colIdx: Int32Array.from(colIdx), values };
}

const nnzOf = (w: PackedWeight): number => w.outliers?.colIdx.length ?? 0;

/** dequantizeInto (into an output prefilled with NaN: every entry must be written) against the reference. */
async function expectDequantizeInto(w: PackedWeight, g: GpuPackedWeight, mags: Float64Array, label: string) {
  const out = up(gpu().ctx, new Float32Array(w.rows * w.cols).fill(Number.NaN));
  packedGpu.dequantizeInto(g, out);
  expectWithin(await down(out), pref.dequantize(w), mags, `dequantize ${label}`, GPU_DEQUANT_REL);
  release(out);
}

async function checkDequantize(w: PackedWeight, g: GpuPackedWeight, mags: Float64Array, label: string) {
  await expectDequantizeInto(w, g, mags, label);
  // the heavy row (the middle one) among rows in any order, repeated
  const ids = Int32Array.from([w.rows - 1, Math.floor(w.rows / 2), 0, Math.floor(w.rows / 2), w.rows - 1]);
  const rows = up(gpu().ctx, new Float32Array(ids.length * w.cols).fill(Number.NaN));
  packedGpu.dequantizeRows(g, ids, rows);
  const rowsRef = new Float32Array(ids.length * w.cols);
  pref.packedReference.dequantizeRows(w, ids, rowsRef);
  const rowMags = new Float64Array(ids.length * w.cols);
  ids.forEach((r, i) => rowMags.set(mags.subarray(r * w.cols, (r + 1) * w.cols), i * w.cols));
  expectWithin(await down(rows), rowsRef, rowMags, `dequantizeRows ${label}`, GPU_DEQUANT_REL);
  release(rows);
}

/** The bound of outlierGrad: Σ_i |dy[i, row_p] x[i, colIdx[p]]| + |dvalues0[p]|. */
function gradBound(w: PackedWeight, dy: Float32Array, x: Float32Array, m: number, dv0: Float32Array): Float64Array {
  const o = w.outliers!;
  const b = Float64Array.from(dv0, Math.abs);
  for (let r = 0; r < w.rows; r++) {
    for (let p = o.rowPtr[r]; p < o.rowPtr[r + 1]; p++) {
      for (let i = 0; i < m; i++) b[p] += Math.abs(dy[i * w.rows + r] * x[i * w.cols + o.colIdx[p]]);
    }
  }
  return b;
}

/**
 * packedMatmul's y = x Ŵᵀ and packedMatmulT's dx = dy Ŵ of the device arrays `x` and `dy` (m rows), into outputs
 * prefilled with NaN (every entry must be written), on the host: [y, dx].
 */
async function deviceProducts(
  w: PackedWeight,
  g: GpuPackedWeight,
  x: GpuArray,
  dy: GpuArray,
  m: number,
): Promise<Float32Array[]> {
  const { ctx } = gpu();
  const y = up(ctx, new Float32Array(m * w.rows).fill(Number.NaN));
  const dx = up(ctx, new Float32Array(m * w.cols).fill(Number.NaN));
  packedGpu.packedMatmul(g, x, m, y);
  packedGpu.packedMatmulT(g, dy, m, dx);
  const host = await Promise.all([down(y), down(dx)]);
  for (const a of [y, dx]) release(a);
  return host;
}

/** The device's [y, dx] (deviceProducts) against the reference, within (n + 8) 2^-24 of the sums of `mags`. */
function expectProducts(
  w: PackedWeight,
  mags: Float64Array,
  x: Float32Array,
  dy: Float32Array,
  m: number,
  got: Float32Array[],
  label: string,
) {
  const { rows: n, cols: k } = w;
  const yRef = new Float32Array(m * n);
  pref.packedMatmul(w, x, m, yRef);
  expectWithin(got[0], yRef, absProduct(x, mags, m, n, k, true), `packedMatmul ${label}`, GPU_PACKED_REL(k));
  const dxRef = new Float32Array(m * k);
  pref.packedMatmulT(w, dy, m, dxRef);
  expectWithin(got[1], dxRef, absProduct(dy, mags, m, k, n, false), `packedMatmulT ${label}`, GPU_PACKED_REL(n));
}

/** The device's dvalues (outlierGrad accumulated into dv0) against the reference. */
function expectOutlierGrad(
  w: PackedWeight,
  dy: Float32Array,
  x: Float32Array,
  m: number,
  dv0: Float32Array,
  got: Float32Array,
  label: string,
) {
  const dvRef = dv0.slice();
  pref.outlierGrad(w, dy, x, m, dvRef);
  expectWithin(got, dvRef, gradBound(w, dy, x, m, dv0), `outlierGrad ${label}`, GPU_PACKED_REL(m));
}

/** y and dx, outlierGrad accumulating into random values. */
async function checkProducts(w: PackedWeight, g: GpuPackedWeight, mags: Float64Array, m: number, label: string) {
  const { ctx } = gpu();
  const x = rand32(m * w.cols, m + 2);
  const dy = rand32(m * w.rows, m + 3);
  const [xs, dys] = [up(ctx, x), up(ctx, dy)];
  expectProducts(w, mags, x, dy, m, await deviceProducts(w, g, xs, dys, m), label);
  const nnz = nnzOf(w);
  const dv0 = rand32(nnz, m + 4);
  const dv = up(ctx, dv0);
  packedGpu.outlierGrad(g, dys, xs, m, dv);
  if (nnz === 0) expect(g.outlierValues, label).toBeNull();
  else expectOutlierGrad(w, dy, x, m, dv0, await down(dv), label);
  for (const a of [xs, dys, dv]) release(a);
}

const toF16 = (v: Float32Array): Float32Array => f16ToF32Array(f32ToF16Array(v));

/** Every kernel on one random weight with outliers of `kind`; `half`: f16 scales and frozen f16 weak columns. */
async function checkAll(spec: PackedSpec, kind: OutlierKind, ms: readonly number[], half = false) {
  const { w, codes } = randomPacked(spec);
  if (half) {
    w.scales = toF16(w.scales);
    w.weak = toF16(w.weak);
  }
  addOutliers(w, codes, kind, spec.seed + 7);
  const nnz = nnzOf(w);
  if (kind === 'one') expect(nnz).toBe(1);
  if (kind === 'empty') expect([w.outliers?.rowPtr.length, nnz]).toEqual([w.rows + 1, 0]);
  if (kind === '5%' || kind === 'heavy row') expect(nnz).toBeGreaterThan(0);
  const g = packedToGpu(gpu().ctx, w, { frozenWeak: half });
  expect(g.nnz).toBe(nnz);
  expect(g.outlierValues?.format ?? null).toBe(nnz > 0 ? 'f32' : null);
  if (half) expect([g.scales.format, g.weak.format]).toEqual(['f16', 'f16']);
  try {
    const label = `${JSON.stringify(spec)} ${kind} (nnz ${nnz})`;
    const mags = magnitudes(w, codes);
    await checkDequantize(w, g, mags, label);
    for (const m of ms) await checkProducts(w, g, mags, m, `${label} m=${m}`);
  } finally {
    releasePacked(g);
  }
}

const BITS: PackedBits[] = [2, 3, 4, 8];
const MS = [1, 3, GEMV_MAX_M, GEMV_MAX_M + 1, 65];

describe('gpu packed kernels with sparse outliers vs the reference', () => {
  for (const [t, bits] of BITS.entries()) {
    it(`${bits}-bit K in 7, 129 (G not dividing K), perm and weak columns present and absent, outliers ${KINDS.join(' / ')}, m in ${MS.join(',')}`, async () => {
      for (const [ki, cols] of [7, 129].entries()) {
        for (const [c, kind] of KINDS.entries()) {
          const s = t + ki + c;
          const spec: PackedSpec = {
            rows: [3, 129, 17][s % 3],
            cols,
            bits,
            groupSize: cols === 7 ? 3 : 32,
            perm: s % 2 === 0,
            nOut: [0, 5][(s + Math.floor(s / 2)) % 2],
            seed: bits * 1000 + cols * 10 + c,
          };
          await checkAll(spec, kind, MS);
        }
      }
    });
  }

  it('4- and 3-bit K=1023 N=129 G=128, perm and weak columns, 1% outliers and a heavy row, m in 1, 65', async () => {
    for (const bits of [4, 3] as PackedBits[]) {
      const spec: PackedSpec = { rows: 129, cols: 1023, bits, groupSize: 128, perm: true, nOut: 7, seed: bits };
      await checkAll(spec, '1%', [1, 65]);
      await checkAll({ ...spec, perm: false, nOut: 0, seed: bits + 1 }, 'heavy row', [1, 65]);
    }
  });

  it('f16 scales and frozen f16 weak columns beside f32 outlier values', async () => {
    const spec: PackedSpec = { rows: 17, cols: 129, bits: 4, groupSize: 7, perm: true, nOut: 3, seed: 31 };
    await checkAll(spec, '5%', [1, 65], true);
  });
});

describe('gpu packed outliers: accumulation, replaced values, release', () => {
  const spec: PackedSpec = { rows: 9, cols: 129, bits: 3, groupSize: 32, perm: true, nOut: 3, seed: 77 };
  const withOutliers = (kind: OutlierKind = '5%') => {
    const { w, codes } = randomPacked(spec);
    addOutliers(w, codes, kind, 78);
    return { w, codes };
  };

  it('outlierGrad accumulates: two calls add twice; m = 0 adds nothing', async () => {
    const { w } = withOutliers();
    const { ctx } = gpu();
    const g = packedToGpu(ctx, w);
    const m = 5;
    const dy = rand32(m * w.rows, 1);
    const x = rand32(m * w.cols, 2);
    const once = new Float32Array(g.nnz);
    pref.outlierGrad(w, dy, x, m, once);
    const dv = up(ctx, new Float32Array(g.nnz));
    packedGpu.outlierGrad(g, up(ctx, dy), up(ctx, x), m, dv);
    packedGpu.outlierGrad(g, up(ctx, dy), up(ctx, x), m, dv);
    packedGpu.outlierGrad(g, up(ctx, dy), up(ctx, x), 0, dv);
    const twice = once.map((v) => 2 * v);
    const bound = gradBound(w, dy, x, m, new Float32Array(g.nnz)).map((b) => 2 * b);
    expectWithin(await down(dv), twice, bound, 'outlierGrad twice', GPU_PACKED_REL(2 * m));
    releasePacked(g);
  });

  for (const m of [1, GEMV_MAX_M + 1]) {
    it(`a change to outlierValues is seen by the next call (m=${m}: ${m <= GEMV_MAX_M ? 'GEMV' : 'GEMM'}, dx, dequantize)`, async () => {
      const { w, codes } = withOutliers();
      const { ctx } = gpu();
      const g = packedToGpu(ctx, w);
      const x = rand32(m * w.cols, 3);
      const dy = rand32(m * w.rows, 4);
      const [xs, dys] = [up(ctx, x), up(ctx, dy)];
      const expectAll = async (label: string) => {
        const mags = magnitudes(w, codes);
        const got = await deviceProducts(w, g, xs, dys, m);
        expectProducts(w, mags, x, dy, m, got, label);
        await expectDequantizeInto(w, g, mags, label);
        return got[0];
      };
      const y0 = await expectAll('before');
      const o = w.outliers!;
      // in place, as an optimizer step writes the trainable tensor's storage
      o.values = rand32(g.nnz, 5, -3, 3);
      ctx.device.queue.writeBuffer(g.outlierValues!.buffer, 0, o.values);
      const y1 = await expectAll('after an in-place write');
      expect(y1).not.toEqual(y0);
      // replaced by another array of the same length (the caller's: releasePacked leaves it)
      o.values = rand32(g.nnz, 6, -3, 3);
      const own = g.outlierValues!;
      const mine = up(ctx, o.values);
      g.outlierValues = mine;
      await expectAll('after replacing the array');
      releasePacked(g);
      expect(own.released).toBe(true);
      expect(mine.released).toBe(false);
      release(mine);
    });
  }

  it('releasePacked frees the values packedToGpu made; a released weight is refused', () => {
    const { w } = withOutliers('one');
    const { ctx } = gpu();
    const g = packedToGpu(ctx, w);
    const values = g.outlierValues!;
    expect(values.length).toBe(1);
    releasePacked(g);
    expect(values.released).toBe(true);
    const x = up(ctx, new Float32Array(w.cols));
    expect(() => packedGpu.outlierGrad(g, up(ctx, [0]), x, 0, up(ctx, [0]))).toThrow('the packed weight was released');
  });
});

describe('gpu packed outliers: argument checks', () => {
  const spec: PackedSpec = { rows: 3, cols: 7, bits: 2, groupSize: 7, perm: false, nOut: 1, seed: 9 };

  it('refuses short or missing values, a short dvalues and an output aliasing the values', () => {
    const { w, codes } = randomPacked(spec);
    addOutliers(w, codes, 'heavy row', 10);
    const { ctx } = gpu();
    const g = packedToGpu(ctx, w);
    const nnz = g.nnz;
    expect(nnz).toBeGreaterThanOrEqual(3);
    const x = up(ctx, new Float32Array(2 * 7));
    const dy = up(ctx, new Float32Array(2 * 3));
    expect(() => packedGpu.outlierGrad(g, dy, x, 2, up(ctx, new Float32Array(nnz - 1)))).toThrow(
      `outlierGrad: dvalues has ${nnz - 1} elements, needs at least ${nnz}`,
    );
    expect(() => packedGpu.outlierGrad(g, dy, x, 3, up(ctx, new Float32Array(nnz)))).toThrow(
      'outlierGrad: dy has 6 elements, needs at least 9',
    );
    expect(() => packedGpu.outlierGrad(g, dy, x, 2, x)).toThrow('shares its buffer');
    const own = g.outlierValues!;
    expect(() => packedGpu.packedMatmul(g, x, 1, own)).toThrow('shares its buffer');
    g.outlierValues = up(ctx, new Float32Array(nnz - 1));
    expect(() => packedGpu.packedMatmul(g, x, 2, dy)).toThrow(
      `packedMatmul: outlierValues has ${nnz - 1} elements, needs at least ${nnz}`,
    );
    g.outlierValues = null;
    expect(() => packedGpu.dequantizeInto(g, up(ctx, new Float32Array(21)))).toThrow('but no outlierValues');
    g.outlierValues = own;
    releasePacked(g);
  });
});

describe('gpu packed outliers over the binding limit (blocks of batch rows)', () => {
  /** As test/gpu/windows.test.ts: y and dy of 201 x 129 in blocks of 64 rows. */
  const LIMIT = 40 * 1024;

  it('packedMatmul (GEMM, GEMV-sized m), packedMatmulT and outlierGrad: 4-bit, N = 129, K = 7, m = 201, 3', async () => {
    const { ctx } = gpu();
    const { w, codes } = randomPacked({ rows: 129, cols: 7, bits: 4, groupSize: 3, perm: true, nOut: 2, seed: 5 });
    addOutliers(w, codes, 'heavy row', 6);
    const g = packedToGpu(ctx, w);
    const mags = magnitudes(w, codes);
    try {
      for (const m of [201, 3]) {
        const x = rand32(m * w.cols, m);
        const dy = rand32(m * w.rows, m + 1);
        const dv0 = rand32(g.nnz, m + 2);
        const run = async (c: GpuContext) => {
          const [xs, dys, dv] = [up(c, x), up(c, dy), up(c, dv0)];
          packedGpu.outlierGrad(g, dys, xs, m, dv);
          return [...(await deviceProducts(w, g, xs, dys, m)), await down(dv)];
        };
        const limit = ctx.bindingLimit;
        ctx.bindingLimit = LIMIT;
        let split: Float32Array[];
        try {
          if (m > GEMV_MAX_M) expect(m * w.rows * 4, 'y bytes').toBeGreaterThan(2 * LIMIT);
          split = await run(ctx);
        } finally {
          ctx.bindingLimit = limit;
        }
        expectProducts(w, mags, x, dy, m, split, `m=${m}`);
        expectOutlierGrad(w, dy, x, m, dv0, split[2], `m=${m}`);
      }
    } finally {
      releasePacked(g);
    }
  });
});
