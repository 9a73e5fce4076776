/**
 * The WGSL causal grouped-query attention (src/gpu/attention.ts) against the reference (src/native/ref.ts):
 * batch 2, GQA (H = 4 with Hkv = 2 and 1), a KV-cache offset (Tk > Tq), decode (Tq = 1, up to past one chunk
 * of the online softmax), Tq > Tk (rows that see no key), probs null, head dims 1, 7, 16, 64, 128 and 200.
 * Both forwards run: the row kernel (Tq below a block of queries) and the query-tiled one (Tq >= its block:
 * 64 queries at D <= 16, 16 at D = 64, 8 at D = 128, 4 at D = 200).
 */
import { describe, expect, it } from 'vitest';
import { ATTENTION_MAX_HEAD_DIM, attentionBackward, attentionForward } from '../../src/gpu/attention.js';
import type { AttentionDims } from '../../src/native/types.js';
import { expectClose, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

/**
 * Forward: f32 dot products over D (fma chain), an f32 exp and an f32 tree sum over Tk, and P V summed in f32
 * per key group, vs the reference's f64: the native kernel's ATTN_TOL (sgemm + expf) holds.
 */
const GPU_ATTN_TOL: Tol = { rtol: 1e-4, atol: 2e-6 };
/**
 * Backward chains three products (dP = dout . v, dS = P (dP - Σ P dP), then dq / dk over Tk or Tq terms and dv
 * over Tq terms, serial f32 sums): the native kernel's ATTN_GRAD_TOL.
 */
const GPU_ATTN_GRAD_TOL: Tol = { rtol: 2e-4, atol: 1e-5 };

function attn(batch: number, tq: number, tk: number, heads: number, kvHeads: number, headDim: number): AttentionDims {
  return { batch, tq, tk, heads, kvHeads, headDim, scale: 1 / Math.sqrt(headDim) };
}

const CASES: AttentionDims[] = [
  attn(1, 1, 1, 1, 1, 1),
  attn(2, 3, 7, 4, 2, 7), // batch 2, KV-cache offset 4, GQA 2 query heads per kv head, odd head dim
  attn(1, 7, 7, 4, 4, 8), // MHA
  attn(2, 129, 129, 4, 2, 64),
  attn(1, 127, 129, 4, 1, 7), // MQA with an offset
  attn(2, 1, 129, 4, 2, 64), // one decode step
  attn(1, 1, 2500, 4, 1, 16), // decode past one 2048-score chunk: the online softmax rescales
  attn(1, 3, 4100, 2, 2, 3), // three chunks, Tq > 1 with an offset
  attn(3, 5, 3, 2, 1, 4), // tq > tk: the first rows see no key at all
  attn(1, 9, 9, 2, 1, 128),
  attn(1, 4, 6, 2, 1, 200), // head dim above 128: one key group of 200 lanes; tiled: 13 slices, 4 queries
  attn(1, 130, 200, 8, 4, 16), // tiled (Tq >= 64 queries per block at D = 16), KV-cache offset 70, GQA
  attn(1, 70, 5, 2, 1, 16), // tiled with Tq > Tk: the block's first 65 rows see no key
];

const gpu = useGpu();

async function compare(d: AttentionDims): Promise<void> {
  const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
  const [nq, nk, np] = [B * tq * H * D, B * tk * Hkv * D, B * H * tq * tk];
  const q = rand32(nq, 1, -2, 2);
  const k = rand32(nk, 2, -2, 2);
  const v = rand32(nk, 3);
  const dout = rand32(nq, 4);
  const outR = new Float32Array(nq);
  const probsR = new Float32Array(np);
  ref.attentionForward(q, k, v, outR, probsR, d);
  const [dqR, dkR, dvR] = [new Float32Array(nq), new Float32Array(nk), new Float32Array(nk)];
  ref.attentionBackward(q, k, v, probsR, dout, dqR, dkR, dvR, d);

  const { ctx } = gpu();
  const [gq, gk, gv] = [up(ctx, q), up(ctx, k), up(ctx, v)];
  const out = ctx.zeros(nq);
  const outNoProbs = ctx.zeros(nq);
  const probs = up(ctx, new Float32Array(np).fill(Number.NaN)); // every entry, masked ones too, is written
  attentionForward(gq, gk, gv, out, probs, d);
  attentionForward(gq, gk, gv, outNoProbs, null, d);
  const probsG = await down(probs);
  const outG = await down(out);
  expectClose(probsG, probsR, GPU_ATTN_TOL, 'probs');
  expectClose(outG, outR, GPU_ATTN_TOL, 'out');
  expect(Array.from(await down(outNoProbs))).toEqual(Array.from(outG));
  let nonzeroMasked = 0;
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < tq; i++) {
      for (let j = Math.max(0, i + tk - tq + 1); j < tk; j++) if (probsG[(bh * tq + i) * tk + j] !== 0) nonzeroMasked++;
    }
  }
  expect(nonzeroMasked, 'masked probs are exactly 0').toBe(0);

  // the gradients overwrite whatever the buffers held; the backward reads the reference's probs
  const [dq, dk, dv] = [nq, nk, nk].map((n, i) => up(ctx, rand32(n, 100 + i, 50, 60)));
  attentionBackward(gq, gk, gv, up(ctx, probsR), up(ctx, dout), dq, dk, dv, d);
  expectClose(await down(dq), dqR, GPU_ATTN_GRAD_TOL, 'dq');
  expectClose(await down(dk), dkR, GPU_ATTN_GRAD_TOL, 'dk');
  expectClose(await down(dv), dvR, GPU_ATTN_GRAD_TOL, 'dv');
}

