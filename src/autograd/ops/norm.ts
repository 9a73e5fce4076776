/** RMSNorm (Llama) and LayerNorm (OPT) over the last dim C of x [..., C]. */
import { kernelsFor } from '../../native/addon.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

function rowsOf(x: Tensor, w: Tensor, op: string): { rows: number; cols: number } {
  const cols = x.shape[x.shape.length - 1];
  if (w.shape.length !== 1 || w.shape[0] !== cols) throw new RangeError(`${op}: weight ${w} does not match input ${x}`);
  return { rows: x.size / cols, cols };
}

/** y = x / sqrt(mean(x^2) + eps) * w */
export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const d = { ...rowsOf(x, w, 'rmsnorm'), eps };
  const k = kernelsFor(x.data);
  const y = allocLike(x.data, x.size);
  const rstd = allocLike(x.data, d.rows);
  k.rmsnormForward(x.data, w.data, y, rstd, d);
  return record(new Tensor(y, x.shape), 'rmsnorm', [x, w], (g) => {
    const dx = allocLike(g, x.size);
    const dw = allocLike(g, w.size);
    kernelsFor(g).rmsnormBackward(x.data, w.data, rstd, g, dx, dw, d);
    return [dx, dw];
  });
}

/** y = (x - mean) / sqrt(var + eps) * w + b, biased variance as torch. */
export function layernorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const d = { ...rowsOf(x, w, 'layernorm'), eps };
  const y = allocLike(x.data, x.size);
  const mean = allocLike(x.data, d.rows);
  const rstd = allocLike(x.data, d.rows);
  kernelsFor(x.data).layernormForward(x.data, w.data, b.data, y, mean, rstd, d);
  return record(new Tensor(y, x.shape), 'layernorm', [x, w, b], (g) => {
    const dx = allocLike(g, x.size);
    const dw = allocLike(g, w.size);
    const db = allocLike(g, b.size);
    kernelsFor(g).layernormBackward(x.data, w.data, mean, rstd, g, dx, dw, db, d);
    return [dx, dw, db];
  });
}
