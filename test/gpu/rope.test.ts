/** The WGSL RoPE (src/gpu/rope.ts) against the reference (src/native/ref.ts), forward and inverse. */
import { describe, expect, it } from 'vitest';
import { rope } from '../../src/gpu/rope.js';
import type { RopeDims } from '../../src/native/types.js';
import { expectClose, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/** Two f32 products and one add per output (no reduction): a couple of roundings, as the native ROPE_TOL. */
const GPU_ROPE_TOL: Tol = { rtol: 1e-6, atol: 1e-6 };

/** HF tables: angle(t, i) = t * theta^(-2i/D). */
function tables(seq: number, headDim: number): { cos: Float32Array; sin: Float32Array } {
  const h = headDim / 2;
  const cos = new Float32Array(seq * h);
  const sin = new Float32Array(seq * h);
  for (let t = 0; t < seq; t++) {
    for (let i = 0; i < h; i++) {
      const angle = t * 10000 ** ((-2 * i) / headDim);
      cos[t * h + i] = Math.cos(angle);
      sin[t * h + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

const gpu = useGpu();

describe('gpu rope (WGSL, an invocation per rotated pair)', () => {
  const cases: RopeDims[] = [
    { batch: 1, seq: 1, heads: 1, headDim: 2 },
    { batch: 2, seq: 7, heads: 3, headDim: 64 },
    { batch: 1, seq: 129, heads: 4, headDim: 16 },
    { batch: 3, seq: 127, heads: 7, headDim: 6 },
    { batch: 1, seq: 1023, heads: 1, headDim: 2 },
  ];
  for (const d of cases) {
    it(`forward and inverse, ${JSON.stringify(d)}`, async () => {
      const n = d.batch * d.seq * d.heads * d.headDim;
      const x = rand32(n, d.seq + d.heads);
      const { cos, sin } = tables(d.seq, d.headDim);
      const { ctx } = gpu();
      const [gx, gc, gs] = [up(ctx, x), up(ctx, cos), up(ctx, sin)];
      for (const inverse of [false, true]) {
        const outR = new Float32Array(n);
        ref.rope(x, outR, cos, sin, d, inverse);
        const out = ctx.zeros(n);
        rope(gx, out, gc, gs, d, inverse);
        expectClose(await down(out), outR, GPU_ROPE_TOL, `inverse=${inverse}`);
      }
    });
  }

  it('rejects an odd head dim and an output aliasing the input', () => {
    const { ctx } = gpu();
    const x = ctx.zeros(8);
    expect(() => rope(x, ctx.zeros(8), x, x, { batch: 1, seq: 1, heads: 1, headDim: 3 }, false)).toThrow(
      'rope: headDim must be even, got 3',
    );
    expect(() => rope(x, x, ctx.zeros(1), ctx.zeros(1), { batch: 1, seq: 1, heads: 4, headDim: 2 }, false)).toThrow(
      /out and x/,
    );
  });
});
