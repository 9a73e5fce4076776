/**
 * Arrays over the storage binding limit (src/gpu/windows.ts): every kernel that splits, run with a binding limit
 * lowered to 2 KiB so that arrays of a few hundred floats need 3 or more windows, against the reference
 * (src/native/ref.ts) and against the same kernel unsplit; the plan itself on synthetic arrays; the refusals.
 */
import { describe, expect, it } from 'vitest';
import type { GpuArray, GpuContext } from '../../src/gpu/array.js';
import { exactHalf, type GpuFormat, type HalfFormat } from '../../src/gpu/half.js';
import { gpuKernels as gk } from '../../src/gpu/kernels.js';
import { packedGpu, packedToGpu, releasePacked } from '../../src/gpu/packed.js';
import { chunksOf, planChunks, windowCapacity } from '../../src/gpu/windows.js';
import * as pref from '../../src/native/packed-ref.js';
import { type GemmDims, gemmDims } from '../../src/native/types.js';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from '../../src/io/dtype.js';
import { expectClose, rand32, randInts, ref, type Tol } from '../kernels/helpers.js';
import { randomPacked } from '../kernels/packed-helpers.js';
import { down, up, useGpu } from './helpers.js';

/** 2 KiB: a window holds 449 floats (512 less the 63 of the offset alignment's slack). */
const LIMIT = 2048;
/** Split vs unsplit where the chunks run the same arithmetic per element: the same bits. */
const SAME: Tol = { rtol: 0, atol: 0 };
/** The reference checks: the bounds of each kernel's own test file (named there), the same kernels here. */
const EXACT: Tol = { rtol: 0, atol: 0 };
/** affine: x * alpha + beta in f32 (fma or two roundings) vs one rounding (test/gpu/elementwise.test.ts). */
const AFFINE_TOL: Tol = { rtol: 2e-7, atol: 2e-7 };
/** gemm: f32 accumulation vs f64 (test/gpu/matmul.test.ts), growing with k. */
const GEMM_TOL = (k: number): Tol => ({ rtol: 1e-5, atol: 2e-6 * Math.max(1, k) });
/** cross-entropy (test/gpu/cross-entropy.test.ts): f32 exp/log and a tree sum of the row. */
const CE_FORWARD_TOL: Tol = { rtol: 2e-7, atol: 4e-6 };
const CE_BACKWARD_TOL = (rowScale: number): Tol => ({ rtol: 3e-6, atol: 4e-7 * Math.abs(rowScale) });
/** sumInto / sumSquaresInto: blockwise then tree f32 sums vs f64 (test/gpu/reduce.test.ts). */
const SUM_ALL_TOL = (absSum: number): Tol => ({ rtol: 2 ** -23, atol: 1e-6 * absSum });
/** adamw (test/gpu/adamw.test.ts): f32 update vs f64; state and theta bounds at |g| <= 1, lr 1e-2. */
const ADAMW_TOL: Tol = { rtol: 1e-6, atol: 4e-8 };

const gpu = useGpu();

/** Runs `f` unsplit, then with the binding limit at LIMIT; returns both results. */
async function splitAndNot(f: (ctx: GpuContext) => Promise<Float32Array[]>): Promise<[Float32Array[], Float32Array[]]> {
  const { ctx } = gpu();
  const whole = await f(ctx);
  const limit = ctx.bindingLimit;
  ctx.bindingLimit = LIMIT;
  try {
    return [whole, await f(ctx)];
  } finally {
    ctx.bindingLimit = limit;
  }
}

/** At least 3 windows: the array holds more than twice what a window holds at LIMIT (449 f32, 896 halves). */
function expectSplit(n: number, format: GpuFormat = 'f32'): void {
  const ctx = { bindingLimit: LIMIT, device: gpu().device } as GpuContext;
  const capacity = windowCapacity({ ctx, format } as GpuArray);
  expect(n, `${format} array elements`).toBeGreaterThan(2 * capacity);
}

