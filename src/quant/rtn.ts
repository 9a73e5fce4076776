/**
 * Round-to-nearest: parameters per row (or per group of G input columns; the last group is shorter when G does
 * not divide cols, as GPTQ's groups), then q(x) = s * (clamp(round(x / s) + z, 0, 2^b - 1) - z). No calibration.
 * The parameters are GPTQ's min-max (range widened to include 0, ./quantizer.ts) by default, or another rule
 * (AWQ's own-range rule, ./awq-quantizer.ts).
 */
import type { QuantizedColumns } from './quantized.js';
import { fakeQuantize, findParams, type RowParams } from './quantizer.js';

export interface RtnOptions {
  bits: number;
  /** 0 = per row. */
  groupSize: number;
}

/** The parameters of a [rows, width] slice (row-major, contiguous) at `bits`. */
export type GroupParams = (slice: Float32Array, rows: number, width: number, bits: number) => RowParams;

const minMax: GroupParams = (slice, rows, width, bits) =>
  findParams(slice, rows, width, width, { bits, tuning: 'minmax' });

/** w [rows, cols] -> its round-to-nearest quantization with `params` per group (w is not modified). */
export function rtn(
  w: Float32Array,
  rows: number,
  cols: number,
  { bits, groupSize }: RtnOptions,
  params: GroupParams = minMax,
): QuantizedColumns {
  const g = groupSize === 0 ? cols : groupSize;
  const nGroups = Math.ceil(cols / g);
  const codes = new Uint8Array(rows * cols);
  const scale = new Float32Array(rows * nGroups);
  const zero = new Float32Array(rows * nGroups);
  const dequantized = new Float32Array(rows * cols);
  const [sliceBuf, qBuf, cBuf] = [new Float32Array(rows * g), new Float32Array(rows * g), new Uint8Array(rows * g)];
  for (let group = 0; group < nGroups; group++) {
    const c0 = group * g;
    const width = Math.min(g, cols - c0);
    const [slice, q, c] = [
      sliceBuf.subarray(0, rows * width),
      qBuf.subarray(0, rows * width),
      cBuf.subarray(0, rows * width),
    ];
    for (let r = 0; r < rows; r++) slice.set(w.subarray(r * cols + c0, r * cols + c0 + width), r * width); // w[:, c0:c0 + width]
    const p = params(slice, rows, width, bits);
    fakeQuantize(slice, rows, width, p, bits, q, c);
    for (let r = 0; r < rows; r++) {
      scale[r * nGroups + group] = p.scale[r];
      zero[r * nGroups + group] = p.zero[r];
      dequantized.set(q.subarray(r * width, (r + 1) * width), r * cols + c0);
      codes.set(c.subarray(r * width, (r + 1) * width), r * cols + c0);
    }
  }
  return { rows, cols, bits, groupSize, order: null, nQuant: cols, codes, scale, zero, nGroups, dequantized };
}
