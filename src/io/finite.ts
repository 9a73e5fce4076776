/**
 * The load-time check that stored weights are finite: a NaN or an infinity in a weight, a scale, a weak column,
 * a delta or an adapter would otherwise surface much later as `ppl NaN` or as generated garbage. One pass over
 * the data; the index is looked for only when the pass found something.
 */
import { InputError } from '../errors.js';

/** Returns `data`, or throws an InputError naming `file`, `tensor` and the first non-finite element. */
export function checkFinite(file: string, tensor: string, data: Float32Array): Float32Array {
  let probe = 0;
  for (let i = 0; i < data.length; i++) probe += data[i] * 0; // NaN once any element is NaN or ±Infinity
  if (probe === 0) return data;
  const i = data.findIndex((x) => !Number.isFinite(x));
  throw new InputError(file, `tensor ${tensor}`, `element ${i} is ${data[i]} (stored values must be finite)`);
}
