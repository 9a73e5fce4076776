import { describe, it } from 'vitest';
import type { NormDims } from '../../src/native/types.js';
import { SIZES, expectClose, native, rand32, ref } from './helpers.js';

/** Statistics in double on both sides; float rounding of x*rstd*w and of the backward terms. */
const NORM_TOL = { rtol: 2e-6, atol: 2e-6 };
/** dw / db sum over rows in a different order (native: per-column double tiles). */
const NORM_PARAM_GRAD_TOL = { rtol: 1e-5, atol: 1e-5 };

const SHAPES: [number, number][] = [
  ...SIZES.map((n) => [n, SIZES[(SIZES.indexOf(n) + 2) % SIZES.length]] as [number, number]),
  [1, 1],
  [64, 1000],
  [300, 257],
];

describe('rmsnorm', () => {
  for (const [rows, cols] of SHAPES) {
    it(`forward and backward, ${rows}x${cols}`, () => {
      const d: NormDims = { rows, cols, eps: 1e-6 };
      const x = rand32(rows * cols, 1, -2, 2);
      const w = rand32(cols, 2, 0.5, 1.5);
      const dy = rand32(rows * cols, 3);
      const [outN, outR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      const [rstdN, rstdR] = [new Float32Array(rows), new Float32Array(rows)];
      native.rmsnormForward(x, w, outN, rstdN, d);
      ref.rmsnormForward(x, w, outR, rstdR, d);
      expectClose(rstdN, rstdR, NORM_TOL, 'rstd');
      expectClose(outN, outR, NORM_TOL, 'out');
      const [dxN, dxR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      const dwN = rand32(cols, 4); // dw accumulates
      const dwR = dwN.slice();
      native.rmsnormBackward(x, w, rstdR, dy, dxN, dwN, d);
      ref.rmsnormBackward(x, w, rstdR, dy, dxR, dwR, d);
      expectClose(dxN, dxR, NORM_TOL, 'dx');
      expectClose(dwN, dwR, NORM_PARAM_GRAD_TOL, 'dw');
    });
  }
});

describe('layernorm', () => {
  for (const [rows, cols] of SHAPES) {
    it(`forward and backward, ${rows}x${cols}`, () => {
      const d: NormDims = { rows, cols, eps: 1e-5 };
      const x = rand32(rows * cols, 5, -1, 3);
      const w = rand32(cols, 6, 0.5, 1.5);
      const b = rand32(cols, 7);
      const dy = rand32(rows * cols, 8);
      const [outN, outR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      const [meanN, meanR, rstdN, rstdR] = [
        new Float32Array(rows),
        new Float32Array(rows),
        new Float32Array(rows),
        new Float32Array(rows),
      ];
      native.layernormForward(x, w, b, outN, meanN, rstdN, d);
      ref.layernormForward(x, w, b, outR, meanR, rstdR, d);
      expectClose(meanN, meanR, NORM_TOL, 'mean');
      expectClose(rstdN, rstdR, { rtol: 1e-5, atol: 1e-5 }, 'rstd'); // 1/sqrt(var + eps) with var ~ eps at cols = 1
      expectClose(outN, outR, NORM_TOL, 'out');
      const [dxN, dxR] = [new Float32Array(rows * cols), new Float32Array(rows * cols)];
      const dwN = rand32(cols, 9);
      const dbN = rand32(cols, 10);
      const [dwR, dbR] = [dwN.slice(), dbN.slice()];
      native.layernormBackward(x, w, meanR, rstdR, dy, dxN, dwN, dbN, d);
      ref.layernormBackward(x, w, meanR, rstdR, dy, dxR, dwR, dbR, d);
      const dxScale = Math.max(...rstdR); // dx carries a factor rstd (huge for constant rows)
      expectClose(dxN, dxR, { rtol: NORM_TOL.rtol, atol: NORM_TOL.atol * dxScale }, 'dx');
      expectClose(dwN, dwR, NORM_PARAM_GRAD_TOL, 'dw');
      expectClose(dbN, dbR, NORM_PARAM_GRAD_TOL, 'db');
    });
  }
});
