import { describe, expect, it } from 'vitest';
import { dropoutMask } from '../../src/native/ref.js';
import type { DropoutDraw } from '../../src/native/types.js';
import { Rng } from '../../src/util/rng.js';
import { SIZES, expectClose, native, rand32, ref } from './helpers.js';

/** x * mask * scale: native rounds scale to float first, the reference rounds once at the end. */
const DROPOUT_TOL = { rtol: 2.5e-7, atol: 0 };

/** ceil(p 2^32) - 1, as the dropout op computes it (src/autograd/ops/dropout.ts). */
const threshold = (p: number): number => Math.ceil(p * 4294967296) - 1;

describe('dropout draws (counter-based)', () => {
  it('Rng.skip(n) lands where n calls of next() do, and returns the state before them', () => {
    for (const [seed, n] of [
      [0, 0],
      [7, 1],
      [0xffffffff, 1023],
      [12345, 100_003],
    ]) {
      const [a, b] = [new Rng(seed), new Rng(seed)];
      for (let i = 0; i < n; i++) a.next();
      expect(b.skip(n)).toBe(seed >>> 0);
      expect(b.state).toBe(a.state);
    }
  });

  it('the mask keeps element i exactly when the i-th next() is >= p', () => {
    for (const p of [0.1, 0.3, 0.5, 1 - 2 ** -32]) {
      const n = 20_011;
      const r = new Rng(99);
      const draw: DropoutDraw = { state: new Rng(99).skip(n), threshold: threshold(p) };
      const expected = Uint8Array.from({ length: n }, () => (r.next() >= p ? 1 : 0));
      expect(dropoutMask(draw, n)).toEqual(expected);
      if (p < 0.9) expect(Math.abs(expected.reduce((s, m) => s + m, 0) / n - (1 - p))).toBeLessThan(0.015);
    }
  });
});

describe('dropout', () => {
  it('applies the drawn mask and scale, in place too', () => {
    for (const n of [...SIZES, 100_003]) {
      const draw: DropoutDraw = { state: n * 7919, threshold: threshold(0.3) };
      const x = rand32(n, n);
      const mask = dropoutMask(draw, n);
      const [outN, outR] = [new Float32Array(n), new Float32Array(n)];
      native.dropout(x, draw, 1 / 0.7, outN);
      ref.dropout(x, draw, 1 / 0.7, outR);
      expectClose(outN, outR, DROPOUT_TOL, `n=${n}`);
      native.dropout(x, draw, 1 / 0.7, x);
      expectClose(x, outR, DROPOUT_TOL, `in place n=${n}`);
      expect(outN.every((v, i) => mask[i] === 1 || v === 0)).toBe(true);
      expect(outN.every((v, i) => mask[i] === 0 || v !== 0 || outR[i] === 0)).toBe(true);
    }
  });
});
