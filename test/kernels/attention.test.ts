import { describe, expect, it } from 'vitest';
import type { AttentionDims } from '../../src/native/types.js';
import { expectClose, native, rand32, ref } from './helpers.js';

/** sgemm (float accumulation over D and Tk) + expf vs double accumulation. */
const ATTN_TOL = { rtol: 1e-4, atol: 2e-6 };
/** Backward chains three products (dP, dS, dq/dk): a little looser. */
const ATTN_GRAD_TOL = { rtol: 2e-4, atol: 1e-5 };

function attn(batch: number, tq: number, tk: number, heads: number, kvHeads: number, headDim: number): AttentionDims {
  return { batch, tq, tk, heads, kvHeads, headDim, scale: 1 / Math.sqrt(headDim) };
}

const CASES: AttentionDims[] = [
  attn(1, 1, 1, 1, 1, 1),
  attn(2, 3, 7, 4, 2, 5), // KV-cache offset 4, GQA 2 query heads per kv head
  attn(1, 7, 7, 4, 4, 8), // MHA
  attn(2, 129, 129, 4, 2, 16),
  attn(1, 127, 129, 2, 1, 3), // MQA with an offset
  attn(1, 1, 129, 4, 2, 64), // one decode step
  attn(3, 5, 3, 2, 1, 4), // tq > tk: the first rows see no key at all
];

describe('attention', () => {
  for (const d of CASES) {
    const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D } = d;
    it(`forward and backward, B=${B} Tq=${tq} Tk=${tk} H=${H} Hkv=${Hkv} D=${D}`, () => {
      const q = rand32(B * tq * H * D, 1, -2, 2);
      const k = rand32(B * tk * Hkv * D, 2, -2, 2);
      const v = rand32(B * tk * Hkv * D, 3);
      const dout = rand32(B * tq * H * D, 4);
      const [outN, outR, outNoProbs] = [0, 1, 2].map(() => new Float32Array(B * tq * H * D));
      const probsN = new Float32Array(B * H * tq * tk).fill(NaN);
      const probsR = new Float32Array(B * H * tq * tk);
      native.attentionForward(q, k, v, outN, probsN, d);
      ref.attentionForward(q, k, v, outR, probsR, d);
      native.attentionForward(q, k, v, outNoProbs, null, d);
      expectClose(probsN, probsR, ATTN_TOL, 'probs');
      expectClose(outN, outR, ATTN_TOL, 'out');
      expect(Array.from(outNoProbs)).toEqual(Array.from(outN));

      // masked entries are exactly 0
      let nonzeroMasked = 0;
      for (let bh = 0; bh < B * H; bh++) {
        for (let i = 0; i < tq; i++) {
          for (let j = Math.max(0, i + tk - tq + 1); j < tk; j++)
            if (probsN[(bh * tq + i) * tk + j] !== 0) nonzeroMasked++;
        }
      }
      expect(nonzeroMasked).toBe(0);

      // gradients overwrite whatever the buffers held
      const grads = () =>
        [B * tq * H * D, B * tk * Hkv * D, B * tk * Hkv * D].map((n, i) => rand32(n, 100 + i, 50, 60));
      const [dqN, dkN, dvN] = grads();
      const [dqR, dkR, dvR] = grads();
      native.attentionBackward(q, k, v, probsR, dout, dqN, dkN, dvN, d);
      ref.attentionBackward(q, k, v, probsR, dout, dqR, dkR, dvR, d);
      expectClose(dqN, dqR, ATTN_GRAD_TOL, 'dq');
      expectClose(dkN, dkR, ATTN_GRAD_TOL, 'dk');
      expectClose(dvN, dvR, ATTN_GRAD_TOL, 'dv');
    });
  }

  it('rejects heads not divisible by kvHeads', () => {
    const x = new Float32Array(64);
    expect(() => native.attentionForward(x, x, x, x, null, attn(1, 1, 1, 3, 2, 4))).toThrow(/multiple of kvHeads/);
  });
});
