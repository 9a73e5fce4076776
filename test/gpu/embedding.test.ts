/**
 * The WGSL embedding lookup and scatter-add backward (src/gpu/embedding.ts) against the reference
 * (src/native/ref.ts): odd sizes, repeated ids (many rows onto one table row), accumulation into a pre-filled
 * dTable, and the reference's message for an id out of range.
 */
import { describe, expect, it } from 'vitest';
import { embeddingBackward, embeddingForward, groupById } from '../../src/gpu/embedding.js';
import type { EmbeddingDims } from '../../src/native/types.js';
import { expectClose, rand32, randInts, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

const SIZES = [1, 3, 7, 127, 129, 1023];

/** The lookup moves values; the backward adds dy rows in the reference's order in f32: bit-identical. */
const EMBEDDING_TOL: Tol = { rtol: 0, atol: 0 };

const gpu = useGpu();

async function check(d: EmbeddingDims, ids: Int32Array, seed: number): Promise<void> {
  const { ctx } = gpu();
  const table = rand32(d.vocab * d.dim, seed);
  const expected = new Float32Array(d.rows * d.dim);
  ref.embeddingForward(table, ids, expected, d);
  const out = ctx.zeros(d.rows * d.dim);
  embeddingForward(up(ctx, table), ids, out, d);
  expectClose(await down(out), expected, EMBEDDING_TOL, `embeddingForward ${JSON.stringify(d)}`);

  const dy = rand32(d.rows * d.dim, seed + 1);
  const dt0 = rand32(d.vocab * d.dim, seed + 2); // ACCUMULATES: dTable starts nonzero
  const dtRef = Float32Array.from(dt0);
  ref.embeddingBackward(dy, ids, dtRef, d);
  const dt = up(ctx, dt0);
  embeddingBackward(up(ctx, dy), ids, dt, d);
  expectClose(await down(dt), dtRef, EMBEDDING_TOL, `embeddingBackward ${JSON.stringify(d)}`);
}

describe('gpu embedding forward and backward', () => {
  it('odd rows, dims and vocab sizes', async () => {
    for (const rows of SIZES) {
      for (const dim of [1, 7, 129]) {
        const vocab = rows === 1 ? 3 : 127;
        await check({ rows, dim, vocab }, randInts(rows, rows + dim, vocab), rows * 10 + dim);
      }
    }
  });

  it('many rows onto few ids, and unused vocab rows left as they were', async () => {
    await check({ rows: 1023, dim: 3, vocab: 5 }, randInts(1023, 1, 2), 7); // ids 0 and 1 only
    await check({ rows: 129, dim: 7, vocab: 1 }, new Int32Array(129), 8); // every row onto id 0
  });

  it('groups positions by id in order', () => {
    const { groups, packed } = groupById(Int32Array.from([4, 1, 4, 0, 1, 4]), 6);
    expect(groups).toBe(3);
    expect([...packed]).toEqual([0, 1, 4, /* offsets */ 0, 1, 3, 6, /* positions */ 3, 1, 4, 0, 2, 5]);
  });

  it("refuses ids out of range with the reference's message", () => {
    const { ctx } = gpu();
    const d = { rows: 3, dim: 2, vocab: 4 };
    for (const bad of [4, -1]) {
      const ids = Int32Array.from([0, bad, 1]);
      const msg = `id ${bad} at position 1 is out of range for vocab size V=4`;
      expect(() => ref.embeddingForward(new Float32Array(8), ids, new Float32Array(6), d)).toThrow(msg);
      expect(() => embeddingForward(ctx.zeros(8), ids, ctx.zeros(6), d)).toThrow(`embeddingForward: ${msg}`);
      expect(() => embeddingBackward(ctx.zeros(6), ids, ctx.zeros(8), d)).toThrow(`embeddingBackward: ${msg}`);
    }
    expect(() => embeddingForward(ctx.zeros(8), new Int32Array(2), ctx.zeros(6), d)).toThrow(
      'embeddingForward: ids has 2 elements, needs at least 3',
    );
  });
});