async function check(
  label: string,
  f: (ctx: GpuContext) => Promise<Float32Array[]>,
  want: Float32Array[],
  tols: Tol[],
  same = true,
) {
  const [whole, split] = await splitAndNot(f);
  split.forEach((s, i) => {
    expectClose(s, want[i], tols[i], `${label} #${i} vs the reference`);
    if (same) expectClose(s, whole[i], SAME, `${label} #${i} vs unsplit`);
  });
}

const reads = (arrs: GpuArray[]): Promise<Float32Array[]> => Promise.all(arrs.map(down));

describe('planChunks (synthetic arrays)', () => {
  const ctx = { bindingLimit: LIMIT, device: { limits: { minStorageBufferOffsetAlignment: 256 } } } as GpuContext;
  const arr = (length: number) => ({ ctx, length, format: 'f32' }) as GpuArray;

  it('leaves arrays that fit whole unsplit, splits rows before elements and honours caps', () => {
    expect(planChunks('k', [1000], [{ array: arr(512), strides: [1], width: 1 }])).toEqual([1000]);
    expect(planChunks('k', [1000], [{ array: arr(1000), strides: [1], width: 1 }])).toEqual([449]);
    // rows of 100: 4 rows (301 + 100 <= 449)
    expect(planChunks('k', [10, 100], [{ array: arr(1000), strides: [100, 1], width: 1 }])).toEqual([4, 100]);
    // rows of 1000: one row, then 449 of its elements
    expect(planChunks('k', [3, 1000], [{ array: arr(3000), strides: [1000, 1], width: 1 }])).toEqual([1, 449]);
    expect(planChunks('k', [1000], [{ array: arr(100), strides: [1], width: 1 }], [300])).toEqual([300]);
    expect(chunksOf([5, 3], [2, 3]).map((c) => [...c.lo, ...c.size])).toEqual([
      [0, 0, 2, 3],
      [2, 0, 2, 3],
      [4, 0, 1, 3],
    ]);
  });

  it('refuses a unit wider than a window, naming the kernel and --device', () => {
    expect(() => planChunks('crossEntropyForward', [3], [{ array: arr(1500), strides: [500], width: 500 }])).toThrow(
      /crossEntropyForward: one unit of 500 floats .* exceeds the GPU's storage binding limit/,
    );
  });
});