describe('gpu attention (WGSL: online-softmax row and query-tiled forwards, deterministic per-output backward)', () => {
  for (const d of CASES) {
    const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
    it(`forward and backward, B=${B} Tq=${tq} Tk=${tk} H=${H} Hkv=${Hkv} D=${D}`, async () => {
      await compare(d);
    });
  }

  it('a training-sized row: Tq = Tk = 512, D = 64', async () => {
    await compare(attn(1, 512, 512, 2, 1, 64));
  });

  it('the backward is deterministic (bit-identical on a rerun)', async () => {
    const d = attn(2, 7, 9, 4, 2, 7);
    const { ctx } = gpu();
    const n = (x: number) => rand32(x, x);
    const [q, k, v, dout] = [n(2 * 7 * 4 * 7), n(2 * 9 * 2 * 7), n(2 * 9 * 2 * 7 + 1), n(2 * 7 * 4 * 7 + 1)].map((a) =>
      up(ctx, a),
    );
    const probs = ctx.zeros(2 * 4 * 7 * 9);
    attentionForward(q, k, v, ctx.zeros(2 * 7 * 4 * 7), probs, d);
    const run = async () => {
      const [dq, dk, dv] = [2 * 7 * 4 * 7, 2 * 9 * 2 * 7, 2 * 9 * 2 * 7].map((x) => ctx.zeros(x));
      attentionBackward(q, k, v, probs, dout, dq, dk, dv, d);
      return [...(await down(dq)), ...(await down(dk)), ...(await down(dv))];
    };
    expect(await run()).toEqual(await run());
  });

  it('rejects heads not divisible by kvHeads, a too large head dim and aliasing', () => {
    const { ctx } = gpu();
    const x = ctx.zeros(64);
    expect(() => attentionForward(x, x, x, ctx.zeros(64), null, attn(1, 1, 1, 3, 2, 4))).toThrow(/multiple of kvHeads/);
    const big = ATTENTION_MAX_HEAD_DIM + 1;
    const y = ctx.zeros(big);
    expect(() => attentionForward(y, y, y, ctx.zeros(big), null, attn(1, 1, 1, 1, 1, big))).toThrow(/exceeds/);
    expect(() => attentionForward(x, x, x, x, null, attn(1, 1, 1, 1, 1, 4))).toThrow(/out and q/);
  });
});
