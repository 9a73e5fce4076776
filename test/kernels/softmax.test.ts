import { describe, it } from 'vitest';
import { SIZES, expectClose, native, rand32, ref } from './helpers.js';

/** expf (<= 1 ulp) and one float division per element; sums in double on both sides. */
const SOFTMAX_TOL = { rtol: 2e-6, atol: 1e-7 };

describe('softmax', () => {
  const shapes: [number, number][] = [
    ...SIZES.map((n) => [SIZES[(SIZES.indexOf(n) + 1) % SIZES.length], n] as [number, number]),
    [64, 5000],
    [1, 50257],
  ];
  for (const [rows, cols] of shapes) {
    it(`forward and backward, ${rows}x${cols}`, () => {
      const x = rand32(rows * cols, 1, -8, 8);
      const dy = rand32(rows * cols, 2);
      const d = { rows, cols };
      const [yN, yR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      native.softmaxForward(x, yN, d);
      ref.softmaxForward(x, yR, d);
      expectClose(yN, yR, SOFTMAX_TOL, 'forward');
      const [dxN, dxR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      native.softmaxBackward(yR, dy, dxN, d);
      ref.softmaxBackward(yR, dy, dxR, d);
      expectClose(dxN, dxR, SOFTMAX_TOL, 'backward');
    });
  }

  it('is stable for large logits and works in place', () => {
    const x = rand32(7 * 129, 3, -1000, 1000);
    const yR = new Float32Array(x.length);
    ref.softmaxForward(x, yR, { rows: 7, cols: 129 });
    native.softmaxForward(x, x, { rows: 7, cols: 129 });
    expectClose(x, yR, SOFTMAX_TOL, 'in place');
  });
});
