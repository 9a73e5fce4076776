/**
 * The WGSL row softmax (src/gpu/softmax.ts) against the reference (src/native/ref.ts) on odd row and column
 * counts, including large logits (the max shift) and a row of equal values.
 */
import { describe, expect, it } from 'vitest';
import { softmaxBackward, softmaxForward } from '../../src/gpu/softmax.js';
import type { RowDims } from '../../src/native/types.js';
import { expectClose, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/**
 * f32 exp (WGSL allows 3 + 2|x| ulp, llvmpipe is near 1 ulp) and an f32 tree sum of up to 1023 terms vs the
 * reference's f64: a few 1e-7 relative on each probability; atol 1e-7 for the tiny ones (the native
 * kernel's SOFTMAX_TOL is 2e-6 / 1e-7 for the same reasons).
 */
const GPU_SOFTMAX_TOL: Tol = { rtol: 5e-6, atol: 1e-7 };

const ROWS = [1, 3, 7, 127, 129] as const;
const COLS = [1, 3, 7, 127, 129, 1023] as const;
const gpu = useGpu();

async function compare(rows: number, cols: number, seed: number, lo = -4, hi = 4): Promise<void> {
  const d: RowDims = { rows, cols };
  const x = rand32(rows * cols, seed, lo, hi);
  const dy = rand32(rows * cols, seed + 1);
  const yR = new Float32Array(rows * cols);
  const dxR = new Float32Array(rows * cols);
  ref.softmaxForward(x, yR, d);
  ref.softmaxBackward(yR, dy, dxR, d);
  const { ctx } = gpu();
  const y = ctx.zeros(rows * cols);
  const dx = up(ctx, rand32(rows * cols, seed + 2)); // overwritten
  softmaxForward(up(ctx, x), y, d);
  softmaxBackward(up(ctx, yR), up(ctx, dy), dx, d);
  expectClose(await down(y), yR, GPU_SOFTMAX_TOL, `softmax ${rows}x${cols} forward`);
  expectClose(await down(dx), dxR, GPU_SOFTMAX_TOL, `softmax ${rows}x${cols} backward`);
}

describe('gpu softmax (WGSL, a workgroup per row)', () => {
  for (const rows of ROWS) {
    it(`rows=${rows}, cols in ${COLS.join(',')}`, async () => {
      for (const cols of COLS) await compare(rows, cols, rows * 100 + cols);
    });
  }

  it('1023 rows; large logits are shifted by the row max', async () => {
    await compare(1023, 129, 5);
    await compare(7, 129, 6, 80, 120);
  });

  it('more rows than 65535 workgroups per grid dimension (a 2-D grid of row workgroups)', async () => {
    await compare(65537, 2, 9);
  });

  it('a row of equal values is uniform', async () => {
    const { ctx } = gpu();
    const y = ctx.zeros(300);
    softmaxForward(up(ctx, new Float32Array(300).fill(3)), y, { rows: 1, cols: 300 });
    expectClose(await down(y), new Float32Array(300).fill(1 / 300), GPU_SOFTMAX_TOL, 'uniform');
  });

  it('refuses an output aliasing the input', () => {
    const { ctx } = gpu();
    const x = ctx.zeros(6);
    expect(() => softmaxForward(x, x, { rows: 2, cols: 3 })).toThrow(/out and x/);
  });
});
