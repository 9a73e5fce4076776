/**
 * AWQ's quantizer (llm-awq `pseudo_quantize_tensor`, zero_point=True), which is not GPTQ's: per row and group of
 * G input columns, the range is the group's own [min, max] (not widened to include 0):
 *   s = max(max - min, 1e-5) / (2^b - 1),   z = clamp(-round(min / s), 0, 2^b - 1),
 *   q(w) = (clamp(round(w / s) + z, 0, 2^b - 1) - z) * s.
 * fp32 after every operation in the formula's order, round half to even (torch.round): with symmetric clipped
 * groups min / s is often an exact .5, where the rounding rule decides the zero point. A group entirely above or
 * below 0 has its zero point clamped, which clips its values (as the reference does).
 */
import { roundHalfEven } from '../util/round.js';
import { rtn, type RtnOptions } from './rtn.js';
import type { QuantizedColumns } from './quantized.js';
import type { RowParams } from './quantizer.js';

const f = Math.fround;
/** The clamp's bound as torch casts the Python scalar: to fp32 first. */
const MIN_RANGE = f(1e-5);

/** (s, z) of x[off, off + n) at maxq = 2^b - 1. */
export function awqGroupParams(x: ArrayLike<number>, off: number, n: number, maxq: number): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let k = off; k < off + n; k++) {
    const v = x[k];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const s = f(Math.max(f(hi - lo), MIN_RANGE) / maxq);
  const z = Math.min(Math.max(-roundHalfEven(f(lo / s)), 0), maxq) + 0; // + 0: -0 reads as 0
  return [s, z];
}

/** AWQ's parameters of every row of a [rows, width] slice. */
export function awqParams(slice: Float32Array, rows: number, width: number, bits: number): RowParams {
  const maxq = 2 ** bits - 1;
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) [scale[r], zero[r]] = awqGroupParams(slice, r * width, width, maxq);
  return { scale, zero };
}

/** w [rows, cols] quantized by AWQ's quantizer per row and group (w is not modified). */
export function awqQuantize(w: Float32Array, rows: number, cols: number, o: RtnOptions): QuantizedColumns {
  return rtn(w, rows, cols, o, awqParams);
}
