/**
 * Packed token embeddings (`wct quantize --embed-bits`): each looked-up row equals that row of the
 * reference dequantization (dequantize the whole table in TS, then index), for every layout the packed
 * format has (unaligned hidden sizes included); the tied lm_head of a packed table is the packed linear itself; bad ids are refused.
 */
import { describe, expect, it } from 'vitest';
import { PackedLinear } from '../../src/models/packed-linear.js';
import { packedRows, tokenEmbedding } from '../../src/models/token-embedding.js';
import { dequantize as dequantizeRef, packedReference } from '../../src/native/packed-ref.js';
import { type PackedBits, packedNative } from '../../src/native/packed.js';
import { randomPacked } from './packed-helpers.js';

const LAYOUTS = ([2, 3, 4, 8] as PackedBits[]).flatMap((bits, i) => [
  { rows: 37, cols: 64, bits, groupSize: 64, perm: false, nOut: 0, seed: 10 + i },
  { rows: 19, cols: 48, bits, groupSize: 16, perm: true, nOut: 3, seed: 20 + i },
]);
/** Hidden sizes that are no multiple of 8 (rows padded to whole blocks), per row and in groups starting inside blocks. */
const UNALIGNED = ([2, 3, 4, 8] as PackedBits[]).flatMap((bits, i) => [
  { rows: 23, cols: 60, bits, groupSize: 60, perm: false, nOut: 0, seed: 30 + i },
  { rows: 17, cols: 43, bits, groupSize: 12, perm: true, nOut: 2, seed: 40 + i },
]);

describe('packed embedding rows', () => {
  for (const spec of [...LAYOUTS, ...UNALIGNED]) {
    it(`${spec.bits}-bit, G ${spec.groupSize}${spec.perm ? ', perm' : ''}, ${spec.nOut} weak`, () => {
      const { w } = randomPacked(spec);
      const table = dequantizeRef(w);
      const ids = Int32Array.from([0, spec.rows - 1, 5, 5, 2, 11]);
      const got = packedRows(new PackedLinear(w), ids, [2, 3]);
      expect(got.shape).toEqual([2, 3, spec.cols]);
      const byRef = new Float32Array(ids.length * spec.cols);
      packedReference.dequantizeRows(w, ids, byRef);
      for (const rows of [got.data, byRef]) {
        ids.forEach((id, i) => {
          expect(Array.from(rows.subarray(i * spec.cols, (i + 1) * spec.cols))).toEqual(
            Array.from(table.subarray(id * spec.cols, (id + 1) * spec.cols)),
          );
        });
      }
    });
  }

  it('refuses a token id outside the table, naming it', () => {
    const { w } = randomPacked(LAYOUTS[6]);
    for (const k of [packedNative, packedReference]) {
      expect(() => k.dequantizeRows(w, Int32Array.from([3, 37]), new Float32Array(2 * w.cols))).toThrow(
        /token id 37 at position 1 is outside the vocabulary \[0, 37\)/,
      );
    }
  });

  it('a packed table is looked up packed and serves as the tied lm_head', () => {
    const { w } = randomPacked(LAYOUTS[6]);
    const layer = new PackedLinear(w);
    const emb = tokenEmbedding('model.embed_tokens', new Map(), new Map([['model.embed_tokens', layer]]));
    expect(emb.head).toBe(layer);
    expect(Array.from(emb.lookup(Int32Array.from([4]), [1]).data)).toEqual(
      Array.from(dequantizeRef(w).subarray(4 * w.cols, 5 * w.cols)),
    );
  });
});