describe('kernels over the binding limit (split into windows)', () => {
  it('the flat kernels: fill, affine, unary, accumulate, broadcastScalar, scaleBy, dropout (n = 1023, 4099)', async () => {
    for (const n of [1023, 4099]) {
      expectSplit(n);
      const x = rand32(n, n);
      const y = rand32(n, n + 1);
      const want = {
        fill: new Float32Array(n).fill(-2.5),
        affine: new Float32Array(n),
        gelu: new Float32Array(n),
        dgelu: new Float32Array(n),
        acc: Float32Array.from(x),
        bcast: new Float32Array(n),
        scaled: Float32Array.from(x),
        drop: new Float32Array(n),
      };
      const draw = { state: 12345, threshold: 2 ** 31 };
      ref.affine(x, want.affine, 1.5, -0.25);
      ref.unaryForward('gelu', x, want.gelu);
      ref.unaryBackward('gelu', x, y, want.dgelu);
      ref.accumulate(want.acc, y);
      ref.broadcastScalar(Float32Array.of(0.75), want.bcast, -2);
      ref.scaleBy(want.scaled, Float32Array.of(0.5), 3);
      ref.dropout(x, draw, 2, want.drop);
      const run = async (ctx: GpuContext) => {
        const o = {
          fill: ctx.zeros(n),
          affine: up(ctx, x),
          gelu: ctx.zeros(n),
          dgelu: ctx.zeros(n),
          acc: up(ctx, x),
          bcast: ctx.zeros(n),
          scaled: up(ctx, x),
          drop: ctx.zeros(n),
        };
        const gx = up(ctx, x);
        const gy = up(ctx, y);
        gk.fill(o.fill, -2.5);
        gk.affine(o.affine, o.affine, 1.5, -0.25); // in place
        gk.unaryForward('gelu', gx, o.gelu);
        gk.unaryBackward('gelu', gx, gy, o.dgelu);
        gk.accumulate(o.acc, gy);
        gk.broadcastScalar(up(ctx, [0.75]), o.bcast, -2);
        gk.scaleBy(o.scaled, up(ctx, [0.5]), 3);
        gk.dropout(gx, draw, 2, o.drop);
        return reads(Object.values(o));
      };
      // gelu: WGSL's exp and erf32 vs the reference's erf (test/gpu/elementwise.test.ts's UNARY_TOL)
      const unary: Tol = { rtol: 2e-6, atol: 4e-7 };
      await check(`flat n=${n}`, run, Object.values(want), [
        EXACT,
        AFFINE_TOL,
        unary,
        unary,
        EXACT,
        EXACT,
        EXACT,
        EXACT,
      ]);
    }
  });

  it('binary: dense and in place, a broadcast row [7, 129] + [129], a broadcast column [129, 7] * [129, 1]', async () => {
    const cases: { shape: number[]; sa: number[]; sb: number[]; na: number; nb: number }[] = [
      { shape: [1023], sa: [1], sb: [1], na: 1023, nb: 1023 },
      { shape: [7, 129], sa: [129, 1], sb: [0, 1], na: 903, nb: 129 },
      { shape: [129, 7], sa: [7, 1], sb: [1, 0], na: 903, nb: 129 },
      { shape: [3, 3, 129], sa: [387, 129, 1], sb: [0, 129, 1], na: 1161, nb: 387 },
    ];
    for (const { shape, sa, sb, na, nb } of cases) {
      const n = shape.reduce((p, s) => p * s, 1);
      expectSplit(n);
      const a = rand32(na, n);
      const b = rand32(nb, n + 1);
      const d = { shape, stridesA: sa, stridesB: sb };
      const want = new Float32Array(n);
      ref.binary('mul', a, b, want, d);
      const run = async (ctx: GpuContext) => {
        const out = ctx.zeros(n);
        gk.binary('mul', up(ctx, a), up(ctx, b), out, d);
        if (shape.length > 1) return reads([out]);
        const ga = up(ctx, a);
        gk.binary('mul', ga, up(ctx, b), ga, d); // in place into a
        return reads([out, ga]);
      };
      await check(`binary ${JSON.stringify(d)}`, run, shape.length === 1 ? [want, want] : [want], [EXACT, EXACT]);
    }
  });

  it('sumInto and sumSquaresInto (n = 2047, 8 blocks of 256)', async () => {
    const n = 2047;
    expectSplit(n);
    const x = rand32(n, 5);
    const s = new Float32Array(1);
    const sq = Float32Array.of(1.5);
    ref.sumInto(x, s, -0.25);
    ref.sumSquaresInto(x, sq);
    const abs = x.reduce((p, v) => p + Math.abs(v), 0);
    const run = async (ctx: GpuContext) => {
      const gs = ctx.zeros(1);
      const gsq = up(ctx, [1.5]);
      const gx = up(ctx, x);
      gk.sumInto(gx, gs, -0.25);
      gk.sumSquaresInto(gx, gsq);
      return reads([gs, gsq]);
    };
    await check('sums', run, [s, sq], [SUM_ALL_TOL(0.25 * abs), SUM_ALL_TOL(abs + 1.5)]);
  });

  it('adamw (n = 1023)', async () => {
    const n = 1023;
    expectSplit(n);
    const th = rand32(n, 1);
    const g = rand32(n, 2);
    const m = rand32(n, 3, -0.1, 0.1);
    const v = rand32(n, 4, 0, 0.01);
    const p = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, c1: 0.19, c2: 0.002, gradScale: 0.5 };
    const want = [Float32Array.from(th), Float32Array.from(m), Float32Array.from(v)];
    ref.adamw(want[0], g, want[1], want[2], p);
    const run = async (ctx: GpuContext) => {
      const arrs = [up(ctx, th), up(ctx, m), up(ctx, v)];
      gk.adamw(arrs[0], up(ctx, g), arrs[1], arrs[2], p);
      return reads(arrs);
    };
    await check('adamw', run, want, [ADAMW_TOL, ADAMW_TOL, ADAMW_TOL]);
  });

  it('gemm: an lm_head forward (B transposed), its dX and dW, batched with strides', async () => {
    const cases: GemmDims[] = [
      gemmDims(7, 129, 33, { transB: true }), // logits = x Wᵀ: W [129, 33] and C [7, 129] split
      gemmDims(7, 33, 129, { beta: 0.5 }), // dX = dlogits W: A [7, 129] and B [129, 33] split (k chunks)
      gemmDims(129, 33, 7, { transA: true, beta: 1 }), // dW += dlogitsᵀ x: A [7, 129] and C [129, 33] split
      gemmDims(65, 129, 31, { transA: true, transB: true, alpha: -0.5 }),
      gemmDims(7, 129, 3, { batch: 3, strideA: 21, strideB: 0, strideC: 7 * 129 + 5 }),
    ];
    for (const d of cases) {
      const size = (batch: number, stride: number, one: number) => (batch - 1) * stride + one;
      const a = rand32(size(d.batch, d.strideA, d.m * d.k), 1);
      const b = rand32(size(d.batch, d.strideB, d.k * d.n), 2);
      const c0 = rand32(size(d.batch, d.strideC, d.m * d.n), 3);
      expectSplit(Math.max(a.length, b.length, c0.length));
      const want = Float32Array.from(c0);
      ref.gemm(a, b, want, d);
      const run = async (ctx: GpuContext) => {
        const c = up(ctx, c0);
        gk.gemm(up(ctx, a), up(ctx, b), c, d);
        return reads([c]);
      };
      // a chunked reduction adds its partial products in another order: the reference bound, not the same bits
      await check(`gemm ${JSON.stringify(d)}`, run, [want], [GEMM_TOL(d.k)], false);
    }
  });

  it('cross-entropy forward and backward over [5, 257] logits, an ignored row', async () => {
    const d = { rows: 5, vocab: 257, ignoreIndex: -100 };
    expectSplit(d.rows * d.vocab);
    const logits = rand32(d.rows * d.vocab, 9, -4, 4);
    const targets = Int32Array.from([1, 256, -100, 0, 130]);
    const want = [new Float32Array(5), new Float32Array(5), new Float32Array(d.rows * d.vocab)];
    ref.crossEntropyForward(logits, targets, want[0], want[1], d);
    ref.crossEntropyBackward(logits, targets, want[1], 0.25, want[2], d);
    const run = async (ctx: GpuContext) => {
      const o = [ctx.zeros(5), ctx.zeros(5), ctx.zeros(d.rows * d.vocab)];
      const gl = up(ctx, logits);
      gk.crossEntropyForward(gl, targets, o[0], o[1], d);
      gk.crossEntropyBackward(gl, targets, o[1], 0.25, o[2], d);
      return reads(o);
    };
    await check('cross-entropy', run, want, [CE_FORWARD_TOL, CE_FORWARD_TOL, CE_BACKWARD_TOL(0.25)]);
  });

  it('embedding lookup and scatter-add over a [129, 7] table (repeated ids; an out of [201, 7] split too)', async () => {
    for (const rows of [37, 201]) {
      const d = { rows, dim: 7, vocab: 129 };
      expectSplit(d.vocab * d.dim);
      const table = rand32(d.vocab * d.dim, 1);
      const ids = randInts(rows, rows, d.vocab);
      ids[0] = 128;
      ids[1] = 128;
      const dy = rand32(rows * d.dim, 2);
      const want = [new Float32Array(rows * d.dim), rand32(d.vocab * d.dim, 3)];
      const dt0 = Float32Array.from(want[1]);
      ref.embeddingForward(table, ids, want[0], d);
      const backward = rows * d.dim * 4 <= LIMIT; // dy is bound whole
      if (backward) ref.embeddingBackward(dy, ids, want[1], d);
      const run = async (ctx: GpuContext) => {
        const out = ctx.zeros(rows * d.dim);
        gk.embeddingForward(up(ctx, table), ids, out, d);
        const dt = up(ctx, dt0);
        if (backward) gk.embeddingBackward(up(ctx, dy), ids, dt, d);
        return reads([out, dt]);
      };
      await check(`embedding rows=${rows}`, run, want, [EXACT, EXACT]);
    }
  });

  it('copy needs no binding: a 4099-float copy at the lowered limit', async () => {
    const x = rand32(4099, 7);
    const run = async (ctx: GpuContext) => {
      const dst = ctx.zeros(4099);
      gk.copy(up(ctx, x), 3, dst, 1, 4096);
      return reads([dst]);
    };
    const want = new Float32Array(4099);
    want.set(x.subarray(3, 4099), 1);
    await check('copy', run, [want], [EXACT]);
  });
});

