/**
 * GPTQ (arXiv 2210.17323) as IST-DASLab/gptq's `fasterquant` runs it, in OWQ's variant (xvyaward/owq
 * recon.py): a pure function of (W, H, options); the caller permutes the columns (act-order, OWQ's weak
 * columns last) and accumulates H = 2/N sum x x^T. Only the first nQuant columns are quantized; the
 * error updates flow into the remaining (weak) columns, which come out compensated.
 *
 * Steps (reference symbols): per-row params from W[:, :nQuant] (groupSize 0); dead inputs (H_jj = 0)
 * get H_jj = 1 and W[:, j] = 0; damp = percdamp * mean(diag H) on the diagonal; Hinv = upper Cholesky
 * factor of H^-1; blocks of blockSize columns: quantize column i of W1, err = (w - q) / d (d = Hinv_ii),
 * W1[:, i:] -= err Hinv[i, i:]; then W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]. Group params (grid 40 for mse)
 * are taken from W at each group's first column. Fixed elements (GWQ-style outliers, `fixed`) are kept out:
 * they count as 0 in the params, get the zero point as code and 0 in Q, and propagate no error. Native kernel: kernels/src/gptq.cc; plain reference:
 * ./gptq-ref.ts.
 */
import { checkBits, checkCount, checkLength, checkTuning, quantBinding, type Tuning } from './quantizer.js';

export interface GptqOptions {
  bits: number;
  /** Columns [0, nQuant) are quantized; [nQuant, cols) are OWQ's weak columns (kept in float, compensated). */
  nQuant: number;
  tuning: Tuning;
  /** 0 (default): one (scale, zero) per row; else per group of groupSize columns. */
  groupSize?: number;
  /** Lazy-batch block of columns (128 in the reference). */
  blockSize?: number;
  /** Damping as a fraction of mean(diag H) (0.01 in the reference). */
  percdamp?: number;
  /** u8 [rows, cols]: 1 = an element kept out of the quantization (its Q is 0, its error 0); absent: none. */
  fixed?: Uint8Array;
}

export interface GptqResult {
  /** [rows, nQuant] integer codes of Q. */
  codes: Uint8Array;
  /** [rows, nGroups] */
  scale: Float32Array;
  /** [rows, nGroups], integer-valued */
  zero: Float32Array;
  nGroups: number;
  /** The reference's "error": sum (w - q)^2 / d^2 / 2. */
  loss: number;
}

/** Where the native sweep's time went, in seconds (kernels/include/wct_quant.h wct_gptq_timing). */
export interface GptqTiming {
  /** The (scale, zero) searches, with the copies of each block into its scratch. */
  paramsS: number;
  /** Damping, the two Cholesky factorizations and the inverse (Hinv). */
  hinvS: number;
  /** The row-parallel column sweeps inside the blocks. */
  sweepS: number;
  /** The later columns' updates, W[:, i2:] -= Err1 Hinv[i1:i2, i2:] (sgemm). */
  updateS: number;
}

export function gptqGroups(nQuant: number, groupSize: number): number {
  return groupSize > 0 ? Math.ceil(nQuant / groupSize) : 1;
}

/**
 * Quantizes w [rows, cols] in place (columns < nQuant become Q, dequantized; the rest the compensated
 * weak columns) against h [cols, cols], which is destroyed. Throws an Error when the damped H is not
 * positive definite (w is then untouched). `timing` says where the native call's time went (it changes no result).
 */
export function gptq(
  w: Float32Array,
  h: Float32Array,
  rows: number,
  cols: number,
  opts: GptqOptions,
): GptqResult & { timing: GptqTiming } {
  const fn = 'gptq';
  checkBits(fn, opts.bits);
  const tuning = checkTuning(fn, opts.tuning);
  const groupSize = opts.groupSize ?? 0;
  const blockSize = opts.blockSize ?? 128;
  const percdamp = opts.percdamp ?? 0.01;
  checkCount(fn, 'rows', rows);
  checkCount(fn, 'cols', cols, true);
  checkCount(fn, 'nQuant', opts.nQuant, true);
  if (opts.nQuant > cols) throw new RangeError(`${fn}: nQuant (${opts.nQuant}) must be at most cols (${cols})`);
  checkCount(fn, 'groupSize', groupSize);
  checkCount(fn, 'blockSize', blockSize, true);
  if (!(Number.isFinite(percdamp) && percdamp >= 0))
    throw new RangeError(`${fn}: percdamp must be a finite number >= 0, got ${percdamp}`);
  checkLength(fn, 'w', w, rows * cols);
  checkLength(fn, 'h', h, cols * cols);
  if (opts.fixed !== undefined) checkLength(fn, 'fixed', opts.fixed, rows * cols);
  const nGroups = gptqGroups(opts.nQuant, groupSize);
  const codes = new Uint8Array(rows * opts.nQuant);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  const { loss, ...timing } = quantBinding().gptq(
    w,
    h,
    rows,
    cols,
    opts.nQuant,
    opts.bits,
    tuning,
    groupSize,
    blockSize,
    percdamp,
    codes,
    scale,
    zero,
    opts.fixed ?? null,
  );
  return { codes, scale, zero, nGroups, loss, timing };
}
