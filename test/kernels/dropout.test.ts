import { describe, expect, it } from 'vitest';
import { SIZES, expectClose, native, rand32, ref, rng } from './helpers.js';

/** x * mask * scale: native rounds scale to float first, the reference rounds once at the end. */
const DROPOUT_TOL = { rtol: 2.5e-7, atol: 0 };

describe('dropout', () => {
  it('applies the mask and scale, in place too', () => {
    for (const n of [...SIZES, 100_003]) {
      const r = rng(n);
      const x = rand32(n, n);
      const mask = Uint8Array.from({ length: n }, () => (r() < 0.3 ? 0 : 1));
      const [outN, outR] = [new Float32Array(n), new Float32Array(n)];
      native.dropout(x, mask, 1 / 0.7, outN);
      ref.dropout(x, mask, 1 / 0.7, outR);
      expectClose(outN, outR, DROPOUT_TOL, `n=${n}`);
      native.dropout(x, mask, 1 / 0.7, x);
      expectClose(x, outR, DROPOUT_TOL, `in place n=${n}`);
      expect(outN.every((v, i) => mask[i] === 1 || v === 0)).toBe(true);
    }
  });
});
