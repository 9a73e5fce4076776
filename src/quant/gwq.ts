/**
 * GWQ-style quantization: our documented reconstruction of GWQ (arXiv 2411.00850), which publishes no code; it is
 * called "GWQ-style" wherever it is reported (docs/ARCHITECTURE.md section 4). Per decoder linear W [N, K]:
 *  1. score each element from the calibration gradients g_s (./gradients.ts): grad |Σ_s g_s / S| (default),
 *     fisher Σ_s g_s², taylor |Σ_s g_s W / S|;
 *  2. outliers: the k = round_half_even(ρ N K) highest scores (ties: the smaller flat index r K + c first) keep
 *     fp16(W) and are stored sparse (unstructured: any element);
 *  3. the rest: rtn, asymmetric min-max per row and group over the non-outlier elements, or gptq, GPTQ whose group
 *     parameters come from the current non-outlier elements and whose outliers carry no error. Either way an
 *     outlier is 0 in the parameters' data (which changes nothing: the range is widened to include 0), so its code
 *     is the zero point and the packed part dequantizes to 0 there.
 */
import { f16BitsToF32, f32ToF16Bits } from '../io/dtype.js';
import { roundHalfEven } from '../util/round.js';
import type { GradientStatistic } from './gradients.js';
import { gptq } from './gptq.js';
import type { QuantizedColumns } from './quantized.js';
import type { Tuning } from './quantizer.js';
import { rtn } from './rtn.js';

export type GwqScore = 'grad' | 'fisher' | 'taylor';
export type GwqQuantizer = 'rtn' | 'gptq';

/** The running statistic each score needs. */
export const SCORE_STATISTIC: Record<GwqScore, GradientStatistic> = {
  grad: 'sum',
  fisher: 'squares',
  taylor: 'weighted',
};

/** The score from the statistic over S windows, in place: |stat / S| for grad and taylor, stat for fisher. */
export function scoreOf(score: GwqScore, statistic: Float32Array, windows: number): Float32Array {
  if (score === 'fisher') return statistic;
  for (let i = 0; i < statistic.length; i++) statistic[i] = Math.abs(Math.fround(statistic[i] / windows));
  return statistic;
}

/** k = round_half_even(ρ N K). */
export function outlierCountOf(rows: number, cols: number, ratio: number): number {
  return roundHalfEven(ratio * rows * cols);
}

/** The flat indices of the k highest scores, ascending (a stable descending sort's first k: ties by index). */
export function topScores(score: Float32Array, k: number): Int32Array {
  if (k <= 0) return new Int32Array(0);
  if (k >= score.length) return Int32Array.from(score.keys());
  const threshold = Float32Array.from(score).sort()[score.length - k]; // the k-th highest value
  let above = 0;
  for (const v of score) if (v > threshold) above += 1;
  let ties = k - above; // elements equal to the threshold that make the cut, smallest indices first
  const out = new Int32Array(k);
  let n = 0;
  for (let i = 0; i < score.length; i++) {
    if (score[i] > threshold || (score[i] === threshold && ties-- > 0)) out[n++] = i;
  }
  return out;
}

/** fp16(x) as a float (round to nearest even). */
const toHalf = (x: number): number => f16BitsToF32(f32ToF16Bits(x));

/** W with the outliers set to 0, and their fp16 values in index order. */
function splitOutliers(w: Float32Array, outliers: Int32Array): { rest: Float32Array; values: Float32Array } {
  const rest = Float32Array.from(w);
  const values = new Float32Array(outliers.length);
  outliers.forEach((i, p) => {
    values[p] = toHalf(w[i]);
    rest[i] = 0;
  });
  return { rest, values };
}

/** The quantized rest with the outliers added back: Ŵ = Q(rest) + the fp16 outliers. */
function withOutliers(q: QuantizedColumns, outliers: Int32Array, values: Float32Array): QuantizedColumns {
  outliers.forEach((i, p) => (q.dequantized[i] += values[p]));
  return { ...q, outliers: { index: outliers, values } };
}

export interface GwqOptions {
  bits: number;
  /** 0 = per row. */
  groupSize: number;
  quantizer: GwqQuantizer;
  /** H [cols, cols] for the gptq quantizer (not modified). */
  hessian: Float32Array | null;
  percdamp: number;
  /** The gptq quantizer's group parameters (rtn is min-max). */
  tuning: Tuning;
}

/** W [rows, cols] with its outliers (sorted flat indices) -> the quantized linear (w is not modified). */
export function gwqQuantize(
  w: Float32Array,
  rows: number,
  cols: number,
  outliers: Int32Array,
  o: GwqOptions,
): QuantizedColumns {
  const { rest, values } = splitOutliers(w, outliers);
  if (o.quantizer === 'rtn') return withOutliers(rtn(rest, rows, cols, o), outliers, values);
  if (o.hessian === null) throw new Error('gwq: the gptq quantizer needs the Hessian');
  const fixed = new Uint8Array(rows * cols);
  for (const i of outliers) fixed[i] = 1;
  const r = gptq(rest, o.hessian.slice(), rows, cols, {
    bits: o.bits,
    nQuant: cols,
    tuning: o.tuning,
    groupSize: o.groupSize,
    percdamp: o.percdamp,
    fixed,
  });
  const q: QuantizedColumns = {
    rows,
    cols,
    bits: o.bits,
    groupSize: o.groupSize,
    order: null,
    nQuant: cols,
    codes: r.codes,
    scale: r.scale,
    zero: r.zero,
    nGroups: r.nGroups,
    dequantized: rest,
  };
  return withOutliers(q, outliers, values);
}
