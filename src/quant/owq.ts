/**
 * OWQ (arXiv 2306.02272, as xvyaward/owq runs it), with GPTQ as its n_out = 0 special case:
 *  1. sensitivity of input column j: H_jj * ||W[:,j] - Q(W)[:,j]||^2, Q a per-row quantizer of the
 *     whole W (same tuning, 40 grid steps); or, gradient-located (--sensitivity fisher), Σ_r F[r,j] (W - Q(W))²_rj
 *     with F = Σ_s g_s² the diagonal Fisher of the calibration loss (./gradients.ts);
 *  2. the n_out most sensitive columns are the weak columns;
 *  3. order: the other columns (in input order, or by decreasing sensitivity with act-order), then the
 *     weak ones; GPTQ over the first cols - n_out columns in that order, its error updates flowing into
 *     the weak columns, which stay in full precision (compensated).
 * With n_out = 0 this is GPTQ: input order, or act-order by decreasing diag(H).
 */
import { gptq } from './gptq.js';
import type { QuantizedColumns } from './quantized.js';
import { fakeQuantize, findParams, type Tuning } from './quantizer.js';

export interface OwqOptions {
  bits: number;
  /** Weak columns kept in full precision (0 = plain GPTQ). */
  nOut: number;
  tuning: Tuning;
  /** 0 = per row. */
  groupSize: number;
  actOrder: boolean;
  percdamp?: number;
  blockSize?: number;
  /** The column sensitivity to rank by, in place of H_jj ||W[:,j] - Q(W)[:,j]||² (fisherSensitivity). */
  sensitivity?: Float32Array;
}

/** Grid steps of the clipping search used for the sensitivity's quantizer (the reference's num=40). */
const SENSITIVITY_GRID = 40;

/** Σ_r weight(r, j) (W - Q(W))²_rj for every input column j, Q the per-row sensitivity quantizer (fp32 sums). */
function weightedColumnError(
  w: Float32Array,
  rows: number,
  cols: number,
  bits: number,
  tuning: Tuning,
  weight: (i: number) => number,
): Float32Array {
  const params = findParams(w, rows, cols, cols, { bits, tuning, grid: SENSITIVITY_GRID });
  const q = new Float32Array(rows * cols);
  fakeQuantize(w, rows, cols, params, bits, q);
  const err = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const i = r * cols + j;
      const d = Math.fround(w[i] - q[i]);
      err[j] = Math.fround(err[j] + Math.fround(weight(i) * Math.fround(d * d)));
    }
  }
  return err;
}

/** H_jj * Σ_r (W - Q(W))²_rj for every input column j (fp32, as the reference). */
export function columnSensitivity(
  w: Float32Array,
  h: Float32Array,
  rows: number,
  cols: number,
  bits: number,
  tuning: Tuning,
): Float32Array {
  const err = weightedColumnError(w, rows, cols, bits, tuning, () => 1);
  return err.map((e, j) => Math.fround(h[j * cols + j] * e));
}

/** Σ_r F[r, j] (W - Q(W))²_rj for every input column j: OWQ's sensitivity with the diagonal Fisher F [rows, cols]. */
export function fisherSensitivity(
  w: Float32Array,
  fisher: Float32Array,
  rows: number,
  cols: number,
  bits: number,
  tuning: Tuning,
): Float32Array {
  return weightedColumnError(w, rows, cols, bits, tuning, (i) => fisher[i]);
}

/** Indices sorted by decreasing score (stable: equal scores keep input order). */
function descending(score: Float32Array): number[] {
  return Array.from(score.keys()).sort((a, b) => score[b] - score[a] || a - b);
}

/** The column order GPTQ visits, weak columns last; null when it is the input order. */
export function columnOrder(
  w: Float32Array,
  h: Float32Array,
  rows: number,
  cols: number,
  o: OwqOptions,
): Int32Array | null {
  if (o.nOut === 0) {
    if (!o.actOrder) return null;
    return Int32Array.from(descending(Float32Array.from({ length: cols }, (_, j) => h[j * cols + j])));
  }
  const ranked = descending(o.sensitivity ?? columnSensitivity(w, h, rows, cols, o.bits, o.tuning));
  const weak = ranked.slice(0, o.nOut);
  const isWeak = new Set(weak);
  const rest = o.actOrder
    ? ranked.slice(o.nOut)
    : Array.from({ length: cols }, (_, j) => j).filter((j) => !isWeak.has(j));
  return Int32Array.from([...rest, ...weak]);
}

/** Gathers columns: out[r, p] = w[r, order[p]]; for H both rows and columns. */
function permuteColumns(w: Float32Array, rows: number, cols: number, order: Int32Array): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let p = 0; p < cols; p++) out[r * cols + p] = w[r * cols + order[p]];
  return out;
}

function permuteSymmetric(h: Float32Array, cols: number, order: Int32Array): Float32Array {
  const out = new Float32Array(cols * cols);
  for (let p = 0; p < cols; p++) for (let q = 0; q < cols; q++) out[p * cols + q] = h[order[p] * cols + order[q]];
  return out;
}

/** W [rows, cols] and its input Hessian H [cols, cols] -> the quantized layer (w and h are not modified). */
export function owq(w: Float32Array, h: Float32Array, rows: number, cols: number, o: OwqOptions): QuantizedColumns {
  if (!(Number.isInteger(o.nOut) && o.nOut >= 0 && o.nOut < cols))
    throw new RangeError(`owq: nOut ${o.nOut} must be in [0, ${cols})`);
  const order = columnOrder(w, h, rows, cols, o);
  const wp = order === null ? w.slice() : permuteColumns(w, rows, cols, order);
  const hp = order === null ? h.slice() : permuteSymmetric(h, cols, order);
  const nQuant = cols - o.nOut;
  const r = gptq(wp, hp, rows, cols, {
    bits: o.bits,
    nQuant,
    tuning: o.tuning,
    groupSize: o.groupSize,
    blockSize: o.blockSize,
    percdamp: o.percdamp,
  });
  let dequantized = wp;
  if (order !== null) {
    dequantized = new Float32Array(rows * cols);
    for (let i = 0; i < rows; i++) for (let p = 0; p < cols; p++) dequantized[i * cols + order[p]] = wp[i * cols + p];
  }
  return {
    rows,
    cols,
    bits: o.bits,
    groupSize: o.groupSize,
    order,
    nQuant,
    codes: r.codes,
    scale: r.scale,
    zero: r.zero,
    nGroups: r.nGroups,
    dequantized,
  };
}