describe('half storage over the binding limit (windows counted in 16-bit elements)', () => {
  const FORMATS: HalfFormat[] = ['f16', 'bf16'];

  /** `values` rounded to `format`: the 16-bit patterns (exact by construction) and their f32 values. */
  function rounded(values: Float32Array, format: HalfFormat): { bits: Uint16Array; values: Float32Array } {
    const wide = format === 'f16' ? f16ToF32Array(f32ToF16Array(values)) : bf16ToF32Array(f32ToBf16Array(values));
    return { bits: exactHalf(wide, format)!, values: wide };
  }

  it('gemm with a half B: a frozen lm_head [257, 9] (odd rows: windows start mid-row) and dX through it', async () => {
    const cases: GemmDims[] = [
      gemmDims(7, 257, 9, { transB: true }), // logits = x Wᵀ: W and C split by rows of C, k whole: the same bits
      gemmDims(7, 9, 257), // dX = dlogits W: W [257, 9] and A [7, 257] split, k in chunks: the reference bound
    ];
    for (const format of FORMATS) {
      for (const d of cases) {
        const a = rand32(d.m * d.k, 1);
        const w = rounded(rand32(d.k * d.n, 2), format);
        expectSplit(w.bits.length, format);
        const want = new Float32Array(d.m * d.n);
        ref.gemm(a, w.values, want, d);
        const run = async (ctx: GpuContext) => {
          const c = ctx.zeros(d.m * d.n);
          gk.gemm(up(ctx, a), ctx.uploadHalf(w.bits, format), c, d);
          return reads([c]);
        };
        await check(`${format} gemm ${JSON.stringify(d)}`, run, [want], [GEMM_TOL(d.k)], d.transB);
      }
    }
  });

  it('embedding lookup from a half table [301, 7] (rows start on odd elements)', async () => {
    const d = { rows: 37, dim: 7, vocab: 301 };
    const ids = randInts(d.rows, 5, d.vocab);
    ids[0] = 300;
    ids[1] = 0;
    for (const format of FORMATS) {
      const table = rounded(rand32(d.vocab * d.dim, 1), format);
      expectSplit(table.bits.length, format);
      const want = new Float32Array(d.rows * d.dim);
      ref.embeddingForward(table.values, ids, want, d);
      const run = async (ctx: GpuContext) => {
        const out = ctx.zeros(d.rows * d.dim);
        gk.embeddingForward(ctx.uploadHalf(table.bits, format), ids, out, d);
        return reads([out]);
      };
      await check(`${format} embedding`, run, [want], [EXACT]);
    }
  });
});

