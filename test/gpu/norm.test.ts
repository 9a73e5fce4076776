/**
 * The WGSL RMSNorm and LayerNorm (src/gpu/norm.ts) against the reference (src/native/ref.ts, f64 arithmetic
 * rounded to f32) on odd row and column counts, with dw/db pre-filled to check that they accumulate.
 */
import { describe, expect, it } from 'vitest';
import { layernormBackward, layernormForward, rmsnormBackward, rmsnormForward } from '../../src/gpu/norm.js';
import type { NormDims } from '../../src/native/types.js';
import { expectClose, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/**
 * Outputs, statistics and dx: f32 row sums (a strided fold then a tree of 32..256 lanes, 256 at 1023 columns: a
 * few ulps)
 * and an f32 1/sqrt (WGSL allows 2.5 ulp for the division) against f64: a few 1e-7 relative, so 1e-5 relative
 * plus 2e-6 absolute for the near-zero outputs (dx subtracts two terms of size ~r |dy w|).
 */
const GPU_NORM_TOL: Tol = { rtol: 1e-5, atol: 2e-6 };
/**
 * dw/db: one f32 fma chain over the rows per column (the reference adds in f64): the error of a serial sum of
 * `rows` terms of size ~1 grows with rows (measured: within 1e-8 * rows here; 1e-7 * rows leaves room for
 * other data). LayerNorm's dx at cols = 1 and RMSNorm's at cols = 1 cancel two near-equal terms, hence rtol 1e-5.
 */
const GPU_NORM_PARAM_GRAD_TOL = (rows: number): Tol => ({ rtol: 1e-5, atol: 1e-7 * Math.max(1, rows) });
/** LayerNorm's rstd at cols = 1 is 1/sqrt(0 + eps): large and exact-ish, but var ~ eps cancels at cols = 3. */
const GPU_LN_RSTD_TOL: Tol = { rtol: 2e-5, atol: 2e-5 };

const ROWS = [1, 3, 7, 127, 129] as const;
const COLS = [1, 3, 7, 127, 129, 1023] as const;
const gpu = useGpu();

async function rms(rows: number, cols: number, seed: number): Promise<void> {
  const d: NormDims = { rows, cols, eps: 1e-5 };
  const x = rand32(rows * cols, seed, -2, 2);
  const w = rand32(cols, seed + 1, 0.5, 1.5);
  const dy = rand32(rows * cols, seed + 2);
  const dw0 = rand32(cols, seed + 3);
  const outR = new Float32Array(rows * cols);
  const rstdR = new Float32Array(rows);
  const dxR = new Float32Array(rows * cols);
  const dwR = Float32Array.from(dw0);
  ref.rmsnormForward(x, w, outR, rstdR, d);
  ref.rmsnormBackward(x, w, rstdR, dy, dxR, dwR, d);

  const { ctx } = gpu();
  const [gx, gw, gdy] = [up(ctx, x), up(ctx, w), up(ctx, dy)];
  const [out, rstd, dx, dw] = [ctx.zeros(rows * cols), ctx.zeros(rows), ctx.zeros(rows * cols), up(ctx, dw0)];
  rmsnormForward(gx, gw, out, rstd, d);
  rmsnormBackward(gx, gw, rstd, gdy, dx, dw, d);
  const label = `rmsnorm ${rows}x${cols}`;
  expectClose(await down(rstd), rstdR, GPU_NORM_TOL, `${label} rstd`);
  expectClose(await down(out), outR, GPU_NORM_TOL, `${label} out`);
  expectClose(await down(dx), dxR, GPU_NORM_TOL, `${label} dx`);
  expectClose(await down(dw), dwR, GPU_NORM_PARAM_GRAD_TOL(rows), `${label} dw`);
}

async function ln(rows: number, cols: number, seed: number): Promise<void> {
  const d: NormDims = { rows, cols, eps: 1e-5 };
  const x = rand32(rows * cols, seed, -2, 3);
  const w = rand32(cols, seed + 1, 0.5, 1.5);
  const b = rand32(cols, seed + 2);
  const dy = rand32(rows * cols, seed + 3);
  const dw0 = rand32(cols, seed + 4);
  const db0 = rand32(cols, seed + 5);
  const outR = new Float32Array(rows * cols);
  const meanR = new Float32Array(rows);
  const rstdR = new Float32Array(rows);
  const dxR = new Float32Array(rows * cols);
  const dwR = Float32Array.from(dw0);
  const dbR = Float32Array.from(db0);
  ref.layernormForward(x, w, b, outR, meanR, rstdR, d);
  ref.layernormBackward(x, w, meanR, rstdR, dy, dxR, dwR, dbR, d);

  const { ctx } = gpu();
  const [gx, gw, gb, gdy] = [up(ctx, x), up(ctx, w), up(ctx, b), up(ctx, dy)];
  const [out, mean, rstd, dx] = [ctx.zeros(rows * cols), ctx.zeros(rows), ctx.zeros(rows), ctx.zeros(rows * cols)];
  const [dw, db] = [up(ctx, dw0), up(ctx, db0)];
  layernormForward(gx, gw, gb, out, mean, rstd, d);
  layernormBackward(gx, gw, mean, rstd, gdy, dx, dw, db, d);
  const label = `layernorm ${rows}x${cols}`;
  // At cols = 1, rstd = 1/sqrt(eps) ~ 316 and dx ~ r (g - g - 0): absolute errors scale with r.
  const dxScale = cols === 1 ? 1 / Math.sqrt(d.eps) : 1;
  expectClose(await down(mean), meanR, GPU_NORM_TOL, `${label} mean`);
  expectClose(await down(rstd), rstdR, GPU_LN_RSTD_TOL, `${label} rstd`);
  expectClose(await down(out), outR, GPU_NORM_TOL, `${label} out`);
  const dxTol = { rtol: GPU_NORM_TOL.rtol, atol: GPU_NORM_TOL.atol * dxScale };
  expectClose(await down(dx), dxR, dxTol, `${label} dx`);
  expectClose(await down(dw), dwR, GPU_NORM_PARAM_GRAD_TOL(rows), `${label} dw`);
  expectClose(await down(db), dbR, GPU_NORM_PARAM_GRAD_TOL(rows), `${label} db`);
}

describe('gpu rmsnorm (WGSL, a workgroup per row; dw by column)', () => {
  for (const rows of ROWS) {
    it(`rows=${rows}, cols in ${COLS.join(',')}; dw accumulates`, async () => {
      for (const cols of COLS) await rms(rows, cols, rows * 100 + cols);
    });
  }
  it('1023 rows', async () => {
    await rms(1023, 129, 7);
  });
});

describe('gpu layernorm (WGSL, a workgroup per row; dw/db by column)', () => {
  for (const rows of ROWS) {
    it(`rows=${rows}, cols in ${COLS.join(',')}; dw and db accumulate`, async () => {
      for (const cols of COLS) await ln(rows, cols, rows * 100 + cols + 50);
    });
  }
  it('1023 rows', async () => {
    await ln(1023, 129, 8);
  });
});

describe('gpu norm validation', () => {
  it('refuses short buffers and an output aliasing an input', () => {
    const { ctx } = gpu();
    const x = ctx.zeros(12);
    const w = ctx.zeros(4);
    expect(() => rmsnormForward(x, w, ctx.zeros(11), ctx.zeros(3), { rows: 3, cols: 4, eps: 1e-5 })).toThrow(
      'rmsnormForward: out has 11 elements, needs at least 12',
    );
    expect(() => rmsnormForward(x, w, x, ctx.zeros(3), { rows: 3, cols: 4, eps: 1e-5 })).toThrow(/out and x/);
  });
});
