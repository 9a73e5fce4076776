/**
 * Plain TypeScript reference of the quantizer grid (the oracle of the native kernels in
 * kernels/src/quant_params.cc), written as OWQ's `Quantizer.find_params` / `quantize` (owq/quant.py,
 * itself IST-DASLab/gptq's quant.py plus the "mse" clipping search) run them under PyTorch: every
 * operation in fp32 (Math.fround after each op) and torch.round's round-half-to-even. Slow and literal.
 *
 * Grid: asymmetric, integer levels 0..maxq (maxq = 2^bits - 1), one (scale, zero) per row:
 *   code(x) = clamp(round(x / scale) + zero, 0, maxq),   q(x) = scale * (code(x) - zero).
 */
import type { QuantGrid, RowParams } from './quantizer.js';
import { roundHalfEven } from '../util/round.js';

const f = Math.fround;

/** torch.tensor(1e-8) in fp32: the floor of every scale of the "mse" search. */
export const SCALE_EPS = f(1e-8);
/** OWQ's lp_loss norm: `.pow(2.4)` on an fp32 tensor raises to the fp32 exponent 2.4f. */
export const LP_NORM = f(2.4);

export { roundHalfEven };

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

/** 2^bits - 1. */
export function maxqOf(bits: number): number {
  return 2 ** bits - 1;
}

/** The integer code clamp(round(x / s) + z, 0, maxq), in fp32 steps. */
export function refCode(x: number, s: number, z: number, maxq: number): number {
  return clamp(f(roundHalfEven(f(x / s)) + z), 0, maxq);
}

/** q(x) = s * (code - z). */
export function refQuantize(x: number, s: number, z: number, maxq: number): number {
  return f(s * f(refCode(x, s, z, maxq) - z));
}

/** Row extremes with 0 included: xmin = min(min(x), 0), xmax = max(max(x), 0). */
function extremes(x: ArrayLike<number>, off: number, n: number): [number, number] {
  let xmin = 0;
  let xmax = 0;
  for (let k = 0; k < n; k++) {
    const v = x[off + k];
    if (v < xmin) xmin = v;
    if (v > xmax) xmax = v;
  }
  return [xmin, xmax];
}

/** Min-max parameters of x[off, off + n): s = (xmax - xmin) / maxq, z = round(-xmin / s); a row of zeros uses [-1, 1]. */
export function refMinMaxRow(x: ArrayLike<number>, off: number, n: number, maxq: number): [number, number] {
  let [xmin, xmax] = extremes(x, off, n);
  if (xmin === 0 && xmax === 0) {
    xmin = -1;
    xmax = 1;
  }
  const s = f(f(xmax - xmin) / maxq);
  return [s, roundHalfEven(f(-xmin / s)) + 0]; // + 0: -0 (xmin = 0) reads as 0
}

/**
 * OWQ's tuned clipping ("mse", norm 2.4): over i = 1..grid (clip range xrange * i / grid) and every zero
 * point zp = 0..maxq, keep the first candidate of least mean |x - q(x)|^2.4 (strict <, in that order);
 * then the final (s, z) comes from the kept [min, max] with 0 included, as the reference does.
 * The mean is the fp32 rounding of an exactly-summed (double) total of fp32 terms: torch's cascade sum is
 * not reproduced, only approximated to well below an fp32 ulp.
 */
export function refMseRow(x: ArrayLike<number>, off: number, n: number, maxq: number, grid: number): [number, number] {
  const [xmin, xmax] = extremes(x, off, n);
  const xrange = f(xmax - xmin);
  let bestScore = f(1e10);
  let bestMin = xmin;
  let bestMax = xmax;
  const xRound = new Float64Array(n);
  for (let i = 1; i <= grid; i++) {
    const tmpMax = f(f(xrange / grid) * i);
    const s = Math.max(f(tmpMax / maxq), SCALE_EPS); // (tmp_max - tmp_min) / (maxq - minq), tmp_min = 0
    const delta = s;
    for (let k = 0; k < n; k++) xRound[k] = roundHalfEven(f(x[off + k] / s));
    for (let zp = 0; zp <= maxq; zp++) {
      const newMin = f(0 - f(zp * delta));
      const newMax = f(tmpMax - f(zp * delta));
      const z = clamp(f(0 - roundHalfEven(f(newMin / delta))), 0, maxq);
      let sum = 0;
      for (let k = 0; k < n; k++) {
        const xq = f(s * f(clamp(f(xRound[k] + z), 0, maxq) - z));
        sum += f(Math.abs(f(x[off + k] - xq)) ** LP_NORM);
      }
      const score = f(f(sum) / n);
      if (score < bestScore) {
        bestScore = score;
        bestMin = newMin;
        bestMax = newMax;
      }
    }
  }
  const minNeg = Math.min(bestMin, 0);
  const maxPos = Math.max(bestMax, 0);
  const s = Math.max(f(f(maxPos - minNeg) / maxq), SCALE_EPS);
  return [s, clamp(f(0 - roundHalfEven(f(minNeg / s))), 0, maxq) + 0];
}

/** Reference of findParams: params of w[r, 0:cols] (row stride ld) for every row. */
export function refFindParams(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  ld: number,
  opts: QuantGrid,
): RowParams {
  const maxq = maxqOf(opts.bits);
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const [s, z] =
      opts.tuning === 'mse' ? refMseRow(w, r * ld, cols, maxq, opts.grid ?? 100) : refMinMaxRow(w, r * ld, cols, maxq);
    scale[r] = s;
    zero[r] = z;
  }
  return { scale, zero };
}

/** Mean |x - q(x)|^2.4 of x[off, off + n) under (s, z), as the search scores a candidate. */
export function refLpScore(x: ArrayLike<number>, off: number, n: number, s: number, z: number, maxq: number): number {
  let sum = 0;
  for (let k = 0; k < n; k++) sum += f(Math.abs(f(x[off + k] - refQuantize(x[off + k], s, z, maxq))) ** LP_NORM);
  return f(f(sum) / n);
}

/** Reference of fakeQuantize: out[r, c] = q(w[r, c]) with row r's params; codes[r, c] = the integer code. */
export function refFakeQuantize(
  w: ArrayLike<number>,
  rows: number,
  cols: number,
  p: RowParams,
  bits: number,
  out: Float32Array,
  codes?: Uint8Array,
): void {
  const maxq = maxqOf(bits);
  for (let r = 0; r < rows; r++) {
    const s = p.scale[r];
    const z = p.zero[r];
    for (let c = 0; c < cols; c++) {
      const code = refCode(w[r * cols + c], s, z, maxq);
      out[r * cols + c] = f(s * f(code - z));
      if (codes) codes[r * cols + c] = code;
    }
  }
}
