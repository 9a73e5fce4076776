import { describe, expect, it } from 'vitest';
import type { CrossEntropyDims } from '../../src/native/types.js';
import { SIZES, expectClose, native, rand32, randInts, ref } from './helpers.js';

/** lse in double on both sides, stored as float; one expf per gradient element. */
const CE_TOL = { rtol: 1e-6, atol: 1e-6 };

const IGNORE = -100;

describe('crossEntropy', () => {
  const shapes: [number, number][] = [
    ...SIZES.map((v, i) => [SIZES[(i + 3) % SIZES.length], v] as [number, number]),
    [64, 5000],
    [3, 50257],
  ];
  for (const [rows, vocab] of shapes) {
    it(`forward and backward with ignored rows, ${rows}x${vocab}`, () => {
      const d: CrossEntropyDims = { rows, vocab, ignoreIndex: IGNORE };
      const logits = rand32(rows * vocab, 1, -10, 10);
      const targets = randInts(rows, 2, vocab);
      for (let i = 1; i < rows; i += 3) targets[i] = IGNORE; // every third row from the second is ignored
      const [lossN, lossR, lseN, lseR] = [0, 1, 2, 3].map(() => new Float32Array(rows));
      native.crossEntropyForward(logits, targets, lossN, lseN, d);
      ref.crossEntropyForward(logits, targets, lossR, lseR, d);
      expectClose(lseN, lseR, CE_TOL, 'lse');
      expectClose(lossN, lossR, CE_TOL, 'losses');
      for (let i = 1; i < rows; i += 3) expect(lossN[i]).toBe(0);

      const count = targets.filter((t) => t !== IGNORE).length;
      const [dN, dR] = [new Float32Array(rows * vocab).fill(7), new Float32Array(rows * vocab)];
      native.crossEntropyBackward(logits, targets, lseR, 1 / count, dN, d);
      ref.crossEntropyBackward(logits, targets, lseR, 1 / count, dR, d);
      expectClose(dN, dR, CE_TOL, 'dlogits');
      for (let i = 1; i < rows; i += 3)
        expect(dN.subarray(i * vocab, (i + 1) * vocab).every((g) => g === 0)).toBe(true);
    });
  }

  it('names the bad target and row', () => {
    const d: CrossEntropyDims = { rows: 2, vocab: 5, ignoreIndex: IGNORE };
    const targets = Int32Array.from([1, 5]);
    const bufs = [new Float32Array(10), new Float32Array(2), new Float32Array(2)] as const;
    const msg = /target 5 at row 1 is out of range \[0, 5\)/;
    expect(() => native.crossEntropyForward(bufs[0], targets, bufs[1], bufs[2], d)).toThrow(msg);
    expect(() => ref.crossEntropyForward(bufs[0], targets, bufs[1], bufs[2], d)).toThrow(msg);
    expect(() =>
      native.crossEntropyBackward(bufs[0], Int32Array.from([-1, 0]), bufs[1], 1, new Float32Array(10), d),
    ).toThrow(RangeError);
  });
});
