import { describe, expect, it } from 'vitest';
import type { EmbeddingDims } from '../../src/native/types.js';
import { expectClose, native, rand32, randInts, ref } from './helpers.js';

/** Forward is a copy (exact); backward adds a few float rows per table row in the same order. */
const EMBED_TOL = { rtol: 1e-6, atol: 1e-6 };

describe('embedding', () => {
  const cases: EmbeddingDims[] = [
    { rows: 1, dim: 1, vocab: 1 },
    { rows: 7, dim: 3, vocab: 5 },
    { rows: 129, dim: 127, vocab: 7 }, // many repeated ids
    { rows: 512, dim: 768, vocab: 1000 }, // the parallel path
  ];
  for (const d of cases) {
    it(`forward copy and scatter-add backward, ${JSON.stringify(d)}`, () => {
      const table = rand32(d.vocab * d.dim, 1);
      const ids = randInts(d.rows, 2, d.vocab);
      const [outN, outR] = [new Float32Array(d.rows * d.dim), new Float32Array(d.rows * d.dim)];
      native.embeddingForward(table, ids, outN, d);
      ref.embeddingForward(table, ids, outR, d);
      expectClose(outN, outR, { rtol: 0, atol: 0 }, 'forward');
      const dy = rand32(d.rows * d.dim, 3);
      const dTN = rand32(d.vocab * d.dim, 4); // accumulates
      const dTR = dTN.slice();
      native.embeddingBackward(dy, ids, dTN, d);
      ref.embeddingBackward(dy, ids, dTR, d);
      expectClose(dTN, dTR, EMBED_TOL, 'backward');
    });
  }

  it('throws a clear error naming the bad id and V', () => {
    const d: EmbeddingDims = { rows: 3, dim: 2, vocab: 4 };
    const table = new Float32Array(8);
    const out = new Float32Array(6);
    for (const bad of [4, -1, 2 ** 31 - 1]) {
      const ids = Int32Array.from([0, bad, 1]);
      const msg = `id ${bad} at position 1 is out of range for vocab size V=4`;
      expect(() => native.embeddingForward(table, ids, out, d)).toThrow(RangeError);
      expect(() => native.embeddingForward(table, ids, out, d)).toThrow(msg);
      expect(() => native.embeddingBackward(out, ids, table, d)).toThrow(msg);
      expect(() => ref.embeddingForward(table, ids, out, d)).toThrow(msg);
    }
  });
});