describe('packed kernels over the binding limit (blocks of batch rows)', () => {
  /** 40 KiB: y and dy of 201 x 129 (101 KiB) in blocks of 64 rows (the rows a block starts aligned on). */
  const PACKED_LIMIT = 40 * 1024;
  /** dweak: blocks add their partial sums, so f32 sums of m terms in another order: (m + 8) 2^-24 of Σ|terms|. */
  const WEAK_GRAD_REL = (m: number): number => (m + 8) * 2 ** -24;

  it('packedMatmul (GEMM and a GEMV-sized m), packedMatmulT and weakGrad: 4-bit, N = 129, K = 7, m = 201, 3', async () => {
    const { ctx } = gpu();
    const { w } = randomPacked({ rows: 129, cols: 7, bits: 4, groupSize: 3, perm: true, nOut: 2, seed: 5 });
    const g = packedToGpu(ctx, w);
    try {
      for (const m of [201, 3]) {
        const x = rand32(m * w.cols, m);
        const dy = rand32(m * w.rows, m + 1);
        const dweak0 = rand32(w.rows * 2, m + 2);
        const run = async (c: GpuContext) => {
          const y = c.zeros(m * w.rows);
          const dx = c.zeros(m * w.cols);
          const dweak = up(c, dweak0);
          packedGpu.packedMatmul(g, up(c, x), m, y);
          packedGpu.packedMatmulT(g, up(c, dy), m, dx);
          packedGpu.weakGrad(g, up(c, dy), up(c, x), m, dweak);
          return reads([y, dx, dweak]);
        };
        const [whole, split] = await (async () => {
          const before = await run(ctx);
          const limit = ctx.bindingLimit;
          ctx.bindingLimit = PACKED_LIMIT;
          try {
            if (m > 4) expect(m * w.rows * 4, 'y bytes').toBeGreaterThan(2 * PACKED_LIMIT);
            return [before, await run(ctx)];
          } finally {
            ctx.bindingLimit = limit;
          }
        })();
        // y and dx: each block computes its rows as unsplit (unsplit is checked against the reference in packed.test.ts)
        expectClose(split[0], whole[0], SAME, `packedMatmul m=${m}`);
        expectClose(split[1], whole[1], SAME, `packedMatmulT m=${m}`);
        const want = dweak0.slice();
        pref.weakGrad(w, dy, x, m, want);
        split[2].forEach((v, e) => {
          const [r, t] = [Math.floor(e / 2), e % 2];
          let mag = Math.abs(dweak0[e]);
          for (let i = 0; i < m; i++) mag += Math.abs(dy[i * w.rows + r] * x[i * w.cols + w.weakIdx[t]]);
          expect(Math.abs(v - want[e]), `weakGrad m=${m} element ${e}`).toBeLessThanOrEqual(WEAK_GRAD_REL(m) * mag);
        });
      }
    } finally {
      releasePacked(g);
    }
  });
});

