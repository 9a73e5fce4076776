import { describe, expect, it } from 'vitest';
import type { RopeDims } from '../../src/native/types.js';
import { expectClose, native, rand32, ref } from './helpers.js';

/** Two products and one add per output: a couple of float roundings. */
const ROPE_TOL = { rtol: 1e-6, atol: 1e-6 };

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

describe('rope', () => {
  const cases: RopeDims[] = [
    { batch: 1, seq: 1, heads: 1, headDim: 2 },
    { batch: 2, seq: 7, heads: 3, headDim: 64 },
    { batch: 1, seq: 129, heads: 4, headDim: 16 },
    { batch: 3, seq: 127, heads: 12, headDim: 6 },
  ];
  for (const d of cases) {
    it(`forward, inverse and round trip, ${JSON.stringify(d)}`, () => {
      const n = d.batch * d.seq * d.heads * d.headDim;
      const x = rand32(n, d.seq);
      const { cos, sin } = tables(d.seq, d.headDim);
      for (const inverse of [false, true]) {
        const [outN, outR] = [new Float32Array(n), new Float32Array(n)];
        native.rope(x, outN, cos, sin, d, inverse);
        ref.rope(x, outR, cos, sin, d, inverse);
        expectClose(outN, outR, ROPE_TOL, `inverse=${inverse}`);
      }
      const y = x.slice();
      native.rope(y, y, cos, sin, d, false); // in place
      native.rope(y, y, cos, sin, d, true);
      expectClose(y, x, { rtol: 1e-5, atol: 1e-5 }, 'inverse(forward(x))');
    });
  }

  it('rejects an odd head dim', () => {
    const x = new Float32Array(3);
    expect(() => native.rope(x, x, x, x, { batch: 1, seq: 1, heads: 1, headDim: 3 }, false)).toThrow(
      /headDim must be even/,
    );
  });
});
