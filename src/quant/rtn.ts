/**
 * Round-to-nearest: min-max parameters per row (or per group of G input columns), then
 * q(x) = s * (clamp(round(x / s) + z, 0, 2^b - 1) - z). No calibration.
 */
import type { QuantizedColumns } from './quantized.js';
import { fakeQuantize, findParams } from './quantizer.js';

export interface RtnOptions {
  bits: number;
  /** 0 = per row. */
  groupSize: number;
}

/** w [rows, cols] -> its round-to-nearest quantization (w is not modified). */
export function rtn(w: Float32Array, rows: number, cols: number, { bits, groupSize }: RtnOptions): QuantizedColumns {
  const g = groupSize === 0 ? cols : groupSize;
  const nGroups = cols / g;
  const codes = new Uint8Array(rows * cols);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  const dequantized = new Float32Array(rows * cols);
  const slice = new Float32Array(rows * g);
  const q = new Float32Array(rows * g);
  const c = new Uint8Array(rows * g);
  for (let group = 0; group < nGroups; group++) {
    for (let r = 0; r < rows; r++) slice.set(w.subarray(r * cols + group * g, r * cols + (group + 1) * g), r * g);
    const p = findParams(slice, rows, g, g, { bits, tuning: 'minmax' });
    fakeQuantize(slice, rows, g, p, bits, q, c);
    for (let r = 0; r < rows; r++) {
      scale[r * nGroups + group] = p.scale[r];
      zero[r * nGroups + group] = p.zero[r];
      dequantized.set(q.subarray(r * g, (r + 1) * g), r * cols + group * g);
      codes.set(c.subarray(r * g, (r + 1) * g), r * cols + group * g);
    }
  }
  return { rows, cols, bits, groupSize, order: null, nQuant: cols, codes, scale, zero, nGroups, dequantized };
}