describe('refusals', () => {
  it('a kernel that binds an array whole refuses it over the limit, naming the kernel and --device', async () => {
    const { ctx } = gpu();
    const limit = ctx.bindingLimit;
    const x = ctx.zeros(1023);
    const out = ctx.zeros(1023);
    ctx.bindingLimit = LIMIT;
    try {
      const d = { shape: [1023], stridesA: [1], stridesB: [1] };
      expect(() => gk.sumTo(x, out, d)).toThrow(
        /sumTo: a binding of 4092 bytes exceeds the GPU's storage binding limit/,
      );
      // binary splits its leading (coalesced) dim: an operand broadcast along it must fit one window
      const big = { shape: [3, 645], stridesA: [645, 1], stridesB: [0, 1] };
      expect(() => gk.binary('add', ctx.zeros(1935), ctx.zeros(645), ctx.zeros(1935), big)).toThrow(
        /binary: one unit of 645 floats/,
      );
    } finally {
      ctx.bindingLimit = limit;
    }
  });

  it('a tensor over maxBufferSize is an error naming --device; the limit is validated', () => {
    const { ctx } = gpu();
    expect(() => ctx.zeros(ctx.maxElements + 1)).toThrow(/exceeds the GPU's largest buffer .*maxBufferSize/);
    expect(() => {
      ctx.bindingLimit = 1000;
    }).toThrow(/GpuContext\.bindingLimit: expected a multiple of 4 bytes/);
    expect(() => {
      ctx.bindingLimit = ctx.device.limits.maxStorageBufferBindingSize + 4;
    }).toThrow(/bindingLimit/);
  });
});
