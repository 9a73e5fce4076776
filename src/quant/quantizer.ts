/**
 * The quantizer grid every method shares (docs/ARCHITECTURE.md section 4): asymmetric, integer levels 0..maxq
 * (maxq = 2^bits - 1), one (scale, zero) per row of a row-major matrix:
 *   code(x) = clamp(round(x / scale) + zero, 0, maxq),   q(x) = scale * (code(x) - zero).
 * Parameters by min-max (GPTQ, RTN) or by OWQ's tuned clipping search ("mse": the (s, z) of least mean
 * |x - q(x)|^2.4 over `grid` clip ranges and every zero point). Arithmetic as the reference runs it under
 * PyTorch: fp32 throughout, round half to even. Native kernels: kernels/src/quant_params.cc; plain
 * reference: ./quantizer-ref.ts.
 */
import { loadAddonModule } from '../native/addon.js';
import type { QuantBinding } from '../native/binding.js';

export type Tuning = 'minmax' | 'mse';

export interface QuantGrid {
  bits: number;
  tuning: Tuning;
  /** mse: number of clip-range candidates, xrange * i / grid for i = 1..grid (100 per row, 40 per group in OWQ). */
  grid?: number;
}

/** Per-row parameters, [rows] (or [rows, nGroups] from gptq); zero is integer-valued in [0, maxq]. */
export interface RowParams {
  scale: Float32Array;
  zero: Float32Array;
}

/** The addon's quantizer functions. */
export function quantBinding(): QuantBinding {
  return loadAddonModule();
}

export const TUNING_CODES: Record<Tuning, number> = { minmax: 0, mse: 1 };
export const DEFAULT_GRID = 100;
const BITS = [2, 3, 4, 8];

/** maxq = 2^bits - 1 after checking bits is 2, 3, 4 or 8. */
export function checkBits(fn: string, bits: number): number {
  if (!BITS.includes(bits)) throw new RangeError(`${fn}: bits must be 2, 3, 4 or 8, got ${bits}`);
  return 2 ** bits - 1;
}

export function checkTuning(fn: string, tuning: Tuning): number {
  if (tuning !== 'minmax' && tuning !== 'mse')
    throw new RangeError(`${fn}: tuning must be 'minmax' or 'mse', got ${JSON.stringify(tuning)}`);
  return TUNING_CODES[tuning];
}

/** Checks a non-negative integer (min 1 when positive is set). */
export function checkCount(fn: string, name: string, x: number, positive = false): void {
  if (!Number.isSafeInteger(x) || x < (positive ? 1 : 0)) {
    throw new RangeError(`${fn}: ${name} must be a ${positive ? 'positive' : 'non-negative'} integer, got ${x}`);
  }
}

export function checkLength(fn: string, name: string, a: { length: number }, need: number): void {
  if (a.length < need) throw new RangeError(`${fn}: ${name} has ${a.length} elements, needs at least ${need}`);
}

/** Parameters of w[r, 0:cols] (row stride ld) for r < rows. */
export function findParams(w: Float32Array, rows: number, cols: number, ld: number, opts: QuantGrid): RowParams {
  const fn = 'findParams';
  checkBits(fn, opts.bits);
  const tuning = checkTuning(fn, opts.tuning);
  const grid = opts.grid ?? DEFAULT_GRID;
  checkCount(fn, 'rows', rows);
  checkCount(fn, 'cols', cols, true);
  checkCount(fn, 'ld', ld);
  checkCount(fn, 'grid', grid, true);
  if (ld < cols) throw new RangeError(`${fn}: ld (${ld}) must be at least cols (${cols})`);
  if (rows > 0) checkLength(fn, 'w', w, (rows - 1) * ld + cols);
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  quantBinding().quantFindParams(w, rows, cols, ld, opts.bits, tuning, grid, scale, zero);
  return { scale, zero };
}

/** out[r, c] = q(w[r, c]) with row r's params; codes[r, c] (when given) = its integer code. w, out, codes: [rows, cols]. */
export function fakeQuantize(
  w: Float32Array,
  rows: number,
  cols: number,
  p: RowParams,
  bits: number,
  out: Float32Array,
  codes?: Uint8Array,
): void {
  const fn = 'fakeQuantize';
  checkBits(fn, bits);
  checkCount(fn, 'rows', rows);
  checkCount(fn, 'cols', cols);
  checkLength(fn, 'w', w, rows * cols);
  checkLength(fn, 'scale', p.scale, rows);
  checkLength(fn, 'zero', p.zero, rows);
  checkLength(fn, 'out', out, rows * cols);
  if (codes !== undefined) checkLength(fn, 'codes', codes, rows * cols);
  quantBinding().quantFake(w, rows, cols, p.scale, p.zero, bits, out, codes ?? null);
}
